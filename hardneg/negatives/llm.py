"""LLM-written hard negatives ("Don't Retrieve, Generate", arXiv 2504.21015).

- ``variant="query"`` (config ``llm_hn``): the paper's corpus-free method; the LLM sees only the query
  and writes a passage that looks relevant to it but does not answer it.
- ``variant="query_positive"`` (config ``llm_pos_hn``): the LLM also sees the positive passage.

Usage::

    triplets, stats = generate_negatives(queries, gen, variant="query", cache_dir=run_dir / "cache")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from datasets import Dataset

from hardneg.generation import HygieneConfig, provenance_row, run_generation, validate_texts
from hardneg.llm import Generator
from hardneg.methods import LLM_FEATURES, MethodContext, table
from hardneg.prompts import load_prompt
from hardneg.queries import truncate_words

NEGATIVE_MAX_NEW_TOKENS = 96
VARIANTS = {
    "query": ("llm_hn", "llm_hn"),
    "query_positive": ("llm_pos_hn", "llm_pos_hn"),
}  # variant -> (method, prompt)
TRIPLET_FEATURES = LLM_FEATURES


def generate_negatives(
    queries: Dataset,
    generator: Generator,
    *,
    variant: Literal["query", "query_positive"] = "query",
    prompt: str | Path | None = None,
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
        variant: ``query`` (method ``llm_hn``, prompt from the query alone) or ``query_positive``
            (method ``llm_pos_hn``, prompt from query + positive).
        prompt: override the template (name or YAML file; it must take the variant's inputs).
        cache_dir, seed, max_retries, retry_temperature: as in ``generate_queries``.
        max_new_tokens: token budget per negative (default: the generator's, else 96).
        max_positive_words: the positive is cut to this many words inside the prompt.
        hygiene: reject rules; default keeps 5-120 words and rejects near-copies of the positive.

    Returns:
        (triplets, stats): Dataset(anchor, positive, negative, query_id, positive_id, negative_id=None,
        negative_rank=None, positive_score=None, negative_score=None, method, + provenance columns) and
        the stats dict of docs/design.md.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant '{variant}'; fix: use 'query' (llm_hn) or 'query_positive' (llm_pos_hn)"
        )
    method, default_prompt = VARIANTS[variant]
    need = ["query_id", "query", "positive_id", "positive"]
    missing = [c for c in need if c not in queries.column_names]
    if missing:
        raise ValueError(
            f"queries lack column(s) {missing} (has {queries.column_names}); fix: pass the output of generate_queries"
        )
    rows = [{"id": q, "query": a, "positive_id": p_id, "positive": p} for q, a, p_id, p in
            zip(queries["query_id"], queries["query"], queries["positive_id"], queries["positive"], strict=True)]  # fmt: skip
    validate_texts(rows, ["query", "positive"], "queries")
    template = load_prompt(prompt or default_prompt)
    want = {"query"} if variant == "query" else {"query", "positive"}
    if template.kind != "negative" or set(template.inputs) != want:
        raise ValueError(
            f"prompt '{template.name}' does not take {sorted(want)}; fix: use {default_prompt} or a matching template"
        )
    items = [
        {**r, "full_positive": r["positive"], "positive": truncate_words(r["positive"], max_positive_words)}
        for r in rows
    ]
    max_new = max_new_tokens or generator.config.max_new_tokens or NEGATIVE_MAX_NEW_TOKENS
    results, stats = run_generation(
        items, generator=generator, prompt=template, method=method, cache_dir=cache_dir, seed=seed,
        max_retries=max_retries, retry_temperature=retry_temperature, max_new_tokens=max_new,
        rules=hygiene or HygieneConfig(min_words=5, max_words=120), source_field="positive", progress=progress,
    )  # fmt: skip
    out = [
        {
            "anchor": it["query"],
            "positive": it["full_positive"],
            "negative": res["text"],
            "query_id": it["id"],
            "positive_id": it["positive_id"],
            "negative_id": None,
            "negative_rank": None,
            "positive_score": None,
            "negative_score": None,
            "method": method,
            **provenance_row(generator, template, res),
        }  # fmt: skip
        for it, res in zip(items, results, strict=True)
        if res is not None
    ]
    return table(out, LLM_FEATURES), stats


def _run(ctx: MethodContext, variant: Literal["query", "query_positive"]) -> tuple[Dataset, dict]:
    o = ctx.options
    return generate_negatives(
        ctx.queries,
        ctx.generator(),
        variant=variant,
        prompt=o[f"{ctx.name}_prompt"],
        cache_dir=ctx.cache_dir,
        seed=ctx.seed,
        max_new_tokens=o["negative_max_new_tokens"],
        max_retries=o["reject_retries"],
    )


def run_llm_hn(ctx: MethodContext) -> tuple[Dataset, dict]:
    """The build's entry for ``llm_hn``."""
    return _run(ctx, "query")


def run_llm_pos_hn(ctx: MethodContext) -> tuple[Dataset, dict]:
    """The build's entry for ``llm_pos_hn``."""
    return _run(ctx, "query_positive")
