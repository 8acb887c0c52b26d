"""Option groups several methods share: the LLM methods' budget and retries, the mined methods' window and
filters (sentence-transformers' ``mine_hard_negatives`` names), and the run function of a mined method.

A method's options dataclass inherits one of these and adds its own fields; every field has a default, a
``metadata["help"]`` and, where it needs one, a check in ``__post_init__`` (``hardneg.options.check_fields``
for numbers, then the method's own rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from datasets import Dataset

from hardneg.methods import MINED_FEATURES, MethodContext, empty_table
from hardneg.negatives import mine_hard_negatives, pool_cache
from hardneg.negatives.llm import generate_negatives
from hardneg.negatives.providers import CandidateProvider
from hardneg.options import ConfigError, check_fields
from hardneg.prompts import load_prompt_for


@dataclass
class LLMOptions:
    """What every LLM method takes besides its prompt. The method's options add a ``prompt`` field (default: the
    method's own template) and set ``INPUTS``, the placeholders the method fills; the prompt is checked when
    the options are built (``__post_init__``), not when the method's stage runs after query generation."""

    # The placeholders the method's prompt must take exactly (None: any negative prompt, e.g. a plugin's).
    INPUTS: ClassVar[tuple[str, ...] | None] = None

    max_new_tokens: int = field(
        default=96, metadata={"bounds": (1, None), "help": "Token budget of a generated negative passage."}
    )
    reject_retries: int = field(
        default=2,
        metadata={
            "help": "Retries (new seed) for an output rejected by the hygiene filters (default: the build's)."
        },
    )

    def __post_init__(self) -> None:
        check_fields(self)
        prompt = getattr(self, "prompt", None)
        if prompt is not None:
            own = next(f.default for f in fields(self) if f.name == "prompt")
            fix = f"use the method's own prompt ({own}) or a negative template over those placeholders"
            load_prompt_for(prompt, "negative", self.INPUTS, fix)


@dataclass
class MiningOptions:
    """The candidate window and filters of a mined method (sentence-transformers' names)."""

    range_min: int = field(
        default=0, metadata={"help": "Skip the first range_min candidates of the ranking."}
    )
    range_max: int = field(
        default=20, metadata={"bounds": (1, None), "help": "Consider only the top range_max candidates."}
    )
    num_negatives: int = field(
        default=1, metadata={"bounds": (1, None), "help": "Negatives per query (one triplet row each)."}
    )
    sampling_strategy: str = field(
        default="top", metadata={"help": "top | random (seeded) among the kept candidates."}
    )
    absolute_margin: float | None = field(
        default=None, metadata={"help": "Keep negatives scoring < positive - margin."}
    )
    relative_margin: float | None = field(
        default=None,
        metadata={"help": "Keep negatives scoring < positive * (1 - margin) (NV-Retriever TopK-PercPos)."},
    )
    max_score: float | None = field(default=None, metadata={"help": "Drop candidates scoring above this."})
    min_score: float | None = field(default=None, metadata={"help": "Drop candidates scoring below this."})

    def __post_init__(self) -> None:
        lo, hi, k = self.range_min, self.range_max, self.num_negatives
        if lo >= hi:
            raise ConfigError(f"range_min ({lo}) must be < range_max ({hi}); fix: raise range_max")
        if k < 1 or hi - lo < k:  # checked now, not after the queries and LLM negatives are generated
            raise ConfigError(
                f"num_negatives ({k}) must be >= 1 and fit in the candidate window range_min..range_max "
                f"({lo}..{hi}); fix: raise range_max or lower num_negatives"
            )
        if self.sampling_strategy not in ("top", "random"):
            raise ConfigError(f"sampling_strategy '{self.sampling_strategy}' is not top or random")
        check_fields(self)


WINDOW = ("range_min", "range_max", "num_negatives", "sampling_strategy")
FILTERS = ("absolute_margin", "relative_margin", "max_score", "min_score")


def run_llm(ctx: MethodContext, inputs: tuple[str, ...]) -> tuple[Dataset, dict]:
    """An LLM method's run: one negative written per query from the query columns ``inputs`` with the method's
    prompt (``LLMOptions``: prompt, max_new_tokens, reject_retries)."""
    o = ctx.options
    return generate_negatives(
        ctx.queries,
        ctx.generator(),
        method=ctx.name,
        prompt=o["prompt"],
        inputs=inputs,
        cache_dir=ctx.cache_dir,
        seed=ctx.seed,
        max_new_tokens=o["max_new_tokens"],
        max_retries=o["reject_retries"],
    )


def run_mined(
    ctx: MethodContext, provider: CandidateProvider, **overrides: Any
) -> tuple[Dataset, dict[str, Any]]:
    """A mined method's run: ``mine_hard_negatives`` over the pool with ``provider``'s candidates and the
    method's window and filters (``overrides`` replace some, e.g. ce_hn's guard margin)."""
    o = ctx.options
    if len(ctx.queries) == 0 and ctx.shard.world > 1:
        # Every query of this shard was rejected or decontaminated (a one-process build says so instead); its
        # part of the pool's embeddings was written before the methods ran (``hardneg.build.steps.share_pool``).
        return empty_table(MINED_FEATURES), {"rows": 0, "method": ctx.name}
    settings = {k: o[k] for k in (*WINDOW, *FILTERS)} | overrides
    return mine_hard_negatives(
        ctx.queries,
        ctx.pool,
        method=provider,
        name=ctx.name,
        **settings,
        seed=ctx.seed,
        batch_size=ctx.batch_size,
        cache_dir=ctx.cache_dir / "mining",
        cache_folder=pool_cache(ctx.shared_cache_dir),
        shard=ctx.shard,
        cache_file_name=ctx.cache_dir / "mining" / f"{ctx.name}.arrow",  # the stage copies it, then it goes
    )
