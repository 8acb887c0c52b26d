"""Hard negatives: the mined methods' one function, ``mine_hard_negatives``, and the false-negative estimate.

Where candidates come from is a candidate provider (``hardneg.negatives.providers``: BM25, dense, a first stage
rescored by a cross-encoder); the filters every provider's candidates go through are
``hardneg.negatives.mining``'s. Every method's triplets (LLM-written ones too) get the same false-negative
estimate, ``suspected_false_negative_rate``. The methods themselves are ``hardneg.methods``' modules.

Arguments of ``mine_hard_negatives``:

queries: Dataset with ``query_id, query, positive_id, positive`` (other columns are ignored).
corpus: Dataset(id, title, text) from ``hardneg.corpus.load_corpus``; the mining pool.
method: a registered candidate provider's name, ``bm25`` (BM25 top passages), ``ce`` (first-stage
    candidates rescored by ``scorer``) or ``dense`` (bi-encoder ``embedder`` nearest passages), or a
    provider object (``hardneg.negatives.providers``). Each filters on its own score
    (``stats["score_name"]``).
name: the ``method`` column and ``stats["method"]`` (default ``<provider name>_hn``).
range_min, range_max: keep candidates ranked ``[range_min, range_max)`` among those that survive the
    filters (the first stage retrieves ``range_max`` + the most known positives of any query, + 1 under
    sentence-transformers >= 6.3: ``hardneg.negatives.mining.mining_rules`` follows the installed version).
num_negatives: negatives per query; one triplet row per negative; shortfalls are counted, never padded.
sampling_strategy: ``top`` (best first) or ``random`` (seeded by ``seed``) within the window.
absolute_margin: drop candidates with ``score > positive_score - absolute_margin`` (0 = never at or
    above the positive: the false-negative guard).
relative_margin: drop ``score > positive_score - |positive_score| * relative_margin`` (0.05 =
    NV-Retriever TopK-PercPos 95%; sign-safe for negative scores such as log-likelihoods).
max_score, min_score: drop candidates scoring above / below.
output_scores: fill ``positive_score``/``negative_score`` (None otherwise; the columns stay); with an
    ``output_format``, add sentence-transformers' ``scores``/``score`` columns instead of labels.
output_format: None (default) returns hardneg's triplet table (anchor, positive, negative + provenance
    columns, docs/design.md); ``triplet``, ``n-tuple``, ``labeled-pair`` or ``labeled-list`` return
    sentence-transformers' layouts and column names (``hardneg.negatives.mining.st_output``), ready for
    its losses.
near_duplicate_threshold: skip candidates whose word-set Jaccard with the positive is >= this
    (None: only exact duplicates, which are always removed).
scorer: for ``ce``: ``embedded:ql`` (LM query likelihood, offline), ``ql:<causal LM id>``, a
    CrossEncoder id, or a loaded scorer (``hardneg.scorers.load_scorer``).
candidate_method: the ``ce`` first stage, ``bm25`` or ``dense``.
embedder: for ``dense`` (and a dense first stage): an id, ``embedded:minilm`` or a SentenceTransformer.
bm25_options: ``hardneg.negatives.bm25.BM25Options`` (stemmer, stop words, k1, b, backend).
use_faiss: dense search with faiss (``pip install faiss-cpu``) instead of exact torch search.
extra_positives: ``{query_id: {doc_id, ...}}`` other known positives, never negatives.
exclude_ids, exclude_queries: decontamination (``hardneg.decontaminate``): evaluation doc ids leave the
    pool (and queries whose positive is one), evaluation query texts leave the queries; counted in stats.
batch_size: encoder / scorer batch size.
cache_dir: save work as it is done so an interrupted run resumes: each block of ``MINING_BLOCK`` queries'
    selected negatives (``blocks/``) and the ``ce`` rescoring's scores per chunk.
cache_folder: ``dense`` (and a dense first stage): keep the pool's embeddings there
    (``corpus_embeddings_<hash>.npy``, as sentence-transformers does).
shard: with ``cache_folder`` on a filesystem every process shares, this process of ``accelerate launch``
    / ``torchrun`` (``hardneg.distributed.current_shard()``): each process encodes only its part of the
    pool and every process must make the same call (``hardneg.negatives.dense.encode_pool``).
show_progress: tqdm progress bars.
cache_file_name: write the triplets to this Arrow file, ``MINING_BLOCK`` query rows at a time, and return them
    memory-mapped from it (as ``Dataset.map(cache_file_name=...)`` does): a table of millions of rows is never
    in memory whole. None (default): the table is built in memory. Only for the default ``output_format``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from hardneg.corpus import check_unique_ids, passage_texts
from hardneg.decontaminate import decontaminate
from hardneg.distributed import Shard
from hardneg.files import open_atomic
from hardneg.memory import drop_file_pages, release_freed_memory
from hardneg.methods import (
    MINED_FEATURES,
    QUERY_INPUT_COLUMNS,
    TRAINING_COLUMNS,
    arrow_table,
    content_key,
    from_arrow,
    write_arrow_file,
)
from hardneg.negatives.mining import (
    MINED_COLUMNS,
    MiningParams,
    OutputFormat,
    QueryGroups,
    Selection,
    check_output_format,
    describe,
    group_queries,
    mining_rules,
    positive_matrix,
    query_text_rows,
    select_negatives,
    st_output,
)
from hardneg.negatives.providers import (
    CandidateProvider,
    MiningRun,
    ProviderSettings,
    first_stage,
    provider_for,
)
from hardneg.scorers import load_scorer
from hardneg.text import ArrowTexts, is_blank, normalise_texts, take_rows, take_texts

logger = logging.getLogger(__name__)

MINING_BLOCK = 50_000  # distinct queries whose candidates are searched and filtered at once

__all__ = [
    "mine_hard_negatives",
    "suspected_false_negative_rate",
    "false_negative_scores",
    "MINED_COLUMNS",
]


def _check_inputs(queries: Dataset, corpus: Dataset) -> None:
    missing = [c for c in QUERY_INPUT_COLUMNS if c not in queries.column_names]
    if missing:
        raise ValueError(
            f"queries lack column(s) {missing}; fix: pass the queries table ({', '.join(QUERY_INPUT_COLUMNS)})"
        )
    missing = [c for c in ("id", "text") if c not in corpus.column_names]
    if missing:
        raise ValueError(f"corpus lacks column(s) {missing}; fix: load it with hardneg.corpus.load_corpus")
    if len(corpus) == 0:
        raise ValueError("the corpus is empty; fix: mine over a corpus with passages")
    if len(queries) == 0:
        raise ValueError("there are no queries to mine negatives for; fix: generate queries first")


def _known_positives(
    queries: Dataset, pool: Pool, extra_positives: dict[str, Iterable[str]] | None
) -> QueryGroups:
    """Rows grouped by (normalised) query text; each query's positives: its rows' and extra_positives."""
    positive_ids = arrow_table(queries, ["positive_id"]).column(0)
    positive_rows = pool.rows_of(positive_ids)
    missing = np.flatnonzero(positive_rows < 0)
    if len(missing):
        example = positive_ids[int(missing[0])].as_py()
        raise ValueError(
            f"{len(missing)} positive_id(s) are not in the corpus (e.g. '{example}'); fix: mine over "
            "the corpus the queries were generated from (after the same decontamination)"
        )
    query_ids = [str(q) for q in queries["query_id"][:]]
    return group_queries(
        normalise_texts(queries["query"][:]), query_ids, positive_rows.tolist(), pool.rows_of, extra_positives
    )


@dataclass
class Pool:
    """The corpus as mining candidates, kept in Arrow: two ids with one text (title + text) are one candidate,
    named by the first id (sentence-transformers' pool)."""

    ids: ArrowTexts  # the id naming each candidate
    passages: ArrowTexts  # each candidate's text, all distinct
    corpus_ids: pa.ChunkedArray  # every corpus id, in corpus order
    candidate_of: np.ndarray  # corpus row -> its candidate row

    def rows_of(self, doc_ids: Iterable[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The candidate row of each id (-1 where the corpus has no such id)."""
        if not isinstance(doc_ids, (pa.Array, pa.ChunkedArray)):
            doc_ids = pa.array([str(d) for d in doc_ids], pa.string())
        found = pc.index_in(doc_ids.cast(pa.string()), value_set=self.corpus_ids)
        found = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        return np.where(found >= 0, self.candidate_of[np.maximum(found, 0)], -1)


def pool_passages(corpus: Dataset) -> Pool:
    """The pool as mining candidates (``Pool``); texts are title + text (``hardneg.corpus.passage_texts``),
    merged when equal. No Python object per passage: a pool of millions costs its Arrow buffers."""
    ids = arrow_table(corpus, ["id"]).column("id").cast(pa.string())
    check_unique_ids(ids, "the corpus", fix="make passage ids unique (load_corpus checks this)")
    texts = passage_texts(corpus)
    encoded = texts.dictionary_encode()  # indices in order of first occurrence
    merged = np.concatenate([c.indices.to_numpy() for c in encoded.chunks]).astype(np.int64)
    distinct = len(encoded.chunk(0).dictionary)
    del encoded
    if distinct == len(merged):  # the usual case: every text differs, the columns are used as they are
        return Pool(ArrowTexts(ids), ArrowTexts(texts), ids, merged)
    keep = pa.array(np.unique(merged, return_index=True)[1])
    return Pool(ArrowTexts(take_rows(ids, keep)), ArrowTexts(take_rows(texts, keep)), ids, merged)


def mine_hard_negatives(
    queries: Dataset,
    corpus: Dataset,
    *,
    method: str | CandidateProvider = "bm25",
    name: str | None = None,
    range_min: int = 0,
    range_max: int = 50,
    num_negatives: int = 1,
    sampling_strategy: Literal["top", "random"] = "top",
    seed: int = 42,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    output_scores: bool = True,
    output_format: OutputFormat | None = None,
    near_duplicate_threshold: float | None = 0.9,
    scorer: Any = "embedded:ql",
    candidate_method: str = "bm25",
    embedder: Any = "embedded:minilm",
    bm25_options: Any = None,
    use_faiss: bool = False,
    extra_positives: dict[str, Iterable[str]] | None = None,
    exclude_ids: Iterable[str] | None = None,
    exclude_queries: Iterable[str] | None = None,
    batch_size: int = 16,
    cache_dir: str | Path | None = None,
    cache_folder: str | Path | None = None,
    shard: Shard | None = None,
    show_progress: bool = True,
    cache_file_name: str | Path | None = None,
) -> tuple[Dataset, dict[str, Any]]:
    """Mine hard negatives for generated (query, positive) pairs; returns (triplets, stats).

    Names follow sentence-transformers' ``util.mine_hard_negatives`` (and its filter order, see
    ``hardneg.negatives.mining``); margins cite NV-Retriever (arXiv 2407.15831); arguments: module docstring.
    """
    settings = ProviderSettings(scorer, candidate_method, embedder, bm25_options, use_faiss)
    first_stage(candidate_method, settings)  # checked whatever the method: a typo is an error at once
    provider = provider_for(method, settings)
    check_output_format(output_format)
    params = MiningParams(
        range_min=range_min,
        range_max=range_max,
        num_negatives=num_negatives,
        sampling_strategy=sampling_strategy,
        seed=seed,
        absolute_margin=absolute_margin,
        relative_margin=relative_margin,
        max_score=max_score,
        min_score=min_score,
        near_duplicate_threshold=near_duplicate_threshold,
    )
    _check_inputs(queries, corpus)
    start = time.perf_counter()
    queries, pool, decontamination = _decontaminated(queries, corpus, exclude_ids, exclude_queries)
    run = MiningRun(batch_size, cache_dir, cache_folder, shard, show_progress)
    mined = _mine(queries, pool, provider, params, extra_positives, run)
    run.state.clear()  # the provider's index / pool embeddings are freed before the rows are gathered
    release_freed_memory()
    name = name or f"{provider.name}_hn"
    if output_format is None:
        triplets = _triplets(queries, mined, name, output_scores, cache_file_name)
    else:
        triplets = Dataset.from_dict(_st_table(queries, mined, output_format, num_negatives, output_scores))
    if mined.selection.queries_short_of_negatives:
        logger.warning(
            "%d of %d queries got fewer than %d negatives (not padded); consider a larger range_max or looser "
            "margins",
            mined.selection.queries_short_of_negatives,
            len(queries),
            num_negatives,
        )
    stats = _stats(name, provider, params, mined, queries, corpus, triplets, time.perf_counter() - start)
    stats["params"]["output_format"] = output_format
    stats["params"].update(provider.params())
    stats["decontamination"] = decontamination
    return triplets, stats | _free_fn_estimate(provider, mined)


def _free_fn_estimate(provider: CandidateProvider, mined: _Mined) -> dict[str, Any]:
    """A provider ranking with a relevance scorer: the share of rows whose negative that scorer rates at or above
    the positive (the same scorer as ``suspected_false_negative_rate``, so that estimate, computed for free)."""
    if provider.scorer_name is None:
        return {}
    neg = mined.negative_scores
    per_row = np.repeat(mined.positive_scores, [len(s) for s in mined.selection.scores])
    return {
        "suspected_false_negative_rate": float(np.mean(neg >= per_row)) if len(neg) else None,
        "false_negative_scorer": provider.scorer_name,
    }


@dataclass
class _Mined:
    """What one mining call found: the pool's candidates, the query groups and the selected negatives."""

    pool: Pool
    groups: QueryGroups
    score_name: str
    per_query: Selection
    selection: Selection  # per query row
    positive_scores: np.ndarray
    first_stage_k: int
    rules_follow: str

    @property
    def negative_scores(self) -> np.ndarray:
        return np.concatenate(self.selection.scores) if self.selection.scores else np.zeros(0)


def _decontaminated(queries, corpus, exclude_ids, exclude_queries) -> tuple[Dataset, Dataset, dict | None]:
    """The queries and pool minus the evaluation set's documents and queries (when given)."""
    if not (exclude_ids or exclude_queries):
        return queries, corpus, None
    queries, corpus, decontamination = decontaminate(
        queries, corpus, exclude_ids=exclude_ids, exclude_queries=exclude_queries
    )
    if len(queries) == 0:
        raise ValueError("decontamination removed every query; fix: check exclude_ids / exclude_queries")
    return queries, corpus, decontamination


def _mine(queries, corpus, provider, params: MiningParams, extra_positives, run: MiningRun) -> _Mined:
    """The provider's candidates for each distinct query, then the shared filters (``select_negatives``), in
    blocks of ``MINING_BLOCK`` queries: one block's candidates and the filters' work arrays are what mining
    holds at once (the provider builds its index or encodes the pool once, for the first block)."""
    pool = pool_passages(corpus)
    query_texts = queries["query"][:]
    if any(is_blank(q) for q in query_texts):  # the one blank rule: invisible-only text is empty too
        raise ValueError("some queries are empty; fix: drop empty queries before mining")
    groups = _known_positives(queries, pool, extra_positives)
    known = positive_matrix(groups.known)
    rules = mining_rules()
    k = params.range_max + max(len(s) for s in groups.known) + rules.extra_candidates
    first_queries = [query_texts[r] for r in groups.first]
    del query_texts
    query_rows = query_text_rows(first_queries, pool.passages) if rules.exclude_query_text else None
    drop_file_pages(pool.passages.column)  # read to merge and hash them: not kept resident beside the index
    release_freed_memory()  # the pool's text hashing and the grouping's work, before the index is built
    per_query, positive_scores, score_name = Selection([], [], []), [], ""
    rng = np.random.default_rng(params.seed)
    blocks = _BlockCache(run.cache_dir, pool, provider, params, k, rules.follows)
    for start in range(0, len(first_queries), MINING_BLOCK):
        block = slice(start, start + MINING_BLOCK)
        saved = blocks.path(first_queries[block], known[block])  # None without a cache_dir
        done = blocks.get(saved, rng)
        if done is None:
            cands = provider.candidates(first_queries[block], pool.passages, known[block], k=k, run=run)
            chosen = select_negatives(
                cands.indices,
                cands.scores,
                cands.lowest_positive_scores,
                known[block, 0],
                known[block],
                params,
                texts=pool.passages,
                query_rows=None if query_rows is None else query_rows[block],
                rng=rng,
            )
            done = (chosen, cands.positive_scores, cands.score_name)
            blocks.put(saved, rng, *done)
        per_query.extend(done[0])
        positive_scores.append(done[1])
        score_name = done[2]
    return _Mined(
        pool,
        groups,
        score_name,
        per_query,
        per_query.per_row(groups.group),
        groups.own_scores(np.concatenate(positive_scores)),
        k,
        rules.follows,
    )


class _BlockCache:
    """Each finished block of ``_mine`` on disk (``<cache_dir>/blocks/<key>.npz``), so a killed mining run
    redoes at most the block it was in. A block's key covers the pool's content, the provider and its
    params, the filters, the window size and the block's own queries and known positives; the ``random``
    strategy's generator state after the block is saved with it, so the blocks after a reused one draw what
    one uninterrupted run draws. No ``cache_dir``: nothing is kept."""

    def __init__(self, cache_dir, pool: Pool, provider, params: MiningParams, k: int, rules: str) -> None:
        self.folder = Path(cache_dir) / "blocks" if cache_dir else None
        if self.folder is not None:
            parts = (provider.name, provider.params(), vars(params), k, rules, MINING_BLOCK)
            self.key = content_key(_pool_fingerprint(pool), *parts)

    def path(self, queries: list[str], known: np.ndarray) -> Path | None:
        """Where the block of these queries is kept (None: nothing is kept)."""
        if self.folder is None:
            return None
        return self.folder / f"{content_key(self.key, queries, known.tolist())}.npz"

    def get(self, path: Path | None, rng: np.random.Generator):
        """(Selection, positive scores, score name) of a finished block, or None."""
        if path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            cut = np.cumsum(z["counts"])[:-1]
            sel = Selection(
                np.split(z["negatives"], cut),
                np.split(z["scores"], cut),
                np.split(z["ranks"], cut),
                meta["candidates_considered"],
                meta["skipped"],
                z["short"].tolist(),
                z["without_candidates"].tolist(),
            )
            positive_scores = z["positive_scores"]
        rng.bit_generator.state = meta["rng"]
        return sel, positive_scores, meta["score_name"]

    def put(
        self, path: Path | None, rng, sel: Selection, positive_scores: np.ndarray, score_name: str
    ) -> None:
        if path is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "candidates_considered": sel.candidates_considered,
            "skipped": sel.skipped,
            "score_name": score_name,
            "rng": rng.bit_generator.state,
        }
        empty = np.zeros(0)
        with open_atomic(path) as f:  # a block is either complete or absent
            np.savez(
                f,
                meta=np.array(json.dumps(meta)),
                counts=np.array([len(n) for n in sel.negatives], dtype=np.int64),
                negatives=np.concatenate(sel.negatives) if sel.negatives else empty.astype(np.int64),
                scores=np.concatenate(sel.scores) if sel.scores else empty,
                ranks=np.concatenate(sel.ranks) if sel.ranks else empty.astype(np.int64),
                short=np.array(sel.short, dtype=bool),
                without_candidates=np.array(sel.without_candidates, dtype=bool),
                positive_scores=np.asarray(positive_scores),
            )


def _pool_fingerprint(pool: Pool) -> str:
    """A hash of the pool's ids and texts, independent of how their Arrow columns are chunked."""
    lengths, data = hashlib.blake2b(digest_size=16), hashlib.blake2b(digest_size=16)
    for column in (pool.ids.column, pool.passages.column):
        for chunk in column.cast(pa.string()).chunks:
            if not len(chunk) or chunk.buffers()[2] is None:  # nothing, or only empty strings: no bytes
                lengths.update(np.zeros(len(chunk), dtype=np.int32).tobytes())
                continue
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[
                chunk.offset : chunk.offset + len(chunk) + 1
            ]
            if len(offsets):
                lengths.update(np.diff(offsets).tobytes())
                data.update(memoryview(chunk.buffers()[2])[int(offsets[0]) : int(offsets[-1])])
        lengths.update(b"|")
    return lengths.hexdigest() + data.hexdigest()


def _st_table(queries, mined: _Mined, output_format, num_negatives: int, output_scores: bool) -> dict:
    """sentence-transformers' layout of the mined negatives (``hardneg.negatives.mining.st_output``)."""
    rows = mined.per_query.negatives
    texts = iter(
        take_texts(mined.pool.passages, np.concatenate(rows) if rows else []).to_pylist()
    )  # one gather
    negatives = [[next(texts) for _ in r] for r in rows]
    return st_output(
        output_format,
        mined.groups,
        queries["query"][:],
        queries["positive"][:],
        mined.positive_scores,
        negatives,
        mined.per_query.scores,
        num_negatives=num_negatives,
        output_scores=output_scores,
    )


def _stats(name, provider, params, mined: _Mined, queries, corpus, triplets, wall: float) -> dict[str, Any]:
    """The mining stats (docs/design.md); the provider's params and the output format are added after."""
    sel = mined.selection
    return {
        "method": name,
        "rows": len(triplets),
        "queries": len(queries),
        "distinct_queries": len(mined.groups.first),
        "duplicate_passages_merged": len(corpus) - len(mined.pool.ids),
        "wall_seconds": round(wall, 3),
        "items_per_second": round(len(queries) / wall, 3) if wall > 0 else None,
        "candidates_considered": sel.candidates_considered,
        "skipped": sel.skipped,
        "queries_short_of_negatives": sel.queries_short_of_negatives,
        "queries_without_candidates": sel.queries_without_candidates,
        "unknown_extra_positive_ids": mined.groups.unknown_extra,
        "score_name": mined.score_name,
        "score_stats": {
            "positive": describe(mined.positive_scores),
            "negative": describe(mined.negative_scores),
        },
        "params": {
            "method": provider.name,
            **vars(params),
            "first_stage_k": mined.first_stage_k,
            "mining_rules": mined.rules_follow,
        },
    }


def _triplets(queries: Dataset, mined: _Mined, name: str, output_scores: bool, cache_file_name) -> Dataset:
    """The triplet table: gathered in memory, or (``cache_file_name``) written to that Arrow file ``MINING_BLOCK``
    queries at a time and returned memory-mapped from it, so that millions of rows are never in memory at once."""
    if cache_file_name is None:
        return from_arrow(_rows(queries, mined, name, output_scores, 0, len(queries)), MINED_FEATURES)
    blocks = (
        _rows(queries, mined, name, output_scores, start, start + MINING_BLOCK)
        for start in range(0, len(queries), MINING_BLOCK)
    )
    return write_arrow_file(blocks, MINED_FEATURES, cache_file_name)


def _rows(queries: Dataset, mined: _Mined, name: str, output_scores: bool, start: int, stop: int) -> dict:
    """The triplet columns of query rows ``start:stop``, gathered from the queries' Arrow table (no Python
    string per row); the file pages read for them are not kept resident (``hardneg.memory.drop_file_pages``)."""
    pool, sel = mined.pool, mined.selection
    negatives = sel.negatives[start:stop]
    per_query = np.array([len(n) for n in negatives], dtype=np.int64)
    table = queries.data.table.select(["query", "positive", "query_id", "positive_id"])
    stop = min(stop, len(queries))
    rows = (
        np.arange(start, stop)
        if queries._indices is None
        else queries._indices.column(0).slice(start, stop - start).to_numpy()
    )
    source = take_rows(table, np.repeat(rows, per_query))
    neg_rows = np.concatenate(negatives) if negatives else np.zeros(0, dtype=np.int64)
    n = len(neg_rows)
    none = pa.nulls(n, pa.float64())
    columns = {
        "anchor": source.column("query"),
        "positive": source.column("positive"),
        "negative": take_texts(pool.passages, neg_rows),
        "query_id": source.column("query_id").cast(pa.string()),
        "positive_id": source.column("positive_id").cast(pa.string()),
        "negative_id": take_texts(pool.ids, neg_rows),
        "negative_rank": pa.array(np.concatenate(sel.ranks[start:stop]) if n else [], pa.int64()),
        "positive_score": pa.array(np.repeat(mined.positive_scores[start:stop], per_query), pa.float64())
        if output_scores
        else none,
        "negative_score": pa.array(np.concatenate(sel.scores[start:stop]), pa.float64())
        if output_scores and n
        else none,
        "method": pa.array([name] * n, pa.string()),
    }
    for read in (table, pool.passages.column, pool.ids.column):
        drop_file_pages(read)
    return columns


def false_negative_scores(
    triplets: Dataset, scorer: Any, *, batch_size: int = 16, show_progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The scorer's (positive, negative) score of every triplet row (higher = more relevant)."""
    missing = [c for c in TRAINING_COLUMNS if c not in triplets.column_names]
    if missing:
        raise ValueError(
            f"triplets lack column(s) {missing}; fix: pass a triplet table (anchor, positive, negative)"
        )
    scorer = load_scorer(scorer, show_progress=show_progress) if isinstance(scorer, str) else scorer
    n = len(triplets)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    anchors = triplets["anchor"][:]
    both = np.asarray(
        scorer.score(
            anchors + anchors, triplets["positive"][:] + triplets["negative"][:], batch_size=batch_size
        )
    )
    return both[:n], both[n:]


def false_negative_summary(
    positive: np.ndarray, negative: np.ndarray, scorer_name: str, score_name: str | None = None
) -> tuple[float | None, dict[str, Any]]:
    """``(rate, detail)``: the share of rows whose negative scores at or above the positive."""
    n = len(positive)
    detail: dict[str, Any] = {"rows": n, "scorer": scorer_name, "score_name": score_name}
    if n == 0:
        return None, {**detail, "suspected": 0}
    suspected = int((negative >= positive).sum())
    rate = suspected / n
    detail.update(
        suspected=suspected,
        rate=rate,
        positive=describe(positive),
        negative=describe(negative),
        margin=describe(positive - negative),
        suspected_rows=np.flatnonzero(
            negative >= positive
        ).tolist(),  # row indices: the explorer flags these rows
    )
    return rate, detail


def suspected_false_negative_rate(
    triplets: Dataset,
    scorer: Any = "embedded:ql",
    *,
    batch_size: int = 16,
    show_progress: bool = True,
) -> tuple[float | None, dict[str, Any]]:
    """Share of triplets whose negative the scorer rates at or above the positive (same scorer for every method).

    Works on any triplet table with ``anchor, positive, negative`` (``llm_hn`` included). Returns
    ``(rate, detail)``; ``rate`` is None for an empty table.
    """
    scorer = load_scorer(scorer, show_progress=show_progress) if isinstance(scorer, str) else scorer
    pos, neg = false_negative_scores(triplets, scorer, batch_size=batch_size, show_progress=show_progress)
    return false_negative_summary(pos, neg, scorer.name, scorer.score_name)


def pool_cache(shared_cache_dir: Path | None) -> Path | None:
    """Where a build keeps its pool embeddings (``cache/pool_embeddings``; evaluation's are ``cache/embeddings``)."""
    return shared_cache_dir / "pool_embeddings" if shared_cache_dir else None
