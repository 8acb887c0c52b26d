"""The data contract: every config's columns and types, the method registry, and the statistics records.

One place defines what a dataset folder holds, so the build, the folder validation, training and the
cards read the same names:

- Features: ``QUERY_FEATURES`` (config ``queries``), ``MINED_FEATURES`` (mined triplets),
  ``LLM_FEATURES`` (generated triplets: + provenance), ``HYBRID_FEATURES`` (+ ``source``).
  Every triplet config starts with ``TRAINING_COLUMNS`` (anchor, positive, negative), the order
  sentence-transformers losses read. ``COLUMN_TYPES`` types all-None columns.
- The registry: one ``Method`` per config (``llm_hn``, ``bm25_hn`` ...), registered by the module that defines
  it, one module per method in this package (``hardneg/methods/<name>.py``, imported on the first look-up, so
  importing this module stays light), in a recipe's ``plugins:`` (``load_plugins``) or an installed package's
  ``hardneg.methods`` entry point: its kind (llm / mined / derived), its options (a dataclass: defaults,
  help, checks; their ``asdict`` keys its stage and is ``MethodContext.options``), what it needs (generator,
  scorer, embedder, pool), the configs it reads (derived methods), its card text and its function.
- Statistics: ``ConfigStats`` and ``BuildStats`` are defined in ``hardneg.records`` (imported here for
  older callers).

A new method is one module: its options dataclass, its ``run(ctx) -> (Dataset, stats)`` and
``register(Method(name, kind, description, run, options=...))`` beside it (docs/design.md, "Adding a method").
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import pkgutil
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from datasets import Dataset, DatasetInfo, Features, Value
from datasets.fingerprint import generate_random_fingerprint
from datasets.table import InMemoryTable

from hardneg.distributed import ONE_PROCESS, Shard
from hardneg.errors import first_line
from hardneg.options import ConfigError, matches_type
from hardneg.records import BuildStats, ConfigStats  # noqa: F401 (defined there; imported here by older code)
from hardneg.text import take_rows

# -- file names of the data contract ----------------------------------------------------------------------


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (stage keys, file names keyed by a setting)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fn_scores_file(scorer_name: str) -> str:
    """File (in the stage folder) with every row's (positive, negative) score by that false-negative scorer."""
    return f"fn_scores_{content_key(scorer_name)}.json"


FN_SCORES_GLOB = "fn_scores_*.json"  # every fn_scores_file


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
    return table if ds._indices is None else take_rows(table, ds._indices.column(0))


def table_blocks(ds: Dataset, rows: int = 50_000) -> Iterator[pa.Table]:
    """A table's rows as Arrow tables of ``rows`` rows, in order: slices of its table (no copy), or gathered
    with ``take`` through a ``select``-ed table's indices (``Dataset.to_parquet`` / ``flatten_indices`` gather
    row by row). Once the caller is done with a block, the file pages read for it leave the resident set
    (``hardneg.memory.drop_file_pages``): writing out a memory-mapped table of millions of rows holds one block."""
    from hardneg.memory import drop_file_pages

    table = ds.data.table
    for start in range(0, len(ds), rows):
        if ds._indices is None:
            block = table.slice(start, rows)
            yield block
            drop_file_pages(block)
        else:
            yield take_rows(table, ds._indices.column(0).slice(start, rows))
            drop_file_pages(table)  # which pages a take read is not known: all of them


def from_arrow(columns: dict[str, pa.Array | pa.ChunkedArray], features: Features) -> Dataset:
    """Arrow columns as a Dataset with exactly ``features`` (cast, in its column order); no Python rows."""
    table = pa.table({c: columns[c] for c in features}).cast(features.arrow_schema)
    return arrow_dataset(table, DatasetInfo(features=features))


def arrow_dataset(table: pa.Table, info: DatasetInfo | None = None) -> Dataset:
    """A Dataset over ``table`` as it is: no copy, and a random fingerprint (``Dataset(table)`` alone pickles and
    hashes the whole table to make one: +371 MB peak for a 150k-passage corpus; hardneg keys its stages itself)."""
    return Dataset(InMemoryTable(table), info=info, fingerprint=generate_random_fingerprint())


def write_arrow_file(
    blocks: Iterable[Mapping[str, pa.Array | pa.ChunkedArray] | pa.Table],
    features: Features,
    path: str | Path,
) -> Dataset:
    """Blocks of columns written one after another to one Arrow file in the ``datasets`` cache-file format
    (``ArrowWriter``; written whole or not at all), returned memory-mapped from it (``Dataset.from_file``), with
    exactly ``features``. One block is in memory at a time (with ``table_blocks``, a table of millions of rows
    is copied in bounded memory)."""
    from datasets.arrow_writer import ArrowWriter

    from hardneg.files import open_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(path) as f:
        writer = ArrowWriter(features=features, stream=pa.PythonFile(f, mode="w"))
        for block in blocks:
            part = block if isinstance(block, pa.Table) else pa.table({c: block[c] for c in features})
            writer.write_table(part.select(list(features)).cast(features.arrow_schema))
        writer.finalize(close_stream=False)
    return Dataset.from_file(str(path), info=DatasetInfo(features=features))


def table(rows: list[dict], features: Features) -> Dataset:
    """Rows (dicts; missing columns are None) as a Dataset with exactly ``features``, in its column order."""
    return Dataset.from_dict({c: [r.get(c) for r in rows] for c in features}, features=features)


# -- the registry -----------------------------------------------------------------------------------------

Kind = Literal["llm", "mined", "derived"]
NEEDS = ("generator", "scorer", "embedder", "pool")
ENTRY_POINT_GROUP = "hardneg.methods"  # installed packages add methods through this entry-point group


@dataclass
class MethodContext:
    """What a method's function gets from the build; loaders are lazy (a reused stage loads nothing).

    ``options``: the method's own options as a plain mapping (``asdict`` of its options dataclass)."""

    name: str
    queries: Dataset
    pool: Dataset
    options: Mapping[str, Any]
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


Options = Mapping[str, Any]


@dataclass(frozen=True)
class Method:
    """One config of the dataset and how the build makes it; registered by the module that defines ``run``.

    ``options``: a dataclass type whose fields are the method's options (default, ``metadata["help"]``, checks
    in ``__post_init__``); its ``asdict`` is what ``run`` reads as ``ctx.options`` and what keys the stage."""

    name: str
    kind: Kind
    description: str  # the card's "how this config was made"
    run: Callable[[MethodContext], tuple[Dataset, dict]]
    options: type | None = None  # the options dataclass
    features: Features = field(default_factory=lambda: LLM_FEATURES)
    needs: tuple[str, ...] = ()  # of NEEDS
    inputs: Callable[[Options], list[str]] | None = None  # derived: configs it reads
    prompt_option: str | None = None  # the option naming its prompt template (its hash keys the stage)
    key_options: Callable[[Options], dict[str, Any]] | None = None  # prune options from the key
    guard_scorer: Callable[[Options], str | None] | None = None  # scorer used as its own guard
    scorer_option: str | None = (
        None  # the option naming the scorer it ranks with (false_negative_scorer 'same')
    )
    pool_embedder: Callable[[Options], str | None] | None = None  # bi-encoder it encodes the pool with
    formerly: Mapping[str, str] = field(default_factory=dict)  # old flat BuildConfig key -> its option

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
        if not callable(self.run) or (self.options is not None and not is_dataclass(self.options)):
            raise ValueError(
                f"method '{self.name}': run must be its function and options a dataclass type; fix: pass them"
            )

    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.options) if f.init) if self.options else ()

    def resolve(self, overrides: Options | None = None, inherited: Options | None = None) -> dict[str, Any]:
        """The method's options: its dataclass built from ``overrides`` (checked there), options it shares with
        the pipeline (``reject_retries``, ``scorer_dtype``) taken from ``inherited`` unless overridden."""
        overrides = dict(overrides or {})
        names = self.option_names()
        bad = [k for k in overrides if k not in names]
        if bad:
            raise ConfigError(
                f"method '{self.name}' has no option(s) {bad}; fix: use its own options "
                f"({', '.join(names) or 'none'})"
            )
        if self.options is None:
            return {}
        self._check_types(overrides)
        shared = {k: v for k, v in (inherited or {}).items() if k in names and k not in overrides}
        try:
            return asdict(self.options(**shared, **overrides))
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"method '{self.name}': {err}") from None

    def _check_types(self, overrides: Options) -> None:
        """Each override against its field's type (the recipe's own keys get the same check in hardneg.config)."""
        try:
            hints = typing.get_type_hints(self.options)
        except (NameError, TypeError):  # an annotation its module cannot resolve: the dataclass checks it
            return
        for key, value in overrides.items():
            if key in hints and not matches_type(value, hints[key]):
                raise ConfigError(
                    f"method '{self.name}' option '{key}' is {value!r} ({type(value).__name__}), not "
                    f"{getattr(hints[key], '__name__', hints[key])}; fix: give a value of that type"
                )

    def input_configs(self, options: Options) -> list[str]:
        return list(self.inputs(options)) if self.inputs else []

    def stage_options(self, options: Options) -> dict[str, Any]:
        """The options that key this method's stage (all of its own, minus what ``key_options`` prunes)."""
        return dict(self.key_options(options)) if self.key_options else dict(options)


_REGISTRY: dict[str, Method] = {}
_DISCOVERED: list[bool] = []  # the package's modules and the entry points are imported once


def register(method: Method, *, replace: bool = False) -> Method:
    """Add a method (a config name) to the registry; the build, folder checks and cards then know it."""
    if method.name == QUERIES_CONFIG or (method.name in _REGISTRY and not replace):
        raise ValueError(f"method '{method.name}' is already registered; fix: choose another config name")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def discover() -> None:
    """Import every module of this package (one file per method) and every ``hardneg.methods`` entry point,
    once: each registers its method on import. The registry stays light to import until a method is asked."""
    if _DISCOVERED:
        return
    _DISCOVERED.append(True)
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def load_plugins(plugins: Iterable[str]) -> None:
    """Import method modules from outside the package (a recipe's ``plugins:``): an importable module name
    (``my_pkg.my_method``) or a ``.py`` file path; each registers its method(s) on import, once."""
    discover()
    for plugin in plugins:
        path = Path(plugin)
        if path.suffix != ".py":
            try:
                importlib.import_module(plugin)
            except ModuleNotFoundError as err:
                raise ConfigError(
                    f"plugin '{plugin}' cannot be imported ({err}); fix: give an importable module or a .py file"
                ) from None
            except ConfigError:
                raise
            except Exception as err:  # the plugin's own code failed (syntax, a raise, a bad register)
                raise ConfigError(_plugin_failed(plugin, err)) from err
            continue
        if not path.is_file():
            raise ConfigError(f"plugin file '{plugin}' does not exist; fix: give the path of a .py file")
        name = f"hardneg_plugin_{content_key(str(path.resolve()))}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            sys.modules.pop(name, None)
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(_plugin_failed(plugin, err)) from err
        except BaseException:  # Ctrl-C: not a plugin fault
            sys.modules.pop(name, None)
            raise


def _plugin_failed(plugin: str, err: Exception) -> str:
    return (
        f"plugin '{plugin}' failed while loading: {type(err).__name__}: {first_line(err)}; "
        "fix: correct the plugin (HARDNEG_DEBUG=1 shows its traceback)"
    )


def get_method(name: str) -> Method:
    discover()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method '{name}'; fix: choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def method_names(kind: Kind | None = None) -> tuple[str, ...]:
    discover()
    return tuple(n for n, m in _REGISTRY.items() if kind is None or m.kind == kind)


QUERIES_DESCRIPTION = (
    "One row per (passage, generated query): an LLM wrote a query for each sampled corpus passage "
    "(the passage is the query's positive)."
)


def config_description(name: str) -> str:
    """The card text of a config (``queries`` or a registered method)."""
    if name == QUERIES_CONFIG:
        return QUERIES_DESCRIPTION
    discover()
    method = _REGISTRY.get(name)
    return method.description if method else "Triplets (anchor, positive, negative) built by hardneg."


def config_features(name: str) -> Features:
    return QUERY_FEATURES if name == QUERIES_CONFIG else get_method(name).features


# -- statistics -------------------------------------------------------------------------------------------
# The statistics records are defined in hardneg.records (one type per file written and read back).
