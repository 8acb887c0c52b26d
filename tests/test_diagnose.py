"""Diagnostics: ECI on a hand-computed example, the source probe on planted and on absent signals, the rank
correlation's honesty with few methods, cache reuse, and the whole pass on a demo-like run folder."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from test_explore import make_demo_like_run

from hardneg.beir import load_eval_dataset
from hardneg.dataset_folder import save_dataset_folder
from hardneg.diagnose import NO_LLM_NEGATIVES, Diagnostics, diagnostics_path
from hardneg.diagnose.against import against_results, smallest_p
from hardneg.diagnose.embed import EncodeCost, embed_texts
from hardneg.diagnose.measures import eci, eci_sem, hardness
from hardneg.diagnose.probe import auc_interval, source_probe
from hardneg.diagnose.run import DiagnoseConfig, diagnose, triplet_configs
from hardneg.encode import cache_key, encode_corpus, fingerprint_model, fingerprint_texts
from hardneg.explore import build_payload
from hardneg.records import EvalResult
from hardneg.report import ReportConfig, render_report

ROOT = Path(__file__).resolve().parents[1]


def test_eci_on_a_hand_computed_example():
    # query a: positive 0.8, negatives 0.5 and 0.7; query b: positive 0.6, negative 0.65 (unsafe)
    s_pos = np.array([0.8, 0.8, 0.6])
    s_neg = np.array([0.5, 0.7, 0.65])
    out = eci(s_pos, s_neg, ["a", "a", "b"], margin=0.1)
    # K = (2 + 1) / 2 = 1.5 negatives per query -> capacity log(2.5)
    assert out["capacity"] == pytest.approx(math.log(2.5), abs=1e-4)
    # hardness: mean(0.5, 0.7, 0.65) = 0.616667
    assert out["hardness"] == pytest.approx(0.616667, abs=1e-4)
    # safety: a wins by 0.8 - 0.7 = 0.1 = margin -> 1; b loses -> 0; mean 0.5
    assert out["safety"] == pytest.approx(0.5)
    # efficiency 2 H S / (H + S) = 0.616667 / 1.116667 = 0.552239; ECI = 0.916291 * 0.552239 = 0.506010
    assert out["efficiency"] == pytest.approx(0.552239, abs=1e-4)
    assert out["eci"] == pytest.approx(0.506010, abs=1e-4)
    # a wider margin makes query a only half safe: S = 0.25
    assert eci(s_pos, s_neg, ["a", "a", "b"], margin=0.2)["safety"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="margin"):
        eci(s_pos, s_neg, ["a", "a", "b"], margin=0)


def test_eci_sem_logdet_is_the_same_on_either_side():
    rng = np.random.default_rng(0)
    q, p, n = (rng.normal(size=(6, 4)) for _ in range(3))
    texts = [f"word{i} shared" for i in range(6)]
    others = [f"other{i} shared" for i in range(6)]  # Jaccard 1/3 with the positive: residuality 2/3
    small = eci_sem(q, p, n, texts, others, sample=6)  # 6 rows > 4 dims: the d x d side
    big = eci_sem(
        np.pad(q, ((0, 0), (0, 6))),
        np.pad(p, ((0, 0), (0, 6))),
        np.pad(n, ((0, 0), (0, 6))),
        texts,
        others,
        sample=6,
    )  # 10 dims > 6 rows: the m x m side, same residuals
    assert small["eci_sem"] == pytest.approx(big["eci_sem"], abs=1e-4)
    assert small["eci_sem"] > 0 and small["residuality"] == pytest.approx(2 / 3, abs=1e-4)
    same = eci_sem(
        q, p, n, texts, texts, sample=6
    )  # negatives that only repeat the positive's words: nothing
    assert same["eci_sem"] == 0.0


def test_hardness_share_and_interval():
    h = hardness(np.array([-0.3, -0.1, 0.0, 0.2]), n_resamples=500)
    assert h["at_or_above"] == 0.5
    lo, hi = h["at_or_above_ci"]
    assert 0 <= lo <= 0.5 <= hi <= 1


def test_delong_interval_matches_the_brute_force_definition():
    from scipy.stats import norm
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = np.r_[np.ones(30), np.zeros(45)].astype(int)
    s = np.round(rng.normal(size=75) + 0.8 * y, 1)  # rounded: ties count half
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # DeLong et al. 1988
    auc = psi.mean()
    se = np.sqrt(psi.mean(axis=1).var(ddof=1) / len(pos) + psi.mean(axis=0).var(ddof=1) / len(neg))
    z = norm.ppf(0.975)
    assert auc == pytest.approx(roc_auc_score(y, s))
    assert auc_interval(y, s) == pytest.approx([auc - z * se, auc + z * se], abs=1e-4)


@pytest.fixture(scope="module")
def minilm():
    from hardneg.train import load_model

    return load_model("embedded:minilm", max_seq_length=128)


def _passages(n: int, words: int = 40) -> list[str]:
    data = load_eval_dataset("embedded:cranfield")
    texts = [" ".join(d["text"].split()[:words]) for d in data.corpus.values() if len(d["text"].split()) > 20]
    return texts[:n]


def test_probe_detects_planted_style_markers(minilm):
    texts = _passages(160)
    marked = [
        f"Certainly! Here is a passage that is not relevant: {t} I hope this helps!" for t in texts[:80]
    ]
    x = embed_texts(minilm, marked + texts[80:], show_progress=False)
    result, _ = source_probe(x, np.r_[np.ones(80), np.zeros(80)])
    assert result["auc"] > 0.95 and result["low"] > 0.9


def test_probe_gives_chance_on_relabelled_corpus_passages(minilm):
    texts = _passages(240)
    rng = random.Random(0)
    labels = np.array([1] * 120 + [0] * 120)
    rng.shuffle(texts)  # "LLM output" is a random half of the corpus: nothing to detect
    x = embed_texts(minilm, texts, show_progress=False)
    result, _ = source_probe(x, labels)
    assert abs(result["auc"] - 0.5) < 0.12
    assert result["low"] < 0.5 < result["high"]


def test_embeddings_come_from_evaluations_cache(minilm, tmp_path):
    texts = _passages(40)
    key = cache_key(
        fingerprint_model(minilm), fingerprint_texts([str(i) for i in range(40)], texts), "", "float32"
    )
    direct = encode_corpus(
        minilm, texts, cache_dir=tmp_path / "embeddings", cache_key=key, show_progress=False
    )
    cost = EncodeCost()
    wanted = [texts[5], texts[0], "a text nobody encoded yet"]
    got = embed_texts(minilm, wanted, cache_root=tmp_path, cost=cost, show_progress=False)
    assert cost.from_evaluation_cache == 2 and cost.encoded == 1
    norm = direct[[5, 0]] / np.linalg.norm(direct[[5, 0]], axis=1, keepdims=True)
    np.testing.assert_allclose(got[:2], norm, atol=1e-6)
    again = EncodeCost()
    embed_texts(minilm, wanted, cache_root=tmp_path, cost=again, show_progress=False)
    assert again.encoded == 0  # the new text was cached under diagnose's own key


def test_too_few_methods_cannot_support_a_claim():
    table = [
        {"config": m, "eci": v, "at_or_above": 0.1} for m, v in zip("abcd", (0.1, 0.2, 0.3, 0.4), strict=True)
    ]
    results = [
        EvalResult(dataset="d", method=m, seed=s, metrics={"ndcg@10": 0.1 * i + 0.01 * s})
        for i, m in enumerate("abcd")
        for s in range(3)
    ]
    [block] = against_results(table, results, n_resamples=200)
    assert block["methods"] == 4 and block["seeds"] == 3
    assert "cannot support a claim" in block["statement"]
    [row] = [c for c in block["correlations"] if c["diagnostic"] == "eci"]
    assert row["rho"] == 1.0 and row["p"] == pytest.approx(2 / 24, abs=1e-4)
    assert smallest_p(4) > 0.05 > smallest_p(5)
    [flat] = [c for c in block["correlations"] if c["diagnostic"] == "at_or_above"]
    assert flat["rho"] is None and flat["p"] is None  # the same for every method: no rank correlation


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory):
    folder, run = make_demo_like_run(tmp_path_factory.mktemp("diagnose"), n_queries=24)
    config = DiagnoseConfig(
        dataset=str(folder),
        run_dir=str(run),
        train_recipe="",
        target_encoder="embedded:minilm",
        max_seq_length=128,
        n_resamples=200,
        probe_folds=3,
    )
    return folder, run, config, diagnose(config)


def test_diagnose_writes_the_record_plots_and_card(diagnosed):
    folder, run, _, diag = diagnosed
    again = Diagnostics.from_disk(diagnostics_path(run))
    assert again == diag
    assert set(diag.configs) == {"llm_hn", "bm25_hn"}
    llm, bm25 = diag.configs["llm_hn"], diag.configs["bm25_hn"]
    assert llm.llm_rows == llm.rows and bm25.llm_rows == 0
    # the build's saved false-negative scores, not recomputed: rows 0 and 2 of llm_hn score 1.5 >= 1.0
    assert llm.fn_scorer["at_or_above"] == pytest.approx(2 / llm.rows, abs=1e-4)
    assert bm25.fn_scorer["at_or_above"] == 0.0
    assert 0 <= llm.probe["auc"] <= 1 and llm.probe["low"] <= llm.probe["auc"] <= llm.probe["high"]
    assert bm25.probe["note"].startswith(NO_LLM_NEGATIVES)
    assert len(llm.per_row["margin"]) == llm.sampled and len(llm.per_row["probe"]) == llm.sampled
    assert llm.eci["eci"] is not None and llm.eci_sem["eci_sem"] is not None
    assert diag.against_results and "too few" in diag.against_results[0]["statement"]
    assert (run / "diagnostics.png").is_file() and (run / "diagnostics_vs_results.png").is_file()
    card = (folder / "README.md").read_text()
    assert "## Diagnostics (before training)" in card and "`llm_hn`" in card
    assert Diagnostics.from_disk(folder / "diagnostics.json").configs["llm_hn"].per_row == {}


def test_rerun_encodes_nothing(diagnosed):
    _, _, config, _ = diagnosed
    assert diagnose(config).cost["encoded"] == 0


def test_no_llm_config_still_runs(diagnosed):
    _, run, config, _ = diagnosed
    diag = diagnose(replace(config, configs=["bm25_hn"], run_dir=str(run / "only_bm25")))
    assert diag.probe_note == NO_LLM_NEGATIVES
    assert diag.configs["bm25_hn"].hardness["at_or_above"] is not None
    assert NO_LLM_NEGATIVES in diag.markdown()


def test_config_without_negative_is_one_clear_error():
    configs = {
        "queries": {"query": []},
        "pairs": {"anchor": [], "positive": []},
        "llm_hn": {"anchor": [], "positive": [], "negative": []},
    }
    with pytest.raises(
        ValueError, match="config 'pairs' has no negative column.*fix: leave it out with --configs llm_hn"
    ):
        triplet_configs(configs, [])


def test_unloadable_target_encoder_is_one_line(diagnosed, tmp_path):
    folder, _, _, _ = diagnosed
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluation" / "diagnose.py"),
            "--dataset",
            str(folder),
            "--run_dir",
            str(tmp_path),
            "--train_recipe",
            "",
            "--target_encoder",
            str(tmp_path / "no-such-model"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot load model" in lines[0] and "fix:" in lines[0]
    assert "Traceback" not in proc.stderr


def test_diagnostics_json_is_plain_json(diagnosed):
    _, run, _, _ = diagnosed
    data = json.loads(diagnostics_path(run).read_text())
    assert data["format"] == 1 and data["target_encoder"] == "embedded:minilm"


def test_explorer_shows_each_negatives_hardness_and_probe(diagnosed):
    folder, run, _, diag = diagnosed
    payload = build_payload(str(folder), run_dir=run)
    llm = payload["methods"]["llm_hn"]
    assert len(llm["hard"]) == len(llm["q"]) and None not in llm["hard"]
    assert llm["hard"] == diag.configs["llm_hn"].per_row["margin"]  # every row diagnosed, same order
    assert len(llm["probe"]) == len(llm["q"]) and llm["probe_auc"] == diag.configs["llm_hn"].probe["auc"]
    assert payload["meta"]["diag_encoder"] == "embedded:minilm"


def test_report_has_the_diagnostics_section(diagnosed):
    _, run, _, _ = diagnosed
    render_report(ReportConfig(run_dir=str(run), n_resamples=200))
    md = (run / "results.md").read_text()
    assert "## Diagnostics (before training)" in md and "![diagnostics.png](diagnostics.png)" in md
    assert "too few for any rank correlation" in md


def test_a_new_build_drops_stale_diagnostics(tmp_path):
    rows = {"anchor": ["q"], "positive": ["p"], "negative": ["n"], "query_id": ["1"]}
    configs = {
        "queries": Dataset.from_dict({"query": ["q"], "positive": ["p"]}),
        "bm25_hn": Dataset.from_dict(rows),
    }
    folder = save_dataset_folder(tmp_path / "dataset", configs, {"configs": {}})
    (folder / "diagnostics.json").write_text("{}")
    save_dataset_folder(folder, configs, {"configs": {}})
    assert not (folder / "diagnostics.json").exists()


def test_embeddings_come_from_the_builds_pool_cache(tmp_path):
    from hardneg.negatives.dense import encode_pool, load_embedder
    from hardneg.train import load_model

    texts = _passages(12)
    pool = encode_pool(
        texts,
        load_embedder("embedded:minilm"),
        cache_folder=tmp_path / "pool_embeddings",
        model_id="embedded:minilm",
        show_progress=False,
    )
    model = load_model("embedded:minilm", max_seq_length=load_embedder("embedded:minilm").max_seq_length)
    cost = EncodeCost()
    got = embed_texts(
        model, texts[3:6], cache_root=tmp_path, model_id="embedded:minilm", cost=cost, show_progress=False
    )
    assert cost.from_pool_cache == 3 and cost.encoded == 0
    np.testing.assert_allclose(got, pool[3:6], atol=1e-5)
    other = EncodeCost()  # another maximum length: other embeddings, never reused
    embed_texts(
        load_model("embedded:minilm", max_seq_length=64),
        texts[3:6],
        cache_root=tmp_path,
        model_id="embedded:minilm",
        cost=other,
        show_progress=False,
    )
    assert other.from_pool_cache == 0 and other.encoded == 3


def test_id_layout_configs_are_left_out_by_default():
    """A `layout: both` build also holds `corpus` and id configs (no texts): the default diagnoses the rest."""
    configs = {
        "queries": {"query_id": [], "query": []},
        "corpus": {"id": [], "text": []},
        "llm_hn": {"anchor": [], "positive": [], "negative": []},
        "llm_hn_ids": {"query_id": [], "positive_id": [], "negative_id": []},
    }
    assert triplet_configs(configs, []) == ["llm_hn"]
    with pytest.raises(ValueError, match="config 'llm_hn_ids' has no anchor"):
        triplet_configs(configs, ["llm_hn_ids"])


@pytest.mark.parametrize(
    "option, match",
    [
        ({"dtype": "fp8"}, "unknown dtype 'fp8'"),
        ({"probe_c": 0.0}, "probe_c must be > 0"),
        ({"eci_sem_temperature": -1.0}, "eci_sem_temperature must be > 0"),
        ({"batch_size": 0}, "--batch_size 0 is below 1"),
        ({"near_duplicate_cosine": 1.5}, "--near_duplicate_cosine 1.5 is out of its range"),
        ({"metric": "ndgc@10"}, "unknown metric 'ndgc@10'"),
        ({"eci_margin": float("nan")}, "--eci_margin nan is not a finite number"),
    ],
)
def test_bad_options_are_one_clear_line_before_any_work(option, match):
    """Checked when the config is made (also from Python), before the dataset or the encoder is loaded."""
    with pytest.raises(ValueError, match=match) as err:
        DiagnoseConfig(**option)
    assert "fix:" in str(err.value) and "\n" not in str(err.value)
