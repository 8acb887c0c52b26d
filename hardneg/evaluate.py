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
(``KNOWN_REVISIONS``); any other Hub set records the revision it resolved to.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hardneg import mteb_results
from hardneg.assets import dtype_name, resolve_dataset, resolve_embedder
from hardneg.beir import BEIR_NAMES, DatasetSpec, check_dataset_name, load_eval_dataset
from hardneg.corpus import BeirData
from hardneg.encode import process_state
from hardneg.errors import first_line
from hardneg.metrics import (
    DEFAULT_METRICS,
    drop_identical_ids,
    evaluate_run,
    parse_metric,
    read_run_file,
    write_run_file,
)
from hardneg.mteb_results import PASSAGE_FORMATS, format_passage, parse_task_names
from hardneg.options import check_fields
from hardneg.records import EvalResult
from hardneg.revisions import model_commit, resolve_revision

logger = logging.getLogger(__name__)

MODEL_KEYS = {
    "method",
    "model",
    "name",
    "query_prompt",
    "passage_prompt",
    "batch_size",
    "max_seq_length",
    "seed",
}
RUN_FILE_SUFFIX = ".trec.gz"
# Sets whose queries are also documents: BEIR and MTEB drop a retrieved document whose id equals the query
# id (MTEB's ArguAna and QuoraRetrieval tasks set ignore_identical_ids; so does BEIR's evaluate by default).
# MTEB also sets it for FEVER, MSMARCO and FiQA2018, whose query and document ids are separate numbers:
# set ignore_identical_ids: true to match MTEB exactly there.
IDENTICAL_ID_DATASETS = ("arguana", "quora")
# Hub revisions (commit shas) of the BEIR sets as MTEB pins them in its task definitions
# (github.com/embeddings-benchmark/mteb, mteb/tasks/retrieval/eng/*.py at commit a905523d, 2026-08-22).
# A Hub set named without a revision is loaded at this revision; other Hub sets record the one they used.
KNOWN_REVISIONS = {
    "mteb/arguana": "c22ab2a51041ffd869aaddef7af8d8215647e41a",
    "mteb/climate-fever": "47f2ac6acb640fc46020b02a5b59fdda04d39380",
    "mteb/dbpedia": "c0f706b76e590d620bd6618b3ca8efdd34e2d659",
    "mteb/fever": "bea83ef9e8fb933d90a2f1d5515737465d613e12",
    "mteb/fiqa": "27a168819829fe9bcd655c2df245fb19452e8e06",
    "mteb/hotpotqa": "ab518f4d6fcca38d87c25209f94beba119d02014",
    "mteb/msmarco": "c5a29a104738b98a9e76336939199e264163d4a0",
    "mteb/nfcorpus": "ec0fa4fe99da2ff19ca1214b7966684033a58814",
    "mteb/nq": "b774495ed302d8c44a3a7ea25c90dbce03968f31",
    "mteb/quora": "e4e08e0b7dbe3c8700f0daef558ff32256715259",
    "mteb/scidocs": "f8c2fcf00f625baaa80f62ec5bd9e1fff3b8ae88",
    "mteb/scifact": "d56462d0e63a25450459c4f213e49ffdb866f7f9",
    "mteb/touche2020": "a34f9a33db75fa0cbb21bb5cfc3dae8dc8bec93f",
    "mteb/trec-covid": "bb9466bac8153a0349341eb1b22e06409e78ef4e",
}
SEED_DIR = re.compile(r"^seed(-?[0-9]+)$")


@dataclass
class ModelSpec:
    """One retriever to evaluate: ``method`` labels its row in the report (bm25, zero-shot, llm_hn ...)."""

    method: str
    model: str = "bm25"
    name: str | None = None
    query_prompt: str | None = None
    passage_prompt: str | None = None
    batch_size: int | None = None
    max_seq_length: int | None = None
    seed: int | None = None

    @classmethod
    def parse(cls, entry: str | dict, run_dir: str) -> ModelSpec:
        """``{"method": "llm_hn", "model": "{run_dir}/models/llm_hn", ...}`` or ``"llm_hn={run_dir}/models/llm_hn"``."""
        if isinstance(entry, str):
            method, sep, model = entry.partition("=")
            if not sep:
                raise ValueError(
                    f"model entry '{entry}' is not method=model; fix: e.g. zero-shot=embedded:minilm"
                )
            entry = {"method": method, "model": model}
        if not isinstance(entry, dict) or "method" not in entry:
            raise ValueError(
                f"model entry {entry!r} needs a 'method'; fix: e.g. {{method: bm25, model: bm25}}"
            )
        unknown = set(entry) - MODEL_KEYS
        if unknown:
            raise ValueError(
                f"model entry {entry} has unknown key(s) {sorted(unknown)}; allowed: {sorted(MODEL_KEYS)}"
            )
        spec = cls(**entry)
        spec.model = str(spec.model).replace("{run_dir}", run_dir)
        return spec

    @property
    def is_bm25(self) -> bool:
        return self.model.lower() == "bm25"


@dataclass
class EvalConfig:
    """Models x datasets to evaluate (``recipes/*/eval.yaml``)."""

    OUTPUT_KIND: ClassVar[str] = "run"  # hardneg.config.check_outputs
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("datasets",)

    run_dir: str = field(
        default="runs/demo", metadata={"help": "Run folder; results go to <run_dir>/results/."}
    )
    datasets: list[str] = field(
        default_factory=lambda: ["embedded:cranfield"],
        metadata={
            "help": "Evaluation sets: a BEIR name (scifact, nfcorpus, fiqa, ...), embedded:cranfield, a BEIR "
            "folder, or a Hub id in the BeIR/<name> or mteb/<name> layout, pinned as name@revision."
        },
    )
    split: str = field(default="test", metadata={"help": "Judgement split (qrels) to evaluate on."})
    # Typed list[str] so command-line method=model strings parse; YAML mapping entries pass through as dicts.
    models: list[str] = field(
        default_factory=lambda: [
            {"method": "bm25", "model": "bm25"},
            {"method": "zero-shot", "model": "embedded:minilm"},
        ],
        metadata={
            "help": "Retrievers: entries {method, model, name?, query_prompt?, passage_prompt?, batch_size?, "
            "max_seq_length?}; model is 'bm25', a sentence-transformers id/folder or embedded:minilm; "
            "'{run_dir}' is replaced by run_dir. On the command line: method=model strings."
        },
    )
    metrics: list[str] = field(
        default_factory=lambda: list(DEFAULT_METRICS),
        metadata={"help": "Metrics as <name>@<k>, name in ndcg, p, recall, map, mrr."},
    )
    top_k: int = field(
        default=100,
        metadata={"bounds": (1, None), "help": "Documents retrieved per query (>= every metric's k)."},
    )
    batch_size: int = field(
        default=32,
        metadata={"bounds": (1, None), "help": "Encoding batch size (per model override: batch_size)."},
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Encoder matmul precision: auto (bfloat16 on a CUDA GPU with bf16, else float32), float32, "
            "bfloat16 (also ~1.8x faster on CPUs with avx512_bf16/AMX; cosine within 1e-4 of float32), float16."
        },
    )
    part_size: int | None = field(
        default=None,
        metadata={
            "bounds": (1, None),
            "help": "Passages per cached / sharded encoding part; default: from corpus size and processes.",
        },
    )
    corpus_chunk_size: int = field(
        default=50_000, metadata={"bounds": (1, None), "help": "Corpus rows scored at once in search."}
    )
    cache_dir: str = field(
        default="{run_dir}/cache/embeddings",
        metadata={
            "help": "Corpus embedding cache, keyed by model weights + corpus + prompt; '' disables it."
        },
    )
    max_queries: int = field(
        default=0, metadata={"help": "Evaluate only the first N judged queries (0 = all); for smoke tests."}
    )
    device: str | None = field(
        default=None, metadata={"help": "Torch device (default: the process's device)."}
    )
    seeds: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Training seeds to evaluate: a model folder holding seed<S>/ folders is evaluated once per "
            "seed (default: every seed folder found; a listed seed that is missing is an error)."
        },
    )
    ignore_identical_ids: str = field(
        default="auto",
        metadata={
            "help": "Drop a retrieved document whose id equals the query id before scoring (BEIR/MTEB rule): "
            "auto (ArguAna and Quora, by dataset name), true (every dataset) or false."
        },
    )
    passage_format: str = field(
        default="hardneg",
        metadata={
            "help": "How a passage's title joins its text: hardneg ('title. text', the title left out when the "
            "text starts with it) or mteb (MTEB's 'title text'); docs/evaluation.md, Agreement with MTEB."
        },
    )
    mteb_results: str = field(
        default="auto",
        metadata={
            "help": "Also write MTEB TaskResult files (<run_dir>/mteb_results/results/<model>/<revision>/<task>.json): "
            "auto (when mteb is installed), true or false."
        },
    )
    mteb_tasks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "DATASET=TASK pairs filing a dataset's MTEB results under an MTEB task name (default: MTEB's "
            "task for a BEIR set it knows, else a custom task hardneg-<dataset>)."
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "Recompute result files that already exist."})
    show_progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("no datasets to evaluate; fix: set datasets, e.g. [embedded:cranfield]")
        if not self.models:
            raise ValueError("no models to evaluate; fix: set models, e.g. [{method: bm25, model: bm25}]")
        if self.ignore_identical_ids not in ("auto", "true", "false"):
            raise ValueError(
                f"ignore_identical_ids '{self.ignore_identical_ids}' is not auto, true or false; "
                "fix: use auto (ArguAna and Quora), true or false"
            )
        if self.passage_format not in PASSAGE_FORMATS:
            raise ValueError(
                f"passage_format '{self.passage_format}' is not one of {', '.join(PASSAGE_FORMATS)}; fix: use hardneg or mteb"
            )
        if self.mteb_results not in ("auto", "true", "false"):
            raise ValueError(
                f"mteb_results '{self.mteb_results}' is not auto, true or false; fix: use auto, true or false"
            )
        parse_task_names(self.mteb_tasks)
        specs = [ModelSpec.parse(m, self.run_dir) for m in self.models]
        self.model_specs = [s for spec in specs for s in expand_seeds(spec, self.seeds)]
        self.dataset_specs = [DatasetSpec.parse(d, self.split) for d in self.datasets]
        ks = [parse_metric(m)[1] for m in self.metrics]
        if self.top_k < max(ks):
            raise ValueError(
                f"top_k={self.top_k} is below the largest metric cut-off {max(ks)}; fix: raise top_k"
            )
        keys = [model_key(s) for s in self.model_specs]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(
                f"two models share the result name(s) {sorted(dup)}; fix: give them different method/name"
            )
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)


def seed_folders(folder: str | Path) -> dict[int, Path]:
    """``{seed: folder}`` for the ``seed<S>/`` model folders under ``folder`` (empty if none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {int(m.group(1)): p for p in folder.iterdir() if p.is_dir() and (m := SEED_DIR.match(p.name))}
    return dict(sorted(found.items()))


def expand_seeds(spec: ModelSpec, seeds: list[int]) -> list[ModelSpec]:
    """One spec per trained seed when ``spec.model`` is a folder of ``seed<S>/`` model folders (only the
    ``seeds`` listed, when given); otherwise ``[spec]`` unchanged."""
    if spec.is_bm25 or spec.seed is not None:
        return [spec]
    found = seed_folders(spec.model)
    if not found:
        return [spec]
    missing = sorted(set(seeds) - set(found))
    if missing:
        raise ValueError(
            f"model '{spec.model}' (method {spec.method}) has no folder for seed(s) {missing} (found "
            f"{sorted(found)}); fix: train them (`make train SEEDS=...`) or drop them from --seeds"
        )
    return [
        replace(spec, model=str(path), seed=seed)
        for seed, path in found.items()
        if not seeds or seed in seeds
    ]


def readable_name(spec: ModelSpec) -> str:
    """The model's name in tables: ``name`` if given, BM25, the base model of a fine-tuned folder's card,
    or the last part of the model id (``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2``)."""
    if spec.name:
        return spec.name
    if spec.is_bm25:
        return "BM25"
    card = Path(spec.model) / "README.md"
    if card.is_file():
        from huggingface_hub import ModelCard

        try:
            base = ModelCard.load(card).data.to_dict().get("base_model")
        except Exception:  # a hand-written README without YAML is fine: fall back to the id
            base = None
        if isinstance(base, list):
            base = base[0] if base else None
        if base:
            return readable_name(ModelSpec(spec.method, str(base)))
    ref = resolve_embedder(spec.model)
    return Path(ref.name.rstrip("/")).name


def model_key(spec: ModelSpec) -> str:
    """File-safe key of a model in result names: ``<readable name>.<method>`` (+ ``.seed<S>``)."""
    seed = "" if spec.seed is None else f".seed{spec.seed}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{readable_name(spec)}.{spec.method}{seed}")


def result_path(run_dir: str | Path, spec: ModelSpec, dataset: str) -> Path:
    return Path(run_dir) / "results" / f"{model_key(spec)}__{re.sub(r'[^A-Za-z0-9._-]+', '_', dataset)}.json"


def run_file_path(result: str | Path) -> Path:
    """The gzip TREC run file beside a result file: ``<result stem>.trec.gz``."""
    result = Path(result)
    return result.with_name(result.stem + RUN_FILE_SUFFIX)


def ignores_identical_ids(option: str, dataset_name: str) -> bool:
    """Whether the BEIR/MTEB ``ignore_identical_ids`` rule applies to ``dataset_name`` under ``option``."""
    if option in ("true", "false"):
        return option == "true"
    return dataset_name.lower() in IDENTICAL_ID_DATASETS


def hub_id(spec: DatasetSpec) -> str | None:
    """The Hub repo a dataset spec loads from (a BEIR name -> ``mteb/<name>``); None for local sets."""
    source = resolve_dataset(spec.source)
    if Path(source).exists():
        return None
    if "/" in source:
        return source
    return f"mteb/{source.lower()}" if source.lower() in BEIR_NAMES else None


def pin_revision(spec: DatasetSpec) -> tuple[DatasetSpec, str]:
    """``(spec, how)``: a Hub set named without a revision gets its ``KNOWN_REVISIONS`` pin (how
    ``pinned``); ``given`` when the user pinned it, ``local`` for folders, ``unpinned`` otherwise."""
    repo = hub_id(spec)
    if repo is None:
        return spec, "local"
    if spec.revision:
        return spec, "given"
    if repo in KNOWN_REVISIONS:
        return replace(spec, revision=KNOWN_REVISIONS[repo]), "pinned"
    return spec, "unpinned"


def resolved_revision(spec: DatasetSpec, how: str) -> str | None:
    """The commit a Hub set was read at: the pin or given revision, else the Hub's answer for the
    default branch now (None when the Hub cannot be asked, e.g. offline)."""
    if how == "local":
        return None
    if how in ("pinned", "given"):  # a tag is recorded as the commit it named (load_eval_dataset checked it)
        return resolve_revision(hub_id(spec), spec.revision)
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(hub_id(spec), revision="main").sha
    except Exception as err:  # offline, gated, unknown: record that it is unknown, never fail the run
        logger.warning("%s: could not resolve the Hub revision used (%s)", spec.source, type(err).__name__)
        return None


def source_stamp(spec: ModelSpec) -> str:
    """What the model is made of, cheaply: for a local folder, its files' names, sizes and mtimes (a
    retrained model gets a new stamp); for a Hub id, embedded model or BM25, the id itself."""
    folder = Path(resolve_embedder(spec.model).name_or_path) if not spec.is_bm25 else None
    if folder is None or not folder.is_dir():
        return spec.model
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _is_current(
    path: Path, spec: ModelSpec, dtype: str | None = None, expect: dict[str, Any] | None = None
) -> bool:
    """An existing result file is reused only if it was computed from the same model files (and, for a
    dense model, in the same ``dtype`` when one is given), its run file is there, and every key of
    ``expect`` (``scoring_settings``: max_queries, top_k, the identical-ids rule, the metric list, the
    requested dataset revision) has the same value in it."""
    if not path.is_file() or not run_file_path(path).is_file():
        return False
    try:
        old = EvalResult.from_disk(path)  # older files are converted there
    except (OSError, ValueError, TypeError):
        return False
    same_dtype = dtype is None or spec.is_bm25 or old.dtype == dtype
    same_settings = all(old.setting(k) == v for k, v in (expect or {}).items())
    return old.source_stamp == source_stamp(spec) and same_dtype and same_settings


def mteb_model(spec: ModelSpec, result: EvalResult, model=None) -> mteb_results.ModelInfo:
    """The model an MTEB result is filed under: a Hub or embedded model by its Hub id and commit; a local
    folder (fine-tuned) as ``hardneg/<model key>`` at its files' stamp, with the ``model_meta.json`` saved
    beside it by training; BM25 as ``hardneg/<model key>``."""
    folder = None if spec.is_bm25 else Path(resolve_embedder(spec.model).name_or_path)
    if folder is not None and folder.is_dir() and not spec.model.startswith("embedded:"):
        return mteb_results.model_info(model_key(spec), result.source_stamp, folder, model)
    name = model_key(spec) if spec.is_bm25 else resolve_embedder(spec.model).name
    return mteb_results.model_info(name, result.model_commit, None, model)


def scoring_settings(config: EvalConfig, dspec: DatasetSpec, pin: tuple[DatasetSpec, str]) -> dict[str, Any]:
    """What else decides a result's numbers besides the model: compared by ``_is_current``, written into
    every result file."""
    pinned, how = pin
    return {
        "max_queries": config.max_queries,
        "top_k": config.top_k,
        "ignore_identical_ids": ignores_identical_ids(config.ignore_identical_ids, dspec.name),
        "metric_list": sorted(config.metrics),
        "dataset_request": {"revision": pinned.revision, "how": how},
        "passage_format": config.passage_format,
    }


def load_embedder(spec: ModelSpec, device: str | None = None):
    """A SentenceTransformer for ``spec`` (embedded ids resolved); a clear error when it cannot load."""
    from sentence_transformers import SentenceTransformer

    ref = resolve_embedder(spec.model)
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


def _run_from_topk(
    query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    return {
        q: {doc_ids[j]: float(s) for j, s in zip(indices[r], scores[r], strict=True)}
        for r, q in enumerate(query_ids)
    }


def search_bm25(
    data: BeirData,
    query_ids: list[str],
    top_k: int,
    show_progress: bool = True,
    passage_format: str = "hardneg",
) -> dict:
    """BM25 (bm25s, Lucene variant, English stemming + stop words) top-k run over ``data``."""
    from hardneg.bm25 import BM25Index

    doc_ids = list(data.corpus)
    texts = [format_passage(d, passage_format) for d in data.corpus.values()]
    index = BM25Index(texts, doc_ids, show_progress=show_progress)
    idx, scores = index.search_indices([data.queries[q] for q in query_ids], top_k)
    return _run_from_topk(query_ids, doc_ids, np.asarray(idx), np.asarray(scores))


def search_dense(
    model,
    data: BeirData,
    query_ids: list[str],
    top_k: int,
    *,
    query_prompt: str = "",
    passage_prompt: str = "",
    batch_size: int = 32,
    part_size: int | None = None,
    corpus_chunk_size: int = 50_000,
    cache_dir: str | Path | None = None,
    dtype: str = "float32",
    show_progress: bool = True,
    passage_format: str = "hardneg",
) -> tuple[dict, dict[str, Any]]:
    """Encode corpus (cached, sharded) and queries, exact top-k search; returns (run, info).

    ``dtype``: matmul precision of the encoder (``hardneg.assets.autocast``): float32, bfloat16, float16 or
    auto (bfloat16 on a CUDA GPU that has it, else float32)."""
    from hardneg.assets import autocast
    from hardneg.encode import cache_key, encode_corpus, fingerprint_model, fingerprint_texts, search_topk

    doc_ids = list(data.corpus)
    texts = [format_passage(d, passage_format) for d in data.corpus.values()]
    dtype = dtype_name(dtype, str(model.device))
    info: dict[str, Any] = {
        "similarity": model.similarity_fn_name or "cosine",
        "dtype": dtype,
        "model_commit": model_commit(model),  # the Hub commit of the weights evaluated (None: local folder)
    }
    key = None
    if cache_dir:
        info["model_fingerprint"] = fingerprint_model(model)
        info["corpus_fingerprint"] = fingerprint_texts(doc_ids, texts)
        key = cache_key(info["model_fingerprint"], info["corpus_fingerprint"], passage_prompt, dtype)
    t0 = time.perf_counter()
    corpus_emb = encode_corpus(
        model,
        texts,
        prompt=passage_prompt,
        batch_size=batch_size,
        part_size=part_size,
        cache_dir=cache_dir or None,
        cache_key=key,
        dtype=dtype,
        show_progress=show_progress,
    )
    info["encode_corpus_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with autocast(dtype, model.device):
        query_emb = model.encode(
            [data.queries[q] for q in query_ids],
            prompt=query_prompt or None,
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    info["encode_queries_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = process_state()
    idx, scores = search_topk(
        query_emb,
        corpus_emb,
        top_k,
        similarity=info["similarity"],
        corpus_chunk_size=corpus_chunk_size,
        device=str(state.device),
    )
    info["search_s"] = time.perf_counter() - t0
    return _run_from_topk(query_ids, doc_ids, idx, scores), info


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


def evaluate_model_on_dataset(
    spec: ModelSpec,
    data: BeirData,
    config: EvalConfig,
    model=None,
    dataset_source: str = "",
    *,
    dataset_revision: dict[str, Any] | None = None,
) -> tuple[EvalResult, dict[str, dict[str, float]]]:
    """Run one retriever on one dataset and score it; returns (the result record, the scored run)."""
    query_ids = [q for q in data.qrels if q in data.queries]
    if config.max_queries:
        query_ids = query_ids[: config.max_queries]
    if not query_ids:
        raise ValueError(
            f"dataset '{data.name}' has no judged query with a text; fix: check queries vs qrels ids"
        )
    t0 = time.perf_counter()
    info: dict[str, Any] = {}
    prompts = ("", "")
    ignore_identical = ignores_identical_ids(config.ignore_identical_ids, data.name)
    # one more document per query, so that top_k remain once a query's own id is dropped (as BEIR does)
    depth = config.top_k + 1 if ignore_identical else config.top_k
    if spec.is_bm25:
        run = search_bm25(
            data, query_ids, depth, show_progress=config.show_progress, passage_format=config.passage_format
        )
    else:
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
    dropped = 0
    if ignore_identical:
        run, dropped = drop_identical_ids(run, config.top_k)
    wall = time.perf_counter() - t0
    qrels = {q: data.qrels[q] for q in query_ids}
    scored = evaluate_run(qrels, run, config.metrics)
    # The run holds judged queries only; unjudged ones are counted from the dataset, never silently dropped.
    counts = asdict(scored.counts)
    counts.update(dataset_counts(data))
    counts["excluded_query_ids"]["without_judgements"] = sorted(set(data.queries) - set(data.qrels))[:1000]
    judged_with_text = [q for q in data.qrels if q in data.queries]
    counts["queries_skipped_by_max_queries"] = len(judged_with_text) - len(query_ids)
    for key, what in (
        ("queries_without_judgements", "queries have no judgements and are not averaged"),
        ("queries_without_relevant", "judged queries have no relevant document and are not averaged"),
        (
            "qrels_docs_missing_from_corpus",
            "judged documents are missing from the corpus (still count as relevant)",
        ),
        ("qrels_queries_missing_from_queries", "judged query ids have no query text and are not averaged"),
    ):
        if counts[key]:
            logger.warning("%s: %d %s", data.name, counts[key], what)
    import hardneg

    result = EvalResult(
        model=readable_name(spec),
        method=spec.method,
        seed=spec.seed,
        model_path=spec.model,
        source_stamp=source_stamp(spec),
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


def evaluate(config: EvalConfig) -> list[Path]:
    """Evaluate every model on every dataset; write (and return the paths of) the result files.

    Models load once and datasets once; a result file that exists is kept unless ``overwrite``.
    Under ``accelerate launch`` every process encodes its share of the corpus; only the main process
    scores and writes.
    """
    state = process_state()
    for dspec in config.dataset_specs:
        check_dataset_name(dspec)
    for spec in config.model_specs:  # fail before hours of work, not after
        path = Path(spec.model)
        looks_local = path.is_absolute() or spec.model.startswith(".") or Path(path.parts[0]).is_dir()
        if not spec.is_bm25 and looks_local and not path.exists():
            raise RuntimeError(
                f"cannot load model '{spec.model}' (method {spec.method}): the folder does not exist; fix: "
                "train it first (`make train` writes <run_dir>/models/<method>/seed<S>) or correct the path"
            )
    out_dir = Path(config.run_dir) / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    datasets: dict[DatasetSpec, BeirData] = {}
    device = config.device or str(state.device)
    dtype = dtype_name(config.dtype, device)
    pins = {d: pin_revision(d) for d in config.dataset_specs}
    revisions: dict[DatasetSpec, dict[str, Any]] = {}
    write_mteb = mteb_results.mteb_enabled(config.mteb_results)
    mteb_names = parse_task_names(config.mteb_tasks)
    for name in mteb_names.values() if write_mteb else ():
        mteb_results.get_registered_task(name)  # an unknown task name fails now, not after the encoding
    for spec in config.model_specs:
        state.wait_for_everyone()  # every process decides what is left from the same files
        stale = [
            d
            for d in config.dataset_specs
            if config.overwrite
            or not _is_current(
                result_path(config.run_dir, spec, d.name), spec, dtype, scoring_settings(config, d, pins[d])
            )
        ]
        # a current result without its MTEB file (computed before mteb was installed): the MTEB file is made
        # from the kept run file, nothing is encoded again
        mteb_only = [
            d
            for d in config.dataset_specs
            if d not in stale
            and write_mteb
            and not mteb_results.has_task_result(config.run_dir, result_path(config.run_dir, spec, d.name))
        ]
        todo = stale + mteb_only
        written += [result_path(config.run_dir, spec, d.name) for d in config.dataset_specs if d not in todo]
        if not todo:
            logger.info(
                "%s: results of these model files exist, skipped (overwrite=true recomputes)", model_key(spec)
            )
            continue
        model = None if spec.is_bm25 else load_embedder(spec, device)
        for dspec in todo:
            pinned, how = pins[dspec]
            if dspec not in datasets:
                datasets[dspec] = load_eval_dataset(pinned)
                revisions[dspec] = {"revision": resolved_revision(pinned, how), "how": how}
            data = datasets[dspec]
            path = result_path(config.run_dir, spec, dspec.name)
            if dspec in stale:
                result, run = evaluate_model_on_dataset(
                    spec, data, config, model, dataset_source=dspec.source, dataset_revision=revisions[dspec]
                )
            else:
                result = EvalResult.from_disk(path, "evaluate again (overwrite: true)")
                run = read_run_file(run_file_path(path), result.run_file_queries)
            if state.is_main_process:
                if dspec in stale:
                    result = replace(result, **scoring_settings(config, dspec, pins[dspec]))
                    result.run_file = write_run_file(run_file_path(path), run, tag=model_key(spec)).name
                if write_mteb:
                    mteb_path = mteb_results.write_evaluation(
                        config.run_dir,
                        data=data,
                        run=run,
                        split=config.split,
                        hub_path=hub_id(pinned),
                        revision=revisions[dspec]["revision"],
                        task_name=mteb_names.get(dspec.name),
                        model=mteb_model(spec, result, model),
                        evaluation_time=result.timing["wall_s"],
                        passage_format=config.passage_format,
                        ignore_identical_ids=result.ignore_identical_ids,
                    )
                    result.mteb_result = str(mteb_path.relative_to(config.run_dir))
                result.run_file_queries = sum(1 for ranked in run.values() if ranked)  # checked on reading
                result.to_disk(path)
                m = result.metrics
                seed = "" if spec.seed is None else f" seed{spec.seed}"
                print(
                    f"{result.model:>24} {spec.method + seed:>16} {data.name:>12}  "
                    + "  ".join(f"{k} {v:.4f}" for k, v in m.items())
                    + f"  ({result.counts['queries_evaluated']} queries)"
                )
            written.append(path)
        del model
    state.wait_for_everyone()
    return written
