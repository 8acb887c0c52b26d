"""Hard-negative methods: llm (generated), bm25, ce (cross-encoder rescored), dense (mined).

The mined methods share one function, ``mine_hard_negatives``; every method's triplets (LLM-written ones
too) get the same false-negative estimate, ``suspected_false_negative_rate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from datasets import Dataset

from hardneg.corpus import passage_text
from hardneg.decontaminate import decontaminate
from hardneg.distributed import Shard
from hardneg.methods import (
    MINED_FEATURES,
    QUERY_INPUT_COLUMNS,
    TRAINING_COLUMNS,
    Method,
    MethodContext,
    arrow_table,
    empty_table,
    from_arrow,
    get_method,
    method_names,
)
from hardneg.negatives.bm25 import BM25Options, bm25_candidates
from hardneg.negatives.cross_encoder import rescore_candidates
from hardneg.negatives.dense import dense_candidates, load_embedder
from hardneg.negatives.mining import (
    TRIPLET_COLUMNS,
    Candidates,
    MiningParams,
    OutputFormat,
    QueryGroups,
    check_output_format,
    describe,
    distinct_texts,
    group_queries,
    mining_rules,
    positive_matrix,
    query_text_rows,
    select_negatives,
    st_output,
)
from hardneg.scorers import load_scorer
from hardneg.text import is_blank, normalise_texts

logger = logging.getLogger(__name__)

__all__ = [
    "mine_hard_negatives",
    "suspected_false_negative_rate",
    "false_negative_scores",
    "TRIPLET_COLUMNS",
    "METHOD_NAMES",
]

# mining method (mine_hard_negatives' ``method``) <-> config name, from the registry's ``mining`` entries
METHOD_NAMES = {m.mining: m.name for m in map(get_method, method_names("mined")) if m.mining}
MINING_OF = {config: method for method, config in METHOD_NAMES.items()}


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
    queries: Dataset, row_of: dict[str, int], extra_positives: dict[str, Iterable[str]] | None
) -> QueryGroups:
    """Rows grouped by (normalised) query text; each query's positives: its rows' and extra_positives."""
    missing = [pid for pid in queries["positive_id"][:] if str(pid) not in row_of]
    if missing:
        raise ValueError(
            f"{len(missing)} positive_id(s) are not in the corpus (e.g. '{missing[0]}'); fix: mine over the corpus "
            "the queries were generated from (after the same decontamination)"
        )
    positive_rows = [row_of[str(pid)] for pid in queries["positive_id"][:]]
    query_ids = [str(q) for q in queries["query_id"][:]]
    return group_queries(
        normalise_texts(queries["query"][:]), query_ids, positive_rows, row_of, extra_positives
    )


def pool_passages(corpus: Dataset) -> tuple[list, list[str], dict[str, int]]:
    """The pool as mining candidates: (ids, texts, candidate row of every id); texts are title + text, and
    two ids with one text are one candidate."""
    ids = corpus["id"][:]
    row_of = {str(d): i for i, d in enumerate(ids)}
    if len(row_of) != len(ids):
        raise ValueError(
            "the corpus has duplicate ids; fix: make passage ids unique (load_corpus checks this)"
        )
    titles = corpus["title"][:] if "title" in corpus.column_names else [""] * len(ids)
    passages = [passage_text(t, x) for t, x in zip(titles, corpus["text"][:], strict=True)]
    keep, merged = distinct_texts(passages)
    row_of = {d: int(merged[i]) for d, i in row_of.items()}
    return [ids[r] for r in keep], [passages[r] for r in keep], row_of


def mine_hard_negatives(
    queries: Dataset,
    corpus: Dataset,
    *,
    method: Literal["bm25", "ce", "dense"] = "bm25",
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
    candidate_method: Literal["bm25", "dense"] = "bm25",
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
) -> tuple[Dataset, dict[str, Any]]:
    """Mine hard negatives for generated (query, positive) pairs; returns (triplets, stats).

    Parameter names follow sentence-transformers' ``util.mine_hard_negatives`` (and its filter order, see
    ``hardneg.negatives.mining``); the margins cite NV-Retriever (arXiv 2407.15831).

    Args:
        queries: Dataset with ``query_id, query, positive_id, positive`` (other columns are ignored).
        corpus: Dataset(id, title, text) from ``hardneg.corpus.load_corpus``; the mining pool.
        method: ``bm25`` (BM25 top passages), ``ce`` (first-stage candidates rescored by ``scorer``) or
            ``dense`` (bi-encoder ``embedder`` nearest passages). Each filters on its own score (``stats["score_name"]``).
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
        cache_dir: ``ce`` only: save scores per chunk so an interrupted run resumes.
        cache_folder: ``dense`` (and a dense first stage): keep the pool's embeddings there
            (``corpus_embeddings_<hash>.npy``, as sentence-transformers does).
        shard: with ``cache_folder`` on a filesystem every process shares, this process of ``accelerate launch``
            / ``torchrun`` (``hardneg.distributed.current_shard()``): each process encodes only its part of the
            pool and every process must make the same call (``hardneg.negatives.dense.encode_pool``).
        show_progress: tqdm progress bars.
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown method '{method}'; fix: use one of {sorted(METHOD_NAMES)}")
    if candidate_method not in ("bm25", "dense"):
        raise ValueError(f"unknown candidate_method '{candidate_method}'; fix: use bm25 or dense")
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
    decontamination = None
    if exclude_ids or exclude_queries:
        queries, corpus, decontamination = decontaminate(
            queries, corpus, exclude_ids=exclude_ids, exclude_queries=exclude_queries
        )
        if len(queries) == 0:
            raise ValueError("decontamination removed every query; fix: check exclude_ids / exclude_queries")

    ids, passages, row_of = pool_passages(corpus)
    query_texts = queries["query"][:]
    if any(is_blank(q) for q in query_texts):  # the one blank rule: invisible-only text is empty too
        raise ValueError("some queries are empty; fix: drop empty queries before mining")
    groups = _known_positives(queries, row_of, extra_positives)
    known = positive_matrix(groups.known)
    rules = mining_rules()
    k = range_max + max(len(s) for s in groups.known) + rules.extra_candidates
    first_stage = candidate_method if method == "ce" else method
    first_queries = [query_texts[r] for r in groups.first]

    cands = _candidates(
        method,
        first_queries,
        passages,
        known,
        k=k,
        scorer=scorer,
        candidate_method=candidate_method,
        embedder=embedder,
        bm25_options=bm25_options,
        use_faiss=use_faiss,
        batch_size=batch_size,
        cache_dir=cache_dir,
        cache_folder=cache_folder,
        shard=shard,
        show_progress=show_progress,
    )
    per_query = select_negatives(
        cands.indices,
        cands.scores,
        cands.lowest_positive_scores,
        known[:, 0],
        known,
        params,
        texts=passages,
        query_rows=query_text_rows(first_queries, passages) if rules.exclude_query_text else None,
    )
    sel = per_query.per_row(groups.group)
    positive_scores = groups.own_scores(cands.positive_scores)
    name = METHOD_NAMES[method]
    if output_format is None:
        triplets = from_arrow(
            _rows(queries, ids, passages, positive_scores, sel, name, output_scores), MINED_FEATURES
        )
    else:
        negatives = [[passages[r] for r in rows] for rows in per_query.negatives]
        table = st_output(
            output_format,
            groups,
            queries["query"][:],
            queries["positive"][:],
            positive_scores,
            negatives,
            per_query.scores,
            num_negatives=num_negatives,
            output_scores=output_scores,
        )
        triplets = Dataset.from_dict(table)
    wall = time.perf_counter() - start
    if sel.queries_short_of_negatives:
        logger.warning(
            "%d of %d queries got fewer than %d negatives (not padded); consider a larger range_max or looser "
            "margins",
            sel.queries_short_of_negatives,
            len(queries),
            num_negatives,
        )
    neg_scores = np.concatenate(sel.scores) if sel.scores else np.zeros(0)
    stats: dict[str, Any] = {
        "method": name,
        "rows": len(triplets),
        "queries": len(queries),
        "distinct_queries": len(groups.first),
        "duplicate_passages_merged": len(corpus) - len(ids),
        "wall_seconds": round(wall, 3),
        "items_per_second": round(len(queries) / wall, 3) if wall > 0 else None,
        "candidates_considered": sel.candidates_considered,
        "skipped": sel.skipped,
        "queries_short_of_negatives": sel.queries_short_of_negatives,
        "queries_without_candidates": sel.queries_without_candidates,
        "unknown_extra_positive_ids": groups.unknown_extra,
        "score_name": cands.score_name,
        "score_stats": {"positive": describe(positive_scores), "negative": describe(neg_scores)},
        "params": {
            "method": method,
            **{k_: v for k_, v in vars(params).items()},
            "first_stage_k": k,
            "mining_rules": rules.follows,
            "output_format": output_format,
            **(
                {"scorer": getattr(scorer, "name", scorer), "candidate_method": candidate_method}
                if method == "ce"
                else {}
            ),
            **({"bm25": vars(bm25_options or BM25Options())} if "bm25" in (method, first_stage) else {}),
            **(
                {"embedder": _name(embedder)}
                if method == "dense" or (method == "ce" and candidate_method == "dense")
                else {}
            ),
        },
        "decontamination": decontamination,
    }
    if method == "ce":
        # Same scorer as suspected_false_negative_rate, so this is that estimate, computed for free.
        per_row = np.repeat(positive_scores, [len(s) for s in sel.scores])
        stats["suspected_false_negative_rate"] = (
            float(np.mean(neg_scores >= per_row)) if len(neg_scores) else None
        )
        stats["false_negative_scorer"] = stats["params"]["scorer"]
    return triplets, stats


def _name(model: Any) -> str:
    if isinstance(model, str):
        return model
    return getattr(getattr(model, "model_card_data", None), "base_model", None) or type(model).__name__


def _candidates(
    method,
    query_texts,
    passages,
    positive_rows,
    *,
    k,
    scorer,
    candidate_method,
    embedder,
    bm25_options,
    use_faiss,
    batch_size,
    cache_dir,
    cache_folder,
    shard,
    show_progress,
) -> Candidates:
    first = candidate_method if method == "ce" else method
    if first == "bm25":
        cands = bm25_candidates(
            query_texts, passages, positive_rows, k=k, options=bm25_options, show_progress=show_progress
        )
    else:
        model = load_embedder(embedder) if isinstance(embedder, str) else embedder
        cands = dense_candidates(
            query_texts,
            passages,
            positive_rows,
            k=k,
            model=model,
            batch_size=batch_size,
            use_faiss=use_faiss,
            show_progress=show_progress,
            cache_folder=cache_folder,
            model_id=embedder if isinstance(embedder, str) else None,
            shard=shard,
        )
    if method != "ce":
        return cands
    scorer = load_scorer(scorer, show_progress=show_progress) if isinstance(scorer, str) else scorer
    return rescore_candidates(
        query_texts,
        passages,
        positive_rows,
        cands,
        scorer=scorer,
        batch_size=batch_size,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )


def _rows(queries, ids, passages, positive_scores, sel, name, output_scores) -> dict[str, pa.Array]:
    """The triplet columns, gathered from the queries' Arrow table (no Python string per row)."""
    per_query = np.array([len(n) for n in sel.negatives], dtype=np.int64)
    rep = pa.array(np.repeat(np.arange(len(per_query)), per_query))
    source = arrow_table(queries, ["query", "positive", "query_id", "positive_id"]).take(rep)
    neg_rows = np.concatenate(sel.negatives).tolist() if sel.negatives else []
    n = len(neg_rows)
    none = pa.nulls(n, pa.float64())
    return {
        "anchor": source.column("query"),
        "positive": source.column("positive"),
        "negative": pa.array([passages[r] for r in neg_rows], pa.string()),
        "query_id": source.column("query_id").cast(pa.string()),
        "positive_id": source.column("positive_id").cast(pa.string()),
        "negative_id": pa.array([str(ids[r]) for r in neg_rows], pa.string()),
        "negative_rank": pa.array(np.concatenate(sel.ranks) if n else [], pa.int64()),
        "positive_score": pa.array(np.repeat(positive_scores, per_query), pa.float64())
        if output_scores
        else none,
        "negative_score": pa.array(np.concatenate(sel.scores), pa.float64()) if output_scores and n else none,
        "method": pa.array([name] * n, pa.string()),
    }


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


def dense_embedder(method: Method, options: dict[str, Any]) -> str | None:
    """The bi-encoder a mined method encodes the pool with (dense_hn, ce_hn with dense candidates), else None."""
    mining = method.mining
    if mining == "dense" or (mining == "ce" and options.get("ce_candidates") == "dense"):
        return options["embedder"]
    return None


def run_mined(ctx: MethodContext) -> tuple[Dataset, dict[str, Any]]:
    """The build's entry for the mined configs (bm25_hn, ce_hn, dense_hn): options from the registry."""
    o = ctx.options
    method = MINING_OF[ctx.name]
    window = {k: o[k] for k in ("range_min", "range_max", "num_negatives", "sampling_strategy")}
    filters = {k: o[k] for k in ("absolute_margin", "relative_margin", "max_score", "min_score")}
    if method == "ce" and o.get("ce_absolute_margin") is not None:
        filters["absolute_margin"] = o["ce_absolute_margin"]  # ce_hn's false-negative guard
    if len(ctx.queries) == 0 and ctx.shard.world > 1:
        # Every query of this shard was rejected or decontaminated (a one-process build says so instead); its
        # part of the pool's embeddings was written before the methods ran (``hardneg.build.share_pool``).
        return empty_table(MINED_FEATURES), {"rows": 0, "method": ctx.name}
    return mine_hard_negatives(
        ctx.queries,
        ctx.pool,
        method=method,
        **window,
        **filters,
        seed=ctx.seed,
        scorer=ctx.scorer(o["ce_scorer"], o.get("scorer_dtype")) if method == "ce" else None,
        candidate_method=o.get("ce_candidates", "bm25"),
        embedder=o.get("embedder"),
        batch_size=ctx.batch_size,
        cache_dir=ctx.cache_dir / "ce_scores" if method == "ce" else None,
        cache_folder=pool_cache(ctx.shared_cache_dir),
        shard=ctx.shard,
    )
