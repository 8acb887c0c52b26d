"""``dense_hn``: the hard negative is a corpus passage mined with a dense bi-encoder (the positive excluded)."""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from hardneg.assets import EMBEDDED_EMBEDDER
from hardneg.methods import MINED_FEATURES, Method, MethodContext, Options, register
from hardneg.methods.common import MiningOptions, run_mined
from hardneg.negatives.providers import DenseProvider


@dataclass
class DenseHnOptions(MiningOptions):
    embedder: str = field(default=EMBEDDED_EMBEDDER, metadata={"help": "Bi-encoder that ranks the pool."})


def run(ctx: MethodContext) -> tuple[Dataset, dict]:
    return run_mined(ctx, DenseProvider(ctx.options["embedder"]))


def pool_embedder(options: Options) -> str:
    return options["embedder"]


METHOD = register(
    Method(
        "dense_hn",
        "mined",
        "The hard negative is a corpus passage mined with a dense embedder (the positive excluded).",
        run,
        options=DenseHnOptions,
        features=MINED_FEATURES,
        needs=("pool", "embedder"),
        pool_embedder=pool_embedder,
    )
)
