"""What every mining method shares: known positives, filters, the rank window, sampling, rows and statistics.

As in sentence-transformers' ``util.mine_hard_negatives``, the pool holds each distinct passage text once
(``hardneg.negatives.pool_passages``: two ids with the same text are one candidate, the first id names it) and negatives are
mined once per distinct query (``group_queries``: the rows of the queries table that share a normalised
query text; every row of the query gets the same negatives). A method (bm25, ce, dense) only produces, per
query, a list of candidate corpus rows with the method's own score (higher = more relevant) and the score of
each of the query's known positives. ``select_negatives`` then applies, in this order (the order of
sentence-transformers' ``util.mine_hard_negatives``):

1. known positives are removed: every positive of the query (all rows with the same normalised query text,
   and ``extra_positives``);
2. ``absolute_margin``: drop candidates with ``score > pos - absolute_margin``, where ``pos`` is the query's
   LOWEST known positive score (so no negative scores above any of its positives, as in sentence-transformers);
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

Before step 1, under sentence-transformers >= 6.3's rules, a pool passage whose text equals the query's
text is dropped (``query_text``). What changed between sentence-transformers versions is one ``MiningRules``
value per version (``ST_MINING_RULES``); ``mining_rules()`` picks the one of the installed version, and the
table in docs/mining.md lists them.

``st_output`` writes the result in sentence-transformers' ``output_format`` layouts and column names.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardneg.methods import MINED_FEATURES
from hardneg.options import check_fields
from hardneg.text import ArrowTexts, normalise_text, word_jaccard

SamplingStrategy = Literal["top", "random"]
OutputFormat = Literal["triplet", "n-tuple", "labeled-pair", "labeled-list"]
OUTPUT_FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")
# Part of every mined stage key (with ``MiningRules.follows``): bump when hardneg's own selection rules change,
# so old runs re-mine. 2: margins against the query's lowest positive, identical corpus texts merged.
MINING_RULES_VERSION = 2


@dataclass(frozen=True)
class MiningRules:
    """What sentence-transformers' ``util.mine_hard_negatives`` does differently from one version to another.

    Read from its source (``sentence_transformers/util/hard_negatives.py``) for each version in ``follows``.
    """

    follows: str  # the sentence-transformers versions that mine this way
    # candidates the first stage fetches beyond ``range_max`` + the most known positives of any query
    extra_candidates: int
    # a pool passage whose text equals the query's text is never a negative (6.3: ``query_corpus_indices``)
    exclude_query_text: bool


# (first version, rules), oldest first; a version takes the rules of the last entry at or below it.
ST_MINING_RULES: tuple[tuple[tuple[int, int], MiningRules], ...] = (
    ((6, 0), MiningRules("sentence-transformers 6.0-6.2", extra_candidates=0, exclude_query_text=False)),
    ((6, 3), MiningRules("sentence-transformers >=6.3", extra_candidates=1, exclude_query_text=True)),
)


def mining_rules(version: str | None = None) -> MiningRules:
    """The rules of sentence-transformers ``version`` (default: the installed one)."""
    version = version or importlib.metadata.version("sentence-transformers")
    parts = tuple(int(p) for p in version.split("+")[0].split(".")[:2] if p.isdigit())
    chosen = ST_MINING_RULES[0][1]
    for first, rules in ST_MINING_RULES:
        if parts >= first:
            chosen = rules
    return chosen


def query_text_rows(query_texts: Sequence[str], passages: Sequence[str]) -> np.ndarray:
    """(n,) the pool row whose text equals each query's text exactly, -1 where none (pool texts are distinct).

    The hash table is built over the queries (distinct, fewer and shorter than the pool) and every pool text is
    looked up in it, so a pool of millions is never hashed."""
    queries = pa.array(query_texts, pa.string())
    column = passages.column if isinstance(passages, ArrowTexts) else pa.array(passages, pa.string())
    found = pc.index_in(column, value_set=queries)  # per pool text: the query it equals, or null
    hit = pc.fill_null(found, -1).to_numpy(zero_copy_only=False)
    rows = np.full(len(queries), -1, dtype=np.int64)
    pool_rows = np.flatnonzero(hit >= 0)
    rows[hit[pool_rows]] = pool_rows
    return rows


MINED_COLUMNS = tuple(MINED_FEATURES)  # the mined table's columns, in contract order


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
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)


@dataclass
class Selection:
    """Chosen negatives per query (corpus rows, scores, 1-based ranks in the method's ranking) + counters."""

    negatives: list[np.ndarray]
    scores: list[np.ndarray]
    ranks: list[np.ndarray]
    candidates_considered: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    short: list[bool] = field(default_factory=list)
    without_candidates: list[bool] = field(default_factory=list)

    def extend(self, other: Selection) -> None:
        """Append another block of queries' selection (counters add up)."""
        self.negatives += other.negatives
        self.scores += other.scores
        self.ranks += other.ranks
        self.candidates_considered += other.candidates_considered
        for name, n in other.skipped.items():
            self.skipped[name] = self.skipped.get(name, 0) + n
        self.short += other.short
        self.without_candidates += other.without_candidates

    @property
    def queries_short_of_negatives(self) -> int:
        return sum(self.short)

    @property
    def queries_without_candidates(self) -> int:
        return sum(self.without_candidates)

    def per_row(self, group: np.ndarray) -> Selection:
        """The selection of each query row (``group``: the row's query), counters counted per row."""
        return Selection(
            [self.negatives[g] for g in group],
            [self.scores[g] for g in group],
            [self.ranks[g] for g in group],
            self.candidates_considered,
            self.skipped,
            [self.short[g] for g in group],
            [self.without_candidates[g] for g in group],
        )


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
    query_rows: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> Selection:
    """Apply the shared filters to (n_queries, k) candidate rows/scores (row -1 = no candidate).

    ``positive_scores``: (n,) the score the margins compare with: the query's lowest known positive score
    (``Candidates.lowest_positive_scores``); ``positive_rows``: the row's own positive (corpus row, unused by
    the filters); ``known_positives``: (n, m) all known positive rows (from ``positive_matrix``); ``texts``:
    the corpus passages, for the duplicate checks against the known positives (skipped when None);
    ``query_rows``: (n,) the pool row holding each query's own text (``query_text_rows``; -1 = none), dropped
    first when given (sentence-transformers >= 6.3); ``rng``: the ``random`` strategy's generator (default: one
    seeded by ``params.seed``; a caller selecting block by block passes one generator to every block, so the
    blocks draw what one call would).
    """
    indices = np.asarray(indices, dtype=np.int64)
    s = np.array(scores, dtype=np.float64, copy=True)
    alive = indices >= 0
    s[~alive] = -np.inf
    order, ranks = _ranking(indices, s)
    sel = Selection([], [], [], candidates_considered=int(alive.sum()))
    sel.without_candidates = (~alive.any(axis=1)).tolist()
    alive = _filter(sel, indices, s, alive, positive_scores, known_positives, params, query_rows)
    rng = rng if rng is not None else np.random.default_rng(params.seed)
    skipped_range_min, exact, near = 0, 0, 0
    sorted_alive = np.take_along_axis(alive, order, axis=1)
    for q in range(len(indices)):
        window = order[q][sorted_alive[q]]
        skipped_range_min += min(params.range_min, len(window))
        window = window[params.range_min : params.range_max]
        if params.sampling_strategy == "random":
            window = window[rng.permutation(len(window))]
        chosen, dup = _pick(window, indices[q], known_positives[q], params, texts)
        exact, near = exact + dup[0], near + dup[1]
        chosen_arr = np.array(sorted(chosen, key=lambda j: ranks[q, j]), dtype=np.int64)
        sel.short.append(len(chosen_arr) < params.num_negatives)
        sel.negatives.append(indices[q, chosen_arr])
        sel.scores.append(s[q, chosen_arr])
        sel.ranks.append(ranks[q, chosen_arr])
    sel.skipped["range_min"] = skipped_range_min
    if texts is not None:
        sel.skipped["duplicate_of_positive"] = exact
        if params.near_duplicate_threshold is not None:
            sel.skipped["near_duplicate_of_positive"] = near
    return sel


def _ranking(indices: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, ranks): every candidate's place in the method's own ranking (1 = best), positives included;
    exact score ties are broken by corpus row, so the result does not depend on the search library's order."""
    order = np.lexsort((np.where(indices >= 0, indices, np.iinfo(np.int64).max), -s), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, s.shape[1] + 1)[None, :].repeat(len(indices), 0), axis=1)
    return order, ranks


def _filter(
    sel: Selection,
    indices: np.ndarray,
    s: np.ndarray,
    alive: np.ndarray,
    positive_scores: np.ndarray,
    known_positives: np.ndarray,
    params: MiningParams,
    query_rows: np.ndarray | None,
) -> np.ndarray:
    """The filters before the window, in sentence-transformers' order; each counts what it removed."""
    pos = np.asarray(positive_scores, dtype=np.float64)[:, None]

    def drop(name: str, mask: np.ndarray) -> None:
        nonlocal alive
        hit = alive & mask
        sel.skipped[name] = int(hit.sum())
        alive = alive & ~hit

    if query_rows is not None:
        drop("query_text", indices == np.asarray(query_rows, dtype=np.int64)[:, None])
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
    return alive


def _pick(
    window: np.ndarray,
    rows: np.ndarray,
    known: np.ndarray,
    params: MiningParams,
    texts: Sequence[str] | None,
) -> tuple[list[int], tuple[int, int]]:
    """The first ``num_negatives`` of a query's window that are no (near-)copy of a known positive; returns
    (their columns, (exact copies skipped, near copies skipped))."""
    threshold = params.near_duplicate_threshold
    chosen: list[int] = []
    exact = near = 0
    pos_texts = [texts[r] for r in known if r >= 0] if texts is not None else []
    pos_norm = {normalise_text(p) for p in pos_texts}  # once per query, not per candidate
    for j in window:
        if texts is not None:
            cand = texts[rows[j]]
            if normalise_text(cand) in pos_norm:
                exact += 1
                continue
            if threshold is not None and any(word_jaccard(cand, p) >= threshold for p in pos_texts):
                near += 1
                continue
        chosen.append(j)
        if len(chosen) == params.num_negatives:
            break
    return chosen, (exact, near)


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
    """A method's output before filtering: (n, k) corpus rows (-1 = none), their scores, the positives' scores.

    ``positive_scores`` has the shape of the ``positive_rows`` the method was given: (n,) one positive per
    query, or (n, m) every known positive of each query (``positive_matrix``; NaN where the row is padding).
    """

    indices: np.ndarray
    scores: np.ndarray
    positive_scores: np.ndarray
    score_name: str

    @property
    def lowest_positive_scores(self) -> np.ndarray:
        """(n,) each query's lowest positive score: what the margins compare with (sentence-transformers' rule)."""
        p = np.asarray(self.positive_scores, dtype=np.float64)
        return np.nanmin(p, axis=1) if p.ndim == 2 else p


def positive_pairs(positive_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query index, corpus row) of every positive in an (n,) or padded (n, m) ``positive_rows`` array."""
    p = np.asarray(positive_rows, dtype=np.int64).reshape(len(positive_rows), -1)
    q, j = np.nonzero(p >= 0)
    return q, p[q, j]


def positive_score_array(positive_rows: np.ndarray, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Put the scores of ``positive_pairs(positive_rows)`` back in ``positive_rows``' shape (NaN = padding)."""
    p = np.asarray(positive_rows, dtype=np.int64)
    out = np.full(p.shape, np.nan, dtype=np.float32)
    out[p >= 0] = np.asarray(values, dtype=np.float32)
    return out


@dataclass
class QueryGroups:
    """The rows of a queries table grouped by query: negatives are mined once per query, shared by its rows."""

    group: np.ndarray  # (n_rows,) the query of each row
    first: np.ndarray  # (n_queries,) the first row of each query
    known: list[list[int]]  # per query: its positives' corpus rows (rows' positives in order, then extras)
    own: np.ndarray  # (n_rows,) position of the row's own positive in ``known[group]``
    unknown_extra: int = 0

    def own_scores(self, positive_scores: np.ndarray) -> np.ndarray:
        """(n_rows,) each row's own positive score from (n_queries, m) scores of ``known``."""
        return np.asarray(positive_scores)[self.group, self.own]


def group_queries(
    normalised_queries: Sequence[str],
    query_ids: Sequence[str],
    positive_rows: Sequence[int],
    rows_of: Callable[[list[str]], np.ndarray],
    extra_positives: Mapping[str, Iterable[str]] | None = None,
) -> QueryGroups:
    """Group rows by normalised query text; each query's known positives: its rows' positives + extra_positives.

    ``extra_positives`` maps a query id to other known positive doc ids; ``rows_of`` gives the pool row of each
    id (-1 where unknown; those are counted in ``unknown_extra``).
    """
    index: dict[str, int] = {}
    group = np.array([index.setdefault(t, len(index)) for t in normalised_queries], dtype=np.int64)
    first = np.full(len(index), -1, dtype=np.int64)
    known: list[list[int]] = [[] for _ in index]
    for row, (g, pos) in enumerate(zip(group, positive_rows, strict=True)):
        if first[g] < 0:
            first[g] = row
        if int(pos) not in known[g]:
            known[g].append(int(pos))
    own = np.array(
        [known[g].index(int(p)) for g, p in zip(group, positive_rows, strict=True)], dtype=np.int64
    )
    extras: list[set[int]] = [set() for _ in index]
    pairs = [
        (g, str(doc))
        for g, qid in zip(group, query_ids, strict=True)
        for doc in (extra_positives or {}).get(qid, ())
    ]
    rows = rows_of([doc for _, doc in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    for (g, _), row in zip(pairs, rows, strict=True):
        if row >= 0:
            extras[g].add(int(row))
    unknown_extra = int((rows < 0).sum())
    for g, extra in enumerate(extras):
        known[g] += sorted(extra - set(known[g]))
    return QueryGroups(group, first, known, own, unknown_extra)


def check_output_format(output_format: str | None) -> None:
    """Refuse an ``output_format`` sentence-transformers does not have (None = hardneg's own table)."""
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"unknown output_format '{output_format}'; fix: use one of {', '.join(OUTPUT_FORMATS)} or leave it unset"
        )


def st_output(
    output_format: OutputFormat,
    groups: QueryGroups,
    anchors: Sequence[str],
    positives: Sequence[str],
    positive_scores: np.ndarray,
    negatives: Sequence[Sequence[str]],
    negative_scores: Sequence[np.ndarray],
    *,
    num_negatives: int,
    output_scores: bool,
) -> dict[str, list]:
    """Mined negatives in sentence-transformers' ``output_format`` layout, rows and column names.

    ``anchors``, ``positives``, ``positive_scores``: per query row (its own positive); ``negatives``,
    ``negative_scores``: per query (``groups``), best first. Rows come query by query (first appearance), each
    query's distinct positives in order, as ``sentence_transformers.util.mine_hard_negatives`` writes them,
    with ``anchor``/``positive`` as the anchor and positive column names:

    - ``triplet``: (anchor, positive, negative[, scores=[pos, neg]]), a row per positive and negative;
    - ``n-tuple``: (anchor, positive, negative_1 ... negative_n[, scores]), positives with all n negatives;
    - ``labeled-pair``: (anchor, positive, label 1/0 | score), each query's positives then its negatives;
    - ``labeled-list``: (anchor, positive=[pos, neg...], labels=[1, 0...] | scores), a row per positive.
    """
    check_output_format(output_format)
    rows_of: list[list[int]] = [[] for _ in groups.known]
    seen: set[tuple[int, int]] = set()
    for row, (g, own) in enumerate(zip(groups.group, groups.own, strict=True)):
        if (
            g,
            own,
        ) not in seen:  # a repeated (query, positive) pair is one positive, as in sentence-transformers
            seen.add((g, own))
            rows_of[g].append(row)
    pairs = [(g, row) for g in range(len(rows_of)) for row in rows_of[g]]
    out: dict[str, list] = {"anchor": [], "positive": []}
    label = "score" if output_scores else "label"
    if output_format == "triplet":
        out |= {"negative": [], **({"scores": []} if output_scores else {})}
        for g, row in pairs:
            for text, score in zip(negatives[g], negative_scores[g], strict=True):
                out["anchor"].append(anchors[row])
                out["positive"].append(positives[row])
                out["negative"].append(text)
                if output_scores:
                    out["scores"].append([float(positive_scores[row]), float(score)])
    elif output_format == "n-tuple":
        full = [(g, row) for g, row in pairs if len(negatives[g]) == num_negatives]
        out["anchor"] = [anchors[row] for _, row in full]
        out["positive"] = [positives[row] for _, row in full]
        for i in range(num_negatives):
            out[f"negative_{i + 1}"] = [negatives[g][i] for g, _ in full]
        if output_scores:
            out["scores"] = [
                [float(positive_scores[row]), *map(float, negative_scores[g])] for g, row in full
            ]
    elif output_format == "labeled-pair":
        out[label] = []
        for g, rows in enumerate(rows_of):
            docs = [(positives[r], positive_scores[r], 1) for r in rows]
            docs += [(t, s, 0) for t, s in zip(negatives[g], negative_scores[g], strict=True)]
            for text, score, is_positive in docs:
                out["anchor"].append(anchors[rows[0]])
                out["positive"].append(text)
                out[label].append(float(score) if output_scores else is_positive)
    else:
        labels = "scores" if output_scores else "labels"
        out[labels] = []
        for g, row in pairs:
            if len(negatives[g]) == 0:
                continue
            out["anchor"].append(anchors[row])
            out["positive"].append([positives[row], *negatives[g]])
            out[labels].append(
                [float(positive_scores[row]), *map(float, negative_scores[g])]
                if output_scores
                else [1] + [0] * len(negatives[g])
            )
    return out
