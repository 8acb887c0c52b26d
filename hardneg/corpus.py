"""Load passages and BEIR-style evaluation sets.

- ``load_corpus``: passages as a ``datasets.Dataset`` with columns ``id``, ``title``, ``text`` from a
  BEIR folder (``corpus.jsonl``), a jsonl/parquet file, a Hub dataset id, or ``embedded:cranfield``.
- ``load_beir``: (corpus, queries, qrels) dicts in the beir contract
  (``corpus[doc_id] = {"title", "text"}``, ``queries[qid] = text``, ``qrels[qid][doc_id] = grade``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, load_dataset

from hardneg.assets import resolve_dataset
from hardneg.errors import first_line

CORPUS_COLUMNS = ("id", "title", "text")


def passage_text(title: str | None, text: str) -> str:
    """The text a model sees for a passage: the title (when it is not already the text's start) + text."""
    title = (title or "").strip()
    text = (text or "").strip()
    if title and not text.lower().startswith(title.lower()):
        return f"{title}. {text}" if text else title
    return text


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not valid UTF-8 ({err.reason} at byte {err.start}); fix: re-encode the file as UTF-8"
        ) from None
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}:{n} is not valid JSON ({err.msg}); fix: one JSON object per line"
                ) from None
    return rows


def _normalise(
    ds: Dataset, source: str, id_column: str | None, text_column: str, title_column: str | None
) -> Dataset:
    cols = set(ds.column_names)
    id_column = id_column or next((c for c in ("_id", "id", "doc_id", "docid") if c in cols), None)
    if text_column not in cols:
        raise ValueError(
            f"corpus '{source}' has no '{text_column}' column (columns: {sorted(cols)}); fix: set text_column"
        )
    if id_column is None:
        ds = ds.add_column("id", [str(i) for i in range(len(ds))])
        id_column = "id"
    title_column = title_column if title_column in cols else ("title" if "title" in cols else None)

    def convert(batch):
        n = len(batch[text_column])
        return {
            "id": [str(x) for x in batch[id_column]],
            "title": [t or "" for t in batch[title_column]] if title_column else [""] * n,
            "text": [t or "" for t in batch[text_column]],
        }

    ds = ds.map(convert, batched=True, remove_columns=ds.column_names).select_columns(list(CORPUS_COLUMNS))
    if len(ds) == 0:
        raise ValueError(f"corpus '{source}' is empty; fix: point at a corpus with passages")
    ids = ds["id"]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1) if len(ids) < 5000 else "?"
        raise ValueError(f"corpus '{source}' has duplicate ids (e.g. '{dup}'); fix: make passage ids unique")
    return ds


def load_corpus(
    source: str,
    *,
    split: str = "corpus",
    revision: str | None = None,
    id_column: str | None = None,
    text_column: str = "text",
    title_column: str | None = "title",
) -> Dataset:
    """Load passages as a Dataset(id, title, text).

    ``source`` is ``embedded:cranfield``, a BEIR folder, a ``.jsonl``/``.json``/``.parquet`` file, or a Hub
    dataset id (``BeIR/scifact`` uses its ``corpus`` config; others use ``split``), pinned by ``revision``.
    """
    path = Path(resolve_dataset(source))
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        ds = Dataset.from_list(_read_jsonl(path / "corpus.jsonl"))
    elif path.is_file():
        fmt = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
        if fmt is None:
            raise ValueError(f"cannot read corpus file '{path}'; fix: use .jsonl, .json or .parquet")
        ds = load_dataset(fmt, data_files=str(path), split="train")
    elif path.exists():
        raise ValueError(f"'{path}' is a folder without corpus.jsonl; fix: point at a BEIR folder or a file")
    else:
        try:
            if source.startswith("BeIR/") or source.startswith("mteb/"):
                ds = load_dataset(source, "corpus", revision=revision, split="corpus")
            else:
                ds = load_dataset(source, revision=revision, split=split)
        except Exception as err:  # datasets raises many types; one line is what the user needs
            raise ValueError(f"cannot load corpus '{source}': {first_line(err)}") from None
    return _normalise(ds, source, id_column, text_column, title_column)


@dataclass
class BeirData:
    """An evaluation set in the beir contract."""

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)


def load_beir_folder(folder: str | Path, split: str = "test", name: str | None = None) -> BeirData:
    """Read a local BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    folder = Path(folder)
    for need in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / need).is_file():
            raise FileNotFoundError(
                f"BEIR folder '{folder}' lacks {need}; fix: use the BEIR layout (corpus.jsonl, queries.jsonl, qrels/{split}.tsv)"
            )
    corpus = {
        str(r["_id"]): {"title": r.get("title") or "", "text": r.get("text") or ""}
        for r in _read_jsonl(folder / "corpus.jsonl")
    }
    queries = {str(r["_id"]): r["text"] for r in _read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        for row in reader:
            if not row or row[0] == "query-id":
                continue
            qid, did, score = row[0], row[1], int(float(row[2]))
            qrels.setdefault(str(qid), {})[str(did)] = score
    return BeirData(name or folder.name, corpus, queries, qrels)
