"""Cross-encoder hard negatives: first-stage candidates (BM25 or dense top ``range_max``) rescored jointly.

Score used by the margins, ``max_score``/``min_score`` and the ranking: the scorer's score of the
(query, passage) pair. With ``embedded:ql`` (the offline default) that is the query log-likelihood given the
passage, mean nats per token (<= 0; e.g. -2.1 beats -3.4), so ``relative_margin`` works as for any signed
score (sign-safe); with a sentence-transformers CrossEncoder it is the model's ``predict`` score.

The false-negative guard is the margin against the positive's score under the same scorer: pass
``absolute_margin=0`` to drop every candidate that scores at or above the positive (counted in
``skipped``), or ``relative_margin=0.05`` for NV-Retriever's TopK-PercPos.

Scoring is resumable: with ``cache_dir`` each chunk of queries is saved as it finishes (keyed by the scorer
and the exact pairs), so a rerun after a crash rescores nothing that finished.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hardneg.negatives.mining import Candidates, positive_pairs, positive_score_array


def _chunk_key(scorer_name: str, queries: list[str], passages: list[str]) -> str:
    h = hashlib.sha256(scorer_name.encode())
    for q, p in zip(queries, passages, strict=True):
        h.update(b"\x00" + q.encode() + b"\x01" + p.encode())
    return h.hexdigest()[:24]


def rescore_candidates(
    query_texts: Sequence[str],
    passages: Sequence[str],
    positive_rows: np.ndarray,
    first_stage: Candidates,
    *,
    scorer,
    batch_size: int = 16,
    chunk_queries: int = 64,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
) -> Candidates:
    """Score every (query, candidate) and (query, positive) pair with ``scorer``; keep the first-stage rows.

    ``positive_rows``: (n,) one positive per query, or (n, m) all its known positives (padded with -2).
    """
    rows = first_stage.indices
    n, k = rows.shape
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    pq, prow = positive_pairs(positive_rows)
    bounds = np.searchsorted(pq, np.arange(n + 1))  # positive_pairs lists each query's positives together
    first_pair = bounds[:-1]
    positives_of = [prow[bounds[q] : bounds[q + 1]] for q in range(n)]
    values = np.empty(len(prow), dtype=np.float32)
    cache = Path(cache_dir) if cache_dir else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    chunks = range(0, n, chunk_queries)
    for start in tqdm(
        chunks, desc=f"rescoring with {scorer.name}", disable=not show_progress or len(chunks) < 2
    ):
        stop = min(start + chunk_queries, n)
        qs, ps, where = [], [], []
        for q in range(start, stop):
            for j in np.flatnonzero(rows[q] >= 0):
                qs.append(query_texts[q])
                ps.append(passages[rows[q, j]])
                where.append((q, j))
            for i, pos in enumerate(positives_of[q]):
                qs.append(query_texts[q])
                ps.append(passages[pos])
                where.append((q, -1 - first_pair[q] - i))
        path = cache / f"scores-{_chunk_key(scorer.name, qs, ps)}.npy" if cache else None
        if path is not None and path.is_file():
            got = np.load(path)
        else:
            got = scorer.score(qs, ps, batch_size=batch_size)
            if path is not None:
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, got)
                tmp.replace(path)
        for (q, j), value in zip(where, got, strict=True):
            if j < 0:
                values[-1 - j] = value
            else:
                scores[q, j] = value
    return Candidates(rows, scores, positive_score_array(positive_rows, values), scorer.score_name)
