"""Config parsing, corpus loading, embedded assets and the shared BM25 index."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hardneg.assets import resolve_dataset, resolve_embedder, resolve_llm
from hardneg.bm25 import BM25Index
from hardneg.config import ConfigError, parse
from hardneg.corpus import load_beir_folder, load_corpus, passage_text

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class _Cfg:
    name: str = field(default="a", metadata={"help": "a name"})
    size: int = field(default=1, metadata={"help": "a size"})
    methods: list[str] = field(default_factory=lambda: ["x"], metadata={"help": "methods"})


def test_parse_yaml_then_cli_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: from_yaml\nsize: 5\nmethods: [llm_hn, bm25_hn]\n")
    (cfg,) = parse(_Cfg, args=["--config", str(recipe), "--size", "7"])
    assert (cfg.name, cfg.size, cfg.methods) == ("from_yaml", 7, ["llm_hn", "bm25_hn"])


def test_parse_rejects_unknown_yaml_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("nmae: typo\n")
    with pytest.raises(ConfigError, match="unknown key.*nmae"):
        parse(_Cfg, args=["--config", str(recipe)])


def test_parse_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        parse(_Cfg, args=["--config", "nope.yaml"])


def test_cranfield_corpus_and_beir_folder(cranfield_dir, cranfield_corpus):
    assert cranfield_corpus.column_names == ["id", "title", "text"]
    assert len(cranfield_corpus) == 1398  # documents 471 and 995 are empty: dropped on load
    data = load_beir_folder(cranfield_dir)
    assert (len(data.corpus), len(data.queries)) == (1400, 225)
    assert sum(len(v) for v in data.qrels.values()) == 1612
    assert set(data.qrels) <= set(data.queries)
    assert {g for docs in data.qrels.values() for g in docs.values()} <= {1, 2, 3, 4}
    assert (Path(cranfield_dir) / "README.md").is_file()  # provenance travels with the data


def test_load_corpus_files_and_errors(tmp_path):
    rows = [{"doc_id": 7, "title": "T", "body": "some text"}, {"doc_id": 8, "title": None, "body": "more"}]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_corpus(str(path), text_column="body")
    assert ds.to_list() == [
        {"id": "7", "title": "T", "text": "some text"},
        {"id": "8", "title": "", "text": "more"},
    ]
    with pytest.raises(ValueError, match="no 'text' column"):
        load_corpus(str(path))
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(ValueError, match="duplicate ids"):
        load_corpus(str(dup))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "corpus.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_corpus(str(empty))


def test_passage_text_does_not_repeat_title():
    assert passage_text("wing flow", "wing flow . a study") == "wing flow . a study"
    assert passage_text("Title", "body") == "Title. body"
    assert passage_text("", "body") == "body"


def test_embedded_assets_resolve_to_real_files():
    llm = resolve_llm("embedded:smollm2")
    assert (Path(llm.name_or_path) / llm.gguf_file).stat().st_size > 50_000_000
    assert (Path(resolve_embedder("embedded:minilm").name_or_path) / "model.safetensors").is_file()
    assert resolve_llm("Qwen/Qwen2.5-7B-Instruct").name_or_path == "Qwen/Qwen2.5-7B-Instruct"
    assert resolve_dataset("/some/folder") == "/some/folder"
    with pytest.raises(ValueError, match="unknown embedded"):
        resolve_embedder("embedded:nope")


def test_bm25_index_ranks_the_judged_document_first(cranfield_dir, cranfield_corpus):
    index = BM25Index(cranfield_corpus["text"], cranfield_corpus["id"], show_progress=False)
    data = load_beir_folder(cranfield_dir)
    ids, scores = index.search([data.queries["1"]], k=10)
    assert len(ids[0]) == 10 and list(scores[0]) == sorted(scores[0], reverse=True)
    assert set(ids[0]) & set(data.qrels["1"])  # BM25 finds a judged document for query 1 in its top 10
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Index([], [])


def test_bm25_matches_rank_bm25_top1(cranfield_corpus):
    """Cross-check against rank_bm25 (independent implementation) on the same tokens."""
    import bm25s
    import Stemmer
    from rank_bm25 import BM25Okapi

    texts = cranfield_corpus["text"][:300]
    stemmer = Stemmer.Stemmer("english")
    tok = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    ref = BM25Okapi(tok, k1=1.5, b=0.75)
    index = BM25Index(texts, [str(i) for i in range(300)], show_progress=False)
    queries = [texts[i].split(".")[0] for i in range(0, 300, 30)]
    ours, _ = index.search(queries, k=1)
    for q, got in zip(queries, ours, strict=True):
        qt = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)[0]
        assert str(int(ref.get_scores(qt).argmax())) == got[0]


def test_script_reports_bad_input_in_one_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("methods: [magic_hn]\n")
    out = subprocess.run(
        [sys.executable, str(ROOT / "builders" / "build.py"), "--config", str(recipe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "magic_hn" in last and "fix" in last


def test_non_utf8_corpus_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corpus.jsonl").write_bytes(b'{"_id": "1", "text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match="not valid UTF-8.*fix"):
        load_corpus(str(bad))
