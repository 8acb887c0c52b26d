"""What every mining method shares: known positives, filters, the rank window, sampling, rows and statistics.

A method (bm25, ce, dense) only produces, per query, a list of candidate corpus rows with the method's own
score (higher = more relevant) and the score of the query's positive. ``select_negatives`` then applies, in
this order (the order of sentence-transformers' ``util.mine_hard_negatives``):

1. known positives are removed: the row's positive and every other positive of the same query (same
   normalised query text, or ``extra_positives``);
2. ``absolute_margin``: drop candidates with ``score > positive_score - absolute_margin``;
3. ``relative_margin`` (NV-Retriever TopK-PercPos, sign-safe): drop ``score > pos - |pos| * relative_margin``;
4. ``max_score`` / ``min_score``: drop candidates above / below;
5. the survivors, best first, are cut to the window ``[range_min, range_max)``;
6. ``sampling_strategy`` "top" walks the window best first, "random" in a seeded random order; on the way a
   candidate whose text equals a known positive's after normalisation (case, white space) is skipped
   (``duplicate_of_positive``), and so is one whose word set is near-identical to a positive's (Jaccard >=
   ``near_duplicate_threshold``). These text checks run only on the candidates walked (so they cost almost
   nothing on large corpora) and are counted that way;
7. chosen negatives are returned best first; a query that ends with fewer than ``num_negatives`` is counted
   in ``queries_short_of_negatives`` and never padded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hardneg.text import normalise_texts  # noqa: F401  (re-exported: mining's duplicate key)

SamplingStrategy = Literal["top", "random"]
TRIPLET_COLUMNS = (
    "anchor",
    "positive",
    "negative",
    "query_id",
    "positive_id",
    "negative_id",
    "negative_rank",
    "positive_score",
    "negative_score",
    "method",
)
_WORD = re.compile(r"\w+")


def triplet_features():
    """The datasets Features of a mined triplet table (columns in contract order)."""
    from datasets import Features, Value

    types = {"negative_rank": "int64", "positive_score": "float64", "negative_score": "float64"}
    return Features({c: Value(types.get(c, "string")) for c in TRIPLET_COLUMNS})


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the lower-cased word sets of two texts."""
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


@dataclass
class MiningParams:
    """The knobs shared by all methods (names from sentence-transformers' mine_hard_negatives)."""

    range_min: int = 0
    range_max: int = 50
    num_negatives: int = 1
    sampling_strategy: SamplingStrategy = "top"
    seed: int = 42
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    near_duplicate_threshold: float | None = 0.9

    def __post_init__(self) -> None:
        if self.range_min < 0:
            raise ValueError(f"range_min must be >= 0, got {self.range_min}")
        if self.range_min >= self.range_max:
            raise ValueError(
                f"range_min ({self.range_min}) must be smaller than range_max ({self.range_max}); "
                "fix: e.g. range_min=0 range_max=50"
            )
        if self.num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {self.num_negatives}")
        if self.num_negatives > self.range_max - self.range_min:
            raise ValueError(
                f"num_negatives={self.num_negatives} is larger than the pool of range_max - range_min = "
                f"{self.range_max - self.range_min} candidates; fix: lower num_negatives or raise range_max"
            )
        if self.sampling_strategy not in ("top", "random"):
            raise ValueError(f"sampling_strategy must be 'top' or 'random', got '{self.sampling_strategy}'")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ValueError(
                f"relative_margin must be in [0, 1), got {self.relative_margin}; e.g. 0.05 = 95% of pos"
            )
        if self.near_duplicate_threshold is not None and not 0 < self.near_duplicate_threshold <= 1:
            raise ValueError(
                f"near_duplicate_threshold must be in (0, 1] or None, got {self.near_duplicate_threshold}"
            )


@dataclass
class Selection:
    """Chosen negatives per query (corpus rows, scores, 1-based ranks in the method's ranking) + counters."""

    negatives: list[np.ndarray]
    scores: list[np.ndarray]
    ranks: list[np.ndarray]
    candidates_considered: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    queries_short_of_negatives: int = 0
    queries_without_candidates: int = 0


def positive_matrix(positive_sets: Sequence[Sequence[int]]) -> np.ndarray:
    """Known positives per query as an (n, max) int array padded with -2 (never a corpus row, never -1)."""
    width = max((len(s) for s in positive_sets), default=1) or 1
    out = np.full((len(positive_sets), width), -2, dtype=np.int64)
    for i, s in enumerate(positive_sets):
        out[i, : len(s)] = list(s)
    return out


def select_negatives(
    indices: np.ndarray,
    scores: np.ndarray,
    positive_scores: np.ndarray,
    positive_rows: np.ndarray,
    known_positives: np.ndarray,
    params: MiningParams,
    *,
    texts: Sequence[str] | None = None,
) -> Selection:
    """Apply the shared filters to (n_queries, k) candidate rows/scores (row -1 = no candidate).

    ``positive_rows``: the row's own positive (corpus row); ``known_positives``: (n, m) all known positive rows
    (from ``positive_matrix``); ``texts``: the corpus passages, for the duplicate checks against the known
    positives (skipped when None).
    """
    indices = np.asarray(indices, dtype=np.int64)
    s = np.array(scores, dtype=np.float64, copy=True)
    n = len(indices)
    pos = np.asarray(positive_scores, dtype=np.float64)[:, None]
    alive = indices >= 0
    s[~alive] = -np.inf
    # Rank of every candidate in the method's own ranking (1 = best), positives included; exact score ties
    # are broken by corpus row, so the result does not depend on the tie order of the search library.
    order = np.lexsort((np.where(indices >= 0, indices, np.iinfo(np.int64).max), -s), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, s.shape[1] + 1)[None, :].repeat(n, 0), axis=1)
    sel = Selection([], [], [], candidates_considered=int(alive.sum()))
    sel.queries_without_candidates = int((~alive.any(axis=1)).sum())

    def drop(name: str, mask: np.ndarray) -> None:
        nonlocal alive
        hit = alive & mask
        sel.skipped[name] = int(hit.sum())
        alive = alive & ~hit

    drop("positive", (indices[:, :, None] == known_positives[:, None, :]).any(-1))
    with np.errstate(invalid="ignore"):
        if params.absolute_margin is not None:
            drop("absolute_margin", s > pos - params.absolute_margin)
        if params.relative_margin is not None:
            drop("relative_margin", s > pos - np.abs(pos) * params.relative_margin)
        if params.max_score is not None:
            drop("max_score", s > params.max_score)
        if params.min_score is not None:
            drop("min_score", s < params.min_score)

    check = texts is not None
    threshold = params.near_duplicate_threshold
    rng = np.random.default_rng(params.seed)
    skipped_range_min = exact = near = 0
    sorted_alive = np.take_along_axis(alive, order, axis=1)
    for q in range(n):
        window = order[q][sorted_alive[q]]
        skipped_range_min += min(params.range_min, len(window))
        window = window[params.range_min : params.range_max]
        if params.sampling_strategy == "random":
            window = window[rng.permutation(len(window))]
        chosen: list[int] = []
        pos_texts = [texts[r] for r in known_positives[q] if r >= 0] if check else []
        for j in window:
            if check:
                cand = texts[indices[q, j]]
                if any(_norm(cand) == _norm(p) for p in pos_texts):
                    exact += 1
                    continue
                if threshold is not None and any(jaccard(cand, p) >= threshold for p in pos_texts):
                    near += 1
                    continue
            chosen.append(j)
            if len(chosen) == params.num_negatives:
                break
        chosen_arr = np.array(sorted(chosen, key=lambda j: ranks[q, j]), dtype=np.int64)
        if len(chosen_arr) < params.num_negatives:
            sel.queries_short_of_negatives += 1
        sel.negatives.append(indices[q, chosen_arr])
        sel.scores.append(s[q, chosen_arr])
        sel.ranks.append(ranks[q, chosen_arr])
    sel.skipped["range_min"] = skipped_range_min
    if check:
        sel.skipped["duplicate_of_positive"] = exact
        if threshold is not None:
            sel.skipped["near_duplicate_of_positive"] = near
    return sel


def describe(values: Sequence[float] | np.ndarray) -> dict[str, float] | None:
    """{count, mean, std, min, p50, max} of a score list (None when empty)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "p50": float(np.median(v)),
        "max": float(v.max()),
    }


@dataclass
class Candidates:
    """A method's output before filtering: (n, k) corpus rows (-1 = none), their scores, the positives' scores."""

    indices: np.ndarray
    scores: np.ndarray
    positive_scores: np.ndarray
    score_name: str
