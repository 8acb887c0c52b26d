"""What to evaluate: ``ModelSpec`` (one retriever), ``EvalConfig`` (models x datasets, ``recipes/*/eval.yaml``),
the expansion of a trained model folder into one model per ``seed<S>/`` folder, and the names a model has in
tables and result files (``readable_name``, ``model_key``). ``hardneg.evaluate`` runs it.

A model reference is resolved once (``ModelSpec.resolved``: ``hardneg.assets.resolve_embedder``); a dataset
reference is parsed here (``hardneg.references.DatasetSpec``) and resolved at ``evaluate``'s entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from hardneg.assets import ModelRef, resolve_embedder
from hardneg.metrics import DEFAULT_METRICS, QUERIES_WITHOUT_RELEVANT, parse_metric
from hardneg.mteb_results import PASSAGE_FORMATS, parse_task_names
from hardneg.options import check_fields
from hardneg.references import DatasetSpec

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
    # the model reference resolved once (``resolved``); not an entry key, not copied by ``replace``
    ref: ModelRef | None = field(default=None, init=False, repr=False, compare=False)

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

    def resolve(self) -> ModelRef:
        """Resolve the model reference, once (``hardneg.assets.resolve_embedder``: an embedded name -> its
        folder; an unknown embedded name fails here); BM25 is its own reference."""
        if self.ref is None:
            self.ref = ModelRef("bm25", source="bm25") if self.is_bm25 else resolve_embedder(self.model)
        return self.ref

    @property
    def resolved(self) -> ModelRef:
        """The resolved model reference (``resolve``)."""
        return self.resolve()


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
    queries_without_relevant: str = field(
        default="exclude",
        metadata={
            "help": "A judged query whose judgements are all grade 0 (no relevant document): exclude (hardneg's "
            "default: left out of the mean, counted) or zero (averaged in with score 0 on every metric, as MTEB, "
            "BEIR and ranx do); "
            "docs/evaluation.md, Metrics you can trust."
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
        if self.queries_without_relevant not in QUERIES_WITHOUT_RELEVANT:
            raise ValueError(
                f"queries_without_relevant '{self.queries_without_relevant}' is not exclude or zero; fix: use "
                "exclude (left out of the mean, hardneg's default) or zero (averaged in with score 0, as MTEB, "
                "BEIR and ranx do)"
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
    return Path(spec.resolved.name.rstrip("/")).name


def model_key(spec: ModelSpec, name: str | None = None) -> str:
    """File-safe key of a model in result names: ``<readable name>.<method>`` (+ ``.seed<S>``); ``name``: the
    readable name when the caller has it (``readable_name`` may read the model card)."""
    seed = "" if spec.seed is None else f".seed{spec.seed}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{name or readable_name(spec)}.{spec.method}{seed}")
