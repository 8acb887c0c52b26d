"""The report's significance table in ranx's ``compare`` conventions: ranx's own Report type, test names,
``max_p``; with ``t-test`` and raw p-values it equals what ranx's paired Student's t test gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ranx.statistical_tests import paired_student_t_test
from test_report import METRICS, run  # noqa: F401 (fixture)

from hardneg.report import ReportConfig, render_report


def _per_query(run_dir, dataset: str, method: str, metric: str) -> np.ndarray:
    (path,) = [p for p in (run_dir / "results").glob(f"*.{method}__{dataset}.json")]
    per_query = json.loads(path.read_text())["per_query"]
    return np.array([per_query[q][metric] for q in sorted(per_query)])


def test_raw_t_test_equals_ranx_student(run):  # noqa: F811
    paths = render_report(
        ReportConfig(
            run_dir=str(run), n_resamples=200, test="t-test", ranx=True, ranx_p_adjustment="none", alpha=0.01
        )
    )
    export = json.loads(paths["ranx"].read_text())
    cran = export["cranfield"]
    assert cran["stat_test"] == "student" and cran["max_p"] == 0.01 and cran["p_adjustment"] == "none"
    assert cran["metrics"] == ["ndcg@10", "precision@10", "recall@100"][: len(cran["metrics"])]
    labels = cran["model_names"]
    assert len(labels) == 4
    for a in labels:
        for b in labels:
            if a == b:
                continue
            for hm, rm in zip(METRICS, cran["metrics"], strict=False):
                method_a, method_b = (label.rsplit(" ", 1)[-1].strip("()") for label in (a, b))
                p, _ = paired_student_t_test(
                    _per_query(run, "cranfield", method_a, hm),
                    _per_query(run, "cranfield", method_b, hm),
                    0.01,
                )
                assert cran[a]["comparisons"][b][rm] == pytest.approx(p, rel=1e-9, abs=1e-300)
    assert cran["table"].startswith("#    Model") and any(
        c in cran["table"] for c in "ᵃᵇᶜᵈ"
    )  # ranx's superscripts


def test_holm_stays_the_default(run):  # noqa: F811
    paths = render_report(ReportConfig(run_dir=str(run), n_resamples=200, ranx=True))
    export = json.loads(paths["ranx"].read_text())["cranfield"]
    tests = [t for t in json.loads(paths["significance_json"].read_text()) if t["dataset"] == "cranfield"]
    assert export["p_adjustment"] == "holm" and export["stat_test"] == "welch" and export["max_p"] == 0.05
    for t in tests:
        metric = t["metric"].replace("p@", "precision@")
        assert export[t["a"]]["comparisons"][t["b"]][metric] == pytest.approx(t["p_holm"])
        wtl = export[t["a"]]["win_tie_loss"][t["b"]][metric]
        assert wtl["W"] + wtl["T"] + wtl["L"] == t["queries"]


def test_bad_adjustment_is_refused():
    with pytest.raises(ValueError, match="ranx_p_adjustment 'bonferroni' is not holm or none"):
        ReportConfig(ranx_p_adjustment="bonferroni")


def test_ranx_without_ranx_installed_is_one_line_before_the_report(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ranx" else real(name, *a)
    )
    with pytest.raises(ValueError, match="--ranx needs ranx, which is not installed; fix: pip install ranx"):
        ReportConfig(ranx=True)
    ReportConfig(ranx=False)  # nothing asked of ranx: nothing needed
