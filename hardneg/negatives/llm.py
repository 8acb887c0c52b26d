"""LLM-written hard negatives ("Don't Retrieve, Generate", arXiv 2504.21015).

- ``variant="query"`` (config ``llm_hn``): the paper's corpus-free method; the LLM sees only the query
  and writes a passage that looks relevant to it but does not answer it.
- ``variant="query_positive"`` (config ``llm_pos_hn``): the LLM also sees the positive passage.
- ``variant="perturb"`` (config ``llm_perturb_hn``; CausalNeg, arXiv 2606.01304): the LLM rewrites the
  positive so that it no longer answers the query while staying on topic; ``change`` (one of
  ``PERTURB_STRENGTHS``) tells it how much to change. Near-copies of the positive are still rejected, but
  the copy check against the positive is off (a light rewrite shares most of its words by design).

Usage::

    triplets, stats = generate_negatives(queries, gen, variant="query", cache_dir=run_dir / "cache")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
from hardneg.methods import LLM_FEATURES, QUERY_INPUT_COLUMNS, MethodContext, table
from hardneg.prompts import load_prompt
from hardneg.queries import truncate_words

NEGATIVE_MAX_NEW_TOKENS = 96
VARIANTS = {
    "query": ("llm_hn", "llm_hn"),
    "query_positive": ("llm_pos_hn", "llm_pos_hn"),
    "perturb": ("llm_perturb_hn", "llm_perturb_hn"),
}  # variant -> (method, prompt)
VARIANT_INPUTS = {
    "query": {"query"},
    "query_positive": {"query", "positive"},
    "perturb": {"query", "positive", "change"},
}
# How much llm_perturb_hn changes the positive (the {change} of its prompt): controlled hardness.
PERTURB_STRENGTHS = {
    "light": "Change as little as possible: only the words that answer the query (a name, a number, a claim).",
    "medium": "Keep most sentences and terms, but replace the part that answers the query with related "
    "information that does not answer it.",
    "heavy": "Keep only the topic and its key terms; write new content that does not answer the query.",
}
PERTURB_HYGIENE = HygieneConfig(
    min_words=5, max_words=160, max_copy_overlap=1.01, max_positive_similarity=0.95
)
TRIPLET_FEATURES = LLM_FEATURES


def generate_negatives(
    queries: Dataset,
    generator: Generator,
    *,
    variant: Literal["query", "query_positive", "perturb"] = "query",
    change: str | None = None,
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
        variant: ``query`` (method ``llm_hn``, prompt from the query alone), ``query_positive``
            (method ``llm_pos_hn``, prompt from query + positive) or ``perturb`` (``llm_perturb_hn``).
        change: ``perturb`` only: how much to change, a key of ``PERTURB_STRENGTHS`` (default medium) or
            the instruction text itself.
        prompt: override the template (name or YAML file; it must take the variant's inputs).
        cache_dir, seed, max_retries, retry_temperature: as in ``generate_queries``.
        max_new_tokens: token budget per negative (default: the generator's, else 96).
        max_positive_words: the positive is cut to this many words inside the prompt.
        hygiene: reject rules; default keeps 5-120 words and rejects near-copies of the positive
            (``perturb``: ``PERTURB_HYGIENE``).

    Returns:
        (triplets, stats): Dataset(anchor, positive, negative, query_id, positive_id, negative_id=None,
        negative_rank=None, positive_score=None, negative_score=None, method, + provenance columns) and
        the stats dict of docs/design.md.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant '{variant}'; fix: use 'query' (llm_hn), 'query_positive' (llm_pos_hn) or 'perturb'"
        )
    method, default_prompt = VARIANTS[variant]
    missing = [c for c in QUERY_INPUT_COLUMNS if c not in queries.column_names]
    if missing:
        raise ValueError(
            f"queries lack column(s) {missing} (has {queries.column_names}); fix: pass the output of generate_queries"
        )
    check_unique_ids(queries, "queries", "query_id")
    check_texts(queries, ["query", "positive"], "queries", "query_id")  # before the first block is generated
    template = load_prompt(prompt or default_prompt)
    want = VARIANT_INPUTS[variant]
    if template.kind != "negative" or set(template.inputs) != want:
        raise ValueError(
            f"prompt '{template.name}' does not take {sorted(want)}; fix: use {default_prompt} or a matching template"
        )
    extra = {}
    if variant == "perturb":
        extra["change"] = PERTURB_STRENGTHS.get(change or "medium", change)
    max_new = max_new_tokens or generator.config.max_new_tokens or NEGATIVE_MAX_NEW_TOKENS
    default_rules = PERTURB_HYGIENE if variant == "perturb" else HygieneConfig(min_words=5, max_words=120)

    def block(start: int, end: int, later: bool) -> tuple[Dataset, dict]:
        part = queries.select(range(start, end)) if end - start < len(queries) else queries
        columns = (part[c][:] for c in QUERY_INPUT_COLUMNS)
        rows = [
            {"id": q, "query": a, "positive_id": p_id, "positive": p}
            for q, a, p_id, p in zip(*columns, strict=True)
        ]
        items = [
            {
                **r,
                **extra,
                "full_positive": r["positive"],
                "positive": truncate_words(r["positive"], max_positive_words),
            }
            for r in rows
        ]
        results, stats = run_generation(
            items,
            generator=generator,
            prompt=template,
            method=method,
            cache_dir=cache_dir,
            seed=seed,
            max_retries=max_retries,
            retry_temperature=retry_temperature,
            max_new_tokens=max_new,
            rules=hygiene or default_rules,
            source_field="positive",
            progress=progress,
            append_rejects=later,
        )
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
            }
            for it, res in zip(items, results, strict=True)
            if res is not None
        ]
        return table(out, LLM_FEATURES), stats

    return generate_in_blocks(len(queries), block)


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


def run_llm_perturb_hn(ctx: MethodContext) -> tuple[Dataset, dict]:
    """The build's entry for ``llm_perturb_hn``: the positive rewritten at ``perturb_strength``."""
    o = ctx.options
    if o["perturb_strength"] not in PERTURB_STRENGTHS:
        raise ValueError(
            f"perturb_strength '{o['perturb_strength']}'; fix: use one of {', '.join(PERTURB_STRENGTHS)}"
        )
    triplets, stats = generate_negatives(
        ctx.queries,
        ctx.generator(),
        variant="perturb",
        change=o["perturb_strength"],
        prompt=o["llm_perturb_hn_prompt"],
        cache_dir=ctx.cache_dir,
        seed=ctx.seed,
        max_new_tokens=o["perturb_max_new_tokens"],
        max_retries=o["reject_retries"],
    )
    stats["params"]["perturb_strength"] = o["perturb_strength"]
    stats["params"]["change"] = PERTURB_STRENGTHS[o["perturb_strength"]]
    return triplets, stats


def run_llm_pos_hn(ctx: MethodContext) -> tuple[Dataset, dict]:
    """The build's entry for ``llm_pos_hn``."""
    return _run(ctx, "query_positive")
