"""False-negative repair: an LLM judge labels suspected false negatives, which are dropped or relabelled.

RLHN (arXiv 2505.16967) finds that hard-negative tables hold passages that do answer the query, and that
relabelling them as positives helps more than dropping them. Here, for any triplet config (mined or
generated):

1. suspects: rows whose negative the build's false-negative scorer rates at or above the positive
   (``scope="suspected"``), or every row (``scope="all"``);
2. an LLM judge (any ``hardneg.llm`` backend; offline the embedded LM) answers the versioned prompt
   ``fn_judge`` (Yes = the passage answers the query) for each suspect; outputs go through the same
   generation cache as every LLM method, so an interrupted repair resumes;
3. ``mode="drop"``: judged false negatives leave the table; ``mode="relabel"``: the passage becomes an
   extra positive of its query, paired with one of the query's kept negatives (a new row, in the judged
   row's place, so a table's order does not depend on how a sharded build split it); when the
   query has no other negative (one negative per query) the pair cannot form a triplet and is counted
   as ``relabelled_without_negative``. A suspect the judge leaves undecided is kept.

Every decision is counted in the stats (``build_stats["configs"][name]["repair"]``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from datasets import Dataset

from hardneg.generation import HygieneConfig, run_generation
from hardneg.llm import Generator
from hardneg.prompts import load_prompt, load_prompt_for

REPAIR_MODES = ("none", "drop", "relabel")
REPAIR_SCOPES = ("suspected", "all")
JUDGE_PROMPT = "fn_judge"


def parse_label(text: str) -> bool | None:
    """True = the passage answers the query (a false negative), False = it does not, None = unclear."""
    first = (text or "").strip().lower().lstrip("*\"' ").split(maxsplit=1)
    word = first[0].strip(".,:;!*\"'") if first else ""
    return {"yes": True, "no": False}.get(word)


def judge_passages(
    queries: list[str],
    passages: list[str],
    generator: Generator,
    *,
    prompt: str | Path = JUDGE_PROMPT,
    cache_dir: str | Path,
    seed: int = 42,
    max_new_tokens: int = 4,
    progress: bool = True,
    config: str | None = None,
) -> tuple[list[bool | None], dict[str, Any]]:
    """The judge's label for each (query, passage): True = answers the query; returns (labels, generation stats).

    ``config`` names the judged config: the judge's rejects go to ``<cache_dir>/rejects/<config>.fn_judge.jsonl``
    (one file per config; their ids are row numbers of that config's suspects, not query or passage ids)."""
    template = load_prompt_for(prompt, "judge", ("query", "passage"), f"use {JUDGE_PROMPT}")
    items = [
        {"id": str(i), "query": q, "passage": p}
        for i, (q, p) in enumerate(zip(queries, passages, strict=True))
    ]
    results, stats = run_generation(
        items,
        generator=generator,
        prompt=template,
        method=f"{config}.fn_judge" if config else "fn_judge",
        cache_dir=cache_dir,
        seed=seed,
        max_retries=0,
        max_new_tokens=max_new_tokens,
        rules=HygieneConfig(min_words=1, max_words=max(8, max_new_tokens), reject_truncated=False),
        source_field="passage",
        progress=progress,
    )
    return [parse_label(r["text"]) if r is not None else None for r in results], stats


def repair_false_negatives(
    triplets: Dataset,
    suspected: np.ndarray,
    generator: Generator,
    *,
    mode: Literal["drop", "relabel"] = "drop",
    prompt: str | Path = JUDGE_PROMPT,
    cache_dir: str | Path,
    seed: int = 42,
    max_new_tokens: int = 4,
    progress: bool = True,
    config: str | None = None,
) -> tuple[Dataset, dict[str, Any]]:
    """Judge the rows flagged in ``suspected`` and drop or relabel the false negatives; returns (table, stats)."""
    if mode not in ("drop", "relabel"):
        raise ValueError(f"unknown repair mode '{mode}'; fix: use drop or relabel")
    suspected = np.asarray(suspected, dtype=bool)
    if len(suspected) != len(triplets):
        raise ValueError(f"{len(suspected)} suspect flags for {len(triplets)} rows; fix: one flag per row")
    start = time.perf_counter()
    rows = triplets.to_list()
    todo = np.flatnonzero(suspected).tolist()
    labels, gen_stats = judge_passages(
        [rows[i]["anchor"] for i in todo],
        [rows[i]["negative"] for i in todo],
        generator,
        prompt=prompt,
        cache_dir=cache_dir,
        seed=seed,
        max_new_tokens=max_new_tokens,
        progress=progress,
        config=config,
    )
    false_negative = {i for i, label in zip(todo, labels, strict=True) if label is True}
    kept = [r for i, r in enumerate(rows) if i not in false_negative]
    counts = {
        "suspected": len(todo),
        "judged_false_negative": len(false_negative),
        "judged_true_negative": sum(label is False for label in labels),
        "undecided": sum(label is None for label in labels),
        "dropped": 0,
        "relabelled": 0,
        "relabelled_without_negative": 0,
    }
    if mode == "drop":
        counts["dropped"] = len(false_negative)
    else:
        kept = _relabel(rows, kept, false_negative, counts)
    out = Dataset.from_list(kept, features=triplets.features) if kept else triplets.select([])
    stats = {
        "mode": mode,
        **counts,
        "rows_before": len(rows),
        "rows_after": len(out),
        "judge_model": generator.info().get("model"),
        "prompt": {k: v for k, v in load_prompt(prompt).provenance().items() if k != "text"},
        "wall_seconds": round(time.perf_counter() - start, 3),
        "prompt_tokens": gen_stats["prompt_tokens"],
        "completion_tokens": gen_stats["completion_tokens"],
    }
    return out, stats


def _relabel(
    rows: list[dict], kept: list[dict], false_negative: set[int], counts: dict[str, int]
) -> list[dict]:
    """Each judged false negative becomes a positive of its query, lent a negative by another row of the same
    query (none there: the row is dropped and counted as ``relabelled_without_negative``)."""
    others: dict[str, list[dict]] = {}
    for r in kept:
        others.setdefault(r["query_id"], []).append(r)
    out = []
    for i, row in enumerate(rows):
        if i not in false_negative:
            out.append(row)
            continue
        partner = next((r for r in others.get(row["query_id"], []) if r["negative"] != row["negative"]), None)
        if partner is None:
            counts["relabelled_without_negative"] += 1
            continue
        # The judged passage is a positive of this query now; the partner row lends it a negative.
        out.append(
            {
                **partner,
                "positive": row["negative"],
                "positive_id": row["negative_id"],
                "positive_score": None,
            }
        )
        counts["relabelled"] += 1
    return out
