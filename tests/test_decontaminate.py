"""Decontamination against a real BEIR split (Cranfield test qrels)."""

from __future__ import annotations

import pytest
from datasets import Dataset

from hardneg.decontaminate import (
    decontaminate,
    decontaminate_corpus,
    decontaminate_queries,
    exclusions_from_beir,
    remove_eval_queries,
)


def test_exclusions_from_cranfield(cranfield_dir):
    ids, texts = exclusions_from_beir(cranfield_dir, split="test")
    assert len(texts) == 225 and 0 < len(ids) <= 1400
    assert all(isinstance(i, str) for i in ids)


def test_queries_and_corpus_are_filtered_and_counted(tiny_corpus):
    eval_queries = [
        "What is the drag of a sphere at supersonic speed?",
        "boundary layer transition on flat plates",
    ]
    queries = Dataset.from_dict(
        {
            "query_id": ["a", "b", "c", "d"],
            "query": [
                "what is  the DRAG of a sphere at supersonic speed?",
                "boundary layer transition on a flat plates",
                "heat flux in rarefied gas",
                "heat flux again",
            ],
            "positive_id": [
                tiny_corpus[0]["id"],
                tiny_corpus[1]["id"],
                tiny_corpus[2]["id"],
                tiny_corpus[3]["id"],
            ],
        }
    )
    kept, counts = decontaminate_queries(queries, exclude_queries=eval_queries)
    assert kept["query_id"][:] == ["b", "c", "d"] and counts["exact_query_match"] == 1
    kept, counts = decontaminate_queries(queries, exclude_queries=eval_queries, near_duplicate_threshold=0.8)
    assert kept["query_id"][:] == ["c", "d"] and counts["near_duplicate_query"] == 1
    banned = {tiny_corpus[3]["id"], tiny_corpus[5]["id"]}
    q2, c2, report = decontaminate(queries, tiny_corpus, exclude_ids=banned, exclude_queries=eval_queries)
    assert report == {
        "passages_removed": 2,
        "queries_removed": 2,
        "exact_query_match": 1,
        "near_duplicate_query": 0,
        "positive_in_excluded_ids": 1,
    }
    assert len(c2) == len(tiny_corpus) - 2 and not banned & set(c2["id"][:])
    assert q2["query_id"][:] == ["b", "c"]


def test_everything_excluded_is_an_error(tiny_corpus):
    with pytest.raises(ValueError, match="removed every passage"):
        decontaminate_corpus(tiny_corpus, tiny_corpus["id"][:])
    same, removed = decontaminate_corpus(tiny_corpus, [])
    assert removed == 0 and len(same) == len(tiny_corpus)


def test_remove_eval_queries_for_the_build():
    queries = Dataset.from_dict(
        {"query_id": ["a", "b"], "query": ["Heat Flux?", "drag"], "positive_id": ["1", "2"]}
    )
    assert remove_eval_queries(queries, ["heat  flux?"])["query_id"][:] == ["b"]
