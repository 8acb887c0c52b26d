"""Evaluation-set loading: BEIR folders, the BeIR/<name> and mteb/<name> Hub layouts (as local folders
laid out like those repos, read with load_dataset), and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardneg.beir import DatasetSpec, load_eval_dataset
from hardneg.corpus import load_beir_folder

CORPUS_QUERIES = """---
configs:
- config_name: corpus
  data_files:
  - split: corpus
    path: corpus.jsonl
- config_name: queries
  data_files:
  - split: queries
    path: queries.jsonl
{extra}---
"""
MTEB_DEFAULT = """- config_name: default
  data_files:
  - split: test
    path: qrels/test.jsonl
"""


@pytest.fixture(scope="module")
def mini(cranfield_dir):
    """A real slice of Cranfield: 8 judged queries and 40 documents (their judged ones first)."""
    data = load_beir_folder(cranfield_dir, "test")
    qids = list(data.qrels)[:8]
    docs = list(dict.fromkeys([d for q in qids for d in data.qrels[q]] + list(data.corpus)))[:40]
    qrels = {q: {d: g for d, g in data.qrels[q].items() if d in docs} for q in qids}
    return (
        {d: data.corpus[d] for d in docs},
        {q: data.queries[q] for q in qids},
        {q: v for q, v in qrels.items() if v},
    )


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _corpus_queries(folder: Path, corpus, queries, extra: str = "") -> None:
    folder.mkdir(parents=True)
    _write_jsonl(folder / "corpus.jsonl", [{"_id": d, **v} for d, v in corpus.items()])
    _write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": t} for q, t in queries.items()])
    (folder / "README.md").write_text(CORPUS_QUERIES.format(extra=extra))


def _qrels_rows(qrels):
    return [{"query-id": q, "corpus-id": d, "score": g} for q, v in qrels.items() for d, g in v.items()]


def test_beir_hub_layout(tmp_path, mini):
    corpus, queries, qrels = mini
    _corpus_queries(tmp_path / "BeIR" / "cranmini", corpus, queries)
    (tmp_path / "BeIR" / "cranmini-qrels").mkdir()
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{r['query-id']}\t{r['corpus-id']}\t{r['score']}" for r in _qrels_rows(qrels)
    ]
    (tmp_path / "BeIR" / "cranmini-qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    data = load_eval_dataset(str(tmp_path / "BeIR" / "cranmini"))
    assert data.name == "cranmini"
    assert data.corpus == corpus and data.queries == queries and data.qrels == qrels


def test_mteb_hub_layout(tmp_path, mini):
    corpus, queries, qrels = mini
    folder = tmp_path / "mteb" / "cranmini"
    _corpus_queries(folder, corpus, queries, extra=MTEB_DEFAULT)
    (folder / "qrels").mkdir()
    _write_jsonl(folder / "qrels" / "test.jsonl", _qrels_rows(qrels))
    data = load_eval_dataset({"name": str(folder), "split": "test"})
    assert data.corpus == corpus and data.queries == queries and data.qrels == qrels
    with pytest.raises(ValueError, match="no judgement split 'dev'"):
        load_eval_dataset(str(folder), split="dev")


def test_beir_folder_and_embedded(cranfield_dir):
    data = load_eval_dataset("embedded:cranfield")
    assert (len(data.corpus), len(data.queries), len(data.qrels)) == (1400, 225, 225)
    assert load_eval_dataset(cranfield_dir).qrels == data.qrels


def test_spec_parsing():
    s = DatasetSpec.parse("mteb/scifact@0228b52c")
    assert (s.source, s.revision, s.split, s.name) == ("mteb/scifact", "0228b52c", "test", "scifact")
    assert DatasetSpec.parse({"name": "fiqa", "split": "dev"}).split == "dev"
    with pytest.raises(ValueError, match="may have 'revision', 'split' only"):
        DatasetSpec.parse({"name": "fiqa", "splitt": "dev"})


def test_bad_datasets(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'scifactt'.*scifact"):
        load_eval_dataset("scifactt")
    with pytest.raises(ValueError, match="unknown embedded dataset"):
        load_eval_dataset("embedded:nope")
    # a BEIR name resolves to mteb/<name>, which cannot be reached offline: one clear line
    with pytest.raises(ValueError, match="cannot load dataset 'mteb/scifact'"):
        load_eval_dataset("scifact")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "qrels").mkdir()
    (empty / "corpus.jsonl").write_text("")
    (empty / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    (empty / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t1\t1\n")
    with pytest.raises(ValueError, match="empty corpus"):
        load_eval_dataset(str(empty))
    with pytest.raises(FileNotFoundError, match="lacks qrels/dev.tsv"):
        load_eval_dataset(str(empty), split="dev")


@pytest.mark.parametrize("text", ["", "\u200b \u3164"], ids=["empty", "invisible"])
def test_beir_hub_layout_refuses_an_invisible_query_as_the_folder_loader_does(tmp_path, mini, text):
    corpus, queries, qrels = mini
    queries = {**queries, next(iter(queries)): text}
    folder = tmp_path / "BeIR" / f"cranblank{len(text)}"  # a name of its own: datasets caches by folder name
    _corpus_queries(folder, corpus, queries)
    (folder.parent / f"{folder.name}-qrels").mkdir()
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{r['query-id']}\t{r['corpus-id']}\t{r['score']}" for r in _qrels_rows(qrels)
    ]
    (folder.parent / f"{folder.name}-qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"queries row 0: the query's text is empty or invisible; fix: "):
        load_eval_dataset(str(folder))
