"""LLM-written hard negatives ("Don't Retrieve, Generate", arXiv 2504.21015): the generation loop every LLM method
shares. Each method (``hardneg.methods.llm_hn``, ``llm_pos_hn``, ``llm_perturb_hn``) names its prompt, the inputs
its prompt takes (``query``, ``positive``, and extra fields such as ``change``) and its hygiene rules.

Usage::

    triplets, stats = generate_negatives(queries, gen, method="llm_hn", prompt="llm_hn", inputs=("query",),
                                         cache_dir=run_dir / "cache")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import Dataset

from hardneg.generation import (
    HygieneConfig,
    check_texts,
    check_unique_ids,
    generate_in_blocks,
    provenance_row,
    run_generation,
)
from hardneg.llm import Generator
from hardneg.methods import LLM_FEATURES, QUERY_INPUT_COLUMNS, table
from hardneg.prompts import PromptTemplate, load_prompt_for
from hardneg.queries import truncate_words

NEGATIVE_MAX_NEW_TOKENS = 96
NEGATIVE_HYGIENE = HygieneConfig(min_words=5, max_words=120)


def generate_negatives(
    queries: Dataset,
    generator: Generator,
    *,
    method: str,
    prompt: str | Path,
    inputs: Sequence[str] = ("query",),
    extra: Mapping[str, str] | None = None,
    cache_dir: str | Path,
    seed: int = 42,
    max_retries: int = 2,
    retry_temperature: float = 0.8,
    max_new_tokens: int | None = None,
    max_positive_words: int | None = 128,
    hygiene: HygieneConfig | None = None,
    progress: bool = True,
) -> tuple[Dataset, dict]:
    """Write one hard negative per query.

    Args:
        queries: Dataset(query_id, query, positive_id, positive, ...) from ``generate_queries``.
        generator: from ``hardneg.llm.load_generator``.
        method: the config name written in every row's ``method`` column.
        prompt: the template (name or YAML file); it must be a ``negative`` template taking exactly ``inputs``.
        inputs: the placeholders the method fills: ``query``, ``positive`` and the keys of ``extra``.
        extra: fixed values of further placeholders (``llm_perturb_hn``'s ``change``).
        cache_dir, seed, max_retries, retry_temperature: as in ``generate_queries``.
        max_new_tokens: token budget per negative (default: the generator's, else 96).
        max_positive_words: the positive is cut to this many words inside the prompt.
        hygiene: reject rules; default ``NEGATIVE_HYGIENE`` (5-120 words, near-copies of the positive rejected).

    Returns:
        (triplets, stats): Dataset(anchor, positive, negative, query_id, positive_id, negative_id=None,
        negative_rank=None, positive_score=None, negative_score=None, method, + provenance columns) and
        the stats dict of docs/design.md.
    """
    template = _checked_inputs(queries, prompt, inputs)
    max_new = max_new_tokens or generator.config.max_new_tokens or NEGATIVE_MAX_NEW_TOKENS
    settings = dict(
        generator=generator,
        prompt=template,
        method=method,
        cache_dir=cache_dir,
        seed=seed,
        max_retries=max_retries,
        retry_temperature=retry_temperature,
        max_new_tokens=max_new,
        rules=hygiene or NEGATIVE_HYGIENE,
        source_field="positive",
        progress=progress,
    )

    def block(start: int, end: int, later: bool) -> tuple[Dataset, dict]:
        part = queries.select(range(start, end)) if end - start < len(queries) else queries
        items = _items(part, extra or {}, max_positive_words)
        results, stats = run_generation(items, **settings, append_rejects=later)
        out = [
            _row(it, res, method, provenance_row(generator, template, res))
            for it, res in zip(items, results, strict=True)
            if res is not None
        ]
        return table(out, LLM_FEATURES), stats

    return generate_in_blocks(len(queries), block)


def _checked_inputs(queries: Dataset, prompt: str | Path, inputs: Sequence[str]) -> PromptTemplate:
    """The queries have the columns and texts a negative is written from; the template takes ``inputs``."""
    missing = [c for c in QUERY_INPUT_COLUMNS if c not in queries.column_names]
    if missing:
        raise ValueError(
            f"queries lack column(s) {missing} (has {queries.column_names}); fix: pass the output of generate_queries"
        )
    check_unique_ids(queries, "queries", "query_id")
    check_texts(queries, ["query", "positive"], "queries", "query_id")  # before the first block is generated
    return load_prompt_for(prompt, "negative", inputs, "use the method's own prompt or a matching template")


def _items(part: Dataset, extra: Mapping[str, str], max_positive_words: int | None) -> list[dict]:
    """One generation item per query: its inputs, the positive cut for the prompt and kept whole for the row."""
    columns = (part[c][:] for c in QUERY_INPUT_COLUMNS)
    items = []
    for q, a, p_id, p in zip(*columns, strict=True):
        item = {"id": q, "query": a, "positive_id": p_id, "positive": p, **extra, "full_positive": p}
        item["positive"] = truncate_words(p, max_positive_words)  # cut for the prompt, in its place
        items.append(item)
    return items


def _row(item: dict, result: dict, method: str, provenance: dict) -> dict:
    return {
        "anchor": item["query"],
        "positive": item["full_positive"],
        "negative": result["text"],
        "query_id": item["id"],
        "positive_id": item["positive_id"],
        "negative_id": None,
        "negative_rank": None,
        "positive_score": None,
        "negative_score": None,
        "method": method,
        **provenance,
    }
