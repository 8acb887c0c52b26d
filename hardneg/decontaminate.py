"""Decontamination: keep an evaluation set's documents and queries out of the training data.

Researchers who evaluate on a BEIR split must not train on its test queries, nor mine negatives from (or
generate queries for) the documents its qrels judge. Two filters, both counted:

- ``exclude_ids`` (e.g. every doc id in the test qrels): removed from the mining pool (the corpus), and
  generated queries whose positive is such a document are dropped;
- ``exclude_queries`` (the test query texts): generated queries equal to one after normalisation (lower case,
  collapsed white space) are dropped; with ``near_duplicate_threshold`` also those whose word set has a
  Jaccard similarity >= the threshold with an evaluation query.

Usage from a build::

    ids, texts = exclusions_from_beir("embedded:cranfield", split="test")
    queries, corpus, report = decontaminate(queries, corpus, exclude_ids=ids, exclude_queries=texts)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from datasets import Dataset

from hardneg.beir import load_eval_dataset
from hardneg.text import normalise_texts, word_set


def exclusions_from_beir(source: str, split: str = "test") -> tuple[set[str], list[str]]:
    """(doc ids judged in the split's qrels, query texts of the split) of an evaluation set: a BEIR folder,
    embedded:cranfield, a BEIR name or a Hub id (``hardneg.beir.load_eval_dataset``)."""
    data = load_eval_dataset(source, split=split)
    ids = {doc for judged in data.qrels.values() for doc in judged}
    texts = [data.queries[q] for q in data.qrels if q in data.queries]
    return ids, texts


def decontaminate_corpus(corpus: Dataset, exclude_ids: Iterable[str]) -> tuple[Dataset, int]:
    """Drop passages whose id is excluded; returns (corpus, number removed)."""
    excluded = {str(i) for i in exclude_ids}
    if not excluded:
        return corpus, 0
    keep = [i for i, doc in enumerate(corpus["id"][:]) if doc not in excluded]
    removed = len(corpus) - len(keep)
    if not keep:
        raise ValueError("decontamination removed every passage of the corpus; fix: check exclude_ids")
    return (corpus.select(keep) if removed else corpus), removed


def decontaminate_queries(
    queries: Dataset,
    *,
    exclude_queries: Iterable[str] | None = None,
    exclude_ids: Iterable[str] | None = None,
    near_duplicate_threshold: float | None = None,
    query_column: str = "query",
    positive_id_column: str = "positive_id",
) -> tuple[Dataset, dict[str, int]]:
    """Drop generated queries that leak an evaluation set; returns (queries, {reason: count})."""
    if near_duplicate_threshold is not None and not 0 < near_duplicate_threshold <= 1:
        raise ValueError(f"near_duplicate_threshold must be in (0, 1], got {near_duplicate_threshold}")
    counts = {"exact_query_match": 0, "near_duplicate_query": 0, "positive_in_excluded_ids": 0}
    texts = queries[query_column][:]
    drop = [False] * len(texts)
    excluded_ids = {str(i) for i in exclude_ids or ()}
    if excluded_ids and positive_id_column in queries.column_names:
        for i, pid in enumerate(queries[positive_id_column][:]):
            if str(pid) in excluded_ids:
                drop[i] = True
                counts["positive_in_excluded_ids"] += 1
    eval_texts = [t for t in (exclude_queries or ()) if t and t.strip()]
    if eval_texts:
        eval_norm = set(normalise_texts(eval_texts))
        norm = normalise_texts(texts)
        eval_sets = [word_set(t) for t in eval_texts]
        postings: dict[str, list[int]] = {}
        for j, ws in enumerate(eval_sets):
            for w in ws:
                postings.setdefault(w, []).append(j)
        for i, t in enumerate(norm):
            if drop[i]:
                continue
            if t in eval_norm:
                drop[i] = True
                counts["exact_query_match"] += 1
            elif near_duplicate_threshold is not None:
                ws = word_set(t)
                shared = Counter(j for w in ws for j in postings.get(w, ()))
                if any(c / len(ws | eval_sets[j]) >= near_duplicate_threshold for j, c in shared.items()):
                    drop[i] = True
                    counts["near_duplicate_query"] += 1
    if any(drop):
        queries = queries.select([i for i, d in enumerate(drop) if not d])
    return queries, counts


def decontaminate(
    queries: Dataset,
    corpus: Dataset,
    *,
    exclude_ids: Iterable[str] | None = None,
    exclude_queries: Iterable[str] | None = None,
    near_duplicate_threshold: float | None = None,
) -> tuple[Dataset, Dataset, dict[str, int]]:
    """Apply both filters; the report counts passages and queries removed, by reason."""
    exclude_ids = {str(i) for i in exclude_ids or ()}
    corpus, removed_passages = decontaminate_corpus(corpus, exclude_ids)
    queries, counts = decontaminate_queries(
        queries,
        exclude_queries=exclude_queries,
        exclude_ids=exclude_ids,
        near_duplicate_threshold=near_duplicate_threshold,
    )
    report = {"passages_removed": removed_passages, "queries_removed": sum(counts.values()), **counts}
    return queries, corpus, report


def remove_eval_queries(
    queries: Dataset, eval_queries: Iterable[str], *, near_duplicate_threshold: float | None = None
) -> Dataset:
    """Generated queries minus those equal (normalised; or near-duplicate) to an evaluation query."""
    kept, _ = decontaminate_queries(
        queries, exclude_queries=eval_queries, near_duplicate_threshold=near_duplicate_threshold
    )
    return kept
