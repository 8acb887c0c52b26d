"""Hybrid hard negatives: per query, negatives drawn from an LLM method and a mined method in a set ratio.

SyNeg (arXiv 2412.17250) mixes generated and retrieved negatives per instance, and hybrid sources did
best in ECI (arXiv 2603.20990). ``hybrid_hn`` reads two finished configs of the same build (by default
``llm_hn`` and ``bm25_hn``, both on the same queries) and, for each query, takes ``num_negatives``
negatives: ``hybrid_llm_ratio`` of all negatives come from the LLM config, the rest from the mined one.
The split is exact over the whole table (largest remainder, the leftover slots given to queries in a
seeded order); a query lacking negatives from one source takes them from the other (counted as
``fallback``). Each row records its ``source`` config; provenance columns are None for mined rows.

Usage (from a build recipe; the method is ``hardneg.methods.hybrid_hn``)::

    methods:
      llm_hn: {}
      bm25_hn: {}
      hybrid_hn: {hybrid_sources: [llm_hn, bm25_hn], hybrid_llm_ratio: 0.5}
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

from datasets import Dataset

from hardneg.methods import HYBRID_FEATURES, table


def llm_slots(query_ids: list[str], num_negatives: int, ratio: float, seed: int) -> dict[str, int]:
    """How many of each query's ``num_negatives`` come from the LLM source: exactly ``ratio`` overall."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"hybrid_llm_ratio must be in [0, 1], got {ratio}; fix: e.g. 0.5")
    per_query = ratio * num_negatives
    base = math.floor(per_query)
    leftover = round(per_query * len(query_ids)) - base * len(query_ids)
    order = sorted(query_ids)
    random.Random(seed).shuffle(order)
    extra = set(order[:leftover])
    return {q: base + (q in extra) for q in query_ids}


def mix_negatives(
    llm: Dataset,
    mined: Dataset,
    *,
    num_negatives: int = 1,
    llm_ratio: float = 0.5,
    seed: int = 42,
    name: str = "hybrid_hn",
    llm_source: str = "llm_hn",
    mined_source: str = "bm25_hn",
) -> tuple[Dataset, dict[str, Any]]:
    """Mix two triplet tables on the same queries; returns (triplets with a ``source`` column, stats)."""
    by_query: dict[str, dict[str, list[dict]]] = defaultdict(lambda: {"llm": [], "mined": []})
    order: list[str] = []
    for side, data in (("llm", llm), ("mined", mined)):
        for row in data:
            q = row["query_id"]
            if q not in by_query:
                order.append(q)
            by_query[q][side].append(row)
    slots = llm_slots(order, num_negatives, llm_ratio, seed)
    rows: list[dict] = []
    counts = {"llm": 0, "mined": 0, "fallback": 0, "queries_short_of_negatives": 0}
    for q in order:
        have = by_query[q]
        take_llm = min(slots[q], len(have["llm"]))
        take_mined = min(num_negatives - slots[q], len(have["mined"]))
        # One source short of negatives for this query: the other fills the gap (counted).
        gap = num_negatives - take_llm - take_mined
        more_mined = min(gap, len(have["mined"]) - take_mined)
        more_llm = min(gap - more_mined, len(have["llm"]) - take_llm)
        take_mined, take_llm = take_mined + more_mined, take_llm + more_llm
        counts["fallback"] += more_mined + more_llm
        if take_llm + take_mined < num_negatives:
            counts["queries_short_of_negatives"] += 1
        for side, n, source in (("llm", take_llm, llm_source), ("mined", take_mined, mined_source)):
            for row in have[side][:n]:
                rows.append({**row, "method": name, "source": source})
            counts[side] += n
    total = counts["llm"] + counts["mined"]
    stats = {
        "method": name,
        "rows": len(rows),
        "queries": len(order),
        "sources": {llm_source: counts["llm"], mined_source: counts["mined"]},
        "llm_share": round(counts["llm"] / total, 4) if total else None,
        "fallback": counts["fallback"],
        "queries_short_of_negatives": counts["queries_short_of_negatives"],
        "params": {
            "hybrid_sources": [llm_source, mined_source],
            "hybrid_llm_ratio": llm_ratio,
            "num_negatives": num_negatives,
            "seed": seed,
        },
    }
    return table(rows, HYBRID_FEATURES), stats
