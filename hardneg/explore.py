"""The explorer: one self-contained static HTML file to read a build (and a run's retrievals) side by side.

    write_explorer("runs/demo/dataset", "runs/demo/explore.html", run_dir="runs/demo")

What it shows (nothing is recomputed; everything comes from what the build and the evaluation wrote):

- per generated query: the positive and every method's negative(s) side by side, with the row's
  mining rank (BM25 / dense / cross-encoder window rank, ``negative_rank``), the method's own scores of
  negative vs positive (``negative_score`` / ``positive_score``, named by the config's ``score_name``), the
  suspected-false-negative flag (from ``false_negative_detail.suspected_rows`` in ``build_stats.json``, or for
  a method whose own scores come from the false-negative scorer, ``negative_score >= positive_score``), and
  the generator outputs that were rejected and why (``<run>/cache/rejects/<method>.jsonl``, when the dataset
  folder sits in its run folder or ``rejects_dir`` is given);
- with ``run_dir``: per evaluation query, each model's top-10 (from the gzip TREC run file named by each
  result's ``run_file``) with relevance marks from the evaluation set's qrels, the per-query metric, and the
  queries where two models (or all models) disagree most.

The page has no server, no CDN and no network access: the data is one gzip-compressed, base64 JSON
document (columns of integers into one string table) inflated by the browser's ``DecompressionStream``;
only the current page of rows is rendered, so 100k queries stay usable (docs/explore.md has the figures).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardneg.beir import load_eval_dataset
from hardneg.config import ConfigError
from hardneg.corpus import passage_text
from hardneg.dataset_folder import load_build_tables
from hardneg.diagnose.record import Diagnostics
from hardneg.errors import first_line
from hardneg.methods import QUERIES_CONFIG, table_blocks
from hardneg.metrics import read_run_file, trec_order
from hardneg.options import check_fields
from hardneg.records import (
    FALSE_NEGATIVE_SCORES_FILE,
    BuildStats,
    ConfigStats,
    EvalResult,
    FalseNegativeScores,
)
from hardneg.report.analysis import load_results

logger = logging.getLogger(__name__)

TEMPLATE = Path(__file__).with_name("explore.html")
DATA_MARKER = "__HARDNEG_EXPLORER_DATA__"
TOP_N = 10
# Queries a page shows by default (a seeded sample of a larger build): 100k queries of a 5-config build made a
# 45.6 MB page (docs/explore.md), so 20k stay well under 50 MB with room for longer passages or more configs.
SAMPLE_QUERIES = 20_000
DOC_CHARS = 400  # evaluation passages are shown cut to this many characters


@dataclass
class ExploreConfig:
    """What to show and where to write it."""

    # --run_dir is read, not written: the only output is the HTML file (config.preflight checks its folder).
    OUTPUT_FIELDS: ClassVar[tuple[str, ...]] = ()
    OUTPUT_FILES: ClassVar[tuple[str, ...]] = ("output",)
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("dataset", "run_dir", "rejects_dir")

    dataset: str = field(
        default="runs/demo/dataset", metadata={"help": "The build's dataset folder or its Hub id."}
    )
    output: str = field(default="runs/demo/explore.html", metadata={"help": "The HTML file to write."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset."})
    run_dir: str | None = field(
        default=None,
        metadata={"help": "Run folder with results/*.json and their .trec.gz run files (top-10 per model)."},
    )
    rejects_dir: str | None = field(
        default=None,
        metadata={"help": "The build's cache/rejects folder (default: beside a local dataset folder)."},
    )
    metric: str | None = field(
        default=None, metadata={"help": "Per-query metric shown and ranked by (default nDCG@10)."}
    )
    eval_data: str | None = field(
        default=None,
        metadata={
            "help": "Evaluation set for query texts, passages and qrels (default: the results' source)."
        },
    )
    sample_queries: int = field(
        default=SAMPLE_QUERIES,
        metadata={
            "help": "Show a seeded sample of this many generated queries of a larger build (the page of a 1M "
            "build would be ~400 MB); 0 = all."
        },
    )

    def __post_init__(self) -> None:
        if self.sample_queries < 0:
            raise ConfigError(
                f"--sample_queries {self.sample_queries} is negative; fix: give a number of queries, or 0 for all"
            )
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)


class StringTable:
    """Each distinct string stored once; rows refer to it by index (-1 = missing)."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, text: Any) -> int:
        if text is None:
            return -1
        text = str(text)
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.strings)
            self.strings.append(text)
        return i


def _round(x: Any, digits: int = 4) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, digits)


def _load_configs(
    dataset: str, revision: str | None, sample_queries: int = 0, seed: int = 0
) -> tuple[dict[str, Any], BuildStats, Path | None, dict[str, np.ndarray], dict[str, int]]:
    """Every config's train split as column lists (of the sampled queries' rows), the build statistics, the
    local folder (if any), each sampled config's original row numbers and each config's number of rows."""
    tables, build_stats, folder = load_build_tables(dataset, revision)
    index = _sample_rows(tables, sample_queries, seed)
    configs = {name: _columns(table, index.get(name)) for name, table in tables.items()}
    sizes = {name: len(table) for name, table in tables.items()}
    return configs, BuildStats.from_dict(build_stats), folder, index, sizes


GATHER_ROWS = 5000  # rows of a config gathered at once for the page


def _columns(table, rows: np.ndarray | None) -> dict[str, list]:
    """A config's columns as lists (of ``rows`` only, when given), gathered ``GATHER_ROWS`` rows at a time,
    the file pages read for each block dropped before the next (``hardneg.methods.table_blocks``): a sample's
    rows lie all over a memory-mapped table, and each row read maps its neighbours' pages too (the kernel's
    fault-around)."""
    ds = table.select(rows) if rows is not None else table
    out: dict[str, list] = {name: [] for name in ds.column_names}
    for block in table_blocks(ds, GATHER_ROWS):
        for name, values in block.to_pydict().items():
            out[name].extend(values)
    return out


def _sample_rows(tables: dict[str, Any], sample_queries: int, seed: int) -> dict[str, np.ndarray]:
    """Row indices of a seeded sample of ``sample_queries`` queries and of every config's rows for them (none
    when the build has no more queries than that): a build of millions gives a page of tens of MB."""
    queries = tables.get(QUERIES_CONFIG)
    if queries is None or not sample_queries or len(queries) <= sample_queries:
        return {}
    rng = np.random.default_rng(seed)
    index = {QUERIES_CONFIG: np.sort(rng.choice(len(queries), size=sample_queries, replace=False))}
    chosen = pc.take(queries.data.column("query_id"), pa.array(index[QUERIES_CONFIG]))
    for name, table in tables.items():
        if name != QUERIES_CONFIG and "query_id" in table.column_names:
            inside = pc.is_in(table.data.column("query_id"), value_set=chosen)
            index[name] = np.flatnonzero(inside.to_numpy(zero_copy_only=False))
    return index


def _read_rejects(rejects_dir: Path | None) -> dict[str, list[dict]]:
    if rejects_dir is None or not rejects_dir.is_dir():
        return {}
    out = {}
    for path in sorted(rejects_dir.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            out[path.stem] = [json.loads(line) for line in f if line.strip()]
    return out


def _flags(cols: dict[str, list], stats: ConfigStats, index: np.ndarray | None = None) -> list[int]:
    """Per row 1 when the false-negative scorer rated the negative at or above the positive (``index``: the
    rows' numbers in the whole config, when they are a sample)."""
    n = len(cols.get("anchor", []))
    flags = [0] * n
    rows = (stats.false_negative_detail or {}).get("suspected_rows")
    if rows is not None:
        suspected = set(rows)
        numbers = range(n) if index is None else index.tolist()
        return [int(r in suspected) for r in numbers]
    own = stats.get("params", {}).get("scorer")
    if own and own == stats.false_negative_scorer:  # the method's own scores are the estimate
        for i, (p, s) in enumerate(zip(cols["positive_score"], cols["negative_score"], strict=True)):
            if p is not None and s is not None and s >= p:
                flags[i] = 1
    return flags


def _fn_scores(
    published: FalseNegativeScores, name: str, stats: ConfigStats, size: int, index: np.ndarray | None
) -> tuple[list, list]:
    """The build's false-negative scorer's (positive, negative) score of each shown row, from the scores the
    build published (``false_negative_scores.json``); none when the method's own scores are that estimate."""
    if stats.false_negative_scorer in (None, stats.get("params", {}).get("scorer")):
        return [], []
    scores = published.rows(name, stats.false_negative_scorer, size)
    if scores is None:
        return [], []
    numbers = range(size) if index is None else index.tolist()
    return [_round(scores.positive[r]) for r in numbers], [_round(scores.negative[r]) for r in numbers]


def diagnostics_columns(
    diag: Diagnostics | None, name: str, keep: list[int], index: np.ndarray | None
) -> dict[str, Any]:
    """Per shown row of a config, its hardness (the target encoder's ``s(q, n) - s(q, p)``) and the source
    probe's out-of-fold P(LLM-written) from ``diagnostics.json`` (None for rows the diagnosis did not sample);
    ``index``: the shown rows' row numbers in the config when the page samples queries."""
    config = diag.configs.get(name) if diag else None
    if config is None or not config.per_row.get("index"):
        return {"hard": [], "probe": [], "probe_auc": None, "eci": None}
    at = {int(i): k for k, i in enumerate(config.per_row["index"])}
    rows = [int(index[i]) if index is not None else i for i in keep]
    margin, probe = config.per_row.get("margin", []), config.per_row.get("probe", [])
    return {
        "hard": [margin[at[r]] if r in at else None for r in rows],
        "probe": [probe[at[r]] if r in at and probe else None for r in rows],
        "probe_auc": config.probe.get("auc"),
        "eci": config.eci.get("eci"),
    }


def build_payload(
    dataset: str,
    *,
    revision: str | None = None,
    run_dir: str | Path | None = None,
    rejects_dir: str | Path | None = None,
    metric: str | None = None,
    eval_data: str | None = None,
    sample_queries: int = SAMPLE_QUERIES,
    seed: int = 0,
) -> dict[str, Any]:
    """The explorer's data: a string table and integer/float columns (see the module docstring); of a seeded
    sample of ``sample_queries`` queries (0 = all) and their rows in every config."""
    configs, build_stats, folder, index, sizes = _load_configs(dataset, revision, sample_queries, seed)
    if "queries" not in configs:
        raise ValueError(f"'{dataset}' has no 'queries' config; fix: point at a hardneg build's dataset")
    st = StringTable()
    q = configs["queries"]
    qrow = {str(qid): i for i, qid in enumerate(q["query_id"])}
    queries = {
        "id": [st.add(x) for x in q["query_id"]],
        "text": [st.add(x) for x in q["query"]],
        "pos": [st.add(x) for x in q["positive"]],
        "pos_id": [st.add(x) for x in q["positive_id"]],
    }
    run = folder.parent if folder is not None else None
    diag = Diagnostics.find(run_dir, run)
    published = (
        FalseNegativeScores.from_disk(run / FALSE_NEGATIVE_SCORES_FILE) if run else FalseNegativeScores()
    )
    methods = {}
    for name, cols in configs.items():
        if name == "queries" or "negative" not in cols:
            continue
        stats = build_stats.config(name)
        fn_scores = _fn_scores(published, name, stats, sizes[name], index.get(name))
        methods[name] = _method_columns(name, cols, stats, qrow, st, index.get(name), fn_scores, diag)
    if rejects_dir is None and run is not None:
        rejects_dir = run / "cache" / "rejects"
    rejects = _reject_columns(Path(rejects_dir) if rejects_dir else None, q, qrow, set(methods), st)
    meta = {
        "diag_encoder": diag.target_encoder if diag else None,
        "dataset": str(dataset),
        "revision": revision,
        "created": build_stats.created,
        "hardneg_version": build_stats.hardneg_version,
        "generator": build_stats.generator.get("model"),
        "queries": len(q["query_id"]),
        # a sample of a larger build: how many queries it has (the page shows ``queries`` of them)
        "sampled_from": build_stats.config(QUERIES_CONFIG).rows if index else None,
    }
    payload: dict[str, Any] = {"meta": meta, "queries": queries, "methods": methods, "rejects": rejects}
    if run_dir is not None:
        payload["eval"] = build_eval_payload(Path(run_dir), st, metric=metric, eval_data=eval_data)
    payload["strings"] = st.strings
    return payload


def _method_columns(
    name: str,
    cols: dict[str, list],
    stats: ConfigStats,
    qrow: dict[str, int],
    st: StringTable,
    index: np.ndarray | None,
    fn_scores: tuple[list, list],
    diag: Diagnostics | None,
) -> dict[str, Any]:
    """One triplet config's shown rows (those whose query is in the queries config) and its statistics."""
    rows = [qrow.get(str(x), -1) for x in cols["query_id"]]
    unknown = rows.count(-1)
    if unknown:
        logger.warning("%s: %d rows whose query_id is not in the queries config are left out", name, unknown)
    keep = [i for i, r in enumerate(rows) if r >= 0]
    flags = _flags(cols, stats, index)
    fs_p, fs_n = fn_scores

    def column(key: str, value=lambda x: x) -> list:
        return [value(cols[key][i]) for i in keep] if key in cols else []

    return {
        "q": [rows[i] for i in keep],
        "neg": column("negative", st.add),
        "neg_id": column("negative_id", st.add),
        "rank": column("negative_rank"),
        "ps": column("positive_score", _round),
        "ns": column("negative_score", _round),
        "flag": [flags[i] for i in keep],
        "fs_p": [fs_p[i] for i in keep] if fs_p else [],
        "fs_n": [fs_n[i] for i in keep] if fs_n else [],
        "fn_score_name": (stats.false_negative_detail or {}).get("score_name"),
        "score_name": stats.get("score_name"),
        "fn_rate": stats.suspected_false_negative_rate,
        "fn_scorer": stats.false_negative_scorer,
        "fn_same_as_guard": stats.false_negative_same_as_guard,
        "ind_rate": stats.independent_false_negative_rate,
        "ind_scorer": stats.independent_false_negative_scorer,
        # hybrid_hn: the config each row's negative was drawn from
        "source": column("source", st.add),
        "rejects": stats.get("rejects", {}),
        **diagnostics_columns(diag, name, keep, index),
    }


def _reject_columns(
    rejects_dir: Path | None, q: dict[str, list], qrow: dict[str, int], methods: set[str], st: StringTable
) -> dict[str, dict[str, list]]:
    """Per config (and ``queries``), the generator outputs that were rejected, by shown query, and why."""
    by_positive = defaultdict(list)
    for i, pid in enumerate(q["positive_id"]):
        by_positive[str(pid)].append(i)
    rejects = {}
    for name, rows in _read_rejects(rejects_dir).items():
        is_query = name == QUERIES_CONFIG  # query generation is keyed by passage id
        if not is_query and name not in methods:
            continue  # e.g. the false-negative judge's rejects (<config>.fn_judge), keyed by row, not by query
        qs, texts, reasons = [], [], []
        for r in rows:
            targets = by_positive.get(str(r.get("id")), []) if is_query else [qrow.get(str(r.get("id")), -1)]
            for t in targets:
                if t >= 0:
                    qs.append(t)
                    texts.append(st.add(r.get("text") or r.get("raw") or ""))
                    reasons.append(st.add(r.get("reason")))
        rejects[name] = {"q": qs, "text": texts, "reason": reasons}
    return rejects


def top_documents(
    path: str | Path, top_n: int = TOP_N, expected_queries: int | None = None
) -> dict[str, list[str]]:
    """A TREC run file (``hardneg.metrics.read_run_file``, refusing a cut one) -> {qid: its top_n doc ids in
    trec_eval's order}."""
    return {q: trec_order(scores)[:top_n] for q, scores in read_run_file(path, expected_queries).items()}


def _pick_metric(results: list[EvalResult], metric: str | None) -> str:
    names = [m for r in results for pq in r.per_query.values() for m in pq][:50]
    if metric:
        if metric not in names:
            raise ValueError(
                f"metric '{metric}' is not in the per-query results; fix: use one of {sorted(set(names))}"
            )
        return metric
    return next((m for m in names if m.lower().startswith("ndcg@10")), names[0] if names else "")


def build_eval_payload(
    run_dir: Path, st: StringTable, *, metric: str | None = None, eval_data: str | None = None
) -> dict[str, Any]:
    """Per evaluation query: each model's top-10 with relevance, and the per-query metric."""
    # the report's reader: one-line errors for a missing folder or a truncated file
    results = [r for r in load_results(run_dir) if r.per_query]
    metric = _pick_metric(results, metric)
    sources = sorted({(r.dataset_source or r.dataset, r.split or "test") for r in results})
    data = None
    if eval_data or sources:
        src, split = (eval_data, sources[0][1] if sources else "test") if eval_data else sources[0]
        try:
            data = load_eval_dataset(src, split=split)
        except Exception as err:  # the explorer still shows ids and metrics without the texts
            if eval_data:  # a set the user named must load
                raise ValueError(
                    f"cannot load --eval_data {eval_data}: {first_line(err)}; fix: check it"
                ) from None
            logger.warning("cannot load evaluation set %s (%s): showing document ids only", src, err)
    qids = sorted({q for r in results for q in r.per_query}, key=lambda x: (len(x), x))
    qindex = {q: i for i, q in enumerate(qids)}
    docs: dict[str, int] = {}
    doc_text, doc_id = [], []

    def doc(d: str) -> int:
        if d not in docs:
            docs[d] = len(doc_id)
            doc_id.append(st.add(d))
            entry = (data.corpus.get(d) if data else None) or {}
            text = passage_text(entry.get("title"), entry.get("text") or "")
            doc_text.append(st.add(text[:DOC_CHARS]) if text else -1)
        return docs[d]

    models = []
    for r in results:
        per = [None] * len(qids)
        for q, vals in r.per_query.items():
            per[qindex[q]] = _round(vals.get(metric))
        top: list[list[int]] = [[] for _ in qids]
        rp = r.run_path()
        if rp is not None:
            if rp.is_file():
                for q, ds in top_documents(rp, expected_queries=r.run_file_queries).items():
                    if q in qindex:
                        top[qindex[q]] = [doc(d) for d in ds]
            else:
                logger.warning("%s names run file %s, which is missing", r.file_name, rp)
        seed = r.seed
        label = r.method or r.model or r.path.stem
        models.append(
            {
                "name": f"{label} seed{seed}" if seed is not None else label,
                "method": r.method,
                "seed": seed,
                "dataset": r.dataset,
                "per": per,
                "top": top,
                "has_run": bool(r.run_file),
            }
        )
    rel: list[list[list[int]]] = [[] for _ in qids]
    qtext = [-1] * len(qids)
    if data is not None:
        for q, i in qindex.items():
            qtext[i] = st.add(data.queries.get(q))
            rel[i] = [[doc(d), int(g)] for d, g in sorted((data.qrels.get(q) or {}).items()) if int(g) > 0]
    return {
        "metric": metric,
        "qid": [st.add(q) for q in qids],
        "qtext": qtext,
        "rel": rel,
        "doc_id": doc_id,
        "doc_text": doc_text,
        "models": models,
        "has_qrels": data is not None,
    }


def render_html(payload: dict[str, Any], *, title: str = "hardneg explorer") -> str:
    """The page: the template with the payload embedded as gzip + base64 (inflated in the browser)."""
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    blob = base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")
    html = TEMPLATE.read_text(encoding="utf-8")
    return html.replace("__HARDNEG_TITLE__", _escape(title)).replace(DATA_MARKER, blob)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_explorer(
    dataset: str,
    output: str | Path,
    *,
    revision: str | None = None,
    run_dir: str | Path | None = None,
    rejects_dir: str | Path | None = None,
    metric: str | None = None,
    eval_data: str | None = None,
    sample_queries: int = SAMPLE_QUERIES,
) -> Path:
    """Write the explorer of a build's dataset (folder or Hub id) and optionally a run's retrievals.

    Args:
        dataset: the build's dataset folder (``runs/demo/dataset``) or its Hub id.
        output: the HTML file to write (opens from disk, works offline).
        revision: Hub revision of ``dataset``.
        run_dir: a run folder with ``results/*.json`` (+ their gzip TREC run files) to show top-10 lists.
        rejects_dir: the build's ``cache/rejects`` folder (default: beside a local dataset folder).
        metric: per-query metric to show and to rank disagreements by (default nDCG@10).
        eval_data: evaluation set to read query texts, passages and qrels from (default: the results'
            ``dataset_source``).
        sample_queries: show a seeded sample of this many queries (and their rows) of a larger build, so the
            page stays small (docs/explore.md: 100k queries of a 5-config build made 45.6 MB); 0 = every query.
    """
    payload = build_payload(
        dataset,
        revision=revision,
        run_dir=run_dir,
        rejects_dir=rejects_dir,
        metric=metric,
        eval_data=eval_data,
        sample_queries=sample_queries,
    )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(render_html(payload, title=f"hardneg explorer: {dataset}"), encoding="utf-8")
    tmp.replace(output)
    return output
