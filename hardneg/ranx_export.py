"""The report's significance table in ranx's ``compare`` conventions (``significance_ranx.json``).

A reader who knows ranx (``ranx.compare(qrels, runs, metrics, stat_test=..., max_p=...)``) reads hardneg's
comparison as a ranx ``Report`` of each dataset: one ``ranx.data_structures.Report`` built from the
report's analysis and serialised by its own ``to_dict`` (``stat_test``, ``metrics``, ``model_names``, per
model ``scores``, ``comparisons`` {other model: {metric: p-value}}, ``win_tie_loss``), plus ``max_p``, the
table ranx prints (``to_table``: a letter per model, superscripts for the models it beats) and what ranx
would not know:

- ``stat_test``: ranx's name where hardneg ran the same test (``t-test`` -> ``student``: two-sided paired
  Student's t test over queries; ``randomization`` -> ``fisher``: Fisher's randomization test), else
  hardneg's own (``welch``, ``bootstrap``: ranx has no test over seeds and queries);
- ``max_p`` = the report's ``alpha`` (ranx's default is 0.01, hardneg's 0.05);
- ``p_adjustment``: ``holm`` (default, hardneg's verdicts: the p-values are Holm-adjusted within each
  (dataset, metric)) or ``none`` (``--ranx_p_adjustment none``: the raw p-values, as ranx reports them);
- metric names as ranx spells them (``p@10`` -> ``precision@10``);
- scores: means over training seeds; win/tie/loss: per query on seed-averaged scores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hardneg.files import write_atomic

RANX_TESTS = {"t-test": "student", "randomization": "fisher"}
RANX_METRICS = {"p": "precision"}
P_ADJUSTMENTS = ("holm", "none")
RANX_FILE = "significance_ranx.json"


def ranx_metric(metric: str) -> str:
    """hardneg's metric name in ranx's spelling: ``p@10`` -> ``precision@10``."""
    name, sep, k = metric.partition("@")
    return f"{RANX_METRICS.get(name, name)}{sep}{k}"


def ranx_report(analysis, score_arrays: dict[str, np.ndarray], *, test: str, alpha: float, p_adjustment: str):
    """A ``ranx`` ``Report`` of one dataset's analysis (``hardneg.report.DatasetAnalysis``);
    ``score_arrays``: label -> (seeds, queries, metrics) scores on the analysis' common queries."""
    from ranx.data_structures import FrozensetDict, Report

    labels = [s.label for s in analysis.systems]
    metrics = [ranx_metric(m) for m in analysis.metrics]
    results = {
        label: {rm: float(score_arrays[label][:, :, j].mean()) for j, rm in enumerate(metrics)}
        for label in labels
    }
    key = "p_holm" if p_adjustment == "holm" else "p"
    tested = {(frozenset((t["a"], t["b"])), ranx_metric(t["metric"])): t[key] for t in analysis.pairs}
    comparisons = FrozensetDict()
    for n, a in enumerate(labels):
        for b in labels[n + 1 :]:  # a pair the report did not test (--compare same_model): no p-value
            p = {rm: tested.get((frozenset((a, b)), rm)) for rm in metrics}
            comparisons[frozenset((a, b))] = {
                rm: {"p_value": None if v is None else float(v), "significant": v is not None and v < alpha}
                for rm, v in p.items()
            }
    averaged = {label: score_arrays[label].mean(axis=0) for label in labels}  # (queries, metrics)
    win_tie_loss = {
        (a, b): {
            rm: {
                "W": int((averaged[a][:, j] > averaged[b][:, j]).sum()),
                "T": int((averaged[a][:, j] == averaged[b][:, j]).sum()),
                "L": int((averaged[a][:, j] < averaged[b][:, j]).sum()),
            }
            for j, rm in enumerate(metrics)
        }
        for a in labels
        for b in labels
        if a != b
    }
    return Report(
        model_names=labels,
        results=results,
        comparisons=comparisons,
        metrics=metrics,
        max_p=alpha,
        win_tie_loss=win_tie_loss,
        rounding_digits=4,
        stat_test=RANX_TESTS.get(test, test),
    )


def ranx_export(
    analyses,
    score_arrays: dict[str, dict[str, np.ndarray]],
    *,
    test: str,
    alpha: float,
    p_adjustment: str = "holm",
) -> dict[str, Any]:
    """``{dataset: ranx Report.to_dict() + max_p, p_adjustment, table}`` for every analysed dataset."""
    out = {}
    for an in analyses:
        report = ranx_report(an, score_arrays[an.dataset], test=test, alpha=alpha, p_adjustment=p_adjustment)
        out[an.dataset] = {
            **report.to_dict(),
            "max_p": alpha,
            "p_adjustment": p_adjustment,
            "hardneg_test": test,
            "table": report.to_table(),
        }
    return out


def write_ranx_export(path: str | Path, export: dict[str, Any]) -> Path:
    return write_atomic(path, json.dumps(export, indent=1) + "\n")
