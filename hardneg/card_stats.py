"""What a dataset card shows about each config: its statistics (a ``hardneg.records.ConfigStats``) as table
cells, the false-negative estimate with what it means, the prompts it used, and the small statistics that
have no place of their own ("other statistics").

Every statistic is optional: a view renders whatever the record holds and never fails on a missing value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hardneg.id_layout import CORPUS_CONFIG, layout_description
from hardneg.methods import QUERIES_CONFIG, config_description
from hardneg.records import ConfigStats


def fmt(value: Any, digits: int = 4) -> str:
    """A stat for a table cell: numbers rounded, missing values as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value == int(value) and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return str(value)


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def config_view(
    name: str, stats: ConfigStats, splits: dict[str, int], prompts: dict[str, dict], layout: str = "text"
) -> dict[str, Any]:
    """Everything the template shows about one config, with missing values made explicit; ``layout``: the
    build's (``hardneg.id_layout``), whose id configs have their own description."""
    score_stats = {
        side: {k: fmt(v) for k, v in as_dict(values).items()}
        for side, values in as_dict(stats.get("score_stats")).items()
    }
    rows = stats.rows
    if rows is None and splits:
        rows = sum(splits.values())
    fn = _false_negative_view(stats)
    repair = as_dict(stats.repair)
    paired = as_dict(stats.paired)
    return {
        "name": name,
        "is_triplet": name not in (QUERIES_CONFIG, CORPUS_CONFIG),
        "description": layout_description(name, layout) or config_description(name),
        "splits": splits,
        "rows": fmt(rows),
        "rejects": {k: fmt(v) for k, v in as_dict(stats.get("rejects")).items()},
        "skipped": {k: fmt(v) for k, v in as_dict(stats.get("skipped")).items()},
        "short": fmt(stats.get("queries_short_of_negatives")),
        "candidates": fmt(stats.get("candidates_considered")),
        "fn_rate": fn["cell"],
        "fn_note": fn["note"],
        "score_name": stats.get("score_name"),
        "score_stats": score_stats,
        "params": {
            k: json.dumps(v) if not isinstance(v, str) else v for k, v in as_dict(stats.get("params")).items()
        },
        "prompt_tokens": fmt(stats.prompt_tokens),
        "completion_tokens": fmt(stats.completion_tokens),
        "wall_seconds": fmt(stats.wall_seconds, 5),
        "items_per_second": fmt(stats.items_per_second, 4),
        "prompts": (
            list(prompt_views({name: stats.get("prompt")}).values())
            if isinstance(stats.get("prompt"), dict)
            else [p for key, p in prompts.items() if _prompt_used_by(key, name)]
        ),
        "fn_scorer": stats.false_negative_scorer,
        "repair": {k: fmt(repair.get(k)) for k in _REPAIR_COUNTS} if repair else {},
        "repair_judge": repair.get("judge_model"),
        "paired": ({k: fmt(paired.get(k)) for k in ("dropped_rows", "dropped_queries")} if paired else {}),
        "other": _other_stats(stats),
    }


# What the false-negative repair records per decision (hardneg.negatives.repair), in the card's order.
_REPAIR_COUNTS = (
    "mode",
    "suspected",
    "judged_false_negative",
    "judged_true_negative",
    "undecided",
    "dropped",
    "relabelled",
    "relabelled_without_negative",
    "rows_before",
    "rows_after",
)


def _pct(x: Any) -> str | None:
    return f"{x:.1%}" if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _false_negative_view(stats: ConfigStats) -> dict[str, str]:
    """The suspected false-negative rate as the card shows it.

    A method whose own guard used the same scorer (``ce_hn`` with the default scorer) is 0% by construction:
    that is not a measurement, so it is shown as such; an independent judge's figure
    (``independent_false_negative_rate``, a different scorer) is shown instead when the build has one.
    """
    rate, scorer = _pct(stats.suspected_false_negative_rate), stats.false_negative_scorer
    independent = _pct(stats.independent_false_negative_rate)
    judge = stats.independent_false_negative_scorer
    same = bool(stats.false_negative_same_as_guard)  # older builds: ConfigStats.from_file_dict decides it
    if independent is not None:
        note = f"The suspected false-negative rate is {independent}, judged by `{judge}`, a scorer independent of"
        note += (
            f" this method's guard (`{scorer}`, {rate} by construction)."
            if same
            else f" the build's `{scorer}`."
        )
        return {"cell": f"{independent} (independent judge `{judge}`)", "note": note}
    if same:
        return {
            "cell": "not measured (same scorer as its guard: 0% by construction)",
            "note": f"No false-negative estimate: the method kept only negatives that `{scorer}` scores below the "
            "positive, so that scorer finds none by construction. Configure an independent judge "
            "(`false_negative_judge`, a different scorer) to measure it.",
        }
    if rate is None:
        return {"cell": "—", "note": ""}
    return {
        "cell": rate,
        "note": f"The suspected false-negative rate ({rate}) was estimated with `{scorer}`.",
    }


# Stats shown in their own place on the card; anything else small is listed under "other statistics".
_SHOWN_STATS = {
    "rows",
    "wall_seconds",
    "items_per_second",
    "prompt_tokens",
    "completion_tokens",
    "rejects",
    "skipped",
    "candidates_considered",
    "queries_short_of_negatives",
    "score_stats",
    "suspected_false_negative_rate",
    "false_negative_same_as_guard",
    "independent_false_negative_rate",
    "independent_false_negative_scorer",
    "false_negative_detail",
    "params",
    "score_name",
    "prompt",
    "false_negative_scorer",
    "method",
    "repair",
    "paired",
}


def _other_stats(stats: ConfigStats) -> dict[str, str]:
    out = {}
    for key, value in stats.items():
        if key in _SHOWN_STATS:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        if len(text) <= 200:  # long details (per-query lists) stay in build_stats.json
            out[key] = fmt(value) if isinstance(value, (int, float)) else text
    return out


def _prompt_used_by(prompt_key: str, config: str) -> bool:
    """Prompts are keyed by config (``llm_hn``) or by stage (``query_*`` belongs to ``queries``)."""
    if config == "queries":
        return prompt_key.startswith("query")
    return prompt_key == config or prompt_key.startswith(f"{config}_") or prompt_key.startswith(f"{config}:")


def prompt_views(prompts: dict) -> dict[str, dict]:
    views = {}
    for key, prompt in as_dict(prompts).items():
        prompt = prompt if isinstance(prompt, dict) else {"text": str(prompt)}
        views[key] = {
            "key": key,
            "name": prompt.get("name", key),
            "version": prompt.get("version", "—"),
            "sha256": prompt.get("sha256", "—"),
            "text": prompt.get("text", "(prompt text not recorded)"),
        }
    return views


def all_prompts(prompts: dict[str, dict], configs: list[dict]) -> list[dict]:
    """Every prompt once: the build's prompt table plus prompts recorded only in a config's stats."""
    seen = {(p["name"], p["sha256"]) for p in prompts.values()}
    out = list(prompts.values())
    for config in configs:
        for p in config["prompts"]:
            if (p["name"], p["sha256"]) not in seen:
                seen.add((p["name"], p["sha256"]))
                out.append(p)
    return out
