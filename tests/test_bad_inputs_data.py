"""Text and ids are validated on every loader (issue 23): the build corpus, BEIR folders and TREC run files.

Rules, each with cases beyond the named examples:
- a text that shows nothing (empty, white space, zero-width or other invisible characters) is empty: the same
  rule for one string (``hardneg.text.is_blank``) and an Arrow column (``blank_rows``);
- a field that is not a string (a list title, a number text, an object) is refused naming the file and line,
  on the fast Arrow reader and on the row-by-row reader alike;
- a repeated document or query id is refused naming both places (a dict would keep the last silently);
- a TREC run file that is cut short, empty, or ranks fewer queries than its result file says is refused.
Through a script each one is one ``error: ...; fix: ...`` line and exit code 2 (``run_main``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from test_bad_inputs import BUILD, OFFLINE_BUILD, run_stage

from hardneg.corpus import load_beir_folder, load_corpus
from hardneg.metrics import read_run_file, write_run_file
from hardneg.text import blank_rows, is_blank

INVISIBLE = ["", " ", "\u200b", "\u200b\u200c\u200d", "\ufeff", "\u00ad", "\u2060 \t\n", "\u3000", "\x00\x07"]
VISIBLE = ["a", " x ", "\u200bword", "é", "中", "1"]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _good_rows(n: int = 4) -> list[dict]:
    return [{"_id": f"d{i}", "title": "", "text": f"passage number {i} about wings"} for i in range(n)]


def test_blank_rule_is_one_rule_for_strings_and_columns():
    texts = INVISIBLE + VISIBLE
    assert [is_blank(t) for t in texts] == [True] * len(INVISIBLE) + [False] * len(VISIBLE)
    assert blank_rows(pa.array([*texts, None])).tolist() == [*range(len(INVISIBLE)), len(texts)]
    assert is_blank(None) and is_blank(["a"])


@pytest.mark.parametrize("text", INVISIBLE[2:], ids=lambda t: repr(t))
def test_invisible_passages_are_dropped_as_empty(tmp_path, text):
    rows = _good_rows() + [{"_id": "ghost", "text": text}]
    report: dict = {}
    corpus = load_corpus(str(_jsonl(tmp_path / "c.jsonl", rows)), report=report)
    assert "ghost" not in corpus["id"] and len(corpus) == 4
    assert report["empty_dropped"] == 1 and report["empty_ids"] == ["ghost"]
    with pytest.raises(
        ValueError, match=r"1 passage\(s\) with an empty or missing text, first 'ghost' \(.*c.jsonl:5\)"
    ):
        load_corpus(str(tmp_path / "c.jsonl"), empty_passages="error")


@pytest.mark.parametrize(
    "bad,fragment",
    [
        ({"_id": "x", "title": ["a", "b"], "text": "t t"}, "c.jsonl:5: 'title' is not a string"),
        ({"_id": "x", "title": {"k": 1}, "text": "t t"}, "c.jsonl:5: 'title' is not a string"),
        ({"_id": "x", "text": 12}, "c.jsonl:5: 'text' is not a string"),
        ({"_id": "x", "text": {"body": "t"}}, "c.jsonl:5: 'text' is not a string"),
        ({"_id": ["x"], "text": "t t"}, "c.jsonl:5: '_id' is not a string"),
        ({"_id": True, "text": "t t"}, "c.jsonl:5: '_id' is not a string"),
    ],
    ids=["list_title", "object_title", "number_text", "object_text", "list_id", "bool_id"],
)
def test_non_string_fields_are_refused_with_file_and_line(tmp_path, bad, fragment):
    path = _jsonl(tmp_path / "c.jsonl", _good_rows() + [bad])
    with pytest.raises(ValueError, match="fix: ") as err:
        load_corpus(str(path))
    assert fragment in str(err.value)


def test_non_string_column_on_the_arrow_reader_names_its_row(tmp_path):
    """Every title a list: Arrow reads the file as list<string> without complaint; the check names row 1."""
    rows = [{"_id": f"d{i}", "title": ["a"], "text": "some text"} for i in range(3)]
    with pytest.raises(ValueError, match=r"c.jsonl:1: 'title' is not a string"):
        load_corpus(str(_jsonl(tmp_path / "c.jsonl", rows)))
    path = tmp_path / "c.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"_id": ["a", "b"], "text": ["x y", "z w"], "title": [[1], [2]]}), path)
    with pytest.raises(ValueError, match=r"c.parquet row 0: 'title' is not a string"):
        load_corpus(str(path))


def test_ids_and_texts_that_arrow_would_retype_stay_strings(tmp_path):
    """Date-like ids (Arrow infers timestamps), integer ids and blank lines read as the row reader reads them."""
    rows = [{"_id": f"2020-01-0{i + 1}", "text": f"text {i} here"} for i in range(3)]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n  \n", encoding="utf-8")
    assert load_corpus(str(path))["id"] == ["2020-01-01", "2020-01-02", "2020-01-03"]
    ints = _jsonl(tmp_path / "i.jsonl", [{"_id": i, "text": f"text {i}"} for i in range(3)])
    assert load_corpus(str(ints))["id"] == ["0", "1", "2"]
    mixed = _jsonl(tmp_path / "m.jsonl", [{"_id": 7, "text": "a b"}, {"_id": "x", "text": "c d"}])
    assert load_corpus(str(mixed))["id"] == ["7", "x"]


def _beir(folder: Path, corpus: list, queries: list, qrels: str = "q1\td0\t1\n") -> Path:
    (folder / "qrels").mkdir(parents=True)
    _jsonl(folder / "corpus.jsonl", corpus)
    _jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


QUERIES = [{"_id": "q1", "text": "wing lift"}, {"_id": "q2", "text": "heat transfer"}]


@pytest.mark.parametrize(
    "corpus,queries,fragment",
    [
        (
            _good_rows() + [{"_id": "d1", "text": "again"}],
            QUERIES,
            "corpus.jsonl:5: document id 'd1' repeats the one at",
        ),
        (
            _good_rows(),
            QUERIES + [{"_id": "q1", "text": "other"}],
            "queries.jsonl:3: query id 'q1' repeats the one at",
        ),
        (
            _good_rows() + [{"_id": "d9", "title": ["a"], "text": "t"}],
            QUERIES,
            "corpus.jsonl:5: the corpus row's 'title' is not a string",
        ),
        (
            _good_rows(),
            [{"_id": "q1", "text": ["wing"]}],
            "queries.jsonl:1: the query's 'text' is not a string",
        ),
        (
            _good_rows(),
            [{"_id": "q1", "text": "\u200b\u200b"}],
            "queries.jsonl:1: the query's text is empty or invisible",
        ),
        (_good_rows(), [{"_id": {"a": 1}, "text": "x"}], "queries.jsonl:1: the query's '_id' is a JSON dict"),
    ],
    ids=[
        "duplicate_doc",
        "duplicate_query",
        "list_title",
        "list_query",
        "invisible_query",
        "object_query_id",
    ],
)
def test_beir_folder_refuses_bad_rows(tmp_path, corpus, queries, fragment):
    folder = _beir(tmp_path / "beir", corpus, queries)
    with pytest.raises(ValueError, match="fix: ") as err:
        load_beir_folder(folder)
    assert fragment in str(err.value)


def test_beir_folder_keeps_invisible_documents_as_empty(tmp_path):
    """BEIR scores empty documents, so the evaluation corpus keeps them, but as empty text."""
    folder = _beir(
        tmp_path / "beir", _good_rows() + [{"_id": "ghost", "title": "\u200b", "text": "\ufeff"}], QUERIES
    )
    data = load_beir_folder(folder)
    assert data.corpus["ghost"] == {"title": "", "text": ""}


def test_run_files_cut_short_are_refused(tmp_path):
    run = {f"q{i}": {f"d{j}": float(10 - j) for j in range(10)} for i in range(200)}
    path = write_run_file(tmp_path / "r.trec.gz", run, tag="t")
    assert read_run_file(path, expected_queries=200) == run
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 4, 12):
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="is truncated.*fix: "):
            read_run_file(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="holds no ranked document"):
        read_run_file(path)
    short = {q: s for q, s in list(run.items())[:150]}
    path.write_bytes(
        gzip.compress(
            "".join(f"{q} Q0 {d} 1 {s} t\n" for q, r in short.items() for d, s in r.items()).encode()
        )
    )
    with pytest.raises(ValueError, match="ranks documents for 150 queries, but its result file counts 200"):
        read_run_file(path, expected_queries=200)
    assert not list(tmp_path.glob(".*tmp*")), "a temporary file was left beside the run file"


BUILD_CASES = [
    ("invisible_text", [{"_id": "1", "text": "a b c"}, {"_id": "2", "text": "\u200b \u200d"}], "first '2' ("),
    (
        "list_title",
        [{"_id": "1", "text": "a b", "title": "t"}, {"_id": "2", "text": "c d", "title": ["a", "b"]}],
        "bad.jsonl:2: 'title' is not a string",
    ),
    (
        "number_text",
        [{"_id": "1", "text": 5}, {"_id": "2", "text": 6}],
        "bad.jsonl:1: 'text' is not a string",
    ),
    ("duplicate_int_ids", [{"_id": 1, "text": "a b"}, {"_id": 1, "text": "c d"}], "duplicate ids (e.g. '1')"),
]


@pytest.mark.parametrize("case,rows,fragment", BUILD_CASES, ids=[c for c, _, _ in BUILD_CASES])
def test_build_refuses_bad_corpus_rows_in_one_line(case, rows, fragment, tmp_path, monkeypatch, capsys):
    bad = _jsonl(tmp_path / "bad.jsonl", rows)
    out_dir = tmp_path / "run"
    args = ["--output_dir", str(out_dir), *OFFLINE_BUILD, "--corpus", str(bad), "--empty_passages", "error"]
    code, _, err = run_stage(monkeypatch, capsys, *BUILD, args)
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2, err
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err
    assert not out_dir.exists()
