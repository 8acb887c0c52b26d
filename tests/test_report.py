"""Report: table rows, significance verdicts (real vs noise), Markdown/CSV/JSON/PNG files, model-index."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from hardneg.metrics import read_run_file
from hardneg.records import EvalResult
from hardneg.report import ReportConfig, load_results, render_report

# the module (hardneg.report exports its function ``markdown`` under the same name)
markdown_module = importlib.import_module("hardneg.report.markdown")
METRICS = ("ndcg@10", "p@10", "recall@100", "map@100", "mrr@10")


def _write(
    run: Path, model: str, method: str, scores: np.ndarray, dataset: str = "cranfield", path: str = ""
) -> None:
    per_query = {
        f"q{i}": {m: float(min(1.0, s * (1 + j / 10))) for j, m in enumerate(METRICS)}
        for i, s in enumerate(scores)
    }
    metrics = {m: float(np.mean([v[m] for v in per_query.values()])) for m in METRICS}
    result = {
        "model": model,
        "method": method,
        "model_path": path or model,
        "dataset": dataset,
        "split": "test",
        "metrics": metrics,
        "per_query": per_query,
        "counts": {
            "queries_evaluated": len(scores),
            "queries_without_judgements": 2,
            "queries_without_relevant": 0,
        },
    }
    (run / "results").mkdir(parents=True, exist_ok=True)
    (run / "results" / f"{model}.{method}__{dataset}.json").write_text(json.dumps(result))


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.8, size=120)
    _write(tmp_path, "all-MiniLM-L6-v2", "zero-shot", base)
    _write(tmp_path, "all-MiniLM-L6-v2", "llm_hn", np.clip(base + 0.15 + rng.normal(0, 0.05, 120), 0, 1))
    noise = base + rng.normal(0, 0.05, 120)
    _write(tmp_path, "all-MiniLM-L6-v2", "bm25_hn", np.clip(noise - noise.mean() + base.mean(), 0, 1))
    _write(tmp_path, "BM25", "bm25", np.clip(base - 0.2, 0, 1))
    _write(tmp_path, "BM25", "bm25", rng.uniform(0, 1, 120), dataset="scifact")
    _write(tmp_path, "all-MiniLM-L6-v2", "zero-shot", rng.uniform(0, 1, 120), dataset="scifact")
    return tmp_path


def test_report_files_rows_and_significance(run, capsys):
    paths = render_report(ReportConfig(run_dir=str(run), n_resamples=2000))
    rows = json.loads((run / "results.json").read_text())
    assert len(rows) == 6
    for r in rows:
        assert list(r)[:6] == ["model", "method", "dataset", "ndcg@10", "p@10", "recall@100"]
        assert r["seeds"] == 1 and r["ndcg@10_seed_sd"] is None
        assert r["ndcg@10_ci_low"] <= r["ndcg@10"] <= r["ndcg@10_ci_high"]
    assert {(r["model"], r["method"]) for r in rows} >= {("BM25", "bm25"), ("all-MiniLM-L6-v2", "llm_hn")}
    tests = json.loads((run / "significance.json").read_text())
    by_pair = {(t["dataset"], t["metric"], t["a_method"], t["b_method"]): t for t in tests}
    real = (
        by_pair.get(("cranfield", "ndcg@10", "llm_hn", "zero-shot"))
        or by_pair[("cranfield", "ndcg@10", "zero-shot", "llm_hn")]
    )
    assert (
        real["significant"]
        and real["p_holm"] >= real["p"]
        and real["verdict"] == ("better" if real["a_method"] == "llm_hn" else "worse")
    )
    assert real["ci_low"] <= real["diff"] <= real["ci_high"]
    noise = [
        t
        for t in tests
        if {t["a_method"], t["b_method"]} == {"bm25_hn", "zero-shot"} and t["metric"] == "ndcg@10"
    ]
    assert noise and noise[0]["verdict"] == "noise" and noise[0]["ci_low"] < 0 < noise[0]["ci_high"]
    # every pair: 4 rows on cranfield -> 6 pairs, 2 on scifact -> 1 pair; x 3 table metrics
    assert len(tests) == (6 + 1) * 3
    same = render_report(ReportConfig(run_dir=str(run), n_resamples=200, compare="same_model"))
    same_tests = json.loads(same["significance_json"].read_text())
    assert len(same_tests) == 3 * 3 and all(t["a_model"] == t["b_model"] for t in same_tests)
    render_report(ReportConfig(run_dir=str(run), n_resamples=2000))
    md = (run / "results.md").read_text()
    assert "One training seed per method" in md and "query sampling only" in md
    assert md.count("One training seed per method on this dataset") == 2  # per dataset too
    assert "| all-MiniLM-L6-v2 | llm_hn" in md and "## All datasets" in md and "Wins / ties / losses" in md
    letters = {
        line.split("|")[3].strip(): line.split("|")[1].strip()
        for line in md.split("## scifact")[0].splitlines()
        if line.startswith("| ") and line.split("|")[1].strip() in "abcd" and line.split("|")[1].strip()
    }
    llm_row = next(line for line in md.splitlines() if "| llm_hn" in line)
    assert f">{letters['bm25']}" in llm_row or "," + letters["zero-shot"] in llm_row
    assert letters["zero-shot"] in llm_row.split("|")[5]  # ndcg@10 cell: better than zero-shot
    bm25_hn_row = next(line for line in md.splitlines() if "| bm25_hn" in line)
    assert letters["zero-shot"] not in bm25_hn_row.split("|")[5].split(">")[-1]
    assert "Minimum detectable effect" in md
    assert "are noise" in md and "excluded from the averages" in md
    assert (run / "results.csv").read_text().startswith("model,method,dataset,ndcg@10,p@10,recall@100")
    for key in ("png", "scatter", "forest"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "# Retrieval results" in capsys.readouterr().out


def test_model_index_written_into_card(run):
    folder = run / "models" / "llm_hn"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "README.md").write_text(
        "---\nbase_model: sentence-transformers/all-MiniLM-L6-v2\n---\n# A model\n"
    )
    _write(run, "ft", "llm_hn", np.full(120, 0.5), path=str(folder))
    render_report(ReportConfig(run_dir=str(run), n_resamples=200, model_index=True))
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / "README.md")
    got = {(e.dataset_name, e.metric_name): e.metric_value for e in card.data.eval_results}
    assert got[("cranfield", "ndcg@10")] == pytest.approx(0.5)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and "# A model" in card.text


def test_report_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no result files"):
        load_results(tmp_path)
    with pytest.raises(ValueError, match="scatter needs exactly two methods"):
        ReportConfig(scatter=["llm_hn"])
    with pytest.raises(ValueError, match="unknown test"):
        ReportConfig(test="wilcoxon")
    with pytest.raises(ValueError, match="power must be in"):
        ReportConfig(power=1.5)


# ---------------------------------------------------------------------------------------------------------
# several training seeds: planted differences are found, seed luck is not mistaken for a method effect


def _write_seeds(run: Path, method: str, matrix: np.ndarray, dataset: str = "set") -> None:
    """One result file per seed row of ``matrix`` (seeds x queries), nDCG@10 = the score."""
    for seed, row in enumerate(matrix):
        per_query = {f"q{i}": {"ndcg@10": float(v)} for i, v in enumerate(row)}
        result = {
            "model": "m",
            "method": method,
            "seed": seed,
            "model_path": "m",
            "dataset": dataset,
            "metrics": {"ndcg@10": float(row.mean())},
            "per_query": per_query,
            "counts": {"queries_evaluated": len(row)},
        }
        (run / "results").mkdir(parents=True, exist_ok=True)
        (run / "results" / f"m.{method}.seed{seed}__{dataset}.json").write_text(json.dumps(result))


def _seeded(base: np.ndarray, shifts: list[float], rng, noise: float = 0.05) -> np.ndarray:
    """Seed s scores base + shifts[s] + per-query noise: shifts are the luck of the training seed."""
    return np.stack([base + s + rng.normal(0, noise, len(base)) for s in shifts])


def test_planted_difference_is_better_and_seed_luck_is_noise(tmp_path):
    rng = np.random.default_rng(7)
    base = rng.uniform(0.2, 0.7, 300)
    # identical methods whose seeds happened to be lucky (a) and unlucky (b): 0.027 apart on average
    _write_seeds(tmp_path, "lucky", _seeded(base, [0.04, 0.0, 0.02], rng))
    _write_seeds(tmp_path, "unlucky", _seeded(base, [-0.02, 0.01, -0.01], rng))
    # a real improvement of 0.08, far beyond the seed-to-seed spread
    _write_seeds(tmp_path, "better", _seeded(base, [0.09, 0.07, 0.08], rng))
    render_report(ReportConfig(run_dir=str(tmp_path), metrics=["ndcg@10"], n_resamples=4000))
    tests = {frozenset((t["a"], t["b"])): t for t in json.loads((tmp_path / "significance.json").read_text())}
    luck = tests[frozenset(("lucky", "unlucky"))]
    assert luck["verdict"] == "noise" and luck["ci_low"] < 0 < luck["ci_high"], luck
    for other in ("unlucky", "lucky"):
        t = tests[frozenset(("better", other))]
        assert t["test"] == "welch" and t["verdict"] == ("better" if t["a"] == "better" else "worse"), t
    # a test over queries alone (seed-averaged scores) mistakes the seed luck for a method effect:
    # exactly the error the two-level design prevents
    render_report(
        ReportConfig(run_dir=str(tmp_path), metrics=["ndcg@10"], n_resamples=4000, test="randomization")
    )
    naive = {frozenset((t["a"], t["b"])): t for t in json.loads((tmp_path / "significance.json").read_text())}
    t = naive[frozenset(("lucky", "unlucky"))]
    assert t["verdict"] == ("better" if t["a"] == "lucky" else "worse")
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert rows["better"]["seeds"] == 3 and rows["better"]["ndcg@10_seed_sd"] > 0
    md = (tmp_path / "results.md").read_text()
    assert "Means over training seeds" in md and "One training seed" not in md
    assert (tmp_path / "results_per_seed.csv").read_text().count("\n") == 1 + 9
    # a stale single-seed result of the same method (an older run) is not silently pooled with the seeds
    stale = json.loads((tmp_path / "results" / "m.better.seed0__set.json").read_text())
    (tmp_path / "results" / "m.better__set.json").write_text(json.dumps({**stale, "seed": None}))
    with pytest.raises(ValueError, match=r"remove the stale file\(s\) \['m.better__set.json'\]"):
        render_report(ReportConfig(run_dir=str(tmp_path), metrics=["ndcg@10"], n_resamples=200))


def test_mde_shrinks_with_more_queries_and_seeds(tmp_path):
    from hardneg.metrics import variance_components

    rng = np.random.default_rng(3)

    def components(n_queries: int, n_seeds: int):
        base = rng.uniform(0.2, 0.7, n_queries)
        # the same seed luck in both designs (SD 0.02), so only the query count differs
        return variance_components(
            {
                "a": _seeded(base + rng.normal(0, 0.1, n_queries), [0.02, -0.02, 0.0][:n_seeds], rng),
                "b": _seeded(base, [0.0, 0.02, -0.02][:n_seeds], rng),
            }
        )

    small, large = components(100, 3), components(1000, 3)
    assert large.mde() < small.mde()
    assert small.mde(seeds=10) < small.mde() and small.mde(queries=400) < small.mde()
    # with 3 seeds the seed terms have 2 df each: t quantiles, not z (2.80), scale the SE
    assert small.mde() / small.standard_error() > 3.0 and small.df() < 30
    assert 0.005 < small.seed_sd < 0.05  # the planted seed SD 0.02, estimated from 2 x 3 seeds
    one_seed = variance_components({"a": np.array([[0.1, 0.5, 0.3]]), "b": np.array([[0.2, 0.4, 0.4]])})
    assert one_seed.seed_sd is None and one_seed.mde() > 0
    render_report(ReportConfig(run_dir=str(_mde_run(tmp_path, rng)), metrics=["ndcg@10"], n_resamples=500))
    mde = json.loads((tmp_path / "mde.json").read_text())
    assert mde[0]["metric"] == "ndcg@10" and mde[0]["seeds"] == 3 and mde[0]["mde"] > 0


def _mde_run(run: Path, rng) -> Path:
    base = rng.uniform(0.2, 0.7, 50)
    _write_seeds(run, "x", _seeded(base, [0.0, 0.01, -0.01], rng))
    _write_seeds(run, "y", _seeded(base, [0.02, 0.0, 0.01], rng))
    return run


def test_one_seed_method_borrows_seed_variance_and_counts_are_noted(tmp_path):
    rng = np.random.default_rng(11)
    base = rng.uniform(0.2, 0.7, 300)
    _write_seeds(tmp_path, "three", _seeded(base, [0.0, 0.03, -0.03], rng, noise=0.01))
    _write_seeds(tmp_path, "one", _seeded(base, [0.04], rng, noise=0.01))  # one lucky seed, no real effect
    render_report(ReportConfig(run_dir=str(tmp_path), metrics=["ndcg@10"], n_resamples=1000))
    (t,) = json.loads((tmp_path / "significance.json").read_text())
    assert t["verdict"] == "noise", t  # without the borrowed seed variance this is "significant"
    md = (tmp_path / "results.md").read_text()
    assert "one: 1 training seed; seed variance borrowed from the other methods" in md
    assert "Training seed counts differ between methods (one: 1, three: 3)" in md


def test_non_finite_scores_and_dropped_queries_and_metrics(tmp_path):
    rng = np.random.default_rng(5)
    base = rng.uniform(0.2, 0.7, 40)
    _write_seeds(tmp_path, "a", _seeded(base, [0.0, 0.01], rng))
    _write_seeds(tmp_path, "b", _seeded(base[:30], [0.0, 0.01], rng))  # 10 queries scored by a only
    render_report(ReportConfig(run_dir=str(tmp_path), metrics=["ndcg@10", "p@10"], n_resamples=200))
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert rows["a"]["queries_dropped"] == 10 and rows["b"]["queries_dropped"] == 0
    md = (tmp_path / "results.md").read_text()
    assert "10 queries scored by only some methods are left out (paired design; per method: a: 10)" in md
    assert "**Metrics left out** (missing from some result files): p@10 (missing from 4 of 4 files)" in md
    f = tmp_path / "results" / "m.b.seed1__set.json"
    r = json.loads(f.read_text())
    r["per_query"]["q3"]["ndcg@10"] = float("nan")
    f.write_text(json.dumps(r))
    with pytest.raises(
        ValueError, match=r"m.b.seed1__set.json: non-finite per-query ndcg@10 for q3.*fix: re-eval"
    ):
        render_report(ReportConfig(run_dir=str(tmp_path), metrics=["ndcg@10"], n_resamples=200))


def test_unknown_reference_and_corrupt_run_file_are_one_line(tmp_path):
    rng = np.random.default_rng(0)
    _write_seeds(tmp_path, "llm_hn", rng.uniform(0, 1, (2, 20)))
    _write_seeds(tmp_path, "bm25_hn", rng.uniform(0, 1, (2, 20)))
    with pytest.raises(
        ValueError, match="reference 'bm25-hn' is not a method in the results; fix: use one of"
    ):
        render_report(ReportConfig(run_dir=str(tmp_path), reference="bm25-hn", n_resamples=1000))
    render_report(
        ReportConfig(run_dir=str(tmp_path), n_resamples=1000)
    )  # the default reference may be absent
    bad = tmp_path / "x.trec.gz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="x.trec.gz is not a readable TREC run file"):
        read_run_file(bad)
    text = tmp_path / "y.trec"
    text.write_text("q1 Q0 d1 1 high run\n")
    with pytest.raises(ValueError, match="y.trec line 1: score 'high' is not a number"):
        read_run_file(text)


def test_training_budgets_read_each_summary_once_and_none_without_a_model_path(tmp_path, monkeypatch):
    model = tmp_path / "models" / "llm_hn"
    model.mkdir(parents=True)
    (model / "training_summary.json").write_text(json.dumps({"global_step": 5}))
    (tmp_path / "training_summary.json").write_text(json.dumps({"global_step": 7}))  # in the current folder
    monkeypatch.chdir(tmp_path)
    reads: list[Path] = []
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda p, *a, **k: reads.append(p.absolute()) or real(p, *a, **k))
    results = [
        EvalResult(model="m", method="llm_hn", model_path=str(model), dataset=d) for d in ("a", "b", "c")
    ]
    results += [EvalResult(model="m", method=m, model_path=None, dataset="a") for m in ("zero-shot", "x")]
    assert markdown_module.training_budgets(results) == {"llm_hn": {5}}  # not 7: no ./training_summary.json
    assert reads == [model / "training_summary.json"]  # once for the three datasets
