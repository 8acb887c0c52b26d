"""The build stage: corpus -> LLM queries -> hard negatives by each method -> Hub-ready dataset folder.

``build()`` runs the pipeline's named steps, in this order:

1. ``load_inputs``: the corpus, the mining pool (minus the evaluation set's judged documents when asked,
   via ``hardneg.decontaminate``) and the seeded passage sample;
2. ``make_queries``: one LLM query per sampled passage, then ``decontaminate_queries`` drops the
   evaluation set's query texts;
3. ``make_methods``: each registered method (``hardneg.methods``) on the same queries, configs a
   derived method reads (``hybrid_hn``'s sources) first;
4. ``pair_configs``: by default only the query ids present in every config are kept (a paired
   comparison), the rows dropped are counted per config;
5. ``false_negative_stats``: one scorer (and optionally an independent judge) rates every config's rows;
6. ``collect_stats`` + the folder (``hardneg.hub.save_dataset_folder``).

Every finished stage is checkpointed under ``<output_dir>/stages/<name>/``, keyed only by its own inputs:
the queries by the corpus sample, the prompt, its budget and the generator's output settings
(``GeneratorConfig.output_settings``: URLs, concurrency, batch size and device are left out); a method by
the queries, its own options from the registry (with ``method_options`` overrides) and what it needs
(the generator's output settings only for LLM methods). A rerun of the same command reuses finished
stages, and LLM generation resumes item by item from its own cache, so a crash loses nothing computed.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, load_from_disk

import hardneg
from hardneg.assets import EMBEDDED_EMBEDDER
from hardneg.cards import library_versions
from hardneg.config import ConfigError, check_replaceable
from hardneg.corpus import EMPTY_PASSAGES, load_corpus
from hardneg.decontaminate import decontaminate_corpus, decontaminate_queries, exclusions_from_beir
from hardneg.distributed import (
    DONE_FILE,
    ONE_PROCESS,
    Shard,
    bind_local_device,
    concat_shards,
    current_shard,
    merge_stats,
    shard_generator_config,
    shard_rows,
    wait_for_shards,
    write_done,
)
from hardneg.files import recover_folder, write_atomic
from hardneg.hub import save_dataset_folder
from hardneg.id_layout import LAYOUTS, layout_configs
from hardneg.llm import Generator, GeneratorConfig, load_generator
from hardneg.methods import (
    FN_SCORES_GLOB,
    QUERIES_CONFIG,
    BuildStats,
    ConfigStats,
    Method,
    MethodContext,
    arrow_table,
    content_key,
    empty_table,
    fn_scores_file,
    get_method,
    method_names,
)
from hardneg.negatives import (
    dense_embedder,
    false_negative_scores,
    false_negative_summary,
    pool_cache,
    pool_passages,
)
from hardneg.negatives.dense import encode_pool, load_embedder
from hardneg.negatives.llm import PERTURB_STRENGTHS
from hardneg.negatives.mining import MINING_RULES_VERSION, mining_rules
from hardneg.negatives.repair import JUDGE_PROMPT, REPAIR_MODES, REPAIR_SCOPES, repair_false_negatives
from hardneg.options import check_fields
from hardneg.prompts import load_prompt
from hardneg.queries import generate_queries
from hardneg.records import FalseNegativeScores, write_false_negative_scores
from hardneg.scorers import load_scorer

logger = logging.getLogger(__name__)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Log a named step's wall time (``step <name>: N s``; benchmarks/scale.py reads these lines)."""
    start = time.perf_counter()
    yield
    logger.info("step %s: %.1f s", name, time.perf_counter() - start)


@dataclass
class BuildConfig:
    """What to build. Generator settings live in ``hardneg.llm.GeneratorConfig`` (same recipe file)."""

    ONE_OR_LIST: ClassVar[tuple[str, ...]] = ("decontaminate",)  # one set may be given as a string
    OUTPUT_KIND: ClassVar[str] = "run"  # hardneg.config.check_outputs
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("corpus",)

    output_dir: str = field(
        default="runs/demo", metadata={"help": "Run folder; the dataset goes to <output_dir>/dataset."}
    )
    corpus: str = field(
        default="embedded:cranfield",
        metadata={
            "help": "Passages: embedded:cranfield, a BEIR folder, a .jsonl/.parquet file or a Hub dataset id."
        },
    )
    corpus_revision: str | None = field(
        default=None, metadata={"help": "Hub revision (tag/commit) of the corpus."}
    )
    corpus_text_column: str = field(
        default="text", metadata={"help": "Column of the corpus holding the passage text."}
    )
    corpus_title_column: str | None = field(
        default="title", metadata={"help": "Column holding the passage title (none/missing = no titles)."}
    )
    empty_passages: str = field(
        default="drop",
        metadata={
            "help": "Corpus rows with an empty or missing text: drop (counted in build_stats, first ids logged) or error."
        },
    )
    num_passages: int = field(
        default=150,
        metadata={
            "help": "Passages sampled (seeded) as positives; 0 = all. Mining always uses the whole corpus."
        },
    )
    methods: list[str] = field(
        default_factory=lambda: ["llm_hn", "bm25_hn", "ce_hn"],
        metadata={"help": "Hard-negative configs to build: names registered in hardneg.methods."},
    )
    method_options: dict[str, dict[str, Any]] | str | None = field(
        default_factory=dict,
        metadata={
            "help": "Per-method overrides of that method's options, e.g. {bm25_hn: {range_max: 10}} (YAML) or "
            "JSON on the command line; only the overridden method is rebuilt."
        },
    )
    paired: bool = field(
        default=True,
        metadata={
            "help": "Keep only query ids present in every method's config (a paired comparison); drops are "
            "counted per config in build_stats."
        },
    )
    query_prompt: str = field(
        default="query_fewshot",
        metadata={"help": "Query prompt: a packaged template name or a template file path."},
    )
    llm_hn_prompt: str = field(
        default="llm_hn", metadata={"help": "Prompt for llm_hn (negative from the query alone)."}
    )
    llm_pos_hn_prompt: str = field(
        default="llm_pos_hn", metadata={"help": "Prompt for llm_pos_hn (query + positive)."}
    )
    llm_perturb_hn_prompt: str = field(
        default="llm_perturb_hn",
        metadata={"help": "Prompt for llm_perturb_hn (the positive rewritten so it no longer answers)."},
    )
    perturb_strength: str = field(
        default="medium",
        metadata={"help": "llm_perturb_hn: how much of the positive to change: light | medium | heavy."},
    )
    perturb_max_new_tokens: int = field(
        default=192,
        metadata={"bounds": (1, None), "help": "llm_perturb_hn: token budget of a rewritten passage."},
    )
    query_max_new_tokens: int = field(
        default=32, metadata={"bounds": (1, None), "help": "Token budget of a generated query."}
    )
    negative_max_new_tokens: int = field(
        default=96, metadata={"bounds": (1, None), "help": "Token budget of a generated negative passage."}
    )
    reject_retries: int = field(
        default=2, metadata={"help": "Retries (new seed) for an LLM output rejected by the hygiene filters."}
    )
    range_min: int = field(
        default=0, metadata={"help": "Skip the first range_min candidates of the ranking (mined methods)."}
    )
    range_max: int = field(
        default=20,
        metadata={"bounds": (1, None), "help": "Consider only the top range_max candidates (mined methods)."},
    )
    num_negatives: int = field(
        default=1, metadata={"bounds": (1, None), "help": "Negatives per query (one triplet row each)."}
    )
    sampling_strategy: str = field(
        default="top", metadata={"help": "top | random (seeded) among the kept candidates."}
    )
    absolute_margin: float | None = field(
        default=None, metadata={"help": "Keep negatives scoring < positive - margin."}
    )
    relative_margin: float | None = field(
        default=None,
        metadata={"help": "Keep negatives scoring < positive * (1 - margin) (NV-Retriever TopK-PercPos)."},
    )
    max_score: float | None = field(default=None, metadata={"help": "Drop candidates scoring above this."})
    min_score: float | None = field(default=None, metadata={"help": "Drop candidates scoring below this."})
    ce_scorer: str = field(
        default="embedded:ql",
        metadata={
            "help": "Scorer for ce_hn: a CrossEncoder id (cross-encoder/ms-marco-MiniLM-L-6-v2) or embedded:ql."
        },
    )
    ce_absolute_margin: float | None = field(
        default=0.0,
        metadata={
            "help": "False-negative guard of ce_hn: keep candidates the cross-encoder scores below positive - margin "
            "(overrides absolute_margin for ce_hn; none to disable)."
        },
    )
    scorer_dtype: str = field(
        default="auto",
        metadata={
            "help": "Precision of the ce / false-negative scorers: auto (bfloat16 on a CUDA GPU with bf16, else "
            "float32 = CrossEncoder.predict's scores), float32, bfloat16 (~1.8x faster on CPUs with avx512_bf16), float16."
        },
    )
    ce_candidates: str = field(
        default="bm25", metadata={"help": "Candidate generator for ce_hn: bm25 | dense."}
    )
    embedder: str = field(
        default=EMBEDDED_EMBEDDER, metadata={"help": "Bi-encoder for dense_hn / dense candidates."}
    )
    hybrid_sources: list[str] = field(
        default_factory=lambda: ["llm_hn", "bm25_hn"],
        metadata={"help": "hybrid_hn: the LLM config and the mined config it draws negatives from."},
    )
    hybrid_llm_ratio: float = field(
        default=0.5,
        metadata={
            "bounds": (0, 1),
            "help": "hybrid_hn: share of all negatives taken from the LLM config (0-1).",
        },
    )
    false_negative_scorer: str | None = field(
        default="same",
        metadata={
            "help": "Scorer for the suspected-false-negative rate of every config ('same' = ce_scorer; none to skip)."
        },
    )
    false_negative_judge: str | None = field(
        default=None,
        metadata={
            "help": "A second, independent scorer (e.g. a CrossEncoder id) whose rate is reported beside it as "
            "independent_false_negative_rate (none = skip)."
        },
    )
    false_negative_repair: str = field(
        default="none",
        metadata={
            "help": "none | drop | relabel: an LLM judge (the build's generator, or repair_judge_model) labels "
            "suspected false negatives, which are dropped or relabelled as extra positives (RLHN)."
        },
    )
    repair_configs: list[str] = field(
        default_factory=list, metadata={"help": "Configs to repair (default: every config in methods)."}
    )
    repair_scope: str = field(
        default="suspected",
        metadata={
            "help": "suspected (rows the false_negative_scorer rates at or above the positive) | all rows."
        },
    )
    repair_judge_prompt: str = field(
        default=JUDGE_PROMPT, metadata={"help": "Judge prompt (packaged, versioned) or a template file."}
    )
    repair_judge_model: str | None = field(
        default=None,
        metadata={"help": "Judge LM with the generator's backend settings (default: the generator itself)."},
    )
    repair_max_new_tokens: int = field(
        default=4, metadata={"bounds": (1, None), "help": "Token budget of a judge answer."}
    )
    decontaminate: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Evaluation sets (BEIR names, mteb/<name>[@sha], BEIR folders, embedded:cranfield) whose query "
            "texts are removed from generated queries; a list: every set the models are evaluated on."
        },
    )
    decontaminate_split: str = field(default="test", metadata={"help": "Qrels split of the evaluation set."})
    exclude_eval_docs: bool = field(
        default=False,
        metadata={"help": "Also remove the evaluation set's judged documents from passages and mining pool."},
    )
    score_batch_size: int = field(
        default=32,
        metadata={"bounds": (1, None), "help": "Batch size for cross-encoder scoring and encoding."},
    )
    layout: str = field(
        default="text",
        metadata={
            "help": "Published layout: text (triplets with their texts), ids (a corpus config + the queries "
            "config + per method a config of ids, sentence-transformers' resolve_ids layout) or both (text "
            "configs + corpus + <method>_ids); docs/publishing.md."
        },
    )

    def preflight(self) -> None:
        """Checks before any work (``run_main``): the dataset folder can be swapped in at the end."""
        check_replaceable(Path(self.output_dir) / "dataset")

    def __post_init__(self) -> None:
        if isinstance(self.decontaminate, str):  # one set, as recipes wrote it before lists
            self.decontaminate = [self.decontaminate]
        self.decontaminate = list(self.decontaminate or [])
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"layout '{self.layout}' is not one of {', '.join(LAYOUTS)}; fix: use text, ids or both"
            )
        if isinstance(self.methods, str):
            raise ValueError(
                f"methods is the string '{self.methods}', not a list; fix: write methods: [{self.methods}]"
            )
        known = method_names()
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; fix: choose from {', '.join(known)}")
        if self.method_options is None:
            self.method_options = {}
        if isinstance(self.method_options, str):
            try:
                self.method_options = (
                    json.loads(self.method_options, parse_constant=_refuse_constant)
                    if self.method_options.strip()
                    else {}
                )
            except json.JSONDecodeError:
                raise ValueError(
                    'method_options is not JSON; fix: pass e.g. \'{"bm25_hn": {"range_max": 10}}\''
                ) from None
        for name, overrides in (self.method_options or {}).items():
            allowed = get_method(name).options if name in known else ()
            bad = [k for k in (overrides or {}) if k not in allowed]
            if name not in known or bad:
                raise ValueError(
                    f"method_options for '{name}' sets {bad or list(overrides or {})}; fix: use a registered "
                    f"method and its own options ({', '.join(allowed) or 'none'})"
                )
        windows = [(self.range_min, self.range_max, self.num_negatives)] + [
            (
                o.get("range_min", self.range_min),
                o.get("range_max", self.range_max),
                o.get("num_negatives", self.num_negatives),
            )
            for o in (self.method_options or {}).values()
        ]
        for lo, hi, k in windows:
            if lo >= hi:
                raise ValueError(f"range_min ({lo}) must be < range_max ({hi}); fix: raise range_max")
            if k < 1 or hi - lo < k:  # checked now, not after the queries and LLM negatives are generated
                raise ValueError(
                    f"num_negatives ({k}) must be >= 1 and fit in the candidate window range_min..range_max "
                    f"({lo}..{hi}); fix: raise range_max or lower num_negatives"
                )
        for name in self.methods:
            method = get_method(name)
            method.input_configs(self.options_of(method))  # a derived method checks what it reads
        if self.perturb_strength not in PERTURB_STRENGTHS:
            raise ValueError(
                f"perturb_strength '{self.perturb_strength}'; fix: use one of {', '.join(PERTURB_STRENGTHS)}"
            )
        if self.false_negative_repair not in REPAIR_MODES or self.repair_scope not in REPAIR_SCOPES:
            raise ValueError(
                f"false_negative_repair '{self.false_negative_repair}' / repair_scope '{self.repair_scope}'; "
                f"fix: use one of {REPAIR_MODES} / {REPAIR_SCOPES}"
            )
        stray = [c for c in self.repair_configs if c not in self.methods]
        if stray:
            raise ValueError(f"repair_configs {stray} are not built; fix: add them to methods or drop them")
        if (
            self.false_negative_repair != "none"
            and self.repair_scope == "suspected"
            and not self._fn_scorer_name()
        ):
            raise ValueError(
                "repair_scope 'suspected' needs a false_negative_scorer; fix: set one or use repair_scope all"
            )
        judge = self.false_negative_judge
        if judge and str(judge).lower() != "none":
            guards = {self._fn_scorer_name(), self.ce_scorer}
            for name in self.methods:
                method = get_method(name)
                if method.guard_scorer:
                    guards.add(method.guard_scorer(self.options_of(method)))
            if judge in guards:
                raise ValueError(
                    f"false_negative_judge '{judge}' is the build's false-negative scorer or a method's guard, so "
                    "its rate would not be independent; fix: choose a scorer of another model"
                )
        if self.sampling_strategy not in ("top", "random"):
            raise ValueError(f"sampling_strategy '{self.sampling_strategy}' is not top or random")
        if self.num_passages < 0:
            raise ValueError("num_passages must be >= 0 (0 = all)")
        if self.empty_passages not in EMPTY_PASSAGES:
            raise ValueError(
                f"empty_passages '{self.empty_passages}' is not {' or '.join(EMPTY_PASSAGES)}; "
                f"fix: use {' or '.join(EMPTY_PASSAGES)}"
            )
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)

    def _fn_scorer_name(self) -> str | None:
        name = self.ce_scorer if self.false_negative_scorer == "same" else self.false_negative_scorer
        return name if name and str(name).lower() != "none" else None

    def options_of(self, method: Method) -> dict[str, Any]:
        """A method's own options: its registry fields from this config, then its ``method_options``."""
        values = {k: getattr(self, k) for k in method.options if hasattr(self, k)}
        return values | dict((self.method_options or {}).get(method.name) or {})


def _refuse_constant(name: str) -> None:
    """json.loads hook: JSON's NaN / Infinity are not numbers an option can mean (hardneg.config's rule)."""
    raise ConfigError(f"method_options holds {name}, not a finite number; fix: give a finite number")


def _load_data(path: Path) -> Dataset:
    """``load_from_disk``, also for a saved table of 0 rows (datasets writes no data file for it and then
    fails to read it back; a shard of a sharded build can end up empty)."""
    if not json.loads((path / "state.json").read_text()).get("_data_files"):
        features = Features.from_dict(json.loads((path / "dataset_info.json").read_text())["features"])
        return empty_table(features)
    return load_from_disk(str(path))


def check_stage_result(name: str, table: Dataset, stats: dict, n_inputs: int, cache_dir: Path) -> None:
    """A stage is finished only when its result is valid: one that kept no row of a non-empty input is not
    saved as finished (a rerun would reuse it and fail further on with a misleading line); the error says
    what removed the rows. Generation faults stop a stage earlier (``hardneg.generation.GenerationFault``)."""
    if len(table) or not n_inputs:
        return
    why = {**(stats.get("rejects") or {}), **(stats.get("skipped") or {})}
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(why.items()) if v) or "no reason recorded"
    raise ValueError(
        f"stage '{name}' kept no row of its {n_inputs} input(s) (removed: {reasons}); nothing was saved as "
        f"finished; fix: read the rejected outputs in {cache_dir / 'rejects'} or loosen the filters that removed "
        "the rows (prompt, model, hygiene, margins), then rerun"
    )


class _Stages:
    """Finished stages on disk: ``stages/<name>/{data,stats.json}`` valid only for the same key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def has(self, name: str, key: str) -> bool:
        """Whether the stage is finished with this key (without loading it)."""
        meta = self.root / name / "stats.json"
        try:
            return meta.is_file() and json.loads(meta.read_text()).get("key") == key
        except ValueError:  # being written
            return False

    def get(self, name: str, key: str) -> tuple[Dataset, dict] | None:
        folder = self.root / name
        meta = folder / "stats.json"
        if not meta.is_file():
            return None
        saved = json.loads(meta.read_text())
        if saved.get("key") != key:
            return None
        logger.info("reusing finished stage %s", name)
        return _load_data(folder / "data"), saved["stats"]

    def put(self, name: str, key: str, data: Dataset, stats: dict) -> Dataset:
        """Save a finished stage; returns its table read back memory-mapped (what was in memory is freed)."""
        folder = self.root / name
        tmp = self.root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        data.save_to_disk(str(tmp / "data"))
        (tmp / "stats.json").write_text(json.dumps({"key": key, "stats": stats}, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # atomic: a stage is either complete or absent
        return _load_data(folder / "data")

    def get_extra(self, name: str, file: str) -> Any:
        path = self.root / name / file
        return json.loads(path.read_text()) if path.is_file() else None

    def put_extra(self, name: str, file: str, value: Any) -> None:
        """A value derived from a finished stage (e.g. its rows' false-negative scores); goes with the stage."""
        path = self.root / name / file
        path.parent.mkdir(
            parents=True, exist_ok=True
        )  # a gathered stage of a sharded build has no folder yet
        write_atomic(path, json.dumps(value))


@dataclass
class _Resources:
    """The generator and scorers, loaded on first use (a build whose stages are all reused loads none)."""

    generator_config: GeneratorConfig
    scorer_dtype: str
    generator: Generator | None = None
    judge_model: str | None = None
    judge: Generator | None = None
    labels_file: Path | None = None  # scorer id -> full name, kept in the stages folder
    scorers: dict[tuple[str, str], Any] = field(default_factory=dict)

    def get_generator(self) -> Generator:
        if self.generator is None:
            self.generator = load_generator(self.generator_config)
        return self.generator

    def judge_config(self) -> GeneratorConfig:
        if not self.judge_model:
            return self.generator_config
        return replace(self.generator_config, model=self.judge_model, gguf_file=None)

    def get_judge(self) -> Generator:
        if not self.judge_model:
            return self.get_generator()
        if self.judge is None:
            self.judge = load_generator(self.judge_config())
        return self.judge

    def get_scorer(self, name: str, dtype: str | None = None):
        key = (name, dtype or self.scorer_dtype)
        if key not in self.scorers:
            self.scorers[key] = load_scorer(name, dtype=key[1])
            self.remember({self.label_key(*key): self.scorers[key].name})  # so a rebuild need not load it
        return self.scorers[key]

    def remember(self, labels: dict[str, str]) -> None:
        """Add scorer id -> full name entries to the labels file."""
        if self.labels_file is None or not labels:
            return
        merged = _read_labels(self.labels_file) | labels
        self.labels_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.labels_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=1))
        tmp.replace(self.labels_file)

    def scorer_label(self, name: str, dtype: str | None = None) -> str | None:
        """The full name (``scorer.name``) a scorer id loaded as in this run folder, without loading it."""
        labels = _read_labels(self.labels_file) if self.labels_file else {}
        return labels.get(self.label_key(name, dtype))

    def label_key(self, name: str, dtype: str | None = None) -> str:
        return f"{name}|{dtype or self.scorer_dtype}"


LABELS_FILE = "scorer_names.json"


def _read_labels(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class _Inputs:
    corpus: Dataset
    pool: Dataset
    passages: Dataset
    eval_queries: list[str]
    decontamination: dict[str, Any]
    key: str  # what the pool and the passage sample depend on
    corpus_report: dict[str, Any] = field(default_factory=dict)  # load_corpus: empty passages dropped, commit
    removed_query_ids: list[str] = field(
        default_factory=list
    )  # make_queries: queries decontamination dropped


def sample_passages(corpus: Dataset, n: int, seed: int) -> Dataset:
    """Seeded sample of ``n`` passages (all when n == 0 or n >= len), in a stable order."""
    if n == 0 or n >= len(corpus):
        return corpus
    return corpus.shuffle(seed=seed).select(range(n))


def load_inputs(config: BuildConfig, seed: int) -> _Inputs:
    """Step 1: corpus, mining pool (minus the evaluation set's judged documents if asked), passage sample."""
    report: dict[str, Any] = {}
    corpus = load_corpus(
        config.corpus,
        revision=config.corpus_revision,
        text_column=config.corpus_text_column,
        title_column=config.corpus_title_column,
        empty_passages=config.empty_passages,
        report=report,
    )
    decon: dict[str, Any] = {}
    eval_queries: list[str] = []
    pool = corpus
    if config.decontaminate:
        judged: set[str] = set()
        for source in config.decontaminate:
            ids, texts = exclusions_from_beir(source, split=config.decontaminate_split)
            judged |= ids
            eval_queries += texts
        if config.exclude_eval_docs:
            pool, decon["excluded_doc_ids"] = decontaminate_corpus(corpus, judged)
    passages = sample_passages(pool, config.num_passages, seed)
    key = content_key(
        config.corpus,
        config.corpus_revision,
        config.corpus_text_column,
        config.corpus_title_column,
        config.decontaminate,
        config.decontaminate_split,
        config.exclude_eval_docs,
        len(pool),
    )
    return _Inputs(corpus, pool, passages, eval_queries, decon, key, report)


def make_queries(
    config: BuildConfig, inputs: _Inputs, stages: _Stages, res: _Resources, cache_dir: Path, seed: int
) -> tuple[Dataset, dict, str]:
    """Step 2: one LLM query per sampled passage, minus the evaluation set's queries; returns its stage key."""
    key = content_key(
        "queries",
        inputs.key,
        inputs.passages["id"],
        res.generator_config.output_settings(),
        config.query_prompt,
        load_prompt(config.query_prompt).sha256,
        config.query_max_new_tokens,
        config.reject_retries,
        seed,
    )
    done = stages.get(QUERIES_CONFIG, key)
    if done is None:
        with step(QUERIES_CONFIG):
            queries, stats = generate_queries(
                inputs.passages,
                res.get_generator(),
                prompt=config.query_prompt,
                cache_dir=cache_dir,
                seed=seed,
                max_new_tokens=config.query_max_new_tokens,
                max_retries=config.reject_retries,
            )
        check_stage_result(QUERIES_CONFIG, queries, stats, len(inputs.passages), cache_dir)
        queries = stages.put(QUERIES_CONFIG, key, queries, stats)
    else:
        queries, stats = done
    if inputs.eval_queries:
        before = queries["query_id"][:]
        queries, _ = decontaminate_queries(queries, exclude_queries=inputs.eval_queries)
        kept = set(queries["query_id"][:])
        inputs.removed_query_ids = [q for q in before if q not in kept]
        inputs.decontamination["removed_queries"] = len(inputs.removed_query_ids)
    return queries, stats, key


def method_stage_key(
    method: Method,
    options: dict[str, Any],
    queries_key: str,
    inputs: _Inputs,
    gen_config,
    seed: int,
    deps: dict,
) -> str:
    """A method's stage key: the queries, its own options, and only what it declares it needs."""
    prompt = load_prompt(options[method.prompt_option]).sha256 if method.prompt_option else None
    return content_key(
        method.name,
        queries_key,
        method.stage_options(options),
        prompt,
        gen_config.output_settings() if "generator" in method.needs else None,
        (inputs.key, MINING_RULES_VERSION, mining_rules().follows) if "pool" in method.needs else None,
        deps,
        seed,
    )


def make_methods(
    config: BuildConfig,
    inputs: _Inputs,
    queries: Dataset,
    queries_key: str,
    stages: _Stages,
    res: _Resources,
    cache_dir: Path,
    shared_cache_dir: Path,
    seed: int,
    shard: Shard = ONE_PROCESS,
) -> tuple[dict[str, Dataset], dict[str, dict], dict[str, str]]:
    """Step 3: every asked method (and the configs they read), each a stage of its own."""
    options = {n: config.options_of(get_method(n)) for n in method_names()}
    order = _order(config.methods, options)
    tables: dict[str, Dataset] = {}
    stats: dict[str, dict] = {}
    keys: dict[str, str] = {}
    for name in order:
        method = get_method(name)
        deps = method.input_configs(options[name])
        key = method_stage_key(
            method, options[name], queries_key, inputs, res.generator_config, seed, {d: keys[d] for d in deps}
        )
        keys[name] = key
        done = stages.get(name, key)
        if done is not None:
            tables[name], stats[name] = done
            continue
        ctx = MethodContext(
            name=name,
            queries=queries,
            pool=inputs.pool,
            options=options[name],
            seed=seed,
            cache_dir=cache_dir,
            inputs={d: tables[d] for d in deps},
            input_stats={d: stats[d] for d in deps},
            batch_size=config.score_batch_size,
            load_generator=res.get_generator if "generator" in method.needs else None,
            load_scorer=res.get_scorer if "scorer" in method.needs else None,
            shared_cache_dir=shared_cache_dir,
            shard=shard,
        )
        start = time.perf_counter()
        with step(name):
            table, mstats = method.function()(ctx)
        mstats.setdefault("method", name)
        mstats.setdefault("wall_seconds", round(time.perf_counter() - start, 3))
        check_stage_result(name, table, mstats, len(queries), cache_dir)
        tables[name], stats[name] = stages.put(name, key, table, mstats), mstats
    return tables, stats, keys


def _order(names: list[str], options: dict[str, dict]) -> list[str]:
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"methods read each other in a loop {path + (name,)}; fix: break the loop")
        for dep in get_method(name).input_configs(options[name]):
            visit(dep, path + (name,))
        order.append(name)

    for name in names:
        visit(name, ())
    return order


def repair_configs(
    config: BuildConfig,
    tables: dict[str, Dataset],
    stats: dict[str, dict],
    keys: dict[str, str],
    stages: _Stages,
    res: _Resources,
    cache_dir: Path,
    seed: int,
) -> dict[str, str]:
    """Step 3b: an LLM judge drops or relabels suspected false negatives (RLHN); returns each config's stage.

    A repaired config is a stage of its own (``<config>.repaired``), keyed by the method's stage, the repair
    settings, the judge's output settings and prompt hash, and the scorer that picks the suspects; its key is
    added to ``keys``.
    """
    stage_of = {name: name for name in config.methods}
    if config.false_negative_repair == "none":
        return stage_of
    scorer_name = config._fn_scorer_name() if config.repair_scope == "suspected" else None
    prompt = load_prompt(config.repair_judge_prompt)
    for name in config.repair_configs or config.methods:
        stage = f"{name}.repaired"
        key = content_key(
            "repair",
            keys[name],
            config.false_negative_repair,
            config.repair_scope,
            scorer_name,
            prompt.sha256,
            res.judge_config().output_settings(),
            config.repair_max_new_tokens,
            seed,
        )
        done = stages.get(stage, key)
        if done is None:
            if scorer_name:
                pos, neg, _, _ = _row_scores(
                    config, name, name, tables[name], stats[name], scorer_name, res, stages
                )
                suspected = neg >= pos
            else:
                suspected = np.ones(len(tables[name]), dtype=bool)
            table, repair = repair_false_negatives(
                tables[name],
                suspected,
                res.get_judge(),
                mode=config.false_negative_repair,
                prompt=config.repair_judge_prompt,
                cache_dir=cache_dir,
                seed=seed,
                max_new_tokens=config.repair_max_new_tokens,
                config=name,
            )
            repair["suspects_from"] = scorer_name or "all rows"
            done = table, {**stats[name], "repair": repair}
            done = stages.put(stage, key, *done), done[1]
        tables[name], stats[name] = done
        stage_of[name] = stage
        keys[stage] = key
    return stage_of


def pair_configs(
    tables: dict[str, Dataset], names: list[str], paired: bool
) -> tuple[dict[str, Dataset], dict[str, np.ndarray], dict[str, Any]]:
    """Step 4: keep only query ids present in every config (when ``paired``); returns the kept row indices.
    Vectorised over the Arrow ``query_id`` columns (``pyarrow.compute.is_in``)."""
    ids = {n: arrow_table(tables[n], ["query_id"]).column(0) for n in names}
    unique = {n: pc.unique(v) for n, v in ids.items()}
    common = unique[names[0]] if names else pa.array([], pa.string())
    for n in names[1:]:
        common = pc.filter(common, pc.is_in(common, value_set=unique[n]))
    if paired and names and not len(common):
        sizes = {n: len(v) for n, v in unique.items()}
        raise ValueError(
            f"no query id is in every config (query ids per config: {sizes}); fix: build more passages, loosen "
            "the emptiest method's filters, or set paired: false"
        )
    kept: dict[str, np.ndarray] = {}
    out: dict[str, Dataset] = {}
    dropped: dict[str, dict[str, int]] = {}
    for n in names:
        if paired:
            inside = pc.is_in(ids[n], value_set=common).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(inside)
        else:
            rows = np.arange(len(ids[n]))
        kept[n] = rows
        out[n] = tables[n] if len(rows) == len(ids[n]) else tables[n].select(rows)
        dropped[n] = {
            "dropped_rows": len(ids[n]) - len(rows),
            "dropped_queries": len(unique[n]) - len(common) if paired else 0,
        }
    summary = {"enabled": paired, "query_ids": len(common), "dropped": dropped}
    return out, kept, summary


def _scores_at_hand(
    stage: str, table: Dataset, stats: dict, known: str | None, reuse_columns: bool, stages: _Stages
) -> tuple[np.ndarray, np.ndarray, str, str | None] | None:
    """A stage's row scores that need no scoring: ce_hn's own columns (mined with this very scorer) or the
    file saved by an earlier call; None when neither is there."""
    if reuse_columns and "repair" not in stats and stats.get("false_negative_scorer"):
        pos = np.asarray(table["positive_score"][:], float)
        neg = np.asarray(table["negative_score"][:], float)
        return pos, neg, stats["false_negative_scorer"], stats.get("score_name")
    saved = stages.get_extra(stage, fn_scores_file(known)) if known else None
    if saved is None or len(saved["positive"]) != len(table):
        return None
    pos, neg = np.asarray(saved["positive"], float), np.asarray(saved["negative"], float)
    return pos, neg, saved.get("name", known), saved.get("score_name")  # files of older builds lack names


def _row_key(table: Dataset) -> list[tuple[str, str, str]]:
    return list(zip(table["anchor"][:], table["positive"][:], table["negative"][:], strict=True))


def _row_scores(
    config: BuildConfig,
    name: str,
    stage: str,
    table: Dataset,
    stats: dict,
    scorer_name: str,
    res: _Resources,
    stages: _Stages,
    source: tuple[str, Dataset, dict] | None = None,
) -> tuple[np.ndarray, np.ndarray, str, str | None]:
    """Every row's (positive, negative) score by a scorer, computed once per stage and scorer (the scorer is
    loaded only when they are not saved yet); returns (positive, negative, scorer name, score name).
    ``name``: the config, ``stage``: where its table is saved (``<config>.repaired`` after a repair).

    ``source``: the (stage, table, stats) a repaired stage came from; its rows' scores, when at hand, are
    reused for the rows the repair kept as they were, so only relabelled rows are scored."""
    reuse_columns = _guarded_by(config, name, scorer_name)
    known = res.scorer_label(scorer_name)
    have = _scores_at_hand(stage, table, stats, known, reuse_columns, stages)
    if have is not None:
        return have
    pos, neg = np.full(len(table), np.nan), np.full(len(table), np.nan)
    name, score_name = None, None
    prev = _scores_at_hand(*source, known, reuse_columns, stages) if source else None
    if prev is not None:
        scores = dict(zip(_row_key(source[1]), zip(prev[0], prev[1], strict=True), strict=True))
        for i, key in enumerate(_row_key(table)):
            pos[i], neg[i] = scores.get(key, (np.nan, np.nan))
        name, score_name = prev[2], prev[3]
    todo = np.flatnonzero(np.isnan(pos) | np.isnan(neg))
    if len(todo) or name is None:
        scorer = res.get_scorer(scorer_name)
        pos[todo], neg[todo] = false_negative_scores(
            table.select(todo), scorer, batch_size=config.score_batch_size
        )
        name, score_name = scorer.name, scorer.score_name
    saved = {"positive": pos.tolist(), "negative": neg.tolist(), "name": name, "score_name": score_name}
    stages.put_extra(stage, fn_scores_file(name), saved)
    res.remember({res.label_key(scorer_name): name})  # found again without loading the scorer
    return pos, neg, name, score_name


def _guarded_by(config: BuildConfig, name: str, scorer_name: str) -> bool:
    """Whether the method filtered its rows with this very scorer (ce_hn with its guard on): 0% by construction."""
    method = get_method(name)
    options = config.options_of(method)
    guard = method.guard_scorer(options) if method.guard_scorer else None
    return guard == scorer_name and options.get("scorer_dtype", config.scorer_dtype) == config.scorer_dtype


def _fn_scorers(config: BuildConfig) -> list[tuple[str, str]]:
    """(role, scorer id) of the false-negative scorer and the independent judge, those that are set."""
    named = (("main", config._fn_scorer_name()), ("judge", config.false_negative_judge))
    return [(role, name) for role, name in named if name and str(name).lower() != "none"]


def score_rows(
    config: BuildConfig,
    tables: dict[str, Dataset],
    stats: dict[str, dict],
    stage_of: dict[str, str],
    stages: _Stages,
    res: _Resources,
    sources: dict[str, tuple[Dataset, dict]],
) -> None:
    """Step 3c: every row of each published config scored by the false-negative scorer and judge, saved with
    its stage (``_row_scores``), so a sharded build scores each shard in its own process. ``sources``: each
    config's (table, stats) before repair, whose scores a repaired config reuses."""
    for name in config.methods:
        source = (name, *sources[name]) if stage_of[name] != name else None
        for _, scorer_name in _fn_scorers(config):
            _row_scores(
                config, name, stage_of[name], tables[name], stats[name], scorer_name, res, stages, source
            )


def false_negative_stats(
    config: BuildConfig,
    full: dict[str, Dataset],
    kept: dict[str, list[int]],
    stats: dict[str, dict],
    stage_of: dict[str, str],
    stages: _Stages,
    res: _Resources,
) -> dict[str, dict]:
    """Step 5: the suspected-false-negative rate of each published config by one scorer (+ optional judge),
    from the scores ``score_rows`` saved."""
    out: dict[str, dict] = {}
    published = FalseNegativeScores()  # the published rows' scores, beside the dataset folder (the explorer's)
    for name, rows in kept.items():
        record: dict[str, Any] = {}
        for role, scorer_name in _fn_scorers(config):
            guarded = _guarded_by(config, name, scorer_name)
            pos, neg, scorer, score_name = _row_scores(
                config, name, stage_of[name], full[name], stats[name], scorer_name, res, stages
            )
            rate, detail = false_negative_summary(pos[rows], neg[rows], scorer, score_name)
            detail["stage"] = stage_of[
                name
            ]  # its fn_scores_file is in stages/<stage>/ (diagnose reads it)
            if role == "main":
                published.add(name, scorer, score_name, pos[rows], neg[rows])
                record.update(
                    false_negative_scorer=scorer,
                    suspected_false_negative_rate=rate,
                    false_negative_same_as_guard=guarded,
                    false_negative_detail=detail,
                )
            else:
                record.update(independent_false_negative_scorer=scorer, independent_false_negative_rate=rate)
        out[name] = record
    write_false_negative_scores(stages.root.parent, published)
    return out


def collect_stats(
    config: BuildConfig,
    gen_config: GeneratorConfig,
    inputs: _Inputs,
    seed: int,
    stats: dict[str, dict],
    published: dict[str, Dataset],
    pairing: dict[str, Any],
    fn: dict[str, dict],
) -> BuildStats:
    """Step 6: build_stats.json as a typed record (the keys cards, hub validation and the report read)."""
    configs = {QUERIES_CONFIG: ConfigStats.from_dict(stats[QUERIES_CONFIG])}
    for name, table in published.items():
        record = ConfigStats.from_dict(stats[name] | fn.get(name, {}))
        record.rows = len(table)
        record.paired = pairing["dropped"][name] if pairing["enabled"] else None
        configs[name] = record
    prompts = {
        s["prompt"].get("name", name): s["prompt"]
        for name, s in stats.items()
        if (name == QUERIES_CONFIG or name in published) and isinstance(s.get("prompt"), dict)
    }
    if config.false_negative_repair != "none":
        judge = load_prompt(config.repair_judge_prompt).provenance()
        prompts[judge["name"]] = judge
    return BuildStats(
        hardneg_version=hardneg.__version__,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        corpus={
            "source": config.corpus,
            "revision": config.corpus_revision,
            "commit": inputs.corpus_report.get("commit"),
            "passages_total": len(inputs.corpus),
            "empty_passages_dropped": inputs.corpus_report.get("empty_dropped", 0),
            "empty_passage_ids": inputs.corpus_report.get("empty_ids", []),
            "passages_sampled": len(inputs.passages),
            "seed": seed,
        },
        generator={
            "model": gen_config.model,
            "backend": gen_config.backend,
            "settings": gen_config.recorded(),
        },
        prompts=prompts,
        build={k: v for k, v in asdict(config).items() if k != "output_dir"},
        configs=configs,
        decontamination=inputs.decontamination,
        paired={"enabled": pairing["enabled"], "query_ids": pairing["query_ids"]},
        versions=library_versions(),
    )


def make_configs(
    config: BuildConfig,
    inputs: _Inputs,
    stages: _Stages,
    res: _Resources,
    cache_dir: Path,
    shared_cache_dir: Path,
    seed: int,
    shard: Shard = ONE_PROCESS,
) -> tuple[Dataset, dict, dict[str, Dataset], dict[str, dict], dict[str, str], dict[str, str]]:
    """Steps 2-3c on one process's passages: queries, methods, repair, the rows' false-negative scores.

    Returns (queries, their stats, tables, stats, the stage each published config ends in, each stage's key)."""
    queries, qstats, qkey = make_queries(config, inputs, stages, res, cache_dir, seed)
    tables, stats, keys = make_methods(
        config, inputs, queries, qkey, stages, res, cache_dir, shared_cache_dir, seed, shard
    )
    sources = {name: (tables[name], stats[name]) for name in config.methods}
    stage_of = repair_configs(config, tables, stats, keys, stages, res, cache_dir, seed)
    score_rows(config, tables, stats, stage_of, stages, res, sources)
    return queries, qstats, tables, stats, stage_of, {QUERIES_CONFIG: qkey, **keys}


def _gather_extras(parts: list[_Stages], main: _Stages, stage: str, rows: list[int]) -> None:
    """The shards' false-negative scores of a stage, joined in rank order into the main stages folder (where
    ``false_negative_stats`` and the explorer read them); only files every shard wrote for all its rows."""
    first = parts[0].root / stage
    for file in sorted(p.name for p in first.glob(FN_SCORES_GLOB)):
        saved = [part.get_extra(stage, file) for part in parts]
        if any(v is None or len(v["positive"]) != n for v, n in zip(saved, rows, strict=True)):
            continue
        joined = {k: [x for v in saved for x in v[k]] for k in ("positive", "negative")}
        main.put_extra(stage, file, {**saved[0], **joined})


DONE_FORMAT = 2  # what a shard's done.json holds (2: stage_of, removed_query_ids); part of the run id


def share_pool(config: BuildConfig, pool: Dataset, shared_cache_dir: Path, shard: Shard) -> None:
    """Before the methods, in every process of a sharded build: the pool's embeddings under each embedder a
    dense method uses, a part per process (``hardneg.negatives.dense.encode_pool``). Every process makes this
    call on every run, also when its own dense stages are finished, so no process waits for a part that a
    process reusing its stage would never write; the methods then find the whole pool on disk."""
    options = {n: config.options_of(get_method(n)) for n in method_names()}
    embedders = {dense_embedder(get_method(n), options[n]) for n in _order(config.methods, options)} - {None}
    if not embedders:
        return
    texts = pool_passages(pool)[1]
    for embedder in sorted(embedders):
        encode_pool(
            texts,
            load_embedder(embedder),
            batch_size=config.score_batch_size,
            cache_folder=pool_cache(shared_cache_dir),
            model_id=embedder,
            shard=shard,
        )


def _gather_rejects(folders: list[Path], out: Path) -> None:
    """The shards' rejected outputs (``<config>.jsonl`` per shard), joined in rank order into the run's
    ``cache/rejects/``, where a one-process build keeps them (the explorer reads them there)."""
    names = sorted({p.name for folder in folders for p in folder.glob("*.jsonl")})
    if names:
        out.mkdir(parents=True, exist_ok=True)
    for name in names:
        text = "".join((f / name).read_text() for f in folders if (f / name).is_file())
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def make_shard(
    config: BuildConfig,
    generator_config: GeneratorConfig,
    inputs: _Inputs,
    res: _Resources,
    out: Path,
    seed: int,
    shard: Shard,
) -> tuple[Dataset, dict, dict[str, Dataset], dict[str, dict], dict[str, str], dict[str, str]] | None:
    """Steps 2-3c on this process's contiguous shard of the passage sample, with the shard's own stages and
    cache (the dense pool embeddings are shared out, ``hardneg.negatives.dense.encode_pool``); the main
    process then gathers every shard's queries, published tables and false-negative scores in rank order (the
    one-process order) and adds up their stats. Returns None on the other processes."""
    run_id = content_key(
        DONE_FORMAT, inputs.key, asdict(config), generator_config.output_settings(), seed, shard.world
    )
    bind_local_device()
    res.generator_config = shard_generator_config(generator_config, shard)
    mine = replace(inputs, passages=shard_rows(inputs.passages, shard), decontamination={})
    if len(mine.passages) == 0:
        raise ValueError(
            f"{len(inputs.passages)} sampled passages leave process {shard.rank} of {shard.world} none; "
            "fix: sample more passages (num_passages) or start fewer processes"
        )
    stages = _Stages(out / "stages" / shard.name)
    (stages.root / DONE_FILE).unlink(missing_ok=True)  # an earlier run's marker: this run may redo stages
    main_labels, res.labels_file = res.labels_file, stages.root / LABELS_FILE  # each process writes its own
    share_pool(config, inputs.pool, out / "cache", shard)
    queries, _, _, _, stage_of, keys = make_configs(
        config, mine, stages, res, out / "cache" / shard.name, out / "cache", seed, shard
    )
    wanted = [QUERIES_CONFIG, *dict.fromkeys(stage_of.values())]
    write_done(
        stages.root,
        run_id,
        {
            "keys": {stage: keys[stage] for stage in wanted},
            "stage_of": stage_of,
            "removed_query_ids": mine.removed_query_ids,
        },
    )
    if not shard.is_main:
        return None
    shards = [Shard(r, shard.world) for r in range(shard.world)]
    done = wait_for_shards(
        [out / "stages" / s.name for s in shards],
        run_id,
        ready=lambda folder, marker: all(_Stages(folder).has(n, k) for n, k in marker["keys"].items()),
    )
    part_stages = [_Stages(out / "stages" / s.name) for s in shards]
    parts = [
        {stage: p.get(stage, key) for stage, key in marker["keys"].items()}
        for p, marker in zip(part_stages, done, strict=True)
    ]
    joined = {stage: concat_shards([p[stage][0] for p in parts]) for stage in wanted}
    merged = {stage: merge_stats([p[stage][1] for p in parts]) for stage in wanted}
    labels: dict[str, str] = {}
    for p in part_stages:
        labels |= _read_labels(p.root / LABELS_FILE)
    res.labels_file = main_labels
    res.remember(labels)
    main = _Stages(out / "stages")
    keys = {stage: content_key([d["keys"][stage] for d in done]) for stage in wanted}
    for stage in wanted[1:]:  # the gathered table and its scores, where the explorer reads them
        joined[stage] = main.put(stage, keys[stage], joined[stage], merged[stage])
        _gather_extras(part_stages, main, stage, [len(p[stage][0]) for p in parts])
    _gather_rejects([out / "cache" / s.name / "rejects" for s in shards], out / "cache" / "rejects")
    queries = joined[QUERIES_CONFIG]  # the stages hold the queries before decontamination
    removed = {q for marker in done for q in marker["removed_query_ids"]}
    if removed:
        queries = queries.select([i for i, q in enumerate(queries["query_id"][:]) if q not in removed])
    inputs.removed_query_ids = sorted(removed)
    if inputs.eval_queries:
        inputs.decontamination["removed_queries"] = len(removed)
    tables = {name: joined[stage] for name, stage in stage_of.items()}
    stats = {name: merged[stage] for name, stage in stage_of.items()}
    return queries, merged[QUERIES_CONFIG], tables, stats, stage_of, keys


def build(
    config: BuildConfig, generator_config: GeneratorConfig, *, generator: Generator | None = None
) -> Path:
    """Run the whole build; returns the dataset folder (Hub layout, loads with ``load_dataset``).

    ``generator``: an already loaded generator to use instead of loading ``generator_config`` (tests,
    notebooks); its config must be ``generator_config``.
    """
    seed = generator_config.seed  # one seed for the whole build: sampling, generation, random negatives
    out = Path(config.output_dir)
    stages, cache_dir = _Stages(out / "stages"), out / "cache"
    res = _Resources(
        generator_config,
        config.scorer_dtype,
        generator,
        judge_model=config.repair_judge_model,
        labels_file=stages.root / LABELS_FILE,
    )

    with step("load_inputs"):
        inputs = load_inputs(config, seed)
    out.mkdir(parents=True, exist_ok=True)  # after the inputs are read: a bad corpus leaves nothing behind
    shard = current_shard()
    if (
        shard.world > 1
    ):  # accelerate launch / torchrun: steps 2-3 on this process's shard (hardneg.distributed)
        gathered = make_shard(config, generator_config, inputs, res, out, seed, shard)
        if gathered is None:  # not the main process: its shard is done, the main process writes the folder
            return out / "dataset"
        queries, qstats, tables, stats, stage_of, keys = gathered
    else:
        queries, qstats, tables, stats, stage_of, keys = make_configs(
            config, inputs, stages, res, cache_dir, cache_dir, seed
        )
    with step("pair_configs"):
        published, kept, pairing = pair_configs(tables, list(config.methods), config.paired)
    fn = false_negative_stats(config, tables, kept, stats, stage_of, stages, res)
    stats[QUERIES_CONFIG] = qstats
    build_stats = collect_stats(config, generator_config, inputs, seed, stats, published, pairing, fn)
    record = build_stats.to_dict()
    folder = out / "dataset"
    recover_folder(folder)  # a save killed mid-swap: the previous folder back before it is compared
    folder_key = content_key(
        FOLDER_FORMAT,
        {name: keys[stage] for name, stage in {QUERIES_CONFIG: QUERIES_CONFIG, **stage_of}.items()},
        {k: v for k, v in record.items() if k != "created"},
        sorted(inputs.removed_query_ids),  # which queries and documents decontamination removed, not only
        sorted(inputs.decontamination.get("excluded_doc_ids", [])),  # how many (the stats hold counts)
    )
    if folder_unchanged(folder, stages.root / FOLDER_RECORD, folder_key):
        logger.info("dataset folder %s is up to date (same stages and statistics): left untouched", folder)
        return folder
    with step("save_dataset_folder"):
        configs = layout_configs({QUERIES_CONFIG: queries, **published}, config.layout)
        save_dataset_folder(folder, configs, record, default_config="queries")
    remember_folder(folder, stages.root / FOLDER_RECORD, folder_key)
    return folder


# What the folder record's key covers (bump when save_dataset_folder writes a folder differently).
FOLDER_FORMAT = 1
FOLDER_RECORD = "dataset_folder.json"


def _folder_files(folder: Path) -> dict[str, list[int]]:
    return {
        str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def folder_unchanged(folder: Path, record: Path, key: str) -> bool:
    """Whether ``folder`` is exactly what the last save with this key wrote (same files, sizes and times): then
    a rerun with nothing new leaves it untouched instead of rewriting every parquet file."""
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    return saved.get("key") == key and folder.is_dir() and saved.get("files") == _folder_files(folder)


def remember_folder(folder: Path, record: Path, key: str) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, json.dumps({"key": key, "files": _folder_files(folder)}))
