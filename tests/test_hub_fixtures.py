"""A small, realistic build for the hub/cards/publish tests, made from real Cranfield data.

Queries are the real Cranfield queries paired with a relevant passage (their qrels), bm25_hn negatives
are mined with the project's BM25 index, and llm_hn rows carry hand-written negatives marked as such
(model "fixture"): the publishing code only needs tables with the docs/design.md columns, not an LLM.
"""

from __future__ import annotations

import json

import pytest
from datasets import Dataset, DatasetDict

from hardneg.bm25 import BM25Index
from hardneg.corpus import load_beir_folder, passage_text

N_QUERIES = 12
PROMPT_QUERY = "Write a question that the passage answers.\n\nPassage: {passage}\nQuestion:"
PROMPT_LLM_HN = "Write a passage that looks relevant to the question but does not answer it.\n\nQuestion: {query}\nPassage:"


def make_configs(cranfield_dir: str, n: int = N_QUERIES, validation: bool = False) -> dict:
    """queries, llm_hn and bm25_hn tables (design.md columns) from the first ``n`` Cranfield queries."""
    beir = load_beir_folder(cranfield_dir)
    qids = sorted(beir.qrels, key=lambda q: int(q))[:n]
    rows = []
    for qid in qids:
        doc_id = sorted(beir.qrels[qid], key=lambda d: (-beir.qrels[qid][d], int(d)))[0]
        doc = beir.corpus[doc_id]
        rows.append(
            {
                "query_id": qid,
                "query": beir.queries[qid],
                "positive_id": doc_id,
                "positive": passage_text(doc["title"], doc["text"]),
            }
        )
    sampling = json.dumps({"temperature": 0.0, "max_new_tokens": 32})
    queries = Dataset.from_list(
        [
            {
                **r,
                "model": "fixture",
                "backend": "fixture",
                "prompt_name": "query_fewshot",
                "prompt_version": "1",
                "prompt_hash": "0" * 64,
                "sampling": sampling,
                "seed": 42,
                "prompt_tokens": 120,
                "completion_tokens": 16,
                "latency_s": 0.5,
            }
            for r in rows
        ]
    )
    ids = list(beir.corpus)
    index = BM25Index(
        [passage_text(**beir.corpus[d]) for d in ids], ids, show_progress=False, backend="numpy"
    )
    found, scores = index.search([r["query"] for r in rows], k=5)
    bm25 = []
    for r, hits, hit_scores in zip(rows, found, scores, strict=True):
        rank, neg = next((i, d) for i, d in enumerate(hits) if d != r["positive_id"])
        bm25.append(
            {
                "anchor": r["query"],
                "positive": r["positive"],
                "negative": passage_text(**beir.corpus[neg]),
                "query_id": r["query_id"],
                "positive_id": r["positive_id"],
                "negative_id": neg,
                "negative_rank": rank + 1,
                "positive_score": None,
                "negative_score": float(hit_scores[rank]),
                "method": "bm25_hn",
            }
        )
    llm = [
        {
            "anchor": r["query"],
            "positive": r["positive"],
            "negative": f"Wind-tunnel notes unrelated to: {r['query']}",
            "query_id": r["query_id"],
            "positive_id": r["positive_id"],
            "negative_id": None,
            "negative_rank": None,
            "positive_score": None,
            "negative_score": None,
            "method": "llm_hn",
            "model": "fixture",
            "prompt_name": "llm_hn",
            "prompt_version": "1",
            "prompt_hash": "1" * 64,
            "prompt_tokens": 40,
            "completion_tokens": 24,
        }
        for r in rows
    ]
    configs = {"queries": queries, "llm_hn": Dataset.from_list(llm), "bm25_hn": Dataset.from_list(bm25)}
    if validation:
        configs = {
            k: DatasetDict({"train": v.select(range(n - 2)), "validation": v.select(range(n - 2, n))})
            for k, v in configs.items()
        }
    return configs


def make_build_stats(n: int = N_QUERIES) -> dict:
    """A build_stats.json shaped like the build's (docs/design.md), with every section filled."""
    score = {"mean": 0.61, "std": 0.12, "min": 0.31, "p50": 0.6, "max": 0.93}
    return {
        "hardneg_version": "0.1.0",
        "created": "2026-11-26T01:00:00Z",
        "corpus": {
            "source": "embedded:cranfield",
            "revision": None,
            "passages_total": 1400,
            "passages_sampled": n,
            "seed": 42,
        },
        "generator": {
            "model": "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)",
            "backend": "transformers",
            "sampling": {"temperature": 0.0, "max_new_tokens": 32},
        },
        "prompts": {
            "query_fewshot": {
                "name": "query_fewshot",
                "version": "1",
                "sha256": "a" * 64,
                "text": PROMPT_QUERY,
            },
            "llm_hn": {"name": "llm_hn", "version": "1", "sha256": "b" * 64, "text": PROMPT_LLM_HN},
        },
        "configs": {
            "queries": {
                "rows": n,
                "wall_seconds": 31.5,
                "items_per_second": 0.38,
                "prompt_tokens": 1440,
                "completion_tokens": 192,
                "rejects": {"copied_passage": 2, "empty": 1},
            },
            "llm_hn": {
                "rows": n,
                "wall_seconds": 22.25,
                "items_per_second": 0.54,
                "prompt_tokens": 480,
                "completion_tokens": 288,
                "dropped": 1,
                "rejects": {"too_short": 3},
                "score_stats": {"positive": score, "negative": {**score, "mean": 0.42}},
                "suspected_false_negative_rate": 0.0833,
                "score_name": "minilm_cosine",
                "params": {"max_new_tokens": 64, "temperature": 0.7, "seed": 42},
            },
            "bm25_hn": {
                "rows": n,
                "wall_seconds": 0.4,
                "items_per_second": 30.0,
                "candidates_considered": 5 * n,
                "skipped": {"positive": n},
                "queries_short_of_negatives": 0,
                "score_stats": {"negative": {"mean": 17.2, "std": 4.1, "min": 9.8, "p50": 16.9, "max": 27.3}},
                "suspected_false_negative_rate": 0.25,
                "score_name": "bm25",
                "params": {
                    "range_min": 0,
                    "range_max": 5,
                    "num_negatives": 1,
                    "sampling_strategy": "top",
                    "k1": 1.5,
                    "b": 0.75,
                },
            },
        },
        "decontamination": {"excluded_doc_ids": 0, "removed_queries": 0},
        "build": {"num_passages": n, "methods": ["llm_hn", "bm25_hn"], "seed": 42},
    }


@pytest.fixture
def example_configs(cranfield_dir):
    return make_configs(cranfield_dir)


@pytest.fixture
def build_stats():
    return make_build_stats()


def test_fixture_has_design_columns(cranfield_dir):
    configs = make_configs(cranfield_dir, n=4)
    assert configs["bm25_hn"].column_names[:3] == ["anchor", "positive", "negative"]
    assert all(r["negative_id"] != r["positive_id"] for r in configs["bm25_hn"])
    assert len(configs["queries"]) == 4
