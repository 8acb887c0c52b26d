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

Pin a Hub dataset with ``name@revision`` (a commit hash or tag), e.g. ``mteb/scifact@0228b52c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hardneg.assets import resolve_dataset
from hardneg.corpus import BeirData, load_beir_folder, unique_rows
from hardneg.errors import first_line
from hardneg.revisions import check_loaded, resolve_revision
from hardneg.text import is_blank

# The public BEIR sets (Thakur et al., 2021) and their MTEB copies on the Hub.
BEIR_NAMES = (
    "arguana",
    "climate-fever",
    "cqadupstack",
    "dbpedia-entity",
    "fever",
    "fiqa",
    "hotpotqa",
    "msmarco",
    "nfcorpus",
    "nq",
    "quora",
    "scidocs",
    "scifact",
    "trec-covid",
    "webis-touche2020",
)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset reference: ``source`` (name, folder or Hub id), optional ``revision``, judgement ``split``."""

    source: str
    revision: str | None = None
    split: str = "test"

    @classmethod
    def parse(cls, spec: str | dict, split: str = "test") -> DatasetSpec:
        """``"mteb/scifact@abc123"`` or ``{"name": ..., "revision": ..., "split": ...}``."""
        if isinstance(spec, dict):
            unknown = set(spec) - {"name", "revision", "split"}
            if unknown or "name" not in spec:
                raise ValueError(f"dataset entry {spec} needs 'name' and may have 'revision', 'split' only")
            return cls(str(spec["name"]), spec.get("revision"), spec.get("split") or split)
        source, _, revision = str(spec).partition("@")
        if not source:
            raise ValueError(f"empty dataset name in '{spec}'; fix: use a BEIR name, folder or Hub id")
        return cls(source, revision or None, split)

    @property
    def name(self) -> str:
        """A short readable name: ``mteb/scifact`` -> ``scifact``, a folder -> its name."""
        if self.source.startswith("embedded:"):
            return self.source.split(":", 1)[1]
        return Path(self.source.rstrip("/")).name


def _id_column(ds) -> str:
    id_col = next((c for c in ("_id", "id") if c in ds.column_names), None)
    if id_col is None:
        raise ValueError(f"table with columns {ds.column_names} has no id column; fix: name it _id or id")
    return id_col


def _load_hub(spec: DatasetSpec) -> BeirData:
    from datasets import get_dataset_config_names, load_dataset

    src, rev = spec.source, spec.revision
    pinned = None if Path(src).exists() else resolve_revision(src, rev)  # a missing revision says so
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
            qrels_src, qrels_ds = src, load_dataset(src, "default", split=spec.split, revision=rev)
        else:  # BeIR layout: judgements in the sibling <repo>-qrels (main branch unless the folder is local)
            qrels_src = src.rstrip("/") + "-qrels"
            qrels_ds = load_dataset(qrels_src, split=spec.split)
    except ValueError as err:
        raise ValueError(
            f"dataset '{src}' has no judgement split '{spec.split}' ({first_line(err)}); "
            "fix: set split to one the dataset has (usually test; dev for msmarco)"
        ) from None
    except Exception as err:
        cause = err.__cause__ or err
        raise ValueError(f"cannot load dataset '{src}': {first_line(cause)}") from None

    commit = check_loaded(corpus_ds, src, rev, pinned)
    check_loaded(queries_ds, src, rev, pinned)
    cid = _id_column(corpus_ds)
    for table, columns in ((corpus_ds, ("title", "text")), (queries_ds, ("text",))):
        for column in (c for c in columns if c in table.column_names):
            kind = table.features[column]
            if getattr(kind, "dtype", None) not in ("string", "large_string", "null"):
                raise ValueError(
                    f"dataset '{src}': the '{column}' column is {kind}, not text; fix: point at a BEIR/MTEB "
                    "layout whose titles and texts are strings"
                )
    corpus = unique_rows(
        (
            (
                str(i),
                {"title": "" if is_blank(t) else t, "text": "" if is_blank(x) else x},
                f"{src} corpus row {n}",
            )
            for n, (i, t, x) in enumerate(
                zip(
                    corpus_ds[cid],
                    corpus_ds["title"] if "title" in corpus_ds.column_names else [""] * len(corpus_ds),
                    corpus_ds["text"],
                    strict=True,
                )
            )
        ),
        "document",
        "give every document its own id",
    )
    qid = _id_column(queries_ds)
    queries = unique_rows(
        (
            (str(i), x, f"{src} queries row {n}")
            for n, (i, x) in enumerate(zip(queries_ds[qid], queries_ds["text"], strict=True))
        ),
        "query",
        "give every query its own id",
    )
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
                f"judgements in '{qrels_src}' split '{spec.split}' row {row} have the score {s!r}, not a number; "
                "fix: use integer grades"
            ) from None
    return BeirData(
        spec.name,
        corpus,
        queries,
        qrels,
        notes=[f"{src}@{rev or 'main'}" + (f" (commit {commit})" if commit else "") + f" split {spec.split}"],
    )


def check_dataset_name(spec: DatasetSpec) -> None:
    """Raise the unknown-dataset error now for a name that is no folder, Hub id or BEIR name."""
    source = resolve_dataset(spec.source)
    if not (Path(source).exists() or "/" in source or source.lower() in BEIR_NAMES):
        raise ValueError(
            f"unknown dataset '{spec.source}'; fix: use a BEIR name ({', '.join(BEIR_NAMES)}), "
            "embedded:cranfield, a local BEIR folder or a Hub id such as mteb/scifact"
        )


def load_eval_dataset(spec: str | dict | DatasetSpec, split: str = "test") -> BeirData:
    """Load one evaluation set (see the module docstring for what ``spec`` may be)."""
    spec = spec if isinstance(spec, DatasetSpec) else DatasetSpec.parse(spec, split)
    source = resolve_dataset(spec.source)
    path = Path(source)
    if path.is_dir() and (path / "corpus.jsonl").is_file() and any((path / "qrels").glob("*.tsv")):
        data = load_beir_folder(path, spec.split, name=spec.name)
    elif path.is_dir() or "/" in source:
        data = _load_hub(DatasetSpec(source, spec.revision, spec.split))
    else:
        check_dataset_name(spec)
        data = _load_hub(DatasetSpec(f"mteb/{source.lower()}", spec.revision, spec.split))
    if not data.corpus:
        raise ValueError(f"dataset '{spec.source}' has an empty corpus; fix: check the corpus file or config")
    if not data.queries:
        raise ValueError(f"dataset '{spec.source}' has no queries; fix: check the queries file or config")
    if not data.qrels:
        raise ValueError(
            f"dataset '{spec.source}' has no judgements in split '{spec.split}'; fix: choose the split with qrels"
        )
    return data
