"""``ce_hn``: first-stage candidates (BM25 or dense) rescored by a cross-encoder (or ``embedded:ql``); the
negative is a high-scoring candidate that passes the false-negative guard (``ce_absolute_margin``: its score must
stay below the positive's by that margin; it replaces ``absolute_margin``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset

from hardneg.assets import EMBEDDED_EMBEDDER
from hardneg.methods import MINED_FEATURES, Method, MethodContext, Options, register
from hardneg.methods.common import MiningOptions, run_mined
from hardneg.negatives.providers import FIRST_STAGES, ProviderSettings, Rescored, first_stage
from hardneg.options import ConfigError


@dataclass
class CeHnOptions(MiningOptions):
    ce_scorer: str = field(
        default="embedded:ql",
        metadata={"help": "Scorer: a CrossEncoder id (cross-encoder/ms-marco-MiniLM-L-6-v2) or embedded:ql."},
    )
    ce_absolute_margin: float | None = field(
        default=0.0,
        metadata={
            "help": "False-negative guard: keep candidates the scorer rates below positive - margin (overrides "
            "absolute_margin; none to disable)."
        },
    )
    ce_candidates: str = field(default="bm25", metadata={"help": "First stage: bm25 | dense."})
    scorer_dtype: str = field(
        default="auto", metadata={"help": "Precision of the scorer (default: the build's scorer_dtype)."}
    )
    embedder: str = field(
        default=EMBEDDED_EMBEDDER,
        metadata={"help": "Bi-encoder of a dense first stage (ce_candidates: dense)."},
    )

    def __post_init__(self) -> None:
        if self.ce_candidates not in FIRST_STAGES:
            raise ConfigError(
                f"ce_hn ce_candidates '{self.ce_candidates}'; fix: use {' or '.join(FIRST_STAGES)}"
            )
        super().__post_init__()


def run(ctx: MethodContext) -> tuple[Dataset, dict[str, Any]]:
    o = ctx.options
    first = first_stage(o["ce_candidates"], ProviderSettings(embedder=o["embedder"]))
    provider = Rescored(first, ctx.scorer(o["ce_scorer"], o["scorer_dtype"]))
    guard = {"absolute_margin": o["ce_absolute_margin"]} if o["ce_absolute_margin"] is not None else {}
    return run_mined(ctx, provider, **guard)


def key_options(options: Options) -> dict[str, Any]:
    # The embedder shapes ce_hn only when it picks the candidates.
    return {k: v for k, v in options.items() if k != "embedder" or options.get("ce_candidates") == "dense"}


def guard_scorer(options: Options) -> str | None:
    return options["ce_scorer"] if options.get("ce_absolute_margin") is not None else None


def pool_embedder(options: Options) -> str | None:
    return options["embedder"] if options.get("ce_candidates") == "dense" else None


METHOD = register(
    Method(
        "ce_hn",
        "mined",
        "BM25 candidates rescored by a cross-encoder; the negative is a high-scoring candidate that passes "
        "the false-negative guard (its score must stay below the positive's by the given margin).",
        run,
        options=CeHnOptions,
        features=MINED_FEATURES,
        needs=("pool", "scorer"),
        key_options=key_options,
        guard_scorer=guard_scorer,
        scorer_option="ce_scorer",
        pool_embedder=pool_embedder,
    )
)
