"""``hybrid_hn`` (SyNeg, arXiv 2412.17250): per query, negatives drawn from an LLM config and a mined config of
this build in a set ratio (``hardneg.negatives.hybrid.mix_negatives``); each row's ``source`` names its config."""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from hardneg.methods import (
    HYBRID_FEATURES,
    Method,
    MethodContext,
    Options,
    get_method,
    method_names,
    register,
)
from hardneg.negatives.hybrid import mix_negatives
from hardneg.options import ConfigError, check_fields


@dataclass
class HybridHnOptions:
    hybrid_sources: list[str] = field(
        default_factory=lambda: ["llm_hn", "bm25_hn"],
        metadata={"help": "The LLM config and the mined config it draws negatives from."},
    )
    hybrid_llm_ratio: float = field(
        default=0.5,
        metadata={"bounds": (0, 1), "help": "Share of all negatives taken from the LLM config (0-1)."},
    )
    num_negatives: int = field(
        default=1, metadata={"bounds": (1, None), "help": "Negatives per query (one triplet row each)."}
    )

    def __post_init__(self) -> None:
        check_fields(self)
        inputs(vars(self))


def inputs(options: Options) -> list[str]:
    """The configs hybrid_hn reads: an LLM config then a mined config."""
    sources = list(options["hybrid_sources"])
    known = method_names()
    kinds = [get_method(s).kind if s in known else None for s in sources]
    if kinds != ["llm", "mined"]:
        raise ConfigError(
            f"hybrid_sources {sources} must name an LLM config then a mined config; fix: e.g. [llm_hn, bm25_hn]"
        )
    return sources


def run(ctx: MethodContext) -> tuple[Dataset, dict]:
    """Its cost includes the cost of its two sources."""
    llm_source, mined_source = inputs(ctx.options)
    triplets, stats = mix_negatives(
        ctx.inputs[llm_source],
        ctx.inputs[mined_source],
        num_negatives=ctx.options["num_negatives"],
        llm_ratio=ctx.options["hybrid_llm_ratio"],
        seed=ctx.seed,
        name=ctx.name,
        llm_source=llm_source,
        mined_source=mined_source,
    )
    for key in ("wall_seconds", "prompt_tokens", "completion_tokens"):
        values = [ctx.input_stats.get(s, {}).get(key) for s in (llm_source, mined_source)]
        known = [v for v in values if v is not None]
        if known:
            stats[key] = round(sum(known), 3) if key == "wall_seconds" else sum(known)
    stats["cost_includes"] = [llm_source, mined_source]
    return triplets, stats


METHOD = register(
    Method(
        "hybrid_hn",
        "derived",
        "Per query, negatives drawn from an LLM config and a mined config of this build in a set ratio "
        "(SyNeg, arXiv 2412.17250); each row's `source` column names the config it came from.",
        run,
        options=HybridHnOptions,
        features=HYBRID_FEATURES,
        inputs=inputs,
    )
)
