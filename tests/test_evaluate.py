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
from hardneg.evaluate import EvalConfig, ModelSpec, evaluate, load_embedder, readable_name, resolve_prompts
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
    return load_embedder(ModelSpec("zero-shot", "embedded:minilm"), "cpu")


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
    assert list((tmp_path / "cache" / "embeddings").glob("*/part-*.npy"))
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
    next(tmp_path.glob("*k/part-00001.npy")).unlink()
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

    from hardneg.evaluate import ModelSpec, _is_current, source_stamp

    folder = tmp_path / "models" / "llm_hn"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights-1")
    spec = ModelSpec(method="llm_hn", model=str(folder))
    result = tmp_path / "r.json"
    result.write_text(_json.dumps({"source_stamp": source_stamp(spec)}))
    assert _is_current(result, spec)
    (folder / "model.safetensors").write_bytes(b"weights-2, retrained")
    _os.utime(folder / "model.safetensors", ns=(1, 1))
    assert not _is_current(result, spec)
    assert source_stamp(ModelSpec(method="bm25")) == "bm25"
