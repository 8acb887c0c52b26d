"""``bm25_hn``: the hard negative is a corpus passage mined with BM25 for the query (the positive excluded)."""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Dataset

from hardneg.methods import MINED_FEATURES, Method, MethodContext, register
from hardneg.methods.common import MiningOptions, run_mined
from hardneg.negatives.providers import BM25Provider


@dataclass
class Bm25HnOptions(MiningOptions):
    pass


def run(ctx: MethodContext) -> tuple[Dataset, dict]:
    return run_mined(ctx, BM25Provider())


METHOD = register(
    Method(
        "bm25_hn",
        "mined",
        "The hard negative is a corpus passage mined with BM25 for the query (the positive excluded).",
        run,
        options=Bm25HnOptions,
        features=MINED_FEATURES,
        needs=("pool",),
    )
)
