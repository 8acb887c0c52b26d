"""References are resolved once: one evaluate() of the test fixtures resolves each dataset and each model
reference one time (counted with a profiler hook, so calls through any imported name are seen)."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

from hardneg.eval_config import EvalConfig
from hardneg.evaluate import evaluate

# the functions that turn a reference into a location / commit
RESOLVERS = {
    ("assets.py", "resolve_dataset"),
    ("assets.py", "resolve_embedder"),
    ("revisions.py", "resolve_revision"),
    ("references.py", "resolve_dataset_ref"),
}


def _count_resolutions(run) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    root = str(Path(__file__).parents[1] / "hardneg")

    def hook(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(root):
            key = (Path(code.co_filename).name, code.co_name)
            if key in RESOLVERS:
                counts[key] += 1

    sys.setprofile(hook)
    try:
        run()
    finally:
        sys.setprofile(None)
    return counts


def _models():
    return [{"method": "bm25", "model": "bm25"}, {"method": "zero-shot", "model": "embedded:minilm"}]


def test_evaluate_resolves_each_reference_once(tmp_path):
    counts = _count_resolutions(
        lambda: evaluate(
            EvalConfig(
                run_dir=str(tmp_path),
                datasets=["embedded:cranfield"],
                models=_models(),
                max_queries=2,
                show_progress=False,
                mteb_results="false",
            )
        )
    )
    print(dict(counts))
    # one dataset reference, one model reference (bm25 is no reference to resolve)
    assert counts[("references.py", "resolve_dataset_ref")] == 1
    assert counts[("assets.py", "resolve_dataset")] == 1
    assert counts[("assets.py", "resolve_embedder")] == 1


def test_evaluate_resolves_a_hub_set_and_its_commit_once(tmp_path, monkeypatch, cranfield_dir):
    """A Hub set named without a revision (pinned to MTEB's commit): the commit is resolved once."""
    import datasets

    from hardneg.corpus import load_beir_folder

    data = load_beir_folder(cranfield_dir, "test")
    qids = list(data.qrels)[:3]
    tables = {
        "corpus": {
            "_id": list(data.corpus),
            **{k: [d[k] for d in data.corpus.values()] for k in ("title", "text")},
        },
        "queries": {"_id": qids, "text": [data.queries[q] for q in qids]},
        "default": {
            "query-id": [q for q in qids for _ in data.qrels[q]],
            "corpus-id": [d for q in qids for d in data.qrels[q]],
            "score": [g for q in qids for g in data.qrels[q].values()],
        },
    }
    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda src, revision=None: list(tables))
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda src, config, split=None, revision=None: datasets.Dataset.from_dict(tables[config]),
    )
    counts = _count_resolutions(
        lambda: evaluate(
            EvalConfig(
                run_dir=str(tmp_path),
                datasets=["scifact"],
                models=_models(),
                show_progress=False,
                mteb_results="false",
            )
        )
    )
    print(dict(counts))
    assert counts[("references.py", "resolve_dataset_ref")] == 1
    assert counts[("revisions.py", "resolve_revision")] == 1
    assert counts[("assets.py", "resolve_embedder")] == 1


def test_build_ref_folder_hub_and_neither(tmp_path, monkeypatch):
    from hardneg import references
    from hardneg.references import resolve_build_ref

    folder = resolve_build_ref(str(tmp_path))
    assert (folder.kind, folder.location, folder.commit, folder.pinned_commit) == (
        "folder",
        str(tmp_path),
        None,
        None,
    )
    monkeypatch.setattr(references, "resolve_revision", lambda repo, rev: "a" * 40 if rev else None)
    hub = resolve_build_ref("org/built", "v1.0.0")
    assert (hub.kind, hub.revision, hub.how, hub.pinned_commit) == ("hub", "v1.0.0", "given", "a" * 40)
    assert resolve_build_ref("org/built").how == "unpinned"
    with pytest.raises(ValueError, match="neither a dataset folder nor a Hub id"):
        resolve_build_ref("./missing/folder/x")


def test_date_like_titles_are_read_as_strings_by_arrow(tmp_path, monkeypatch):
    """Arrow infers a column of date-like titles as timestamps: the reader asks for strings instead of
    falling back to the row-by-row Python reader."""
    import json

    from hardneg import corpus

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    rows = [
        {"_id": "d1", "title": "2020-01-01", "text": "first"},
        {"_id": "d2", "title": "2021-02-03", "text": " "},
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")

    def no_python_path(*args, **kwargs):
        raise AssertionError("fell back to the Python reader")

    monkeypatch.setattr(corpus, "_beir_corpus_rows", no_python_path)
    data = corpus.load_beir_folder(folder)
    assert data.corpus == {
        "d1": {"title": "2020-01-01", "text": "first"},
        "d2": {"title": "2021-02-03", "text": ""},
    }
    monkeypatch.setattr(corpus, "read_jsonl", no_python_path)
    ds = corpus.load_corpus(str(folder / "corpus.jsonl"))
    assert ds["title"] == ["2020-01-01"] and ds["id"] == ["d1"]
