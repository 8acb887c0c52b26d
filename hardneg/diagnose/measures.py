"""Training-free measures of a set of (query, positive, negative) triplets, from frozen embeddings.

Inputs are unit-normalised embedding rows (``q``, ``p``, ``n``: one row per triplet) and the texts; every
function is pure numpy and returns plain dicts of floats (what ``diagnostics.json`` stores).

- ``margins``: ``s(q, n) - s(q, p)`` (cosine), the hardness of each negative relative to its positive.
- ``hardness``: its summary, the share at or above 0 (the negative scored at or above the positive) and
  bootstrap intervals of both.
- ``eci``: Effective Contrastive Information, v1 (arXiv 2603.20990v1), as far as its definition is
  published: information capacity x discriminative efficiency (harmonic mean of hardness and safety).
- ``eci_sem``: ECI_sem (2603.20990v3), as far as published: a log-determinant of a weighted residual
  information matrix built from target consistency, semantic locality and lexical residuality.
- ``surface``: length, type-token ratio, lexical overlap with the query and the positive, near-duplicates of
  the positive.
- ``diversity``: exact and near-duplicate negatives across queries, and a diversity score.

Which parts of ECI and ECI_sem follow the papers and where hardneg chose is written in docs/diagnostics.md
and repeated in each function's docstring; every choice is a parameter.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from hardneg.encode import search_topk
from hardneg.text import normalise_text, word_jaccard, word_set, words


def _r(x: float | None, digits: int = 4) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return round(float(x), digits)


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (rows need not be normalised)."""
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-12)


def summarise(x: np.ndarray) -> dict[str, float | None]:
    """mean, std, p10, p50, p90 of a 1-d array (None when empty)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return {}
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    return {
        "mean": _r(x.mean()),
        "std": _r(x.std()),
        "p10": _r(p10),
        "p50": _r(p50),
        "p90": _r(p90),
    }


def bootstrap_mean_interval(
    x: np.ndarray, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> list[float | None]:
    """Percentile bootstrap interval of the mean of ``x`` (rows resampled with replacement)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return [None, None]
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    step = max(1, 4_000_000 // len(x))  # resamples per block: memory stays ~32 MB at any size
    for b in range(0, n_resamples, step):
        k = min(step, n_resamples - b)
        means[b : b + k] = x[rng.integers(0, len(x), size=(k, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return [_r(lo), _r(hi)]


def hardness(margin: np.ndarray, *, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Summary of ``s(q, n) - s(q, p)`` per row: its distribution, the share at or above 0, and bootstrap
    intervals (what a sample of this size implies for the whole config)."""
    margin = np.asarray(margin, dtype=np.float64)
    above = (margin >= 0).astype(np.float64)
    return {
        "n": int(len(margin)),
        "margin": summarise(margin),
        "margin_mean_ci": bootstrap_mean_interval(margin, n_resamples=n_resamples, seed=seed),
        "at_or_above": _r(above.mean()) if len(above) else None,
        "at_or_above_ci": bootstrap_mean_interval(above, n_resamples=n_resamples, seed=seed),
    }


def _group_rows(query_ids: Sequence[str]) -> list[np.ndarray]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(query_ids):
        groups[str(q)].append(i)
    return [np.asarray(g) for g in groups.values()]


def eci(
    s_pos: np.ndarray,
    s_neg: np.ndarray,
    query_ids: Sequence[str],
    *,
    margin: float = 0.1,
) -> dict[str, Any]:
    """Effective Contrastive Information (ECI v1, arXiv 2603.20990v1): ``capacity x efficiency``.

    Published (abstract of v1): ECI trades off *Information Capacity*, "the logarithmic bound on mutual
    information determined by set size", against *Discriminative Efficiency*, "a harmonic balance of Signal
    Magnitude (Hardness) and Safety (Max-Margin)", and "strictly penalizes unsafe, false-positive negatives".
    The exact formulas were not available to hardneg; these are hardneg's reading (docs/diagnostics.md):

    - capacity ``I = log(1 + K)``, ``K`` the mean number of negatives per query (the InfoNCE bound
      ``I(q; p) >= log(N) - L`` with ``N = K + 1`` candidates);
    - hardness ``H`` = mean over negatives of ``max(s(q, n), 0)`` (cosine of the frozen target encoder);
    - safety ``S`` = mean over queries of ``clip((s(q, p) - max_n s(q, n)) / margin, 0, 1)``: a query whose
      hardest negative reaches its positive scores 0 (strict penalty), one whose positive wins by ``margin``
      or more scores 1; ``margin -> 0`` makes it the share of queries whose positive beats every negative;
    - efficiency ``D = 2 H S / (H + S)``; ``ECI = I x D``.

    ``s_pos`` / ``s_neg``: per row (triplet) the positive's and the negative's similarity to the query;
    rows of one query share ``s_pos``.
    """
    if margin <= 0:
        raise ValueError(f"ECI margin must be > 0, got {margin}; fix: e.g. --eci_margin 0.1")
    s_pos = np.asarray(s_pos, dtype=np.float64)
    s_neg = np.asarray(s_neg, dtype=np.float64)
    if len(s_neg) == 0:
        return {}
    groups = _group_rows(query_ids)
    k = float(np.mean([len(g) for g in groups]))
    capacity = float(np.log1p(k))
    h = float(np.mean(np.maximum(s_neg, 0.0)))
    per_query = [
        np.clip((s_pos[g].max() - s_neg[g].max()) / margin, 0.0, 1.0) for g in groups
    ]  # s_pos is the same on every row of a query
    s = float(np.mean(per_query))
    d = 0.0 if h + s == 0 else 2 * h * s / (h + s)
    return {
        "eci": _r(capacity * d),
        "capacity": _r(capacity),
        "negatives_per_query": _r(k),
        "hardness": _r(h),
        "safety": _r(s),
        "efficiency": _r(d),
        "margin": margin,
    }


def eci_sem(
    q: np.ndarray,
    p: np.ndarray,
    n: np.ndarray,
    positives: Sequence[str],
    negatives: Sequence[str],
    *,
    temperature: float = 0.05,
    sample: int = 512,
    seed: int = 0,
) -> dict[str, Any]:
    """ECI_sem (arXiv 2603.20990v3), as far as its definition is published; hardneg's reading otherwise.

    Published (abstract of v3): ECI_sem "builds a weighted residual information matrix from target
    consistency, semantic locality, lexical residuality, and a log-determinant diversity objective", from
    frozen target-encoder embeddings of (query, labelled positive, explicit negative). The formulas were not
    available to hardneg; this reading (docs/diagnostics.md) is a guess at their shape, not the paper's:

    - target consistency ``c = sigmoid((s(q, p) - s(q, n)) / temperature)``: the encoder agrees with the label;
    - semantic locality ``l = max(s(q, n), 0)``: the negative is near the query;
    - lexical residuality ``x = 1 - Jaccard(words(n), words(p))``: what the negative shares with the positive
      is not mere word overlap;
    - residual ``r = n - (n . p) p`` (the negative's embedding with its positive's direction removed), weighted
      ``w = c l x``; matrix ``M = diag(sqrt(w)) R R^T diag(sqrt(w))`` over ``m = min(rows, sample)`` rows drawn
      with ``seed``; ``ECI_sem = logdet(I + M) / m`` (information per negative; comparable between configs only
      at the same ``m``, which ``sample`` fixes once a config has that many rows).
    """
    m_all = len(n)
    if m_all == 0:
        return {}
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(m_all, size=min(sample, m_all), replace=False))
    qs, ps, ns = q[idx], p[idx], n[idx]
    s_p, s_n = rowwise_cosine(qs, ps), rowwise_cosine(qs, ns)
    consistency = 1.0 / (1.0 + np.exp(-(s_p - s_n) / temperature))
    locality = np.maximum(s_n, 0.0)
    residuality = np.array([1.0 - word_jaccard(negatives[i], positives[i]) for i in idx])
    w = consistency * locality * residuality
    pu = ps / np.maximum(np.linalg.norm(ps, axis=1, keepdims=True), 1e-12)
    nu = ns / np.maximum(np.linalg.norm(ns, axis=1, keepdims=True), 1e-12)
    resid = nu - np.einsum("ij,ij->i", nu, pu)[:, None] * pu
    weighted = resid * np.sqrt(w)[:, None]
    # logdet(I_m + W R R^T W) = logdet(I_d + R^T W^2 R): the smaller side (m x m or d x d).
    gram = weighted.T @ weighted if weighted.shape[1] < len(idx) else weighted @ weighted.T
    sign, logdet = np.linalg.slogdet(np.eye(gram.shape[0]) + gram.astype(np.float64))
    return {
        "eci_sem": _r(logdet / len(idx)),
        "consistency": _r(consistency.mean()),
        "locality": _r(locality.mean()),
        "residuality": _r(residuality.mean()),
        "rows_used": int(len(idx)),
        "temperature": temperature,
    }


def surface(
    queries: Sequence[str],
    positives: Sequence[str],
    negatives: Sequence[str],
    *,
    near_duplicate_threshold: float = 0.8,
) -> dict[str, Any]:
    """Surface statistics of the negatives (means over rows): length in words, type-token ratio, share of the
    query's words found in the negative, word Jaccard with the positive and the share of negatives that are
    near-duplicates of their positive (Jaccard >= ``near_duplicate_threshold``, mining's
    ``near_duplicate_threshold`` rule)."""
    if not negatives:
        return {}
    length, ttr, over_q, jac_p = [], [], [], []
    for qt, pt, nt in zip(queries, positives, negatives, strict=True):
        w = words(nt)
        length.append(len(w))
        ttr.append(len(set(w)) / len(w) if w else 0.0)
        qw = word_set(qt)
        over_q.append(len(qw & set(w)) / len(qw) if qw else 0.0)
        jac_p.append(word_jaccard(nt, pt))
    jac = np.asarray(jac_p)
    return {
        "length_words": _r(np.mean(length), 2),
        "type_token_ratio": _r(np.mean(ttr)),
        "query_overlap": _r(np.mean(over_q)),
        "positive_jaccard": _r(jac.mean()),
        "near_duplicate_of_positive": _r((jac >= near_duplicate_threshold).mean()),
        "near_duplicate_threshold": near_duplicate_threshold,
    }


def diversity(
    n: np.ndarray,
    negatives: Sequence[str],
    query_ids: Sequence[str],
    *,
    near_duplicate_cosine: float = 0.95,
    chunk: int = 4096,
) -> dict[str, Any]:
    """Duplicates across queries and a diversity score of a config's negatives.

    - ``duplicate_share``: rows whose negative text (normalised) is also the negative of another query;
    - ``near_duplicate_share``: rows whose nearest other distinct negative text has cosine >=
      ``near_duplicate_cosine`` (exact search in chunks, ``hardneg.encode.search_topk``);
    - ``diversity``: 1 - the mean pairwise cosine of the distinct negatives (0: all the same direction;
      computed exactly in O(rows x dim) from the sum of the unit vectors).
    """
    if len(negatives) == 0:
        return {}
    keys = [normalise_text(t) for t in negatives]
    queries_of: dict[str, set[str]] = defaultdict(set)
    for k, qid in zip(keys, query_ids, strict=True):
        queries_of[k].add(str(qid))
    dup = np.mean([len(queries_of[k]) > 1 for k in keys])
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    uniq = np.fromiter(first.values(), dtype=np.int64)
    e = n[uniq] / np.maximum(np.linalg.norm(n[uniq], axis=1, keepdims=True), 1e-12)
    m = len(e)
    if m >= 2:
        total = e.sum(axis=0)
        mean_pair = (float(total @ total) - m) / (m * (m - 1))
        _, scores = search_topk(e, e, 2, similarity="dot", corpus_chunk_size=chunk, device="cpu")
        nearest = scores[:, 1]  # column 0 is the text itself
        near_by_key = dict(zip(first, nearest >= near_duplicate_cosine, strict=True))
        near = np.mean([near_by_key[k] or len(queries_of[k]) > 1 for k in keys])
    else:
        mean_pair, near = 1.0, float(dup)
    counts = Counter(keys)
    return {
        "distinct_negatives": int(m),
        "duplicate_share": _r(dup),
        "near_duplicate_share": _r(near),
        "near_duplicate_cosine": near_duplicate_cosine,
        "diversity": _r(1.0 - mean_pair),
        "most_repeated": max(counts.values()),
    }
