"""MTEB's formats: TaskResult files beside hardneg's results (loaded back by mteb), custom tasks built
offline, the ModelMeta's training datasets, and the cross-check of hardneg's metrics against
``mteb.evaluate`` on the same model and data (docs/evaluation.md, "Agreement with MTEB")."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

mteb = pytest.importorskip("mteb")  # the optional extra hardneg[mteb]; make install installs it

from test_train import cranfield_triplets, tiny_config, write_dataset_folder  # noqa: E402,F401 (fixture)

from hardneg import mteb_results  # noqa: E402
from hardneg.beir import load_eval_dataset  # noqa: E402
from hardneg.corpus import load_beir_folder  # noqa: E402
from hardneg.eval_config import EvalConfig, ModelSpec  # noqa: E402
from hardneg.evaluate import evaluate, evaluate_model_on_dataset, load_eval_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AGREE = 1e-4  # MTEB rounds its means to 5 decimals


def _subset(
    cranfield_dir: str, folder: Path, n_queries: int, n_docs: int, *, zero_grade: bool = False
) -> Path:
    """A BEIR folder: the first ``n_queries`` judged Cranfield queries, their judged documents + filler. With
    ``zero_grade`` every third query (the 1st, 4th, ...) keeps its judged documents at grade 0: judged, but
    with no relevant document (Cranfield itself has no such query)."""
    data = load_beir_folder(cranfield_dir, "test")
    qids = list(data.qrels)[:n_queries]
    zeroed = set(qids[::3]) if zero_grade else set()
    docs = list(dict.fromkeys([d for q in qids for d in data.qrels[q]] + list(data.corpus)))[:n_docs]
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps({"_id": d, **data.corpus[d]}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for q in qids:
            f.write(json.dumps({"_id": q, "text": data.queries[q]}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [
        f"{q}\t{d}\t{0 if q in zeroed else g}" for q in qids for d, g in data.qrels[q].items() if d in docs
    ]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def small_set(cranfield_dir, tmp_path_factory) -> Path:
    return _subset(cranfield_dir, tmp_path_factory.mktemp("mteb") / "cranfield_small", 12, 150)


@pytest.fixture(scope="module")
def grade0_set(cranfield_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mteb") / "cranfield_grade0"
    return _subset(cranfield_dir, folder, 12, 150, zero_grade=True)


@pytest.fixture(scope="module")
def minilm():
    model = load_eval_model(ModelSpec("zero-shot", "embedded:minilm", max_seq_length=128), "cpu")
    return model


def test_evaluation_writes_mteb_results_that_mteb_loads(tmp_path, small_set):
    config = EvalConfig(
        run_dir=str(tmp_path),
        datasets=[str(small_set)],
        models=[{"method": "bm25", "model": "bm25"}, {"method": "zero-shot", "model": "embedded:minilm"}],
        show_progress=False,
        cache_dir="",
    )
    paths = evaluate(config)
    cache = mteb.ResultCache(cache_path=tmp_path / mteb_results.MTEB_DIR)
    for path in paths:
        result = json.loads(path.read_text())
        mteb_file = tmp_path / result["mteb_result"]
        assert (
            mteb_file.parts[-5:-3] == ("mteb_results", "results")
            and mteb_file.name == "hardneg-cranfield_small.json"
        )
        assert (mteb_file.parent / "model_meta.json").is_file()
        loaded = mteb.TaskResult.from_disk(mteb_file)
        assert loaded.task_name == "hardneg-cranfield_small" and loaded.mteb_version == mteb.__version__
        scores = loaded.scores["test"][0]
        assert scores["hf_subset"] == "default" and scores["main_score"] == scores["ndcg_at_10"]
        for metric in ("ndcg@10", "recall@100", "map@100", "p@10"):
            assert scores[mteb_results.mteb_metric(metric)] == pytest.approx(
                result["metrics"][metric], abs=AGREE
            )
    # MTEB's own reader finds both models' files in its folder layout
    models = {p.parent.parent.name for p in cache.get_cache_paths(require_model_meta=True)}
    assert models == {"hardneg__BM25.bm25", "sentence-transformers__all-MiniLM-L6-v2"}


def test_unknown_mteb_task_is_one_line(tmp_path, small_set):
    cmd = [sys.executable, str(ROOT / "evaluation" / "evaluate.py"), "--run_dir", str(tmp_path)]
    cmd += [
        "--datasets",
        str(small_set),
        "--models",
        "bm25=bm25",
        "--mteb_tasks",
        "cranfield_small=NoSuchTask",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2, out.stderr
    assert (
        out.stderr.strip().splitlines()[-1].startswith("error: mteb task 'NoSuchTask' does not exist; fix:")
    )
    assert "Traceback" not in out.stderr
    with pytest.raises(ValueError, match="not DATASET=TASK"):
        EvalConfig(mteb_tasks=["SciFact"])


def test_known_beir_sets_are_mteb_tasks():
    assert mteb_results.registered_task_for("mteb/scifact").metadata.name == "SciFact"
    assert mteb_results.registered_task_for("mteb/arguana").ignore_identical_ids
    assert mteb_results.registered_task_for("local/none") is None
    names = ["scifact", "mteb/nfcorpus", "BeIR/fiqa@abc", "embedded:cranfield", "unknown-corpus"]
    assert mteb_results.training_task_names(names) == ["SciFact", "NFCorpus", "FiQA2018", "hardneg-cranfield"]


def test_model_meta_lists_training_datasets(tmp_path, minilm):
    meta = mteb_results.model_meta(
        minilm,
        name="all-MiniLM-L6-v2.llm_hn",
        revision=None,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        training_datasets=["SciFact", "org/hardneg-scifact"],
    )
    path = mteb_results.write_model_meta(tmp_path, meta)
    loaded = mteb_results.load_model_meta(path)
    assert loaded.training_datasets == {"SciFact", "org/hardneg-scifact"}
    assert loaded.is_zero_shot_on(["SciFact"]) is False and loaded.is_zero_shot_on(["NFCorpus"]) is True
    assert loaded.name == "hardneg/all-MiniLM-L6-v2.llm_hn" and loaded.embed_dim == 384


def _crosscheck(model, data, **config) -> tuple[dict, dict]:
    """hardneg's metrics and MTEB's scores for the same model and data."""
    cfg = EvalConfig(cache_dir="", show_progress=False, metrics=["ndcg@10", "recall@100"], **config)
    spec = ModelSpec("zero-shot", "embedded:minilm", max_seq_length=128)
    result, _ = evaluate_model_on_dataset(spec, data, cfg, model)
    task = mteb_results.custom_task(data, passage_format=cfg.passage_format)
    return result.metrics, mteb_results.mteb_scores(model, task)


@pytest.mark.parametrize("passage_format", ["hardneg", "mteb"])
def test_metrics_agree_with_mteb_evaluate(small_set, minilm, passage_format):
    ours, theirs = _crosscheck(minilm, load_eval_dataset(str(small_set)), passage_format=passage_format)
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg_at_10"], abs=AGREE)
    assert ours["recall@100"] == pytest.approx(theirs["recall_at_100"], abs=AGREE)


def test_queries_without_relevant_zero_is_mtebs_mean(grade0_set, minilm):
    """A folder with judged queries whose judgements are all grade 0: MTEB averages them in with score 0
    (``zero``); hardneg's default (``exclude``) leaves them out, and the two means differ by exactly
    the share of those queries."""
    data = load_eval_dataset(str(grade0_set))
    n_zero = sum(1 for docs in data.qrels.values() if max(docs.values()) < 1)
    n = len(data.qrels)
    assert (n, n_zero) == (12, 4)
    cfg = EvalConfig(cache_dir="", show_progress=False, metrics=["ndcg@10", "recall@100"])
    spec = ModelSpec("zero-shot", "embedded:minilm", max_seq_length=128)
    zero, run = evaluate_model_on_dataset(spec, data, replace(cfg, queries_without_relevant="zero"), minilm)
    excluded, _ = evaluate_model_on_dataset(spec, data, cfg, minilm)
    task = mteb_results.custom_task(data)
    theirs = mteb_results.mteb_scores(minilm, task)
    # the MTEB file hardneg writes: its run scored by MTEB's scorer, as write_evaluation does
    filed = mteb_results.task_scores(task, {q: data.qrels[q] for q in run}, run)
    print(
        f"grade0 folder ({n} queries, {n_zero} all grade 0): hardneg zero {zero.metrics} exclude "
        f"{excluded.metrics}; mteb.evaluate ndcg@10 {theirs['ndcg_at_10']} recall@100 {theirs['recall_at_100']}"
    )
    assert (
        zero.counts["queries_evaluated"] == n
        and zero.counts["queries_without_relevant_scored_zero"] == n_zero
    )
    assert (
        excluded.counts["queries_evaluated"] == n - n_zero
        and excluded.counts["queries_without_relevant"] == n_zero
    )
    for metric in ("ndcg@10", "recall@100"):
        key = mteb_results.mteb_metric(metric)
        assert zero.metrics[metric] == pytest.approx(theirs[key], abs=AGREE)
        assert filed[key] == pytest.approx(theirs[key], abs=AGREE)
        # exclude: the same queries' scores over n - n_zero instead of n
        assert excluded.metrics[metric] - theirs[key] > 0.01
        assert excluded.metrics[metric] * (n - n_zero) / n == pytest.approx(theirs[key], abs=AGREE)
    with pytest.raises(ValueError, match="queries_without_relevant 'mteb' is not exclude or zero"):
        EvalConfig(models=["bm25=bm25"], queries_without_relevant="mteb")


def test_result_file_records_the_rule_and_agrees_with_its_mteb_file_under_zero(tmp_path, grade0_set):
    def run(rule: str) -> dict:
        config = EvalConfig(
            run_dir=str(tmp_path),
            datasets=[str(grade0_set)],
            models=["bm25=bm25"],
            show_progress=False,
            queries_without_relevant=rule,
        )
        (path,) = evaluate(config)
        return json.loads(path.read_text())

    zero = run("zero")
    assert zero["queries_without_relevant"] == "zero" and zero["counts"]["zero_scored_query_ids"]
    scores = mteb.TaskResult.from_disk(tmp_path / zero["mteb_result"]).scores["test"][0]
    for metric in ("ndcg@10", "recall@100", "map@100", "p@10"):
        assert scores[mteb_results.mteb_metric(metric)] == pytest.approx(zero["metrics"][metric], abs=AGREE)
    excluded = run("exclude")  # a scoring setting: the result is computed again
    assert excluded["queries_without_relevant"] == "exclude"
    assert excluded["metrics"]["ndcg@10"] > zero["metrics"]["ndcg@10"]
    assert len(excluded["per_query"]) == 8 and len(zero["per_query"]) == 12


@pytest.mark.slow
def test_metrics_agree_with_mteb_evaluate_on_cranfield(minilm):
    ours, theirs = _crosscheck(minilm, load_eval_dataset("embedded:cranfield"))
    print(
        f"cranfield hardneg {ours} mteb ndcg@10 {theirs['ndcg_at_10']} recall@100 {theirs['recall_at_100']}"
    )
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg_at_10"], abs=AGREE)
    assert ours["recall@100"] == pytest.approx(theirs["recall_at_100"], abs=AGREE)


def test_trained_model_has_model_meta_and_card_naming_its_training_corpora(tmp_path, cranfield_triplets):  # noqa: F811
    from hardneg.train import train

    folder = write_dataset_folder(tmp_path / "meta_triplets", {"bm25_hn": cranfield_triplets})
    (folder / "build_stats.json").write_text(json.dumps({"corpus": {"source": "embedded:cranfield"}}))
    out = train(tiny_config(folder, tmp_path / "model"))
    meta = mteb_results.load_model_meta(out / mteb_results.MODEL_META_FILE)
    assert meta.training_datasets == {"hardneg-cranfield"}  # the custom task evaluation files it under
    assert meta.is_zero_shot_on(["hardneg-cranfield"]) is False
    assert meta.adapted_from == "sentence-transformers/all-MiniLM-L6-v2"
    card = (out / "README.md").read_text()
    assert "Queries generated from the passages of: `embedded:cranfield`" in card
    assert "Not zero-shot on the MTEB task(s) `hardneg-cranfield`" in card


def test_rerun_keeps_results_and_writes_a_missing_mteb_file(tmp_path, small_set):
    config = EvalConfig(
        run_dir=str(tmp_path), datasets=[str(small_set)], models=["bm25=bm25"], show_progress=False
    )
    (path,) = evaluate(config)
    mteb_file = tmp_path / json.loads(path.read_text())["mteb_result"]
    stamp = path.stat().st_mtime_ns
    evaluate(config)
    assert path.stat().st_mtime_ns == stamp  # both files there: nothing recomputed
    mteb_file.unlink()  # e.g. a result computed before mteb was installed
    run_file = path.with_name(json.loads(path.read_text())["run_file"])
    run_stamp, before = run_file.stat().st_mtime_ns, json.loads(path.read_text())["metrics"]
    evaluate(config)
    assert mteb_file.is_file() and path.stat().st_mtime_ns != stamp
    # made from the kept run file: the model is not evaluated again
    assert run_file.stat().st_mtime_ns == run_stamp and json.loads(path.read_text())["metrics"] == before
    without = EvalConfig(
        run_dir=str(tmp_path),
        datasets=[str(small_set)],
        models=["bm25=bm25"],
        show_progress=False,
        mteb_results="false",
    )
    mteb_file.unlink()
    evaluate(without)
    assert not mteb_file.exists()
