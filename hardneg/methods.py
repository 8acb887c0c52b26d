"""The data contract: every config's columns and types, the method registry, and the statistics records.

One place defines what a dataset folder holds, so the build, the folder validation, training and the
cards read the same names:

- Features: ``QUERY_FEATURES`` (config ``queries``), ``MINED_FEATURES`` (mined triplets),
  ``LLM_FEATURES`` (generated triplets: + provenance), ``HYBRID_FEATURES`` (+ ``source``).
  Every triplet config starts with ``TRAINING_COLUMNS`` (anchor, positive, negative), the order
  sentence-transformers losses read. ``COLUMN_TYPES`` types all-None columns.
- The registry: one ``Method`` per config (``llm_hn``, ``bm25_hn`` ...): its kind (llm / mined /
  derived), what it needs (generator, scorer, embedder), the ``BuildConfig`` fields that shape its
  output (its stage key and its per-method overrides), the configs it reads (derived methods), its
  card text and the function that builds it (``"module:function"``, imported when the build runs it,
  so this module stays light and every module can import it).
- Statistics: ``ConfigStats`` and ``BuildStats`` are defined in ``hardneg.records`` (imported here for
  older callers).

A new method is one ``register(Method(...))`` plus its function ``run(ctx) -> (Dataset, stats)``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, Value, load_from_disk
from datasets.fingerprint import generate_random_fingerprint
from datasets.table import InMemoryTable

from hardneg.distributed import ONE_PROCESS, Shard
from hardneg.records import BuildStats, ConfigStats  # noqa: F401 (defined there; imported here by older code)

# -- file names of the data contract ----------------------------------------------------------------------


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (stage keys, file names keyed by a setting)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fn_scores_file(scorer_name: str) -> str:
    """File (in the stage folder) with every row's (positive, negative) score by that false-negative scorer."""
    return f"fn_scores_{content_key(scorer_name)}.json"


FN_SCORES_GLOB = "fn_scores_*.json"  # every fn_scores_file


def stage_fn_scores(
    stages: Path, stage_name: str, scorer: str | None, cols: dict[str, list]
) -> tuple[list, list]:
    """Per published row, the false-negative scorer's (positive, negative) scores the build saved in its stage
    folder (``fn_scores_*.json``, aligned with the stage's own rows; matched here by query id + negative)."""
    if not scorer or not (stages / stage_name / fn_scores_file(scorer)).is_file():
        return [], []
    saved = json.loads((stages / stage_name / fn_scores_file(scorer)).read_text())
    stage = arrow_table(load_from_disk(str(stages / stage_name / "data")), ["query_id", "negative"])
    if len(stage) != len(saved.get("positive", [])):
        return [], []
    keys = ["query_id", "negative"]
    # an Arrow join on (query id, negative), not a Python dict of every stage row; a repeated pair: its last row
    right = (
        _key_table(stage["query_id"], stage["negative"])
        .append_column("_at", pa.array(np.arange(len(stage), dtype=np.int64)))
        .group_by(keys)
        .aggregate([("_at", "max")])
    )
    left = _key_table(cols["query_id"], cols["negative"]).append_column(
        "_row", pa.array(np.arange(len(cols["query_id"]), dtype=np.int64))
    )
    joined = left.join(right, keys=keys, join_type="left outer").sort_by("_row")
    rows = joined["_at_max"].to_pylist()
    pos = [None if r is None else saved["positive"][r] for r in rows]
    neg = [None if r is None else saved["negative"][r] for r in rows]
    return (pos, neg) if any(p is not None for p in pos) else ([], [])


def _key_table(query_ids: Any, negatives: Any) -> pa.Table:
    """(query_id as text, negative) columns for the join in ``stage_fn_scores``."""
    q = query_ids if isinstance(query_ids, (pa.Array, pa.ChunkedArray)) else pa.array(query_ids)
    n = negatives if isinstance(negatives, (pa.Array, pa.ChunkedArray)) else pa.array(negatives, pa.string())
    return pa.table({"query_id": q.cast(pa.string()), "negative": n.cast(pa.string())})


# -- features ---------------------------------------------------------------------------------------------

QUERIES_CONFIG = "queries"
TRAINING_COLUMNS = ("anchor", "positive", "negative")
QUERY_INPUT_COLUMNS = ("query_id", "query", "positive_id", "positive")
PROVENANCE_FEATURES = {
    "model": Value("string"),
    "backend": Value("string"),
    "prompt_name": Value("string"),
    "prompt_version": Value("string"),
    "prompt_hash": Value("string"),
    "sampling": Value("string"),
    "seed": Value("int64"),
    "prompt_tokens": Value("int64"),
    "completion_tokens": Value("int64"),
    "latency_s": Value("float64"),
}
QUERY_FEATURES = Features(
    {
        "query_id": Value("string"),
        "query": Value("string"),
        "positive_id": Value("string"),
        "positive": Value("string"),
        **PROVENANCE_FEATURES,
    }
)
MINED_FEATURES = Features(
    {
        "anchor": Value("string"),
        "positive": Value("string"),
        "negative": Value("string"),
        "query_id": Value("string"),
        "positive_id": Value("string"),
        "negative_id": Value("string"),
        "negative_rank": Value("int64"),
        "positive_score": Value("float64"),
        "negative_score": Value("float64"),
        "method": Value("string"),
    }
)
LLM_FEATURES = Features({**MINED_FEATURES, **PROVENANCE_FEATURES})
HYBRID_FEATURES = Features({**LLM_FEATURES, "source": Value("string")})
# The type of every known column, for columns that are all None in one config (typed `null` otherwise).
COLUMN_TYPES = {
    name: feature.dtype
    for features in (QUERY_FEATURES, HYBRID_FEATURES)
    for name, feature in features.items()
}


def empty_table(features: Features) -> Dataset:
    return Dataset.from_dict({c: [] for c in features}, features=features)


def arrow_table(ds: Dataset, columns: list[str] | None = None) -> pa.Table:
    """A table's rows (``columns`` of them) as one Arrow table: a ``select``-ed table is gathered with Arrow's
    ``take`` (``Dataset.to_parquet`` / ``flatten_indices`` gather it row by row: 133 s for 1M rows)."""
    ds = ds.select_columns(columns) if columns else ds
    table = ds.data.table
    return table if ds._indices is None else table.take(ds._indices.column(0))


def from_arrow(columns: dict[str, pa.Array | pa.ChunkedArray], features: Features) -> Dataset:
    """Arrow columns as a Dataset with exactly ``features`` (cast, in its column order); no Python rows."""
    table = pa.table({c: columns[c] for c in features}).cast(features.arrow_schema)
    return arrow_dataset(table, DatasetInfo(features=features))


def arrow_dataset(table: pa.Table, info: DatasetInfo | None = None) -> Dataset:
    """A Dataset over ``table`` as it is: no copy, and a random fingerprint (``Dataset(table)`` alone pickles and
    hashes the whole table to make one: +371 MB peak for a 150k-passage corpus; hardneg keys its stages itself)."""
    return Dataset(InMemoryTable(table), info=info, fingerprint=generate_random_fingerprint())


def table(rows: list[dict], features: Features) -> Dataset:
    """Rows (dicts; missing columns are None) as a Dataset with exactly ``features``, in its column order."""
    return Dataset.from_dict({c: [r.get(c) for r in rows] for c in features}, features=features)


# -- the registry -----------------------------------------------------------------------------------------

Kind = Literal["llm", "mined", "derived"]
NEEDS = ("generator", "scorer", "embedder", "pool")


@dataclass
class MethodContext:
    """What a method's function gets from the build; loaders are lazy (a reused stage loads nothing)."""

    name: str
    queries: Dataset
    pool: Dataset
    options: dict[str, Any]
    seed: int
    cache_dir: Path  # this process's cache (its shard's, in a sharded build)
    inputs: dict[str, Dataset] = field(default_factory=dict)
    input_stats: dict[str, dict] = field(default_factory=dict)
    batch_size: int = 32  # scoring / encoding batch size (never part of a stage key)
    load_generator: Callable[[], Any] | None = None
    load_scorer: Callable[[str, str | None], Any] | None = None
    shared_cache_dir: Path | None = None  # the run's cache, read by every process (pool embeddings)
    shard: Shard = ONE_PROCESS  # this process of a sharded build (one process: Shard())

    def generator(self):
        if self.load_generator is None:
            raise RuntimeError(f"method '{self.name}' did not declare that it needs a generator")
        return self.load_generator()

    def scorer(self, name: str, dtype: str | None = None):
        if self.load_scorer is None:
            raise RuntimeError(f"method '{self.name}' did not declare that it needs a scorer")
        return self.load_scorer(name, dtype)


@dataclass(frozen=True)
class Method:
    """One config of the dataset and how the build makes it."""

    name: str
    kind: Kind
    description: str  # the card's "how this config was made"
    run: str | Callable[[MethodContext], tuple[Dataset, dict]]  # "module:function" or the function
    features: Features = field(default_factory=lambda: LLM_FEATURES)
    options: tuple[str, ...] = ()  # BuildConfig fields that shape the output (stage key, overrides)
    needs: tuple[str, ...] = ()  # of NEEDS
    inputs: Callable[[Mapping[str, Any]], list[str]] | None = None  # derived: configs it reads
    prompt_option: str | None = None  # the option naming its prompt template
    key_options: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None  # prune options from the key
    guard_scorer: Callable[[Mapping[str, Any]], str | None] | None = None  # scorer used as its own guard
    mining: str | None = None  # a mined method: its ``mine_hard_negatives(method=...)`` (bm25, ce, dense)

    def __post_init__(self) -> None:
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown or self.kind not in ("llm", "mined", "derived"):
            raise ValueError(
                f"method '{self.name}': kind {self.kind!r} / needs {unknown}; fix: kind llm|mined|derived, needs of {NEEDS}"
            )
        missing = [c for c in TRAINING_COLUMNS if c not in self.features]
        if list(self.features)[:3] != list(TRAINING_COLUMNS):
            raise ValueError(
                f"method '{self.name}' features must start with {TRAINING_COLUMNS} (missing {missing}); fix: reorder them"
            )

    def function(self) -> Callable[[MethodContext], tuple[Dataset, dict]]:
        if callable(self.run):
            return self.run
        module, _, attr = self.run.partition(":")
        return getattr(importlib.import_module(module), attr)

    def input_configs(self, options: Mapping[str, Any]) -> list[str]:
        return list(self.inputs(options)) if self.inputs else []

    def stage_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options that key this method's stage (all of its own, minus what ``key_options`` prunes)."""
        return dict(self.key_options(options)) if self.key_options else dict(options)


_REGISTRY: dict[str, Method] = {}


def register(method: Method, *, replace: bool = False) -> Method:
    """Add a method (a config name) to the registry; the build, folder checks and cards then know it."""
    if method.name == QUERIES_CONFIG or (method.name in _REGISTRY and not replace):
        raise ValueError(f"method '{method.name}' is already registered; fix: choose another config name")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_method(name: str) -> Method:
    if name not in _REGISTRY:
        raise ValueError(f"unknown method '{name}'; fix: choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def method_names(kind: Kind | None = None) -> tuple[str, ...]:
    return tuple(n for n, m in _REGISTRY.items() if kind is None or m.kind == kind)


QUERIES_DESCRIPTION = (
    "One row per (passage, generated query): an LLM wrote a query for each sampled corpus passage "
    "(the passage is the query's positive)."
)


def config_description(name: str) -> str:
    """The card text of a config (``queries`` or a registered method)."""
    if name == QUERIES_CONFIG:
        return QUERIES_DESCRIPTION
    method = _REGISTRY.get(name)
    return method.description if method else "Triplets (anchor, positive, negative) built by hardneg."


def config_features(name: str) -> Features:
    return QUERY_FEATURES if name == QUERIES_CONFIG else get_method(name).features


_MINING_OPTIONS = (
    "range_min",
    "range_max",
    "num_negatives",
    "sampling_strategy",
    "absolute_margin",
    "relative_margin",
    "max_score",
    "min_score",
)
_LLM_OPTIONS = ("negative_max_new_tokens", "reject_retries")


def _ce_key(options: Mapping[str, Any]) -> dict[str, Any]:
    # The embedder shapes ce_hn only when it picks the candidates.
    return {k: v for k, v in options.items() if k != "embedder" or options.get("ce_candidates") == "dense"}


def _ce_guard(options: Mapping[str, Any]) -> str | None:
    return options["ce_scorer"] if options.get("ce_absolute_margin") is not None else None


register(
    Method(
        "llm_hn",
        "llm",
        "The LLM wrote the hard negative from the query alone (the paper's corpus-free method).",
        "hardneg.negatives.llm:run_llm_hn",
        options=("llm_hn_prompt", *_LLM_OPTIONS),
        needs=("generator",),
        prompt_option="llm_hn_prompt",
    )
)
register(
    Method(
        "llm_pos_hn",
        "llm",
        "The LLM wrote the hard negative from the query and its positive passage.",
        "hardneg.negatives.llm:run_llm_pos_hn",
        options=("llm_pos_hn_prompt", *_LLM_OPTIONS),
        needs=("generator",),
        prompt_option="llm_pos_hn_prompt",
    )
)
register(
    Method(
        "llm_perturb_hn",
        "llm",
        "The LLM rewrote the positive passage so that it no longer answers the query while staying on the "
        "same topic (controlled perturbation, CausalNeg arXiv 2606.01304); `perturb_strength` in the stats "
        "says how much it was told to change.",
        "hardneg.negatives.llm:run_llm_perturb_hn",
        options=("llm_perturb_hn_prompt", "perturb_strength", "perturb_max_new_tokens", "reject_retries"),
        needs=("generator",),
        prompt_option="llm_perturb_hn_prompt",
    )
)
register(
    Method(
        "bm25_hn",
        "mined",
        "The hard negative is a corpus passage mined with BM25 for the query (the positive excluded).",
        "hardneg.negatives:run_mined",
        features=MINED_FEATURES,
        options=_MINING_OPTIONS,
        needs=("pool",),
        mining="bm25",
    )
)
register(
    Method(
        "ce_hn",
        "mined",
        "BM25 candidates rescored by a cross-encoder; the negative is a high-scoring candidate that passes "
        "the false-negative guard (its score must stay below the positive's by the given margin).",
        "hardneg.negatives:run_mined",
        features=MINED_FEATURES,
        options=(
            *_MINING_OPTIONS,
            "ce_scorer",
            "ce_absolute_margin",
            "ce_candidates",
            "scorer_dtype",
            "embedder",
        ),
        needs=("pool", "scorer"),
        key_options=_ce_key,
        guard_scorer=_ce_guard,
        mining="ce",
    )
)
register(
    Method(
        "dense_hn",
        "mined",
        "The hard negative is a corpus passage mined with a dense embedder (the positive excluded).",
        "hardneg.negatives:run_mined",
        features=MINED_FEATURES,
        options=(*_MINING_OPTIONS, "embedder"),
        needs=("pool", "embedder"),
        mining="dense",
    )
)


def _hybrid_inputs(options: Mapping[str, Any]) -> list[str]:
    sources = list(options["hybrid_sources"])
    kinds = [get_method(s).kind if s in _REGISTRY else None for s in sources]
    if kinds != ["llm", "mined"]:
        raise ValueError(
            f"hybrid_sources {sources} must name an LLM config then a mined config; fix: e.g. [llm_hn, bm25_hn]"
        )
    ratio = options["hybrid_llm_ratio"]
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"hybrid_llm_ratio must be in [0, 1], got {ratio}; fix: e.g. 0.5")
    return sources


register(
    Method(
        "hybrid_hn",
        "derived",
        "Per query, negatives drawn from an LLM config and a mined config of this build in a set ratio "
        "(SyNeg, arXiv 2412.17250); each row's `source` column names the config it came from.",
        "hardneg.negatives.hybrid:run_hybrid_hn",
        features=HYBRID_FEATURES,
        options=("hybrid_sources", "hybrid_llm_ratio", "num_negatives"),
        inputs=_hybrid_inputs,
    )
)


# -- statistics -------------------------------------------------------------------------------------------
# The statistics records are defined in hardneg.records (one type per file written and read back).
