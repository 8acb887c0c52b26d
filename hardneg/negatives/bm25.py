"""BM25 hard negatives: candidates are the top BM25 passages (bm25s, numba backend) of the full corpus.

Score used by the margins and ``max_score``/``min_score``: the BM25 score (Lucene variant by default,
``k1=1.5, b=0.75``), not normalised, >= 0. A passage that shares no term with the query scores 0 and
is never a candidate (it is not "hard", it is arbitrary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hardneg.bm25 import BM25Index
from hardneg.negatives.mining import Candidates, positive_pairs, positive_score_array


@dataclass
class BM25Options:
    """Index options (passed to ``hardneg.bm25.BM25Index``)."""

    stemmer: str | None = "english"
    stopwords: str | list[str] | None = "en"
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    backend: str = "numba"


def bm25_index(
    passages: Sequence[str], options: BM25Options | None = None, *, show_progress: bool = True
) -> BM25Index:
    """A ``BM25Index`` over ``passages`` (row i = passage i) with ``options``."""
    o = options or BM25Options()
    return BM25Index(
        passages,
        stemmer=o.stemmer,
        stopwords=o.stopwords,
        k1=o.k1,
        b=o.b,
        method=o.method,
        backend=o.backend,
        show_progress=show_progress,
    )


def bm25_candidates(
    query_texts: Sequence[str],
    passages: Sequence[str],
    positive_rows: np.ndarray,
    *,
    k: int,
    options: BM25Options | None = None,
    index: BM25Index | None = None,
    show_progress: bool = True,
) -> Candidates:
    """Top-``k`` BM25 candidates per query and the BM25 score of each positive.

    ``positive_rows``: (n,) one positive per query, or (n, m) all its known positives (padded with -2).

    ``index``: a prebuilt ``BM25Index`` over exactly ``passages`` (row i = passage i), to share it with
    evaluation or the ``ce`` first stage; built here otherwise.
    """
    if index is None:
        index = bm25_index(passages, options, show_progress=show_progress)
    elif len(index) != len(passages):
        raise ValueError(
            f"the BM25 index holds {len(index)} passages but the corpus {len(passages)}; rebuild it"
        )
    rows, scores = index.search_indices(query_texts, k=k)
    rows = np.asarray(rows, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    rows[scores <= 0] = -1
    # A positive's score: read it from the results when retrieved, score the pair otherwise.
    pq, prow = positive_pairs(positive_rows)
    hit = rows[pq] == prow[:, None]
    values = np.where(hit.any(1), np.where(hit, scores[pq], 0).sum(1), np.nan).astype(np.float32)
    missing = np.flatnonzero(~hit.any(1))
    if len(missing):
        values[missing] = index.score_pairs([query_texts[i] for i in pq[missing]], prow[missing])
    positive_scores = positive_score_array(positive_rows, values)
    return Candidates(rows, scores, positive_scores, "BM25 score (bm25s, lucene; >= 0, unnormalised)")
