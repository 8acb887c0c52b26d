"""Evaluation sets in the beir contract from every place they live.

``load_eval_dataset(spec)`` returns ``hardneg.corpus.BeirData`` for

- ``embedded:cranfield`` or a local BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv): read by
  ``hardneg.corpus.load_beir_folder``; any other local folder is read as a Hub repo (below);
- a BEIR name from the paper (``scifact``, ``nfcorpus``, ``fiqa``, ``arguana``, ``scidocs``, ``trec-covid``,
  ...): the MTEB copy on the Hub, ``mteb/<name>``;
- a Hub repo (or a local folder laid out like one) in either layout:
  ``BeIR/<name>``: configs ``corpus`` and ``queries`` (splits of the same names), judgements in the sibling
  repo ``BeIR/<name>-qrels`` (splits train/dev/test; columns query-id, corpus-id, score);
  ``mteb/<name>``: configs ``corpus``, ``queries`` and ``default`` (judgements, one split per split name).

Pin a Hub dataset with ``name@revision`` (a commit hash or tag), e.g. ``mteb/scifact@0228b52c``. The name is
resolved once (``hardneg.references.resolve_dataset_ref``: kind, location, commit) and the ``DatasetRef`` is
what this module reads; the loaded copy must be the ref's pinned commit (``hardneg.revisions.check_loaded``).
"""

from __future__ import annotations

from pathlib import Path

from hardneg.corpus import BeirData, load_beir_folder, query_text, unique_rows, untyped_column
from hardneg.errors import first_line
from hardneg.references import BEIR_NAMES, DatasetRef, DatasetSpec, resolve_dataset_ref
from hardneg.revisions import check_loaded
from hardneg.text import is_blank


def _id_column(ds) -> str:
    id_col = next((c for c in ("_id", "id") if c in ds.column_names), None)
    if id_col is None:
        raise ValueError(f"table with columns {ds.column_names} has no id column; fix: name it _id or id")
    return id_col


def _read_hub_tables(ref: DatasetRef, src: str):
    """(corpus, queries, judgements, the judgements' repo) as ``datasets`` tables, each error one line."""
    from datasets import get_dataset_config_names, load_dataset

    rev, split = ref.revision, ref.split
    try:
        configs = set(get_dataset_config_names(src, revision=rev))
    except Exception as err:  # datasets raises many types; the user needs one line
        raise ValueError(
            f"cannot load dataset '{src}': {first_line(err)}; "
            f"fix: use a BEIR name ({', '.join(BEIR_NAMES)}), a local BEIR folder, or a Hub id in the "
            "BeIR/<name> or mteb/<name> layout (and check HF_HUB_OFFLINE / network)"
        ) from None
    if not {"corpus", "queries"} <= configs:
        raise ValueError(
            f"dataset '{src}' has configs {sorted(configs)}, not the BEIR/MTEB layout (corpus, queries); "
            "fix: point at a BeIR/<name> or mteb/<name> repo or a BEIR folder"
        )
    try:
        corpus_ds = load_dataset(src, "corpus", split="corpus", revision=rev)
        queries_ds = load_dataset(src, "queries", split="queries", revision=rev)
        if "default" in configs:  # mteb layout
            qrels_src, qrels_ds = src, load_dataset(src, "default", split=split, revision=rev)
        else:  # BeIR layout: judgements in the sibling <repo>-qrels (main branch unless the folder is local)
            qrels_src = src.rstrip("/") + "-qrels"
            qrels_ds = load_dataset(qrels_src, split=split)
    except ValueError as err:
        raise ValueError(
            f"dataset '{src}' has no judgement split '{split}' ({first_line(err)}); "
            "fix: set split to one the dataset has (usually test; dev for msmarco)"
        ) from None
    except Exception as err:
        cause = err.__cause__ or err
        raise ValueError(f"cannot load dataset '{src}': {first_line(cause)}") from None
    return corpus_ds, queries_ds, qrels_ds, qrels_src


def _check_text_columns(src: str, corpus_ds, queries_ds) -> None:
    """Ids, titles and texts must be strings (ids may be integers): ``hardneg.corpus.untyped_column``."""
    for table, columns in ((corpus_ds, ("_id", "id", "title", "text")), (queries_ds, ("_id", "id", "text"))):
        column = untyped_column(table.data.table, columns)
        if column is not None:
            raise ValueError(
                f"dataset '{src}': the '{column}' column is {table.features[column]}, not text; fix: point at a "
                "BEIR/MTEB layout whose ids, titles and texts are strings"
            )


def _hub_corpus(src: str, corpus_ds) -> dict[str, dict[str, str]]:
    cid = _id_column(corpus_ds)
    titles = corpus_ds["title"] if "title" in corpus_ds.column_names else [""] * len(corpus_ds)
    rows = zip(corpus_ds[cid], titles, corpus_ds["text"], strict=True)
    return unique_rows(
        (
            (
                str(i),
                {"title": "" if is_blank(t) else t, "text": "" if is_blank(x) else x},
                f"{src} corpus row {n}",
            )
            for n, (i, t, x) in enumerate(rows)
        ),
        "document",
        "give every document its own id",
    )


def _hub_queries(src: str, queries_ds) -> dict[str, str]:
    qid = _id_column(queries_ds)
    return unique_rows(
        (
            (str(i), query_text({"text": x}, f"{src} queries row {n}"), f"{src} queries row {n}")
            for n, (i, x) in enumerate(zip(queries_ds[qid], queries_ds["text"], strict=True))
        ),
        "query",
        "give every query its own id",
    )


def _hub_qrels(qrels_src: str, split: str, qrels_ds) -> dict[str, dict[str, int]]:
    need = {"query-id", "corpus-id", "score"}
    if not need <= set(qrels_ds.column_names):
        raise ValueError(
            f"judgements in '{qrels_src}' lack columns {sorted(need - set(qrels_ds.column_names))}"
        )
    qrels: dict[str, dict[str, int]] = {}
    for row, (q, d, s) in enumerate(
        zip(qrels_ds["query-id"], qrels_ds["corpus-id"], qrels_ds["score"], strict=True)
    ):
        try:
            qrels.setdefault(str(q), {})[str(d)] = int(float(s))
        except (TypeError, ValueError):
            raise ValueError(
                f"judgements in '{qrels_src}' split '{split}' row {row} have the score {s!r}, not a number; "
                "fix: use integer grades"
            ) from None
    return qrels


def _load_hub(ref: DatasetRef) -> BeirData:
    """A Hub repo (or a local folder laid out like one) in the BeIR or mteb layout, checked against the
    ref's pinned commit."""
    src, rev = ref.location, ref.revision
    corpus_ds, queries_ds, qrels_ds, qrels_src = _read_hub_tables(ref, src)
    commit = check_loaded(corpus_ds, src, rev, ref.pinned_commit)
    check_loaded(queries_ds, src, rev, ref.pinned_commit)
    _check_text_columns(src, corpus_ds, queries_ds)
    return BeirData(
        Path(src.rstrip("/")).name,
        _hub_corpus(src, corpus_ds),
        _hub_queries(src, queries_ds),
        _hub_qrels(qrels_src, ref.split, qrels_ds),
        notes=[f"{src}@{rev or 'main'}" + (f" (commit {commit})" if commit else "") + f" split {ref.split}"],
    )


def load_eval_dataset(spec: str | dict | DatasetSpec | DatasetRef, split: str = "test") -> BeirData:
    """Load one evaluation set (see the module docstring for what ``spec`` may be); a ``DatasetRef``
    (``hardneg.references.resolve_dataset_ref``) is read as resolved, anything else is resolved first."""
    ref = spec if isinstance(spec, DatasetRef) else resolve_dataset_ref(spec, split)
    if ref.kind == "beir_folder":
        data = load_beir_folder(ref.location, ref.split, name=ref.name)
    else:
        data = _load_hub(ref)
    if not data.corpus:
        raise ValueError(f"dataset '{ref.source}' has an empty corpus; fix: check the corpus file or config")
    if not data.queries:
        raise ValueError(f"dataset '{ref.source}' has no queries; fix: check the queries file or config")
    if not data.qrels:
        raise ValueError(
            f"dataset '{ref.source}' has no judgements in split '{ref.split}'; fix: choose the split with qrels"
        )
    return data
