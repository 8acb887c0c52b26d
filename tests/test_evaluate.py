"""Evaluation: models x datasets -> result files; encoding cache/order; chunked exact search; bad input.

Real offline assets: a slice of Cranfield and the embedded all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardneg.corpus import load_beir_folder, passage_text
from hardneg.encode import encode_batches, encode_corpus, search_topk
from hardneg.eval_config import EvalConfig, ModelSpec, readable_name
from hardneg.evaluate import evaluate, load_eval_model, resolve_prompts
from hardneg.metrics import evaluate_run


@pytest.fixture(scope="module")
def mini_beir(cranfield_dir, tmp_path_factory) -> Path:
    """6 judged Cranfield queries + 1 unjudged, their judged documents + filler (60 documents),
    and one judgement of a document missing from the corpus."""
    data = load_beir_folder(cranfield_dir, "test")
    qids = list(data.qrels)[:6]
    docs = list(dict.fromkeys([d for q in qids for d in data.qrels[q]] + list(data.corpus)))[:60]
    folder = tmp_path_factory.mktemp("mini_beir")
    (folder / "qrels").mkdir()
    with open(folder / "corpus.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps({"_id": d, **data.corpus[d]}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for q in qids + ["225"]:
            f.write(json.dumps({"_id": q, "text": data.queries[q]}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{g}" for q in qids for d, g in data.qrels[q].items() if d in docs]
    lines.append(f"{qids[0]}\tmissing-doc\t2")
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def minilm():
    return load_eval_model(ModelSpec("zero-shot", "embedded:minilm"), "cpu")


def _config(run_dir, data_dir, **kw) -> EvalConfig:
    base = dict(
        run_dir=str(run_dir),
        datasets=[str(data_dir)],
        models=[{"method": "bm25", "model": "bm25"}, {"method": "zero-shot", "model": "embedded:minilm"}],
        part_size=16,
        show_progress=False,
    )
    return EvalConfig(**{**base, **kw})


def test_evaluate_end_to_end(tmp_path, mini_beir, minilm):
    config = _config(tmp_path, mini_beir)
    paths = evaluate(config)
    assert sorted(p.name for p in paths) == [
        "BM25.bm25__mini_beir0.json",
        "all-MiniLM-L6-v2.zero-shot__mini_beir0.json",
    ]
    dense = json.loads(paths[1].read_text())
    bm25 = json.loads(paths[0].read_text())
    for r in (dense, bm25):
        c = r["counts"]
        assert c["queries_without_judgements"] == 1 and c["qrels_docs_missing_from_corpus"] == 1
        assert c["queries_evaluated"] == 6 and len(r["per_query"]) == 6
        assert c["excluded_query_ids"]["without_judgements"] == ["225"]
        assert set(r["metrics"]) == {"ndcg@10", "p@10", "recall@100", "map@100", "mrr@10"}
    assert bm25["model"] == "BM25" and dense["model"] == "all-MiniLM-L6-v2"
    assert dense["prompts"] == {"query": "", "passage": ""} and dense["similarity"] == "cosine"

    # Independent recomputation: plain encode + full cosine ranking + the same metric code.
    data = load_beir_folder(mini_beir, "test")
    doc_ids = list(data.corpus)
    c = minilm.encode(
        [passage_text(d["title"], d["text"]) for d in data.corpus.values()], normalize_embeddings=True
    )
    qids = list(dense["per_query"])
    q = minilm.encode([data.queries[x] for x in qids], normalize_embeddings=True)
    run = {
        qid: {doc_ids[j]: float(s) for j, s in enumerate(row)} for qid, row in zip(qids, q @ c.T, strict=True)
    }
    ref = evaluate_run({x: data.qrels[x] for x in qids}, run, list(dense["metrics"]))
    for name, value in ref.mean.items():
        assert dense["metrics"][name] == pytest.approx(value, abs=1e-5)

    # Rerun keeps existing files; overwrite recomputes from the embedding cache with the same numbers.
    mtime = paths[1].stat().st_mtime_ns
    evaluate(config)
    assert paths[1].stat().st_mtime_ns == mtime
    assert list((tmp_path / "cache" / "embeddings").glob("*/part*-*.npy"))
    evaluate(_config(tmp_path, mini_beir, overwrite=True, models=["zero-shot=embedded:minilm"]))
    again = json.loads(paths[1].read_text())
    assert (
        again["per_query"] == pytest.approx(dense["per_query"])
        if False
        else again["metrics"] == pytest.approx(dense["metrics"], abs=1e-6)
    )


class _Refuses:
    """Stands in for a model once everything is cached: any encode call is a cache miss."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, **kw):
        self.calls.append(len(texts))
        raise AssertionError("cache miss")


def test_encode_corpus_cache_resume_and_order(tmp_path, minilm, tiny_corpus):
    texts = [passage_text(t, x) for t, x in zip(tiny_corpus["title"], tiny_corpus["text"], strict=True)]
    direct = minilm.encode(texts, batch_size=8)
    emb = encode_corpus(
        minilm, texts, batch_size=8, part_size=7, cache_dir=tmp_path, cache_key="k", show_progress=False
    )
    assert emb.shape == direct.shape
    np.testing.assert_allclose(emb, direct, atol=2e-5)  # input order restored after length sorting
    with_prompt = encode_batches(minilm, texts[:5], prompt="passage: ", batch_size=2)
    np.testing.assert_allclose(with_prompt, minilm.encode(texts[:5], prompt="passage: "), atol=2e-5)
    np.testing.assert_array_equal(
        encode_corpus(_Refuses(), texts, part_size=7, cache_dir=tmp_path, cache_key="k"), emb
    )
    # a crash after some parts: only the missing part is encoded again
    next(tmp_path.glob("*k/part7-00001.npy")).unlink()  # parts are named by their size
    stub = _Refuses()
    with pytest.raises(AssertionError, match="cache miss"):
        encode_corpus(stub, texts, part_size=7, cache_dir=tmp_path, cache_key="k", show_progress=False)
    assert stub.calls == [7]
    with pytest.raises(ValueError, match="empty corpus"):
        encode_corpus(minilm, [], show_progress=False)


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_search_topk_chunked_equals_full(similarity):
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(11, 8)).astype(np.float32), rng.normal(size=(53, 8)).astype(np.float32)
    idx, scores = search_topk(q, c, 10, similarity=similarity, corpus_chunk_size=7, query_chunk_size=3)
    if similarity == "cosine":
        q, c = q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)
    full = q @ c.T
    ref = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(scores, np.take_along_axis(full, ref, 1), atol=1e-5)
    idx, _ = search_topk(q, c, 500, similarity=similarity, corpus_chunk_size=20)
    assert idx.shape == (11, 53)  # k capped at the corpus size


def test_prompts_and_names(tmp_path, minilm):
    assert resolve_prompts(minilm, ModelSpec("x", "m")) == ("", "")
    assert resolve_prompts(
        minilm, ModelSpec("x", "m", query_prompt="query: ", passage_prompt="passage: ")
    ) == (
        "query: ",
        "passage: ",
    )
    minilm_prompts = dict(minilm.prompts)
    try:
        minilm.prompts = {"query": "Q: ", "document": "D: "}
        assert resolve_prompts(minilm, ModelSpec("x", "m")) == ("Q: ", "D: ")
    finally:
        minilm.prompts = minilm_prompts
    folder = tmp_path / "models" / "llm_hn"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(
        "---\nbase_model: sentence-transformers/all-MiniLM-L6-v2\n---\n# card\n"
    )
    assert readable_name(ModelSpec("llm_hn", str(folder))) == "all-MiniLM-L6-v2"
    assert readable_name(ModelSpec("zero-shot", "embedded:minilm")) == "all-MiniLM-L6-v2"
    assert readable_name(ModelSpec("e5", "intfloat/e5-base-v2")) == "e5-base-v2"
    spec = ModelSpec.parse({"method": "llm_hn", "model": "{run_dir}/models/llm_hn"}, "runs/x")
    assert spec.model == "runs/x/models/llm_hn"


def test_bad_config_and_models(tmp_path, mini_beir):
    with pytest.raises(ValueError, match="top_k=50 is below the largest metric cut-off 100"):
        _config(tmp_path, mini_beir, top_k=50)
    with pytest.raises(ValueError, match="is not method=model"):
        _config(tmp_path, mini_beir, models=["embedded:minilm"])
    with pytest.raises(ValueError, match="unknown key"):
        _config(tmp_path, mini_beir, models=[{"method": "a", "modle": "bm25"}])
    with pytest.raises(ValueError, match="share the result name"):
        _config(tmp_path, mini_beir, models=["bm25=bm25", "bm25=bm25"])
    with pytest.raises(ValueError, match="unknown metric"):
        _config(tmp_path, mini_beir, metrics=["ndcg10"])
    with pytest.raises(ValueError, match="unknown dataset 'scifactt'"):
        evaluate(_config(tmp_path, mini_beir, datasets=["scifactt"]))
    with pytest.raises(RuntimeError, match=r"cannot load model '.*models/ce_hn' \(method ce_hn\)"):
        evaluate(
            _config(tmp_path, mini_beir, models=[{"method": "ce_hn", "model": "{run_dir}/models/ce_hn"}])
        )


def test_results_are_reused_only_for_the_same_model_files(tmp_path):
    """Rerun = resume, but a model retrained into the same folder is evaluated again."""
    import json as _json
    import os as _os

    from hardneg.eval_config import ModelSpec
    from hardneg.evaluate import _is_current, source_stamp

    folder = tmp_path / "models" / "llm_hn"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights-1")
    spec = ModelSpec(method="llm_hn", model=str(folder))
    result = tmp_path / "r.json"
    names = {"model": "m", "method": "llm_hn", "dataset": "d"}  # what every result file names (EvalResult)
    result.write_text(_json.dumps({**names, "source_stamp": source_stamp(spec)}))
    assert not _is_current(result, spec), "no run file beside the result: recompute"
    (tmp_path / "r.trec.gz").write_bytes(b"")
    assert _is_current(result, spec)
    (folder / "model.safetensors").write_bytes(b"weights-2, retrained")
    _os.utime(folder / "model.safetensors", ns=(1, 1))
    assert not _is_current(result, spec)
    assert source_stamp(ModelSpec(method="bm25")) == "bm25"
    # same model, other scoring settings (max_queries, top_k, metrics, rule, revision): recompute
    bm25 = ModelSpec(method="bm25")
    settings = {"max_queries": 50, "top_k": 100, "metric_list": ["ndcg@10"], "ignore_identical_ids": False}
    result.write_text(_json.dumps({**names, "source_stamp": "bm25", **settings, "metrics": {"ndcg@10": 0.5}}))
    assert _is_current(result, bm25, expect=settings)
    assert not _is_current(result, bm25, expect={**settings, "max_queries": 0})
    assert not _is_current(result, bm25, expect={**settings, "metric_list": ["ndcg@10", "p@10"]})


# ---------------------------------------------------------------------------------------------------------
# result files carry method + seed and a TREC run file; seeds; BEIR's identical-id rule; pinned revisions


def test_run_file_and_metrics_cross_checked_with_ranx(tmp_path, mini_beir):
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    from hardneg.metrics import read_run_file

    config = _config(tmp_path, mini_beir, models=["zero-shot=embedded:minilm"])
    (path,) = evaluate(config)
    result = json.loads(path.read_text())
    assert result["method"] == "zero-shot" and result["seed"] is None
    assert result["ignore_identical_ids"] is False and result["dataset_revision"]["how"] == "local"
    run_file = path.parent / result["run_file"]
    assert run_file.name == "all-MiniLM-L6-v2.zero-shot__mini_beir0.trec.gz"
    lines = __import__("gzip").open(run_file, "rt").read().splitlines()
    first = lines[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "all-MiniLM-L6-v2.zero-shot"
    run = read_run_file(run_file)
    assert set(run) == set(result["per_query"]) and all(len(d) == 60 for d in run.values())
    # an independent implementation (ranx) scores the kept run file like the result file says
    data = load_beir_folder(mini_beir, "test")
    qrels = Qrels({q: data.qrels[q] for q in run})
    ranx_run = Run(run)
    names = {"ndcg@10": "ndcg@10", "p@10": "precision@10", "recall@100": "recall@100", "mrr@10": "mrr@10"}
    theirs = ranx_evaluate(qrels, ranx_run, list(names.values()))
    for ours, name in names.items():
        assert result["metrics"][ours] == pytest.approx(theirs[name], abs=1e-6), ours


def test_seed_folders_expand_to_one_result_per_seed(tmp_path, mini_beir):
    from hardneg.assets import resolve_embedder

    minilm_dir = Path(resolve_embedder("embedded:minilm").name_or_path)
    models = tmp_path / "models" / "llm_hn"
    models.mkdir(parents=True)
    for seed in (0, 2):
        (models / f"seed{seed}").symlink_to(minilm_dir, target_is_directory=True)
    entry = {"method": "llm_hn", "model": "{run_dir}/models/llm_hn", "name": "mini"}
    config = _config(tmp_path, mini_beir, models=[entry, "bm25=bm25"])
    assert [(s.method, s.seed) for s in config.model_specs] == [("llm_hn", 0), ("llm_hn", 2), ("bm25", None)]
    paths = evaluate(config)
    assert [p.name for p in paths] == [
        "mini.llm_hn.seed0__mini_beir0.json",
        "mini.llm_hn.seed2__mini_beir0.json",
        "BM25.bm25__mini_beir0.json",
    ]
    results = [json.loads(p.read_text()) for p in paths]
    assert [(r["method"], r["seed"]) for r in results] == [("llm_hn", 0), ("llm_hn", 2), ("bm25", None)]
    assert all((p.parent / r["run_file"]).is_file() for p, r in zip(paths, results, strict=True))
    only = _config(tmp_path, mini_beir, models=[entry], seeds=[2])
    assert [s.seed for s in only.model_specs] == [2]
    with pytest.raises(ValueError, match=r"no folder for seed\(s\) \[3\]"):
        _config(tmp_path, mini_beir, models=[entry], seeds=[2, 3])
    # a result file whose run file is gone is recomputed
    paths[0].with_name(results[0]["run_file"]).unlink()
    mtime = paths[1].stat().st_mtime_ns
    evaluate(config)
    assert paths[0].with_name(results[0]["run_file"]).is_file() and paths[1].stat().st_mtime_ns == mtime


def test_each_models_name_and_stamp_are_read_once_for_all_datasets(tmp_path, mini_beir, monkeypatch):
    """readable_name (the model card) and source_stamp (every file's size and mtime) once per model and
    evaluate() call, not once per dataset and step; the result files are the same as before."""
    import shutil

    import hardneg.eval_config
    import hardneg.evaluate
    from hardneg.assets import resolve_embedder

    other = tmp_path / "other"
    shutil.copytree(mini_beir, other)
    folder = tmp_path / "models" / "llm_hn"
    folder.parent.mkdir(parents=True)
    folder.symlink_to(Path(resolve_embedder("embedded:minilm").name_or_path), target_is_directory=True)
    config = _config(
        tmp_path / "run",
        mini_beir,
        datasets=[str(mini_beir), str(other)],
        models=[f"llm_hn={folder}", "bm25=bm25"],
    )
    calls: list[tuple[str, str]] = []

    def counted(name, fn):
        return lambda spec, *a, **k: calls.append((name, spec.model)) or fn(spec, *a, **k)

    for module in (hardneg.evaluate, hardneg.eval_config):
        monkeypatch.setattr(module, "readable_name", counted("name", hardneg.eval_config.readable_name))
    monkeypatch.setattr(hardneg.evaluate, "source_stamp", counted("stamp", hardneg.evaluate.source_stamp))
    paths = evaluate(config)
    assert sorted(p.name for p in paths) == sorted(
        f"{m}__{d}.json" for m in ("llm_hn.llm_hn", "BM25.bm25") for d in ("mini_beir0", "other")
    )
    for model in (str(folder), "bm25"):
        assert calls.count(("name", model)) == 1 and calls.count(("stamp", model)) == 1, calls
    result = json.loads(paths[0].read_text())
    assert result["model"] == "llm_hn" and result["source_stamp"] == hardneg.evaluate.source_stamp(
        ModelSpec("llm_hn", str(folder))
    )
    assert result["run_file"] == paths[0].name.replace(".json", ".trec.gz")
    calls.clear()
    assert evaluate(config) == paths  # all kept: the same files, read once more per model
    assert calls.count(("stamp", str(folder))) == 1 and calls.count(("name", str(folder))) == 1, calls


def _self_retrieving_set(folder: Path) -> Path:
    """Queries that are documents too (as in ArguAna and Quora): q1's own text is document q1."""
    (folder / "qrels").mkdir(parents=True)
    corpus = {
        "q1": "wing flutter at supersonic speed",
        "q2": "heat transfer in a laminar boundary layer",
        "d1": "flutter of wings at supersonic speeds was measured",
        "d2": "laminar boundary layer heat transfer experiments",
        "d3": "shock waves and buckling of thin shells",
    }
    with open(folder / "corpus.jsonl", "w") as f:
        for d, text in corpus.items():
            f.write(json.dumps({"_id": d, "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for q in ("q1", "q2"):
            f.write(json.dumps({"_id": q, "text": corpus[q]}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    return folder


@pytest.mark.parametrize(
    ("name", "option", "applied"),
    [("arguana", "auto", True), ("quora", "auto", True), ("other", "auto", False), ("other", "true", True)],
)
def test_ignore_identical_ids(tmp_path, name, option, applied):
    from hardneg.metrics import read_run_file

    folder = _self_retrieving_set(tmp_path / name)
    config = _config(tmp_path / "run", folder, models=["bm25=bm25"], ignore_identical_ids=option, top_k=100)
    (path,) = evaluate(config)
    result = json.loads(path.read_text())
    run = read_run_file(path.parent / result["run_file"])
    assert result["ignore_identical_ids"] is applied
    assert result["identical_ids_dropped"] == (2 if applied else 0)
    assert ("q1" in run["q1"]) is not applied and ("q2" in run["q2"]) is not applied
    # the query's own document ranks first unless dropped: MRR 1.0 with the rule, 0.5 without
    assert result["metrics"]["mrr@10"] == pytest.approx(1.0 if applied else 0.5)
    assert len(run["q1"]) == 5 - applied
    with pytest.raises(ValueError, match="ignore_identical_ids 'maybe'"):
        _config(tmp_path, folder, ignore_identical_ids="maybe")


def test_hub_sets_pinned_by_default(monkeypatch, mini_beir):
    from hardneg.references import KNOWN_REVISIONS, DatasetSpec, resolve_dataset_ref

    ref = resolve_dataset_ref(DatasetSpec("scifact"), pin=True)
    assert ref.how == "pinned" and ref.revision == KNOWN_REVISIONS["mteb/scifact"] and len(ref.revision) == 40
    assert ref.commit == ref.revision and ref.hub_id == "mteb/scifact"
    assert (
        resolve_dataset_ref(DatasetSpec("mteb/arguana"), pin=True).revision == KNOWN_REVISIONS["mteb/arguana"]
    )
    monkeypatch.setattr("hardneg.references.resolve_revision", lambda repo, rev: "c" * 40)
    given = resolve_dataset_ref(DatasetSpec("mteb/scifact", "abc123"), pin=True)
    assert (given.revision, given.how, given.commit) == ("abc123", "given", "c" * 40)
    local = resolve_dataset_ref(DatasetSpec(str(mini_beir)), pin=True)
    assert (local.how, local.kind, local.hub_id, local.record()) == (
        "local",
        "beir_folder",
        None,
        {"revision": None, "how": "local"},
    )

    class Info:
        sha = "f" * 40

    monkeypatch.setattr("huggingface_hub.HfApi.dataset_info", lambda self, repo, revision=None: Info())
    unpinned = resolve_dataset_ref(DatasetSpec("BeIR/scifact"), pin=True)
    assert unpinned.how == "unpinned" and unpinned.revision is None and unpinned.commit == "f" * 40
    assert resolve_dataset_ref(DatasetSpec("BeIR/scifact")).commit is None  # not evaluation: no Hub call

    def offline(self, repo, revision=None):
        raise ConnectionError("offline")

    monkeypatch.setattr("huggingface_hub.HfApi.dataset_info", offline)
    assert resolve_dataset_ref(DatasetSpec("BeIR/scifact"), pin=True).commit is None
