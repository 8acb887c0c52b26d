"""MTEB's formats for hardneg's evaluations and models (mteb 2.x, the optional extra ``hardneg[mteb]``).

- ``mteb_task(data, ...)``: the MTEB task of an evaluation set. A BEIR set MTEB knows is MTEB's own task
  (found in mteb's registry by its Hub path, ``mteb/<name>``); any other set (a local BEIR folder,
  ``embedded:cranfield``) becomes a custom ``AbsTaskRetrieval`` built offline from the loaded data, named
  ``hardneg-<dataset>``, its revision the corpus+qrels fingerprint. The evaluation option ``mteb_tasks``
  (``DATASET=TASK``) names a registered task instead (an unknown name is one error line).
- ``write_evaluation(...)``: a ``mteb.TaskResult`` scored from hardneg's own run with mteb's scorer
  (``calculate_retrieval_scores`` + ``make_score_dict``: every MTEB retrieval score, ``main_score`` =
  the task's main score), written by ``write_task_result`` in MTEB's results layout
  ``<run_dir>/mteb_results/results/<model name as path>/<revision>/<TaskName>.json`` with ``model_meta.json``
  beside it (``ResultCache.save_to_cache``), so ``mteb.ResultCache(<run_dir>/mteb_results)`` and
  ``TaskResult.from_disk`` read them back.
- ``model_meta(...)`` / ``write_model_meta``: a model's ``ModelMeta`` with ``training_datasets``: the MTEB
  tasks whose corpus generated the training queries (so MTEB marks them not zero-shot) and the hardneg
  dataset itself; ``model_meta.json`` beside the model.
- ``mteb_scores(model, task)``: MTEB's own evaluation (``mteb.evaluate``, no cache, nothing downloaded for
  a custom task), the other side of the cross-check in tests/test_mteb_results.py (docs/evaluation.md,
  "Agreement with MTEB"); ``format_passage`` is the one place hardneg's and MTEB's title joining differ.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardneg.beir import BEIR_NAMES, DatasetSpec
from hardneg.cards import _hub_model_id, toolkit_url
from hardneg.config import ConfigError
from hardneg.corpus import BeirData, passage_text
from hardneg.dataset_folder import BUILD_STATS_FILE
from hardneg.files import write_atomic
from hardneg.records import BuildStats, EvalResult

logger = logging.getLogger(__name__)

MTEB_DIR = "mteb_results"
MODEL_META_FILE = "model_meta.json"
CUSTOM_PREFIX = "hardneg/"  # organisation of models MTEB does not know
CUSTOM_TASK_PREFIX = "hardneg-"  # custom task names (a task name is a file name: no slash)
# hardneg metric name -> MTEB score key (``make_score_dict``): ndcg@10 -> ndcg_at_10 ...
_MTEB_METRIC = {
    "ndcg": "ndcg_at_{k}",
    "recall": "recall_at_{k}",
    "p": "precision_at_{k}",
    "map": "map_at_{k}",
    "mrr": "mrr_at_{k}",
}
PASSAGE_FORMATS = ("hardneg", "mteb")


def require_mteb():
    """The mteb module, or one line saying how to install it."""
    try:
        import mteb
    except ImportError:
        raise ConfigError(
            "mteb is not installed; fix: pip install 'hardneg[mteb]' (make install installs it), or set "
            "mteb_results: false"
        ) from None
    return mteb


def mteb_enabled(option: str) -> bool:
    """Whether to write MTEB results under ``option`` (auto: when mteb is installed; true: mteb required)."""
    if option == "false":
        return False
    if option == "true":
        require_mteb()
        return True
    try:
        import mteb  # noqa: F401
    except ImportError:
        logger.info("mteb is not installed: no MTEB result files (pip install 'hardneg[mteb]')")
        return False
    return True


def mteb_metric(metric: str) -> str:
    """hardneg's ``ndcg@10`` as MTEB's score key ``ndcg_at_10``."""
    name, _, k = metric.partition("@")
    return _MTEB_METRIC[name].format(k=k)


def parse_task_names(entries: Iterable[str]) -> dict[str, str]:
    """``["cranfield=MyTask", ...]`` -> ``{"cranfield": "MyTask"}``; a malformed entry is one error line."""
    out = {}
    for entry in entries or []:
        dataset, sep, task = str(entry).partition("=")
        if not sep or not dataset.strip() or not task.strip():
            raise ConfigError(
                f"mteb_tasks entry '{entry}' is not DATASET=TASK; fix: e.g. scifact=SciFact (the dataset's short "
                "name = an MTEB task name)"
            )
        out[dataset.strip()] = task.strip()
    return out


def get_registered_task(name: str):
    """An MTEB task by name; an unknown name is one error line."""
    mteb = require_mteb()
    try:
        return mteb.get_task(name)
    except (KeyError, ValueError):
        raise ConfigError(
            f"mteb task '{name}' does not exist; fix: use a task name from mteb.get_tasks() (e.g. SciFact), "
            "or leave the dataset out of mteb_tasks to write it as a custom task"
        ) from None


def registered_task_for(hub_path: str | None, revision: str | None = None):
    """MTEB's own retrieval task whose dataset is ``hub_path`` (``mteb/scifact``), preferring the one pinned at
    ``revision``; None when MTEB has no such task."""
    if not hub_path:
        return None
    mteb = require_mteb()
    matches = [
        t
        for t in mteb.get_tasks(task_types=["Retrieval"], exclusive_language_filter=False)
        if t.metadata.dataset.get("path") == hub_path and not t.metadata.is_beta
    ]
    if not matches:
        return None
    same = [t for t in matches if t.metadata.dataset.get("revision") == revision]
    return (same or matches)[0]


def data_fingerprint(data: BeirData, passage_format: str = "hardneg") -> str:
    """A revision for a local set: the hash of its corpus texts, queries and judgements."""
    h = hashlib.sha256()
    for doc_id, doc in data.corpus.items():
        h.update(f"{doc_id}\t{format_passage(doc, passage_format)}\n".encode())
    for qid, text in data.queries.items():
        h.update(f"q{qid}\t{text}\n".encode())
    for qid, docs in sorted(data.qrels.items()):
        h.update(f"r{qid}\t{sorted(docs.items())}\n".encode())
    return h.hexdigest()[:16]


def format_passage(doc: dict[str, str], passage_format: str = "hardneg") -> str:
    """The text a model reads for a passage under ``passage_format``: ``hardneg`` (``passage_text``: the
    title, then '. ', unless the text already starts with it) or ``mteb`` (MTEB's ``title + ' ' + text``,
    stripped, even when the text repeats the title)."""
    title, text = doc.get("title") or "", doc.get("text") or ""
    if passage_format == "mteb":
        return (title + " " + text).strip() if title else text.strip()
    return passage_text(title, text)


def custom_task(
    data: BeirData,
    *,
    split: str = "test",
    passage_format: str = "hardneg",
    name: str | None = None,
    ignore_identical_ids: bool = False,
):
    """A custom MTEB retrieval task holding ``data`` (no download): corpus texts as hardneg reads them under
    ``passage_format`` (title folded into the text, so MTEB reads the same string), the queries and the
    judgements of ``split``; ``ignore_identical_ids`` as hardneg scored it."""
    require_mteb()
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    task_name = name or f"{CUSTOM_TASK_PREFIX}{data.name}"
    revision = data_fingerprint(data, passage_format)
    corpus = Dataset.from_dict(
        {
            "id": list(data.corpus),
            "text": [format_passage(d, passage_format) for d in data.corpus.values()],
            "title": [""] * len(data.corpus),
        }
    )
    queries = Dataset.from_dict({"id": list(data.queries), "text": list(data.queries.values())})
    qrels = {q: dict(docs) for q, docs in data.qrels.items()}

    class HardnegRetrieval(AbsTaskRetrieval):
        __doc__ = f"hardneg's local set {data.name} as an MTEB retrieval task."
        metadata = TaskMetadata(
            name=task_name,
            description=f"Local retrieval set {data.name}, evaluated by hardneg (custom task, not in MTEB).",
            dataset={"path": f"local/{data.name}", "revision": revision},
            type="Retrieval",
            category="t2t",
            modalities=["text"],
            eval_splits=[split],
            eval_langs=["eng-Latn"],
            main_score="ndcg_at_10",
        )

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.ignore_identical_ids = ignore_identical_ids

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = {
                "default": {
                    split: {"corpus": corpus, "queries": queries, "relevant_docs": qrels, "top_ranked": None}
                }
            }
            self.data_loaded = True

    return HardnegRetrieval()


def mteb_task(
    data: BeirData,
    *,
    hub_path: str | None,
    revision: str | None,
    split: str,
    task_name: str | None = None,
    passage_format: str = "hardneg",
    ignore_identical_ids: bool = False,
):
    """The task a result is filed under: ``task_name`` from mteb's registry, else MTEB's task for the Hub
    set, else a custom task built from ``data``."""
    if task_name:
        return get_registered_task(task_name)
    return registered_task_for(hub_path, revision) or custom_task(
        data, split=split, passage_format=passage_format, ignore_identical_ids=ignore_identical_ids
    )


def task_scores(task, qrels: dict, run: dict[str, dict[str, float]]) -> dict[str, Any]:
    """MTEB's score dict for hardneg's run, computed by MTEB's own scorer with the task's k values and its
    rules (queries without a judged document dropped, as ``_filter_queries_without_positives`` does)."""
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores, make_score_dict

    qrels = {q: docs for q, docs in qrels.items() if docs}
    run = {q: dict(docs) for q, docs in run.items() if q in qrels}
    if task.ignore_identical_ids:  # MTEB's rule for this task (hardneg may not have applied it)
        run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    r = calculate_retrieval_scores(run, qrels, list(task.k_values), task.skip_first_result)
    scores = make_score_dict(
        ndcg=r.ndcg,
        _map=r.map,
        recall=r.recall,
        precision=r.precision,
        mrr=r.mrr,
        naucs=r.naucs,
        naucs_mrr=r.naucs_mrr,
        hit_rate=r.hit_rate,
        task_scores={},
    )
    scores["main_score"] = scores[task.metadata.main_score]
    return scores


def task_result(
    task, split: str, scores: dict[str, Any], evaluation_time: float, date: _dt.datetime | None = None
):
    """A ``mteb.TaskResult`` for one split's scores (subset ``default``)."""
    from mteb import TaskResult

    return TaskResult.from_task_results(
        task, {split: {"default": scores}}, evaluation_time=evaluation_time, date=date
    )


@dataclass
class ModelInfo:
    """What MTEB files a result under: the model name (Hub id or readable name), its revision, the meta."""

    name: str
    revision: str
    meta: Any


def model_info(name: str, revision: str | None, folder: str | Path | None = None, model=None) -> ModelInfo:
    """The ModelMeta a result is filed under: the one saved beside a fine-tuned model (``model_meta.json``),
    else one made from the loaded sentence-transformers model, else an empty one (BM25)."""
    require_mteb()
    from mteb.models import ModelMeta

    meta = None
    saved = Path(folder) / MODEL_META_FILE if folder else None
    if saved is not None and saved.is_file():
        meta = ModelMeta.model_validate_json_resolved(saved.read_text(encoding="utf-8"))
    elif model is not None:
        meta = ModelMeta._from_sentence_transformer_model(model)
    overwrites = {"name": _model_name(name), "revision": revision or "no_revision_available"}
    if meta is None:
        meta = ModelMeta.create_empty(overwrites)
    else:
        meta = meta.model_copy(update=overwrites)
    return ModelInfo(meta.name, meta.revision, meta)


def _model_name(name: str) -> str:
    """MTEB names models ``org/name``; a name without an organisation gets ``hardneg/``."""
    return name if "/" in name else f"{CUSTOM_PREFIX}{name}"


def mteb_scores(model, task, *, split: str = "test", batch_size: int = 32) -> dict[str, Any]:
    """MTEB's own evaluation of a loaded sentence-transformers ``model`` on ``task`` (``mteb.evaluate``, no
    result cache, nothing downloaded for a custom task): the score dict of ``split``, subset ``default``."""
    mteb = require_mteb()
    result = mteb.evaluate(
        model, task, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": batch_size}
    )
    (task_result_,) = result.task_results
    return next(s for s in task_result_.scores[split] if s["hf_subset"] == "default")


def write_task_result(run_dir: str | Path, result, info: ModelInfo) -> Path:
    """Save ``result`` in MTEB's results layout under ``<run_dir>/mteb_results`` (``ResultCache``)."""
    from mteb import ResultCache

    cache = ResultCache(cache_path=Path(run_dir) / MTEB_DIR)
    cache.save_to_cache(result, info.meta)
    return cache.get_task_result_path(result.task_name, info.meta)


def write_evaluation(
    run_dir: str | Path,
    *,
    data: BeirData,
    run: dict[str, dict[str, float]],
    split: str,
    hub_path: str | None,
    revision: str | None,
    task_name: str | None,
    model: ModelInfo,
    evaluation_time: float,
    passage_format: str = "hardneg",
    ignore_identical_ids: bool = False,
) -> Path:
    """Score hardneg's ``run`` of one model on one set with MTEB's scorer and save the TaskResult in MTEB's
    layout; returns its path."""
    task = mteb_task(
        data,
        hub_path=hub_path,
        revision=revision,
        split=split,
        task_name=task_name,
        passage_format=passage_format,
        ignore_identical_ids=ignore_identical_ids,
    )
    qrels = {q: data.qrels[q] for q in run if q in data.qrels}
    scores = task_scores(task, qrels, run)
    result = task_result(task, split, scores, evaluation_time, _dt.datetime.now(_dt.timezone.utc))
    return write_task_result(run_dir, result, model)


def has_task_result(run_dir: str | Path, result_file: str | Path) -> bool:
    """Whether a hardneg result file names an MTEB result file that exists (a result computed before mteb
    was installed is computed again, so that every evaluation has both)."""
    try:
        name = EvalResult.from_disk(result_file).mteb_result
    except (OSError, ValueError, TypeError):
        return False
    return bool(name) and (Path(run_dir) / name).is_file()


def training_task_names(corpus_sources: Iterable[str]) -> list[str]:
    """MTEB task names of the evaluation sets whose corpus generated the training queries: MTEB's task for a
    BEIR name or Hub set it knows (``BeIR/<name>`` maps to ``mteb/<name>``), and for a local folder or
    embedded set the custom task hardneg files its results under (``hardneg-<name>``)."""
    names = []
    for source in corpus_sources:
        spec = DatasetSpec.parse(str(source))
        src = spec.source.rstrip("/")
        if src.startswith("embedded:") or Path(src).exists():
            names.append(f"{CUSTOM_TASK_PREFIX}{spec.name}")
            continue
        short = src.split("/")[-1].lower()
        if "/" not in src and short not in BEIR_NAMES:
            continue
        task = registered_task_for(f"mteb/{short}")
        if task is not None:
            names.append(task.metadata.name)
    return list(dict.fromkeys(names))


def build_stats_of(dataset: str, revision: str | None = None) -> BuildStats:
    """The ``build_stats.json`` of a hardneg dataset (local folder or Hub id; empty when it has none)."""
    path = Path(dataset) / BUILD_STATS_FILE
    if not Path(dataset).exists():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(dataset, BUILD_STATS_FILE, repo_type="dataset", revision=revision))
        except Exception as err:  # not a hardneg dataset, offline: the card says nothing about the corpus
            logger.warning(
                "%s: no %s (%s); training corpora unknown", dataset, BUILD_STATS_FILE, type(err).__name__
            )
            return BuildStats()
    return BuildStats.from_disk(path) if path.is_file() else BuildStats()


def training_provenance(dataset: str, revision: str | None = None) -> tuple[list[str], list[str]]:
    """``(corpora, MTEB tasks)`` of a training dataset: the corpus sources its build recorded, and the MTEB
    task names of those corpora (empty without mteb)."""
    corpus = build_stats_of(dataset, revision).corpus.get("source")
    corpora = [str(corpus)] if corpus else []
    if not corpora or not mteb_enabled("auto"):
        return corpora, []
    return corpora, training_task_names(corpora)


def model_meta(
    model,
    *,
    name: str,
    revision: str | None,
    base_model: str | None,
    training_datasets: Iterable[str],
    license: str | None = None,
    training_code: str | None = None,
):
    """The ``ModelMeta`` of a fine-tuned model: from the sentence-transformers model, with the training
    datasets (MTEB task names and the hardneg dataset), the base model it was adapted from and its
    license."""
    require_mteb()
    from mteb.models import ModelMeta

    meta = ModelMeta._from_sentence_transformer_model(model)
    return meta.model_copy(
        update={
            "name": _model_name(name),
            "revision": revision or "no_revision_available",
            "adapted_from": base_model,
            "training_datasets": set(training_datasets),
            "license": license,
            "open_weights": True,
            "public_training_code": training_code,
            "languages": ["eng-Latn"],
            "release_date": _dt.date.today().isoformat(),
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "use_instructions": bool(getattr(model, "prompts", None)),
        }
    )


def write_model_meta(folder: str | Path, meta) -> Path:
    """``model_meta.json`` beside the model, as ``ResultCache`` writes it (``ModelMeta.to_dict``)."""
    path = Path(folder) / MODEL_META_FILE
    return write_atomic(path, json.dumps(meta.to_dict(), default=str, indent=4) + "\n")


def load_model_meta(path: str | Path):
    """A ``ModelMeta`` read back from ``model_meta.json``."""
    require_mteb()
    from mteb.models import ModelMeta

    return ModelMeta.model_validate_json_resolved(Path(path).read_text(encoding="utf-8"))


def write_trained_model_meta(folder: str | Path, model, card) -> Path | None:
    """``model_meta.json`` of a fine-tuned model (``hardneg.cards.ModelCardData`` ``card``): training datasets
    = the MTEB tasks its queries came from + the hardneg dataset; None without mteb."""
    if not mteb_enabled("auto"):
        return None
    dataset = [card.dataset_id] if not Path(card.dataset_id).exists() else []
    meta = model_meta(
        model,
        name=card.repo_id or f"{card.base_model.split(':')[-1].split('/')[-1]}.{card.dataset_config}",
        revision=None,
        base_model=_hub_model_id(card.base_model),
        training_datasets=[*card.not_zero_shot_on, *dataset],
        license=card.license,
        training_code=toolkit_url(),
    )
    return write_model_meta(folder, meta)
