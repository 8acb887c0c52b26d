"""Load passages and BEIR-style evaluation sets.

- ``load_corpus``: passages as a ``datasets.Dataset`` with columns ``id``, ``title``, ``text`` from a
  BEIR folder (``corpus.jsonl``), a jsonl/json/parquet file, a Hub dataset id, or ``embedded:cranfield``.
  Every form goes through the same checks, and every problem names the file and line (or row):
  empty file, malformed line, non-UTF-8 bytes, a row without an id. Rows whose text is empty,
  whitespace-only or missing are counted (with the first ids) and dropped (``empty_passages="drop"``,
  the default: Cranfield itself has two empty documents, 471 and 995) or refused (``"error"``).
- ``load_beir``: (corpus, queries, qrels) dicts in the beir contract
  (``corpus[doc_id] = {"title", "text"}``, ``queries[qid] = text``, ``qrels[qid][doc_id] = grade``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset

from hardneg.assets import resolve_dataset
from hardneg.errors import first_line
from hardneg.revisions import check_loaded, resolve_revision

logger = logging.getLogger(__name__)

CORPUS_COLUMNS = ("id", "title", "text")
ID_COLUMNS = ("_id", "id", "doc_id", "docid")
EMPTY_PASSAGES = ("drop", "error")
# How many offending ids a message or report names.
SHOW_IDS = 5


def passage_text(title: str | None, text: str) -> str:
    """The text a model sees for a passage: the title (when it is not already the text's start) + text."""
    title = (title or "").strip()
    text = (text or "").strip()
    if title and not text.lower().startswith(title.lower()):
        return f"{title}. {text}" if text else title
    return text


def read_jsonl(path: str | Path, *, allow_empty: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSON-lines file; a ``.json`` file holding one
    JSON array is read too. Every problem is one line naming the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line} is not valid UTF-8 ({err.reason} at byte {err.start}); fix: re-encode the file as UTF-8"
        ) from None
    if not text.strip():
        if allow_empty:
            return []
        raise ValueError(f"{path} is empty; fix: point at a file with one JSON object per line")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}:{err.lineno} is not valid JSON ({err.msg}); fix: correct the file"
            ) from None
        numbered = list(enumerate(items, 1))
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((n, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f"{path}:{n} is not valid JSON ({err.msg}); fix: one JSON object per line"
                    ) from None
    for n, row in numbered:
        if not isinstance(row, dict):
            raise ValueError(
                f"{path}:{n} is a JSON {type(row).__name__}, not an object; fix: one object per line"
            )
    return numbered


@dataclass
class _Table:
    """Rows of any corpus form, each with the place it came from (``file:line`` or ``row N``)."""

    source: str
    rows: list[dict[str, Any]]
    where: list[str]
    commit: str | None = None  # Hub commit actually loaded


def _table_from_jsonl(path: Path) -> _Table:
    numbered = read_jsonl(path)
    return _Table(str(path), [r for _, r in numbered], [f"{path}:{n}" for n, _ in numbered])


def _table_from_dataset(ds: Dataset, source: str) -> _Table:
    return _Table(source, ds.to_list(), [f"{source} row {i}" for i in range(len(ds))])


def _read_parquet(path: Path) -> _Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        raise ValueError(
            f"{path} is not a readable parquet file ({first_line(err)}); fix: rewrite it with pandas/pyarrow"
        ) from None
    if table.num_rows == 0:
        raise ValueError(f"{path} is empty; fix: point at a corpus with passages")
    rows = table.to_pylist()
    return _Table(str(path), rows, [f"{path} row {i}" for i in range(len(rows))])


def _load_hub_table(source: str, split: str, revision: str | None) -> _Table:
    pinned = resolve_revision(source, revision)  # a missing revision says so
    try:
        if source.startswith("BeIR/") or source.startswith("mteb/"):
            ds = load_dataset(source, "corpus", revision=revision, split="corpus")
        else:
            ds = load_dataset(source, revision=revision, split=split)
    except Exception as err:  # datasets raises many types; one line is what the user needs
        raise ValueError(f"cannot load corpus '{source}': {first_line(err)}") from None
    table = _table_from_dataset(ds, source)
    table.commit = check_loaded(ds, source, revision, pinned)
    return table


def _read_table(source: str, split: str, revision: str | None) -> _Table:
    """The one reader behind every corpus form."""
    path = Path(resolve_dataset(source))
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        return _table_from_jsonl(path / "corpus.jsonl")
    if path.is_file():
        if path.suffix in (".jsonl", ".json"):
            return _table_from_jsonl(path)
        if path.suffix == ".parquet":
            return _read_parquet(path)
        raise ValueError(f"cannot read corpus file '{path}'; fix: use .jsonl, .json or .parquet")
    if path.exists():
        raise ValueError(f"'{path}' is a folder without corpus.jsonl; fix: point at a BEIR folder or a file")
    return _load_hub_table(source, split, revision)


def check_passages(
    ids: list[str], texts: list[str], where: list[str], source: str, empty_passages: str = "drop"
) -> list[int]:
    """Indices of the usable passages; empty / whitespace-only / missing texts are dropped (logged with a
    count and the first ids) or refused (``empty_passages="error"``)."""
    if empty_passages not in EMPTY_PASSAGES:
        raise ValueError(f"empty_passages '{empty_passages}' is not drop or error; fix: use drop or error")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if not empty:
        return list(range(len(ids)))
    first = ", ".join(f"'{ids[i]}' ({where[i]})" for i in empty[:SHOW_IDS])
    if empty_passages == "error":
        raise ValueError(
            f"corpus '{source}' has {len(empty)} passage(s) with an empty or missing text, first {first}; "
            "fix: fill or remove them, or pass --empty_passages drop"
        )
    logger.warning(
        "corpus '%s': dropped %d passage(s) with an empty or missing text, first %s",
        source,
        len(empty),
        first,
    )
    gone = set(empty)
    return [i for i in range(len(ids)) if i not in gone]


def _normalise(
    table: _Table,
    id_column: str | None,
    text_column: str,
    title_column: str | None,
    empty_passages: str,
    report: dict | None,
) -> Dataset:
    source, rows = table.source, table.rows
    if not rows:
        raise ValueError(f"corpus '{source}' is empty; fix: point at a corpus with passages")
    cols: set[str] = set().union(*(r.keys() for r in rows))
    if text_column not in cols:
        raise ValueError(
            f"corpus '{source}' has no '{text_column}' column (columns: {sorted(cols)}); fix: set text_column"
        )
    id_column = id_column or next((c for c in ID_COLUMNS if c in cols), None)
    if id_column is None:  # no ids at all: number the rows
        ids = [str(i) for i in range(len(rows))]
    else:
        missing = next((i for i, r in enumerate(rows) if r.get(id_column) in (None, "")), None)
        if missing is not None:
            raise ValueError(
                f"{table.where[missing]} has no '{id_column}'; fix: give every passage an id (or none of them)"
            )
        ids = [str(r[id_column]) for r in rows]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise ValueError(f"corpus '{source}' has duplicate ids (e.g. '{dup}'); fix: make passage ids unique")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r.get(text_column) or "", str)), None)
    if bad is not None:
        raise ValueError(
            f"{table.where[bad]}: '{text_column}' is not a string; fix: store passage texts as strings"
        )
    texts = [r.get(text_column) or "" for r in rows]
    title_column = title_column if title_column in cols else ("title" if "title" in cols else None)
    titles = [str(r.get(title_column) or "") for r in rows] if title_column else [""] * len(rows)
    keep = check_passages(ids, texts, table.where, source, empty_passages)
    if report is not None:
        dropped = [ids[i] for i in sorted(set(range(len(ids))) - set(keep))]
        report.update(
            passages_read=len(ids),
            empty_dropped=len(dropped),
            empty_ids=dropped[:SHOW_IDS],
            commit=table.commit,
        )
    if not keep:
        raise ValueError(f"corpus '{source}' has no passage with text; fix: point at a corpus with passages")
    return Dataset.from_dict(
        {
            "id": [ids[i] for i in keep],
            "title": [titles[i] for i in keep],
            "text": [texts[i] for i in keep],
        }
    )


def load_corpus(
    source: str,
    *,
    split: str = "corpus",
    revision: str | None = None,
    id_column: str | None = None,
    text_column: str = "text",
    title_column: str | None = "title",
    empty_passages: str = "drop",
    report: dict | None = None,
) -> Dataset:
    """Load passages as a Dataset(id, title, text).

    ``source`` is ``embedded:cranfield``, a BEIR folder, a ``.jsonl``/``.json``/``.parquet`` file, or a Hub
    dataset id (``BeIR/scifact`` uses its ``corpus`` config; others use ``split``), pinned by ``revision``.
    Passages with an empty or missing text are dropped (``empty_passages="drop"``) or refused (``"error"``);
    ``report``, when given, receives ``passages_read``, ``empty_dropped`` and the first ``empty_ids``.
    """
    table = _read_table(source, split, revision)
    return _normalise(table, id_column, text_column, title_column, empty_passages, report)


@dataclass
class BeirData:
    """An evaluation set in the beir contract."""

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)


def _require(row: dict, key: str, where: str, what: str) -> Any:
    if row.get(key) is None:
        raise ValueError(f"{where}: {what} has no '{key}'; fix: every row needs '_id' and 'text'")
    return row[key]


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``qrels[qid][doc_id] = grade`` from a BEIR ``qrels/<split>.tsv`` (query-id, corpus-id, score)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not valid UTF-8 ({err.reason}); fix: re-encode the file as UTF-8"
        ) from None
    for n, line in enumerate(lines, 1):
        row = line.rstrip("\r").split("\t")
        if not line.strip() or row[0] == "query-id":
            continue
        if len(row) < 3:
            raise ValueError(
                f"{path}:{n} has {len(row)} tab-separated column(s), not 3; fix: write query-id<TAB>corpus-id<TAB>score"
            )
        try:
            score = int(float(row[2]))
        except ValueError:
            raise ValueError(
                f"{path}:{n} has the score '{row[2]}', not a number; fix: use integer grades"
            ) from None
        qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
    return qrels


def load_beir_folder(folder: str | Path, split: str = "test", name: str | None = None) -> BeirData:
    """Read a local BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv (kept whole: an evaluation
    corpus keeps its empty documents, as BEIR scores them)."""
    folder = Path(folder)
    for need in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / need).is_file():
            raise FileNotFoundError(
                f"BEIR folder '{folder}' lacks {need}; fix: use the BEIR layout (corpus.jsonl, queries.jsonl, qrels/{split}.tsv)"
            )
    corpus_file, queries_file = folder / "corpus.jsonl", folder / "queries.jsonl"
    corpus = {
        str(_require(r, "_id", f"{corpus_file}:{n}", "corpus row")): {
            "title": r.get("title") or "",
            "text": r.get("text") or "",
        }
        for n, r in read_jsonl(corpus_file, allow_empty=True)
    }
    queries = {
        str(_require(r, "_id", f"{queries_file}:{n}", "query")): str(
            _require(r, "text", f"{queries_file}:{n}", "query")
        )
        for n, r in read_jsonl(queries_file, allow_empty=True)
    }
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    return BeirData(name or folder.name, corpus, queries, qrels)
