"""Passage -> synthetic query (the positive pair of every triplet).

Library use (what ``hardneg.build`` calls)::

    gen = load_generator(GeneratorConfig())                     # embedded SmolLM2 by default
    queries, stats = generate_queries(corpus, gen, cache_dir=run_dir / "cache")

Standalone, resumable (kill it at any point and run the same command again)::

    python -m hardneg.queries --corpus embedded:cranfield --limit 200 --output_dir runs/demo/queries
    python -m hardneg.queries --corpus my.jsonl --backend http --urls http://gpu1:8080 http://gpu2:8080 \\
        --model meta-llama/Llama-3.1-8B-Instruct --prompt query_zeroshot --output_dir out/queries
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from datasets import Dataset

from hardneg.corpus import passage_text
from hardneg.generation import (
    HygieneConfig,
    check_texts,
    check_unique_ids,
    generate_in_blocks,
    provenance_row,
    run_generation,
)
from hardneg.llm import Generator, GeneratorConfig, load_generator
from hardneg.methods import QUERY_FEATURES
from hardneg.prompts import PromptTemplate, load_prompt_for

QUERY_MAX_NEW_TOKENS = 32


# A "word" longer than this many characters per allowed word (text without whitespace: CJK, blobs) is cut
# too, so ``max_passage_words`` bounds the characters as well; the token bound is ``hardneg.llm.bounding``.
MAX_CHARS_PER_WORD = 12


def truncate_words(text: str, max_words: int | None) -> str:
    """Whitespace-normalised text cut to ``max_words`` words and ``max_words * MAX_CHARS_PER_WORD``
    characters: keeps prompts one line and bounded even for text without whitespace."""
    if not max_words:
        return " ".join(text.split())
    limit = max_words * MAX_CHARS_PER_WORD
    # Cut before splitting: a 200k-character passage is never split or joined whole.
    head = text[: limit * 4] if len(text) > limit * 4 else text
    return " ".join(head.split()[:max_words])[:limit]


def generate_queries(
    corpus: Dataset,
    generator: Generator,
    *,
    prompt: str | Path = "query_fewshot",
    cache_dir: str | Path,
    seed: int = 42,
    max_retries: int = 2,
    retry_temperature: float = 0.8,
    max_new_tokens: int | None = None,
    max_passage_words: int | None = 128,
    hygiene: HygieneConfig | None = None,
    progress: bool = True,
) -> tuple[Dataset, dict]:
    """Write one query per passage with ``generator``.

    Args:
        corpus: Dataset(id, title, text) from ``hardneg.corpus.load_corpus``; the passage the model sees
            and the ``positive`` column are ``passage_text(title, text)``.
        generator: from ``hardneg.llm.load_generator``.
        prompt: a shipped template name (``query_fewshot`` default, ``query_zeroshot``) or a YAML file.
        cache_dir: resumable generation cache (``<run>/cache``); a rerun reuses every cached completion.
        seed: base seed (per-item seeds derive from it and the input, so they do not depend on order).
        max_retries: extra attempts (sampled, new seed) for an item whose output is rejected.
        retry_temperature: sampling temperature of retries when the generator is greedy.
        max_new_tokens: token budget per query (default: the generator's, else 32).
        max_passage_words: passages are cut to this many words inside the prompt (None = whole passage).
        hygiene: reject rules (default ``HygieneConfig()``).

    Returns:
        (queries, stats): Dataset(query_id, query, positive_id, positive, + provenance columns) in corpus
        order without the items whose every attempt was rejected, and the stats dict of docs/design.md.
    """
    _check_corpus(corpus)
    template = _query_template(prompt)
    max_new = max_new_tokens or generator.config.max_new_tokens or QUERY_MAX_NEW_TOKENS

    def block(start: int, end: int, later: bool) -> tuple[Dataset, dict]:
        part = corpus.select(range(start, end)) if end - start < len(corpus) else corpus
        items = passage_items(part, max_passage_words)
        results, stats = run_generation(
            items,
            generator=generator,
            prompt=template,
            method="queries",
            cache_dir=cache_dir,
            seed=seed,
            max_retries=max_retries,
            retry_temperature=retry_temperature,
            max_new_tokens=max_new,
            rules=hygiene or HygieneConfig(),
            source_field="passage",
            progress=progress,
            append_rejects=later,
        )
        return _query_table(items, results, generator, template), stats

    return generate_in_blocks(len(corpus), block)


def _check_corpus(corpus: Dataset) -> None:
    """The corpus has ids and texts, unique ids and no blank text (every block's rows, before the first)."""
    missing = [c for c in ("id", "text") if c not in corpus.column_names]
    if missing:
        raise ValueError(
            f"corpus lacks column(s) {missing} (has {corpus.column_names}); fix: load it with hardneg.corpus.load_corpus"
        )
    check_unique_ids(corpus, "corpus")
    check_texts(corpus, ["text"], "corpus")


def _query_template(prompt: str | Path) -> PromptTemplate:
    """The query prompt: a template of kind ``query`` over ``{passage}`` only."""
    return load_prompt_for(prompt, "query", ("passage",), "use query_fewshot or query_zeroshot")


def passage_items(part: Dataset, max_passage_words: int | None) -> list[dict]:
    """One generation item per passage: ``id``, the ``passage`` the prompt shows (cut to
    ``max_passage_words``) and the whole ``positive`` text (``passage_text(title, text)``)."""
    # ``[:]``: a whole column at once (iterating ``part["id"]`` formats one row at a time)
    titles = part["title"][:] if "title" in part.column_names else [""] * len(part)
    raw = [{"id": str(i), "text": t} for i, t in zip(part["id"][:], part["text"][:], strict=True)]
    positives = [passage_text(t, r["text"]) for t, r in zip(titles, raw, strict=True)]
    return [
        {"id": r["id"], "passage": truncate_words(p, max_passage_words), "positive": p}
        for r, p in zip(raw, positives, strict=True)
    ]


def _query_table(
    items: list[dict], results: list[dict | None], generator: Generator, template: PromptTemplate
) -> Dataset:
    """The accepted queries of one block in corpus order, with their provenance columns."""
    rows = [
        {
            "query_id": f"q-{it['id']}",
            "query": res["text"],
            "positive_id": it["id"],
            "positive": it["positive"],
            **provenance_row(generator, template, res),
        }
        for it, res in zip(items, results, strict=True)
        if res is not None
    ]
    return Dataset.from_dict({c: [r[c] for r in rows] for c in QUERY_FEATURES}, features=QUERY_FEATURES)


@dataclass
class QueriesConfig:
    """``python -m hardneg.queries``: generate queries for a corpus into a resumable output folder."""

    OUTPUT_KIND: ClassVar[str] = "queries"  # hardneg.config.check_outputs
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("corpus",)

    corpus: str = field(
        default="embedded:cranfield",
        metadata={"help": "Corpus: embedded:cranfield, BEIR folder, jsonl/parquet, Hub id."},
    )
    output_dir: str = field(
        default="runs/queries", metadata={"help": "Writes queries.parquet, stats.json and cache/."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N passages."})
    prompt: str = field(default="query_fewshot", metadata={"help": "Template name or YAML file."})
    reject_retries: int = field(
        default=2, metadata={"help": "Extra attempts (new seed) for rejected outputs."}
    )
    text_column: str = field(default="text", metadata={"help": "Passage text column of the corpus."})


def main(cfg: QueriesConfig, gen_cfg: GeneratorConfig) -> None:
    from hardneg.corpus import load_corpus

    corpus = load_corpus(cfg.corpus, text_column=cfg.text_column)
    if cfg.limit:
        corpus = corpus.select(range(min(cfg.limit, len(corpus))))
    out = Path(cfg.output_dir)
    queries, stats = generate_queries(
        corpus,
        load_generator(gen_cfg),
        prompt=cfg.prompt,
        cache_dir=out / "cache",
        seed=gen_cfg.seed,
        max_retries=cfg.reject_retries,
    )
    queries.to_parquet(str(out / "queries.parquet"))
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False))
    print(f"{len(queries)} queries -> {out / 'queries.parquet'}; rejects {stats['rejects']}")


if __name__ == "__main__":
    from hardneg.config import run_main

    run_main(main, QueriesConfig, GeneratorConfig)
