"""Evaluate retrievers (sentence-transformers models and BM25) on BEIR-style sets.

One contract for every model (beir's ``BaseSearch``): corpus dict + queries dict -> top-k run
``{qid: {doc_id: score}}`` -> ``hardneg.metrics.evaluate_run`` (pytrec_eval, trec_eval semantics). BM25
goes through the same run -> metrics -> result-file code as the dense models, so the comparison is fair.

Each (model, dataset) pair writes ``<run_dir>/results/<model key>__<dataset>.json`` with the method, the
training seed (None for BM25 and zero-shot models), the mean metrics, per-query scores (for significance
tests), counts (queries without judgements, judged documents missing from the corpus, ...), the prompts
used, the scoring rule (``ignore_identical_ids``), the dataset revision, fingerprints and timings; beside it
``<same stem>.trec.gz``, the ranked list as a gzip TREC run file (``qid Q0 docid rank score tag``, top_k
per query) for trec_eval, ranx or a later report. Result files computed from the same model files are kept
(rerun = resume) unless ``overwrite`` is set.

Trained seeds: a model entry whose folder holds ``seed<S>/`` model folders (``make train`` with seeds writes
``<run_dir>/models/<method>/seed<S>/``) stands for one model per seed (``seeds`` restricts them).

Scoring as BEIR and MTEB do: for ArguAna and Quora (by dataset name, ``IDENTICAL_ID_DATASETS``) a retrieved
document whose id equals the query id is dropped before scoring (their ``ignore_identical_ids``); the
option ``ignore_identical_ids`` (auto / true / false) decides for every dataset, and each result file
records the rule used. Hub evaluation sets are pinned by default to the revision MTEB pins
(``hardneg.references.KNOWN_REVISIONS``); any other Hub set records the revision it resolved to.

Layout: what to evaluate is ``hardneg.eval_config`` (``EvalConfig``, ``ModelSpec``); the retrievers' runs are
``hardneg.retrieval``; every dataset reference is resolved once at ``evaluate``'s entry
(``hardneg.references.resolve_dataset_ref``) and every model reference once (``ModelSpec.resolved``); this
module plans, runs, scores and writes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hardneg import mteb_results
from hardneg.assets import dtype_name
from hardneg.beir import load_eval_dataset
from hardneg.corpus import BeirData
from hardneg.encode import process_state
from hardneg.errors import first_line
from hardneg.eval_config import EvalConfig, ModelSpec, model_key, readable_name
from hardneg.metrics import (
    drop_identical_ids,
    evaluate_run,
    read_run_file,
    write_run_file,
)
from hardneg.mteb_results import parse_task_names
from hardneg.records import EvalResult
from hardneg.references import DatasetRef, resolve_dataset_ref
from hardneg.retrieval import search_bm25, search_dense

logger = logging.getLogger(__name__)

RUN_FILE_SUFFIX = ".trec.gz"
# Sets whose queries are also documents: BEIR and MTEB drop a retrieved document whose id equals the query
# id (MTEB's ArguAna and QuoraRetrieval tasks set ignore_identical_ids; so does BEIR's evaluate by default).
# MTEB also sets it for FEVER, MSMARCO and FiQA2018, whose query and document ids are separate numbers:
# set ignore_identical_ids: true to match MTEB exactly there.
IDENTICAL_ID_DATASETS = ("arguana", "quora")


@dataclass(frozen=True)
class ModelIdentity:
    """How one model is named in results, worked out once per model in ``evaluate`` and passed down (each part
    reads files: the model card for the name, every file's size and mtime for the stamp)."""

    name: str  # readable_name: the model column of tables and result files
    key: str  # model_key: result file names and the run file's tag
    stamp: str  # source_stamp: the model files a result was computed from

    @classmethod
    def of(cls, spec: ModelSpec) -> ModelIdentity:
        name = readable_name(spec)
        return cls(name, model_key(spec, name), source_stamp(spec))


def result_path(run_dir: str | Path, key: str, dataset: str) -> Path:
    """``<run_dir>/results/<model key>__<dataset>.json`` (``key``: ``model_key`` / ``ModelIdentity.key``)."""
    return Path(run_dir) / "results" / f"{key}__{re.sub(r'[^A-Za-z0-9._-]+', '_', dataset)}.json"


def run_file_path(result: str | Path) -> Path:
    """The gzip TREC run file beside a result file: ``<result stem>.trec.gz``."""
    result = Path(result)
    return result.with_name(result.stem + RUN_FILE_SUFFIX)


def ignores_identical_ids(option: str, dataset_name: str) -> bool:
    """Whether the BEIR/MTEB ``ignore_identical_ids`` rule applies to ``dataset_name`` under ``option``."""
    if option in ("true", "false"):
        return option == "true"
    return dataset_name.lower() in IDENTICAL_ID_DATASETS


def source_stamp(spec: ModelSpec) -> str:
    """What the model is made of, cheaply: for a local folder, its files' names, sizes and mtimes (a
    retrained model gets a new stamp); for a Hub id, embedded model or BM25, the id itself."""
    folder = None if spec.is_bm25 else Path(spec.resolved.name_or_path)
    if folder is None or not folder.is_dir():
        return spec.model
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _is_current(
    path: Path,
    spec: ModelSpec,
    dtype: str | None = None,
    expect: dict[str, Any] | None = None,
    stamp: str | None = None,
) -> bool:
    """An existing result file is reused only if it was computed from the same model files (``stamp``, by
    default ``source_stamp(spec)``; and, for a dense model, in the same ``dtype`` when one is given), its run
    file is there, and every key of ``expect`` (``scoring_settings``: max_queries, top_k, the identical-ids
    rule, the metric list, the requested dataset revision) has the same value in it."""
    if not path.is_file() or not run_file_path(path).is_file():
        return False
    try:
        old = EvalResult.from_disk(path)  # older files are converted there
    except (OSError, ValueError, TypeError):
        return False
    same_dtype = dtype is None or spec.is_bm25 or old.dtype == dtype
    same_settings = all(old.setting(k) == v for k, v in (expect or {}).items())
    stamp = source_stamp(spec) if stamp is None else stamp
    return old.source_stamp == stamp and same_dtype and same_settings


def mteb_model(
    spec: ModelSpec, result: EvalResult, model=None, key: str | None = None
) -> mteb_results.ModelInfo:
    """The model an MTEB result is filed under: a Hub or embedded model by its Hub id and commit; a local
    folder (fine-tuned) as ``hardneg/<model key>`` (``key``, by default ``model_key(spec)``) at its files'
    stamp, with the ``model_meta.json`` saved beside it by training; BM25 as ``hardneg/<model key>``."""
    folder = None if spec.is_bm25 else Path(spec.resolved.name_or_path)
    if folder is not None and folder.is_dir() and not spec.model.startswith("embedded:"):
        return mteb_results.model_info(key or model_key(spec), result.source_stamp, folder, model)
    name = (key or model_key(spec)) if spec.is_bm25 else spec.resolved.name
    return mteb_results.model_info(name, result.model_commit, None, model)


def scoring_settings(config: EvalConfig, dataset: DatasetRef) -> dict[str, Any]:
    """What else decides a result's numbers besides the model: compared by ``_is_current``, written into
    every result file."""
    return {
        "max_queries": config.max_queries,
        "top_k": config.top_k,
        "ignore_identical_ids": ignores_identical_ids(config.ignore_identical_ids, dataset.name),
        "metric_list": sorted(config.metrics),
        "dataset_request": dataset.request(),
        "passage_format": config.passage_format,
        "queries_without_relevant": config.queries_without_relevant,
    }


def load_eval_model(spec: ModelSpec, device: str | None = None):
    """The SentenceTransformer a ``ModelSpec`` names, loaded for evaluation (its resolved reference, its
    ``max_seq_length``); a clear error when it cannot load."""
    from sentence_transformers import SentenceTransformer

    ref = spec.resolved
    try:
        model = SentenceTransformer(ref.name_or_path, device=device)
    except Exception as err:  # OSError, ValueError, HF errors: all mean "cannot load this model"
        first = first_line(err)
        raise RuntimeError(
            f"cannot load model '{spec.model}' (method {spec.method}): {first}; fix: check the path or Hub id "
            "(fine-tuned models appear under <run_dir>/models/ after `make train`), or HF_HUB_OFFLINE"
        ) from None
    if spec.max_seq_length:
        model.max_seq_length = spec.max_seq_length
    return model


def resolve_prompts(model, spec: ModelSpec) -> tuple[str, str]:
    """(query prompt, passage prompt): the spec's overrides, else the model's stored ``prompts``
    (``query``; ``document``/``passage``/``corpus``), else none."""
    prompts = getattr(model, "prompts", None) or {}
    query = spec.query_prompt if spec.query_prompt is not None else prompts.get("query", "")
    passage = spec.passage_prompt
    if passage is None:
        passage = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
    return query or "", passage or ""


def dataset_counts(data: BeirData) -> dict[str, Any]:
    """Facts about the set that change what the averages mean; reported in every result file."""
    judged_docs = {d for docs in data.qrels.values() for d in docs}
    missing_docs = sorted(judged_docs - set(data.corpus))
    return {
        "corpus_size": len(data.corpus),
        "queries": len(data.queries),
        "judged_queries": len(data.qrels),
        "judgements": sum(len(v) for v in data.qrels.values()),
        "qrels_docs_missing_from_corpus": len(missing_docs),
        "qrels_docs_missing_examples": missing_docs[:10],
        "qrels_queries_missing_from_queries": len(set(data.qrels) - set(data.queries)),
        "queries_without_judgements": len(set(data.queries) - set(data.qrels)),
    }


def judged_queries(data: BeirData, max_queries: int = 0) -> list[str]:
    """The judged queries that have a text, in judgement order (the first ``max_queries`` when set)."""
    query_ids = [q for q in data.qrels if q in data.queries]
    if max_queries:
        query_ids = query_ids[:max_queries]
    if not query_ids:
        raise ValueError(
            f"dataset '{data.name}' has no judged query with a text; fix: check queries vs qrels ids"
        )
    return query_ids


def _retrieve(
    spec: ModelSpec, data: BeirData, config: EvalConfig, model, query_ids: list[str], depth: int
) -> tuple[dict[str, dict[str, float]], dict[str, Any], tuple[str, str]]:
    """(run, info, (query prompt, passage prompt)) of one retriever: BM25 or a dense model."""
    if spec.is_bm25:
        run = search_bm25(
            data, query_ids, depth, show_progress=config.show_progress, passage_format=config.passage_format
        )
        return run, {}, ("", "")
    prompts = resolve_prompts(model, spec)
    cache = config.cache_dir.replace("{run_dir}", config.run_dir) if config.cache_dir else None
    run, info = search_dense(
        model,
        data,
        query_ids,
        depth,
        query_prompt=prompts[0],
        passage_prompt=prompts[1],
        batch_size=spec.batch_size or config.batch_size,
        part_size=config.part_size,
        corpus_chunk_size=config.corpus_chunk_size,
        cache_dir=cache,
        dtype=config.dtype,
        show_progress=config.show_progress,
        passage_format=config.passage_format,
    )
    return run, info, prompts


_COUNT_WARNINGS = (
    ("queries_without_judgements", "queries have no judgements and are not averaged"),
    ("queries_without_relevant", "judged queries have no relevant document and are not averaged"),
    (
        "qrels_docs_missing_from_corpus",
        "judged documents are missing from the corpus (still count as relevant)",
    ),
    ("qrels_queries_missing_from_queries", "judged query ids have no query text and are not averaged"),
)


def _result_counts(data: BeirData, scored, query_ids: list[str]) -> dict[str, Any]:
    """The scorer's counts plus the dataset's; each count that changes what the averages mean is logged."""
    # The run holds judged queries only; unjudged ones are counted from the dataset, never silently dropped.
    counts = asdict(scored.counts)
    counts.update(dataset_counts(data))
    counts["excluded_query_ids"]["without_judgements"] = sorted(set(data.queries) - set(data.qrels))[:1000]
    judged_with_text = [q for q in data.qrels if q in data.queries]
    counts["queries_skipped_by_max_queries"] = len(judged_with_text) - len(query_ids)
    for key, what in _COUNT_WARNINGS:
        if key == "queries_without_relevant" and counts["queries_without_relevant_scored_zero"]:
            what = "judged queries have no relevant document and are averaged in with score 0 (zero)"
        if counts[key]:
            logger.warning("%s: %d %s", data.name, counts[key], what)
    return counts


def evaluate_model_on_dataset(
    spec: ModelSpec,
    data: BeirData,
    config: EvalConfig,
    model=None,
    dataset_source: str = "",
    *,
    dataset_revision: dict[str, Any] | None = None,
    identity: ModelIdentity | None = None,
) -> tuple[EvalResult, dict[str, dict[str, float]]]:
    """Run one retriever on one dataset and score it; returns (the result record, the scored run).
    ``identity``: the model's ``ModelIdentity`` when the caller has it (worked out here otherwise)."""
    query_ids = judged_queries(data, config.max_queries)
    t0 = time.perf_counter()
    ignore_identical = ignores_identical_ids(config.ignore_identical_ids, data.name)
    # one more document per query, so that top_k remain once a query's own id is dropped (as BEIR does)
    depth = config.top_k + 1 if ignore_identical else config.top_k
    run, info, prompts = _retrieve(spec, data, config, model, query_ids, depth)
    dropped = 0
    if ignore_identical:
        run, dropped = drop_identical_ids(run, config.top_k)
    wall = time.perf_counter() - t0
    scored = evaluate_run(
        {q: data.qrels[q] for q in query_ids},
        run,
        config.metrics,
        queries_without_relevant=config.queries_without_relevant,
    )
    counts = _result_counts(data, scored, query_ids)
    identity = identity or ModelIdentity.of(spec)
    import hardneg

    result = EvalResult(
        model=identity.name,
        method=spec.method,
        seed=spec.seed,
        model_path=spec.model,
        source_stamp=identity.stamp,
        dataset=data.name,
        dataset_source=dataset_source or data.name,
        dataset_revision=dataset_revision or {"revision": None, "how": "local"},
        split=config.split,
        ignore_identical_ids=ignore_identical,
        identical_ids_dropped=dropped,
        metrics=scored.mean,
        per_query=scored.per_query,
        counts=counts,
        prompts={"query": prompts[0], "passage": prompts[1]},
        top_k=config.top_k,
        timing={"wall_s": wall, **{k: v for k, v in info.items() if k.endswith("_s")}},
        fingerprints={k: v for k, v in info.items() if k.endswith("_fingerprint")},
        similarity=info.get("similarity", "bm25"),
        dtype=info.get("dtype"),
        model_commit=info.get("model_commit"),  # Hub commit of the weights (None: local folder or BM25)
        processes=process_state().num_processes,
        hardneg_version=getattr(hardneg, "__version__", "0"),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    return result, run


def check_model_folders(specs: list[ModelSpec]) -> None:
    """Refuse a model path that looks local but does not exist: fail before hours of work, not after."""
    for spec in specs:
        path = Path(spec.model)
        looks_local = path.is_absolute() or spec.model.startswith(".") or Path(path.parts[0]).is_dir()
        if not spec.is_bm25 and looks_local and not path.exists():
            raise RuntimeError(
                f"cannot load model '{spec.model}' (method {spec.method}): the folder does not exist; fix: "
                "train it first (`make train` writes <run_dir>/models/<method>/seed<S>) or correct the path"
            )


@dataclass
class _Plan:
    """What one model still needs on each dataset: ``stale`` results to compute, ``mteb_only`` results to file
    in MTEB's layout from the kept run file, and the paths of the results kept as they are."""

    stale: list[DatasetRef]
    mteb_only: list[DatasetRef]
    kept: list[Path]

    @property
    def todo(self) -> list[DatasetRef]:
        return self.stale + self.mteb_only


def _plan(
    config: EvalConfig,
    spec: ModelSpec,
    identity: ModelIdentity,
    refs: list[DatasetRef],
    dtype: str,
    write_mteb: bool,
) -> _Plan:
    path = {d: result_path(config.run_dir, identity.key, d.name) for d in refs}
    stale = [
        d
        for d in refs
        if config.overwrite
        or not _is_current(path[d], spec, dtype, scoring_settings(config, d), identity.stamp)
    ]
    # a current result without its MTEB file (computed before mteb was installed): the MTEB file is made
    # from the kept run file, nothing is encoded again
    mteb_only = [
        d
        for d in refs
        if d not in stale and write_mteb and not mteb_results.has_task_result(config.run_dir, path[d])
    ]
    kept = [path[d] for d in refs if d not in stale + mteb_only]
    return _Plan(stale, mteb_only, kept)


def _print_result(result: EvalResult, spec: ModelSpec, data: BeirData) -> None:
    seed = "" if spec.seed is None else f" seed{spec.seed}"
    print(
        f"{result.model:>24} {spec.method + seed:>16} {data.name:>12}  "
        + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
        + f"  ({result.counts['queries_evaluated']} queries)"
    )


def _write_result(
    config: EvalConfig,
    path: Path,
    result: EvalResult,
    run: dict[str, dict[str, float]],
    *,
    spec: ModelSpec,
    identity: ModelIdentity,
    ref: DatasetRef,
    data: BeirData,
    model,
    computed: bool,
    mteb_task: str | None | bool,
) -> None:
    """On the main process: the run file (when ``computed``), the MTEB file (unless ``mteb_task`` is False;
    None: the task MTEB knows for the set), then the result file, and one printed line."""
    if computed:
        result = replace(result, **scoring_settings(config, ref))
        result.run_file = write_run_file(run_file_path(path), run, tag=identity.key).name
    if mteb_task is not False:
        mteb_path = mteb_results.write_evaluation(
            config.run_dir,
            data=data,
            run=run,
            split=config.split,
            hub_path=ref.hub_id,
            revision=ref.commit,
            task_name=mteb_task,
            model=mteb_model(spec, result, model, identity.key),
            evaluation_time=result.timing["wall_s"],
            passage_format=config.passage_format,
            ignore_identical_ids=result.ignore_identical_ids,
        )
        result.mteb_result = str(mteb_path.relative_to(config.run_dir))
    result.run_file_queries = sum(1 for ranked in run.values() if ranked)  # checked on reading
    result.to_disk(path)
    _print_result(result, spec, data)


def evaluate(config: EvalConfig) -> list[Path]:
    """Evaluate every model on every dataset; write (and return the paths of) the result files.

    Every dataset and model reference is resolved once, here (``hardneg.references``), and passed down.
    Models load once and datasets once; a result file that exists is kept unless ``overwrite``.
    Under ``accelerate launch`` every process encodes its share of the corpus; only the main process
    scores and writes.
    """
    state = process_state()
    refs = [resolve_dataset_ref(d, pin=True) for d in config.dataset_specs]
    for spec in config.model_specs:
        spec.resolve()
    check_model_folders(config.model_specs)
    (Path(config.run_dir) / "results").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    datasets: dict[DatasetRef, BeirData] = {}
    dtype = dtype_name(config.dtype, config.device or str(state.device))
    write_mteb = mteb_results.mteb_enabled(config.mteb_results)
    mteb_names = parse_task_names(config.mteb_tasks)
    for name in mteb_names.values() if write_mteb else ():
        mteb_results.get_registered_task(name)  # an unknown task name fails now, not after the encoding
    for spec in config.model_specs:
        state.wait_for_everyone()  # every process decides what is left from the same files
        identity = ModelIdentity.of(spec)  # its name, key and files' stamp: read once for every dataset
        plan = _plan(config, spec, identity, refs, dtype, write_mteb)
        written += plan.kept
        if not plan.todo:
            logger.info(
                "%s: results of these model files exist, skipped (overwrite=true recomputes)", identity.key
            )
            continue
        model = None if spec.is_bm25 else load_eval_model(spec, config.device or str(state.device))
        for ref in plan.todo:
            if ref not in datasets:
                datasets[ref] = load_eval_dataset(ref)
            data, path = datasets[ref], result_path(config.run_dir, identity.key, ref.name)
            if ref in plan.stale:
                result, run = evaluate_model_on_dataset(
                    spec,
                    data,
                    config,
                    model,
                    dataset_source=ref.source,
                    dataset_revision=ref.record(),
                    identity=identity,
                )
            else:
                result = EvalResult.from_disk(path, "evaluate again (overwrite: true)")
                run = read_run_file(run_file_path(path), result.run_file_queries)
            if state.is_main_process:
                _write_result(
                    config,
                    path,
                    result,
                    run,
                    spec=spec,
                    identity=identity,
                    ref=ref,
                    data=data,
                    model=model,
                    computed=ref in plan.stale,
                    mteb_task=mteb_names.get(ref.name) if write_mteb else False,
                )
            written.append(path)
        del model
    state.wait_for_everyone()
    return written
