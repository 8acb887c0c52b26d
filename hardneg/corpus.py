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
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from datasets import Dataset, load_dataset

from hardneg.assets import resolve_dataset
from hardneg.errors import first_line
from hardneg.memory import drop_file_pages
from hardneg.methods import arrow_dataset, arrow_table
from hardneg.revisions import check_loaded, resolve_revision
from hardneg.text import blank_rows, is_blank

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


def passage_texts(corpus: Dataset, chunk: int = 100_000) -> pa.ChunkedArray:
    """``passage_text`` of every row of a corpus table, as an Arrow column built ``chunk`` rows at a time; a
    chunk whose passages are their text unchanged (no title to add, nothing to strip) is the text column's own
    slice, not a copy."""
    table = arrow_table(corpus, [c for c in ("title", "text") if c in corpus.column_names])
    texts = table.column("text")
    titles = table.column("title") if "title" in table.column_names else None
    parts = []
    for start in range(0, len(texts), chunk):
        part = texts.slice(start, chunk)
        plain = part.to_pylist()
        heads = titles.slice(start, chunk).to_pylist() if titles is not None else [None] * len(plain)
        shown = [passage_text(t, x) for t, x in zip(heads, plain, strict=True)]
        parts += part.chunks if shown == plain else [pa.array(shown, pa.string())]
        drop_file_pages(table.slice(start, chunk))  # read once here: not kept resident (hardneg.memory)
    return pa.chunked_array(parts, pa.string())


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
    if _SURROGATE_ESCAPE.search(text):  # a "\ud800" escape decodes to a lone surrogate, which no UTF-8 holds
        for n, row in numbered:
            try:
                json.dumps(row, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as err:
                raise ValueError(
                    f"{path}:{n} holds a lone UTF-16 surrogate ({err.object[err.start]!r}), not a character; "
                    "fix: remove it or write the pair it belongs to"
                ) from None
    return numbered


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass
class _Table:
    """A corpus form read as Arrow columns, with the place each row came from (``where(row)``: ``file:line``
    or ``... row N``, worked out only when a message needs it)."""

    source: str
    table: pa.Table
    where: Callable[[int], str]
    commit: str | None = None  # Hub commit actually loaded


def _rows_where(source: str) -> Callable[[int], str]:
    return lambda i: f"{source} row {i}"


def _jsonl_where(path: Path) -> Callable[[int], str]:
    """Row -> ``path:line`` of a JSON-lines file (blank lines hold no row); the file is scanned on first use."""
    lines: list[int] = []

    def where(i: int) -> str:
        if not lines:
            with open(path, "rb") as f:
                lines.extend(n for n, line in enumerate(f, 1) if line.strip())
        return f"{path}:{lines[i]}" if i < len(lines) else f"{path} row {i}"

    return where


# Arrow types a corpus column may be read as; anything else (lists, structs, floats, timestamps inferred from
# date-like strings) is read again row by row, which names the first bad row or keeps what Python reads.
_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_null)
_ID_TYPES = (*_TEXT_TYPES, pa.types.is_integer)


def untyped_column(table: pa.Table, wanted: Iterable[str]) -> str | None:
    """The first of the ``wanted`` columns present in ``table`` that is not text (ids: text or integers), or
    None: the one rule for what a corpus/queries column may be read as."""
    for name in wanted:
        if name in table.column_names:
            kind = table.schema.field(name).type
            if not any(ok(kind) for ok in (_ID_TYPES if name in ID_COLUMNS else _TEXT_TYPES)):
                return name
    return None


def _column_from_rows(numbered: list[tuple[int, dict]], name: str, path: Path) -> pa.Array:
    """One column of Python rows as strings: ids may be integers; anything else that is not a string is
    refused with its file and line (a list title would otherwise become the text "['a', 'b']")."""
    values = []
    for n, row in numbered:
        value = row.get(name)
        if isinstance(value, bool) or not (
            value is None or isinstance(value, str) or (name in ID_COLUMNS and isinstance(value, int))
        ):
            raise ValueError(
                f"{path}:{n}: '{name}' is not a string (a JSON {type(value).__name__}: {str(value)[:40]}); "
                f"fix: store every passage's '{name}' as a string"
            )
        values.append(None if value is None else str(value))
    return pa.array(values, pa.string())


def _arrow_json(path: Path, wanted: set[str]) -> pa.Table | None:
    """A JSON-lines file read by Arrow, or None when Arrow cannot read it. Arrow infers types: a text column
    whose values all look like dates becomes a timestamp, so the text columns found (not ids: they may be
    integers) are read again as strings with an explicit schema."""
    try:
        table = pa_json.read_json(path)
        inferred = [c for c in sorted(wanted - set(ID_COLUMNS)) if c in table.column_names]
        if untyped_column(table, inferred) is not None:
            schema = pa.schema([(c, pa.string()) for c in inferred])
            table = pa_json.read_json(path, parse_options=pa_json.ParseOptions(explicit_schema=schema))
        table.validate(full=True)  # Arrow's reader keeps bytes that are not UTF-8; Python names the line
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    return table


def _table_from_jsonl(path: Path, wanted: set[str]) -> _Table:
    """A JSON-lines corpus read by Arrow's multi-threaded reader (no Python object per row); a file it cannot
    read, or whose columns are not strings/integers, is read row by row, whose checks name the file and line."""
    with open(path, "rb") as f:
        head = f.read(64)
    if path.suffix == ".jsonl" or not head.lstrip().startswith(b"["):
        table = _arrow_json(path, wanted)
        if table is not None and table.num_rows and untyped_column(table, wanted) is None:
            return _Table(str(path), table, _jsonl_where(path))
    numbered = read_jsonl(path)
    names = list(dict.fromkeys(k for _, r in numbered for k in r)) or [""]  # "": no column at all
    table = pa.table(
        {c: _column_from_rows(numbered, c, path) if c in wanted else pa.nulls(len(numbered)) for c in names}
    )
    lines = [n for n, _ in numbered]
    return _Table(str(path), table, lambda i: f"{path}:{lines[i]}")


def _read_parquet(path: Path) -> _Table:
    try:
        table = pq.read_table(str(path))
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        raise ValueError(
            f"{path} is not a readable parquet file ({first_line(err)}); fix: rewrite it with pandas/pyarrow"
        ) from None
    if table.num_rows == 0:
        raise ValueError(f"{path} is empty; fix: point at a corpus with passages")
    return _Table(str(path), table, _rows_where(str(path)))


def _load_hub_table(source: str, split: str, revision: str | None) -> _Table:
    pinned = resolve_revision(source, revision)  # a missing revision says so
    try:
        if source.startswith("BeIR/") or source.startswith("mteb/"):
            ds = load_dataset(source, "corpus", revision=revision, split="corpus")
        else:
            ds = load_dataset(source, revision=revision, split=split)
    except Exception as err:  # datasets raises many types; one line is what the user needs
        raise ValueError(f"cannot load corpus '{source}': {first_line(err)}") from None
    table = _Table(
        source, ds.flatten_indices().data.table if ds._indices else ds.data.table, _rows_where(source)
    )
    table.commit = check_loaded(ds, source, revision, pinned)
    return table


def local_corpus_file(source: str) -> Path | None:
    """The file a local corpus is read from (a BEIR folder's ``corpus.jsonl``, or the file itself; the embedded
    set is a BEIR folder shipped with hardneg); None for a Hub dataset."""
    path = Path(resolve_dataset(source))
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        return path / "corpus.jsonl"
    return path if path.is_file() else None


def _read_table(source: str, split: str, revision: str | None, wanted: set[str]) -> _Table:
    """The one reader behind every corpus form (``wanted``: the columns that are read as strings)."""
    path = Path(resolve_dataset(source))
    file = local_corpus_file(source)
    if file is not None:
        if file.suffix in (".jsonl", ".json"):
            return _table_from_jsonl(file, wanted)
        if file.suffix == ".parquet":
            return _read_parquet(file)
        raise ValueError(f"cannot read corpus file '{file}'; fix: use .jsonl, .json or .parquet")
    if path.exists():
        raise ValueError(f"'{path}' is a folder without corpus.jsonl; fix: point at a BEIR folder or a file")
    return _load_hub_table(source, split, revision)


def check_passages(
    ids: pa.Array, texts: pa.Array, where: Callable[[int], str], source: str, empty_passages: str = "drop"
) -> np.ndarray:
    """Indices of the usable passages; texts that show nothing (empty, white space or invisible characters
    only, or missing: ``hardneg.text.blank_rows``) are dropped (logged with a count and the first ids) or
    refused (``empty_passages="error"``)."""
    if empty_passages not in EMPTY_PASSAGES:
        raise ValueError(f"empty_passages '{empty_passages}' is not drop or error; fix: use drop or error")
    empty = blank_rows(texts)
    if not len(empty):
        return np.arange(len(ids))
    first = ", ".join(f"'{ids[int(i)].as_py()}' ({where(int(i))})" for i in empty[:SHOW_IDS])
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
    keep = np.ones(len(ids), dtype=bool)
    keep[empty] = False
    return np.flatnonzero(keep)


def _string_column(table: _Table, name: str, *, integers: bool = False) -> pa.ChunkedArray:
    """A column as strings (ids may be integers); any other type is refused naming its first row."""
    column = table.table.column(name)
    kind = column.type
    if pa.types.is_null(kind) or column.null_count == len(column):  # all null, whatever its type
        return pa.chunked_array([pa.nulls(len(column), pa.string())])
    if integers and pa.types.is_integer(kind):
        return pc.cast(column, pa.string())
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        row = int(np.flatnonzero(pc.is_valid(column).to_numpy(zero_copy_only=False))[0])
        raise ValueError(
            f"{table.where(row)}: '{name}' is not a string (Arrow type {kind}); fix: store every passage's "
            f"'{name}' as a string"
        )
    return column


def check_unique_ids(
    ids: Dataset | pa.Array | pa.ChunkedArray | list,
    what: str,
    column: str = "id",
    fix: str = "make ids unique",
) -> None:
    """Refuse ids with a duplicate, naming the first: a list, an Arrow column, or a table's ``column``
    (vectorised: one pass over the Arrow column, no Python object per row). The one duplicate-id check of the
    corpus reader and of generation."""
    if isinstance(ids, Dataset):
        ids = ids.data.column(column) if ids._indices is None else pa.array(ids[column][:])
    elif not isinstance(ids, (pa.Array, pa.ChunkedArray)):
        ids = pa.array(ids)
    if pc.count_distinct(ids).as_py() != len(ids):
        counts = pc.value_counts(ids)
        dup = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))[0].as_py()
        raise ValueError(f"{what} has duplicate ids (e.g. '{dup}'); fix: {fix}")


def _normalise(
    table: _Table,
    id_column: str | None,
    text_column: str,
    title_column: str | None,
    empty_passages: str,
    report: dict | None,
) -> Dataset:
    source, t = table.source, table.table
    if t.num_rows == 0:
        raise ValueError(f"corpus '{source}' is empty; fix: point at a corpus with passages")
    cols = [c for c in t.column_names if c]
    if text_column not in cols:
        raise ValueError(
            f"corpus '{source}' has no '{text_column}' column (columns: {sorted(cols)}); fix: set text_column"
        )
    id_column = id_column or next((c for c in ID_COLUMNS if c in cols), None)
    if id_column is None:  # no ids at all: number the rows
        ids = pa.chunked_array([pa.array(np.arange(t.num_rows).astype(str))])
    else:
        if id_column not in cols:
            raise ValueError(f"corpus '{source}' has no '{id_column}' column; fix: set id_column")
        ids = _string_column(table, id_column, integers=True)
        missing = np.flatnonzero(~pc.fill_null(pc.not_equal(ids, ""), False).to_numpy(zero_copy_only=False))
        if len(missing):
            raise ValueError(
                f"{table.where(int(missing[0]))} has no '{id_column}'; fix: give every passage an id (or none of them)"
            )
        check_unique_ids(ids, f"corpus '{source}'", fix="make passage ids unique")
    texts = _string_column(table, text_column)
    title_column = title_column if title_column in cols else ("title" if "title" in cols else None)
    n = t.num_rows
    titles = (
        pc.fill_null(_string_column(table, title_column), "")
        if title_column
        else pa.chunked_array([pa.array([""] * n, pa.string())])
    )
    keep = check_passages(ids, texts, table.where, source, empty_passages)
    if report is not None:
        dropped = np.setdiff1d(np.arange(n), keep)
        report.update(
            passages_read=n,
            empty_dropped=len(dropped),
            empty_ids=[ids[int(i)].as_py() for i in dropped[:SHOW_IDS]],
            commit=table.commit,
        )
    if not len(keep):
        raise ValueError(f"corpus '{source}' has no passage with text; fix: point at a corpus with passages")
    out = pa.table({"id": ids, "title": titles, "text": texts})
    if len(keep) < n:
        out = out.take(pa.array(keep))
    return arrow_dataset(out.cast(pa.schema([(c, pa.string()) for c in CORPUS_COLUMNS])))


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
    wanted = {text_column, title_column or "title", *((id_column,) if id_column else ID_COLUMNS)}
    table = _read_table(source, split, revision, wanted)
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


def _text_field(row: dict, key: str, where: str, what: str) -> str:
    """A text field of an evaluation row: a string (or missing: empty); invisible-only text is empty."""
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(
            f"{where}: the {what}'s '{key}' is not a string (a JSON {type(value).__name__}: {str(value)[:40]}); "
            f"fix: store every '{key}' as a string"
        )
    return "" if is_blank(value) else value


def _row_id(row: dict, where: str, what: str) -> str:
    value = _require(row, "_id", where, what)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(
            f"{where}: the {what}'s '_id' is a JSON {type(value).__name__}, not a string; fix: use string ids"
        )
    return str(value)


def query_text(row: dict, where: str) -> str:
    """An evaluation query's text (BEIR folder and Hub loaders): a string that shows something, else one line."""
    _require(row, "text", where, "query")
    text = _text_field(row, "text", where, "query")
    if not text:
        raise ValueError(
            f"{where}: the query's text is empty or invisible; fix: write the query or remove it"
        )
    return text


def unique_rows(pairs: Iterable[tuple[str, Any, str]], what: str, fix: str) -> dict[str, Any]:
    """``{id: value}`` from ``(id, value, where)``; a repeated id is refused naming both places (a dict would
    keep the last one silently)."""
    out: dict[str, Any] = {}
    first: dict[str, str] = {}
    for key, value, where in pairs:
        if key in out:
            raise ValueError(f"{where}: {what} id '{key}' repeats the one at {first[key]}; fix: {fix}")
        out[key] = value
        first[key] = where
    return out


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


def _beir_corpus_arrow(path: Path) -> dict[str, dict[str, str]] | None:
    """A BEIR ``corpus.jsonl`` read as Arrow columns (no Python object per JSON row), or None when the file
    needs the row-by-row reader's checks: Arrow cannot read it, a column is not text, an id is missing or
    repeated."""
    table = _arrow_json(path, {"_id", "title", "text"})
    if table is None or not table.num_rows or "_id" not in table.column_names:
        return None
    if untyped_column(table, ("_id", "title", "text")) is not None or table.column("_id").null_count:
        return None
    ids = pc.cast(table.column("_id"), pa.string())
    if pc.count_distinct(ids).as_py() != len(ids):
        return None

    def shown(name: str) -> list[str]:  # a missing or blank field is "" (``_text_field``)
        if name not in table.column_names:
            return [""] * table.num_rows
        column = pc.cast(table.column(name), pa.string())
        values = column.to_pylist()
        for i in blank_rows(column).tolist():
            values[i] = ""
        return values

    return {
        i: {"title": t, "text": x}
        for i, t, x in zip(ids.to_pylist(), shown("title"), shown("text"), strict=True)
    }


def _beir_corpus_rows(path: Path) -> dict[str, dict[str, str]]:
    return unique_rows(
        (
            (
                _row_id(r, f"{path}:{n}", "corpus row"),
                {
                    "title": _text_field(r, "title", f"{path}:{n}", "corpus row"),
                    "text": _text_field(r, "text", f"{path}:{n}", "corpus row"),
                },
                f"{path}:{n}",
            )
            for n, r in read_jsonl(path, allow_empty=True)
        ),
        "document",
        "give every document its own id",
    )


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
    corpus = _beir_corpus_arrow(corpus_file)
    if corpus is None:  # a file Arrow cannot read cleanly: row by row, naming the first bad line
        corpus = _beir_corpus_rows(corpus_file)
    queries = unique_rows(
        (
            (
                _row_id(r, f"{queries_file}:{n}", "query"),
                query_text(r, f"{queries_file}:{n}"),
                f"{queries_file}:{n}",
            )
            for n, r in read_jsonl(queries_file, allow_empty=True)
        ),
        "query",
        "give every query its own id",
    )
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    return BeirData(name or folder.name, corpus, queries, qrels)
