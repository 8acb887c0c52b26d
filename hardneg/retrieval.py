"""Retrieval runs in beir's contract: a corpus and queries in, a top-k run ``{qid: {doc_id: score}}`` out.

``search_bm25`` (bm25s, Lucene variant) and ``search_dense`` (a sentence-transformers model: the corpus
encoded in cached, sharded parts by ``hardneg.encode``, exact top-k search) give the same run shape, so
``hardneg.evaluate`` scores every retriever with the same code. Passages are joined as
``hardneg.mteb_results.format_passage`` says (``passage_format``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hardneg.assets import autocast, dtype_name
from hardneg.bm25 import BM25Index
from hardneg.corpus import BeirData
from hardneg.encode import (
    cache_key,
    encode_corpus,
    fingerprint_model,
    fingerprint_texts,
    process_state,
    search_topk,
)
from hardneg.mteb_results import format_passage
from hardneg.revisions import model_commit


def run_from_topk(
    query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    return {
        q: {doc_ids[j]: float(s) for j, s in zip(indices[r], scores[r], strict=True)}
        for r, q in enumerate(query_ids)
    }


def search_bm25(
    data: BeirData,
    query_ids: list[str],
    top_k: int,
    show_progress: bool = True,
    passage_format: str = "hardneg",
) -> dict:
    """BM25 (bm25s, Lucene variant, English stemming + stop words) top-k run over ``data``."""
    doc_ids = list(data.corpus)
    texts = [format_passage(d, passage_format) for d in data.corpus.values()]
    index = BM25Index(texts, doc_ids, show_progress=show_progress)
    idx, scores = index.search_indices([data.queries[q] for q in query_ids], top_k)
    return run_from_topk(query_ids, doc_ids, np.asarray(idx), np.asarray(scores))


def search_dense(
    model,
    data: BeirData,
    query_ids: list[str],
    top_k: int,
    *,
    query_prompt: str = "",
    passage_prompt: str = "",
    batch_size: int = 32,
    part_size: int | None = None,
    corpus_chunk_size: int = 50_000,
    cache_dir: str | Path | None = None,
    dtype: str = "float32",
    show_progress: bool = True,
    passage_format: str = "hardneg",
) -> tuple[dict, dict[str, Any]]:
    """Encode corpus (cached, sharded) and queries, exact top-k search; returns (run, info).

    ``dtype``: matmul precision of the encoder (``hardneg.assets.autocast``): float32, bfloat16, float16 or
    auto (bfloat16 on a CUDA GPU that has it, else float32)."""
    doc_ids = list(data.corpus)
    texts = [format_passage(d, passage_format) for d in data.corpus.values()]
    dtype = dtype_name(dtype, str(model.device))
    info: dict[str, Any] = {
        "similarity": model.similarity_fn_name or "cosine",
        "dtype": dtype,
        "model_commit": model_commit(model),  # the Hub commit of the weights evaluated (None: local folder)
    }
    key = None
    if cache_dir:
        info["model_fingerprint"] = fingerprint_model(model)
        info["corpus_fingerprint"] = fingerprint_texts(doc_ids, texts)
        key = cache_key(info["model_fingerprint"], info["corpus_fingerprint"], passage_prompt, dtype)
    t0 = time.perf_counter()
    corpus_emb = encode_corpus(
        model,
        texts,
        prompt=passage_prompt,
        batch_size=batch_size,
        part_size=part_size,
        cache_dir=cache_dir or None,
        cache_key=key,
        dtype=dtype,
        show_progress=show_progress,
    )
    info["encode_corpus_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with autocast(dtype, model.device):
        query_emb = model.encode(
            [data.queries[q] for q in query_ids],
            prompt=query_prompt or None,
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    info["encode_queries_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = process_state()
    idx, scores = search_topk(
        query_emb,
        corpus_emb,
        top_k,
        similarity=info["similarity"],
        corpus_chunk_size=corpus_chunk_size,
        device=str(state.device),
    )
    info["search_s"] = time.perf_counter() - t0
    return run_from_topk(query_ids, doc_ids, idx, scores), info
