"""The records hardneg writes and later reads, one typed class per file (like mteb's ``TaskResult``).

Each record is written by ``to_disk`` (atomic: ``hardneg.files.write_atomic``) and read by ``from_disk``; the one
converter for older files of a record lives in its ``from_disk`` (``_upgrade``), never in a reader. Readers
(cards, croissant, the report, the explorer, ``hardneg.distributed.merge_stats``) use the fields, not keys.

- ``ConfigStats``: one config's statistics (``build_stats["configs"][name]``, and a build stage's stats); the
  rule that adds up the stats of several shards or blocks is part of the type (``ConfigStats.merge``: each
  field's ``merge`` metadata, ``EXTRA_MERGE`` for method-specific keys).
- ``BuildStats``: ``<dataset>/build_stats.json`` (``hardneg.dataset_folder.BUILD_STATS_FILE``), the build's provenance plus one ``ConfigStats`` per config.
- ``FalseNegativeScores``: ``<run>/false_negative_scores.json``, every published row's (positive, negative)
  score by the build's false-negative scorer, per config, aligned with the config's published rows (the
  explorer reads it; the build's ``stages/`` folder stays private).
- ``EvalResult``: ``<run>/results/<model>__<dataset>.json``, one model on one dataset: the means, the
  per-query scores and the name of the gzip TREC run file beside it.
- ``Diagnostics`` (``diagnostics.json``) follows the same pattern in ``hardneg.diagnose.record``.

The JSON a record writes is the JSON the code wrote before these types (same keys, values and order), so
existing runs read and compare unchanged. This module imports nothing heavy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from hardneg.config import read_json
from hardneg.files import write_atomic

FALSE_NEGATIVE_SCORES_FILE = "false_negative_scores.json"

# -- how the stats of several shards (or generation blocks) add up -----------------------------------------

MergeRule = Literal["sum", "first", "rate", "per_shard", "derived"]
"""``sum``: numbers added, dicts merged key by key (text and flags: the first part's); ``first``: a setting, the
same in every part; ``rate``: averaged weighted by each part's rows; ``per_shard``: a distribution summary kept
as ``{"per_shard": [...]}``; ``derived``: recomputed from other fields after adding up (``ratio``)."""


def _merge(rule: MergeRule, **more: Any) -> dict[str, Any]:
    return {"merge": rule, **more}


def _add(a: Any, b: Any, rule_of) -> Any:
    if isinstance(a, bool) or isinstance(b, bool):
        return a
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        return merge_dicts([a, b], rule_of)
    return a


def merge_dicts(parts: Iterable[Mapping[str, Any]], rule_of) -> dict:
    """Add up stats dicts by ``rule_of(key) -> (MergeRule, ratio)``; nested dicts follow the same rules."""
    parts = list(parts)
    if not parts:
        return {}
    merged: dict = {}
    for part in parts:
        for key, value in part.items():
            if key not in merged:
                merged[key] = value
            elif rule_of(key)[0] != "first":
                merged[key] = _add(merged[key], value, rule_of)
    rows = [p.get("rows") if isinstance(p.get("rows"), (int, float)) else 0 for p in parts]
    for key in merged:
        rule, ratio = rule_of(key)
        values = [p.get(key) for p in parts]
        rated = [(v, r) for v, r in zip(values, rows, strict=True) if isinstance(v, (int, float))]
        if rule == "rate" and rated and sum(r for _, r in rated):
            # row-weighted over the parts that have one (an empty shard has no rate)
            merged[key] = sum(v * r for v, r in rated) / sum(r for _, r in rated)
        elif rule == "per_shard":
            merged[key] = {"per_shard": values}  # summaries of a distribution do not add up
    for key in list(merged):
        rule, ratio = rule_of(key)
        if rule == "derived" and ratio:
            num, den = ratio
            if isinstance(merged.get(num), (int, float)) and merged.get(den):
                merged[key] = round(merged[num] / merged[den], 4)
    return merged


# -- statistics ---------------------------------------------------------------------------------------------


@dataclass
class ConfigStats:
    """``build_stats["configs"][name]``: what every config reports; method-specific keys go to ``extra``.

    The false-negative keys (see docs/design.md): ``false_negative_scorer`` rated every row;
    ``suspected_false_negative_rate`` is the share whose negative it scores at or above the positive;
    ``false_negative_same_as_guard`` is true when the method used that same scorer as its own filter
    (0% by construction then); ``independent_*`` come from a second scorer (``false_negative_judge``).
    Each field's ``merge`` metadata says how the stats of several shards add up (``ConfigStats.merge``).
    """

    method: str | None = field(default=None, metadata=_merge("first"))
    rows: int | None = field(default=None, metadata=_merge("sum"))
    queries: int | None = field(default=None, metadata=_merge("sum"))
    wall_seconds: float | None = field(default=None, metadata=_merge("sum"))
    items_per_second: float | None = field(
        default=None, metadata=_merge("derived", ratio=("rows", "wall_seconds"))
    )
    prompt_tokens: int | None = field(default=None, metadata=_merge("sum"))
    completion_tokens: int | None = field(default=None, metadata=_merge("sum"))
    false_negative_scorer: str | None = field(default=None, metadata=_merge("first"))
    suspected_false_negative_rate: float | None = field(default=None, metadata=_merge("rate"))
    false_negative_same_as_guard: bool | None = field(default=None, metadata=_merge("first"))
    false_negative_detail: dict | None = field(default=None, metadata=_merge("sum"))
    independent_false_negative_scorer: str | None = field(default=None, metadata=_merge("sum"))
    independent_false_negative_rate: float | None = field(default=None, metadata=_merge("rate"))
    # {"dropped_rows", "dropped_queries"} when the build pairs configs
    paired: dict | None = field(default=None, metadata=_merge("sum"))
    repair: dict | None = field(
        default=None, metadata=_merge("sum")
    )  # false-negative repair: counts per decision
    extra: dict[str, Any] = field(default_factory=dict)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)  # the keys as read (``items``)

    # How the method-specific keys (``extra``) add up: settings, the same in every shard, are taken from the
    # first; distribution summaries (mean, quantiles) are kept per shard; any other ``*_rate`` is row-weighted;
    # everything else is summed.
    EXTRA_MERGE: ClassVar[dict[str, MergeRule]] = {
        "params": "first",
        "prompt": "first",
        "options": "first",
        "settings": "first",
        "scorer": "first",
        "seed": "first",
        "duplicate_passages_merged": "first",  # of the pool, which every shard mines
        "score_stats": "per_shard",
    }

    @classmethod
    def merge_rule(cls, key: str) -> tuple[MergeRule, tuple[str, str] | None]:
        """How ``key`` adds up over shards: the field's ``merge`` metadata, ``EXTRA_MERGE``, then by kind."""
        meta = _FIELD_MERGE.get(key)
        if meta is not None:
            return meta["merge"], meta.get("ratio")
        if key in cls.EXTRA_MERGE:
            return cls.EXTRA_MERGE[key], None
        return ("rate" if key.endswith("_rate") else "sum"), None

    @classmethod
    def merge(cls, parts: Iterable[Mapping[str, Any] | ConfigStats]) -> dict[str, Any]:
        """The stats of several shards (or generation blocks) of one stage added up, by ``merge_rule``."""
        dicts = [p.to_dict() if isinstance(p, ConfigStats) else p for p in parts]
        return merge_dicts(dicts, cls.merge_rule)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfigStats:
        known = {f.name for f in fields(cls)} - {"extra", "order"}
        return cls(
            **{k: v for k, v in data.items() if k in known},
            extra={k: v for k, v in data.items() if k not in known},
            order=tuple(data),
        )

    @classmethod
    def from_file_dict(cls, data: Mapping[str, Any]) -> ConfigStats:
        """A config's stats as read from a ``build_stats.json`` of any hardneg version (``_upgrade``)."""
        return cls.from_dict(cls._upgrade(dict(data or {})))

    @staticmethod
    def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """Older builds: before ``false_negative_same_as_guard`` was recorded, it is read from the params (the
        method filtered with the same scorer and a margin)."""
        if data.get("false_negative_scorer") and data.get("false_negative_same_as_guard") is None:
            params = data.get("params") if isinstance(data.get("params"), dict) else {}
            data["false_negative_same_as_guard"] = (
                params.get("scorer") == data["false_negative_scorer"]
                and params.get("absolute_margin") is not None
            )
        return data

    def to_dict(self) -> dict[str, Any]:
        """The keys as the build writes them: method-specific ones first, then the set fields in field order."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "order")}
        return {**self.extra, **{k: v for k, v in out.items() if v is not None}}

    def items(self) -> list[tuple[str, Any]]:
        """Every set value, in the order of the file it was read from (``to_dict``'s order otherwise)."""
        data = self.to_dict()
        first = [k for k in self.order if k in data]
        return [(k, data[k]) for k in first] + [(k, v) for k, v in data.items() if k not in set(first)]

    def get(self, key: str, default: Any = None) -> Any:
        """A method-specific value (``extra``) or a field, by name (for the card's "other statistics")."""
        value = getattr(self, key, None) if key in _FIELD_MERGE else self.extra.get(key)
        return default if value is None else value


_FIELD_MERGE = {f.name: f.metadata for f in fields(ConfigStats) if "merge" in f.metadata}


@dataclass
class BuildStats:
    """``build_stats.json``: provenance of the whole build plus one ``ConfigStats`` per config."""

    hardneg_version: str | None = None
    created: str | None = None
    corpus: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, ConfigStats] = field(default_factory=dict)
    decontamination: dict[str, Any] = field(default_factory=dict)
    paired: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None  # library versions of the build (cards show these, issue 12)
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer or hand-written file, kept

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["configs"] = {k: v.to_dict() for k, v in self.configs.items()}
        return {k: v for k, v in {**out, **self.extra}.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildStats:
        """A ``build_stats.json`` of any hardneg version (``_upgrade``); missing parts are empty."""
        data = cls._upgrade(dict(data or {}))
        known = {f.name for f in fields(cls)} - {"extra", "configs"}
        configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
        return cls(
            **{k: v for k, v in data.items() if k in known and v is not None},
            configs={k: ConfigStats.from_file_dict(v) for k, v in configs.items()},
            extra={k: v for k, v in data.items() if k not in known and k != "configs"},
        )

    @staticmethod
    def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """Older builds named the generator's settings ``sampling`` and its revision ``commit``."""
        generator = data.get("generator")
        if isinstance(generator, dict):
            generator = dict(generator)
            if generator.get("settings") is None and "sampling" in generator:
                generator["settings"] = generator["sampling"]
            if generator.get("revision") is None and "commit" in generator:
                generator["revision"] = generator["commit"]
            data["generator"] = generator
        return data

    def to_disk(self, path: str | Path) -> Path:
        """Write the file as the dataset folder holds it (indent 2, a final newline)."""
        return write_atomic(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def from_disk(cls, path: str | Path) -> BuildStats:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def config(self, name: str) -> ConfigStats:
        """One config's stats (empty when the build has none for ``name``)."""
        return self.configs.get(name) or ConfigStats()


# -- the published rows' false-negative scores ---------------------------------------------------------------


@dataclass
class ConfigScores:
    """One config's rows scored by the false-negative scorer, in the order of its published rows."""

    scorer: str
    score_name: str | None
    positive: list[float | None]
    negative: list[float | None]


@dataclass
class FalseNegativeScores:
    """``<run>/false_negative_scores.json``: per config, every published row's (positive, negative) score by the
    build's false-negative scorer (the scores behind ``suspected_false_negative_rate``)."""

    FORMAT: ClassVar[int] = 1
    configs: dict[str, ConfigScores] = field(default_factory=dict)

    def add(self, name: str, scorer: str, score_name: str | None, positive: Any, negative: Any) -> None:
        as_list = lambda xs: [None if x != x else float(x) for x in xs]  # noqa: E731 NaN -> null
        self.configs[name] = ConfigScores(scorer, score_name, as_list(positive), as_list(negative))

    def to_disk(self, path: str | Path) -> Path:
        data = {"format": self.FORMAT, "configs": {k: asdict(v) for k, v in self.configs.items()}}
        return write_atomic(Path(path), json.dumps(data))

    @classmethod
    def from_disk(cls, path: str | Path) -> FalseNegativeScores:
        """The file, or an empty record when there is none (a build without a false-negative scorer)."""
        path = Path(path)
        if not path.is_file():
            return cls()
        fix = "rebuild (the same build command rewrites it) or delete it"
        data = read_json(path, fix)
        configs = data.get("configs") if isinstance(data, dict) else None
        keys = {f.name for f in fields(ConfigScores)}
        if not isinstance(configs, dict) or any(
            not isinstance(v, dict)
            or set(v) != keys
            or not isinstance(v["positive"], list)
            or not isinstance(v["negative"], list)
            or len(v["positive"]) != len(v["negative"])
            for v in configs.values()
        ):
            raise ValueError(f"{path} is not a false-negative scores file of this hardneg; fix: {fix}")
        return cls({k: ConfigScores(**v) for k, v in configs.items()})

    def rows(self, name: str, scorer: str | None, n: int) -> ConfigScores | None:
        """The scores of config ``name`` by ``scorer`` when they cover its ``n`` published rows, else None."""
        scores = self.configs.get(name)
        if scores is None or scores.scorer != scorer or len(scores.positive) != n:
            return None
        return scores


def write_false_negative_scores(run_dir: str | Path, scores: FalseNegativeScores) -> Path:
    """The build's step that publishes the false-negative scores beside its dataset folder."""
    return scores.to_disk(Path(run_dir) / FALSE_NEGATIVE_SCORES_FILE)


# -- evaluation results ------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """One model on one dataset (``hardneg.evaluate``): ``<run>/results/<model key>__<dataset>.json``.

    ``metrics``: the means over the evaluated queries; ``per_query``: ``{query id: {metric: score}}``;
    ``run_file``: the name of the gzip TREC run file beside the result (``run_path``), holding
    ``run_file_queries`` ranked queries; the scoring settings (``max_queries`` ... ``queries_without_relevant``) decide
    whether a later ``evaluate`` may reuse the file. Fields are written in this order.
    """

    model: str | None = None
    method: str | None = None
    seed: int | None = None
    model_path: str | None = None
    source_stamp: str | None = None
    dataset: str | None = None
    dataset_source: str | None = None
    dataset_revision: dict[str, Any] | None = None
    split: str | None = None
    ignore_identical_ids: bool | None = None
    identical_ids_dropped: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] | None = None
    top_k: int | None = None
    timing: dict[str, float] = field(default_factory=dict)
    fingerprints: dict[str, str] | None = None
    similarity: str | None = None
    dtype: str | None = None
    model_commit: str | None = None  # Hub commit of the weights (None: local folder or BM25)
    processes: int | None = None
    hardneg_version: str | None = None
    created: str | None = None
    # the scoring settings (hardneg.evaluate.scoring_settings), written by the main process
    max_queries: int | None = None
    metric_list: list[str] | None = None
    dataset_request: dict[str, Any] | None = None
    passage_format: str | None = None
    queries_without_relevant: str | None = None
    run_file: str | None = None
    mteb_result: str | None = None
    run_file_queries: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer or hand-written file, kept
    path: Path | None = field(default=None, compare=False)  # where it was read from (not written)

    # Left out of the file while unset (only a run that files MTEB results has one); the rest is always
    # written, ``null`` included, as ``hardneg.evaluate`` wrote it before this type.
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"mteb_result"})
    # What a file must name (text) to be a result: the report groups and sorts results by these.
    REQUIRED: ClassVar[tuple[str, ...]] = ("dataset", "model", "method")

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("extra", "path")
            and (getattr(self, f.name) is not None or f.name not in self.OPTIONAL)
        }
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> EvalResult:
        known = {f.name for f in fields(cls)} - {"extra", "path"}
        given = {k: v for k, v in data.items() if k in known}
        for key in ("metrics", "per_query", "counts", "timing"):
            if given.get(key) is None:
                given.pop(key, None)
        return cls(**given, extra={k: v for k, v in data.items() if k not in known}, path=path)

    def to_disk(self, path: str | Path) -> Path:
        """Write the result file (indent 1, as ``hardneg.evaluate`` always has)."""
        return write_atomic(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_disk(cls, path: str | Path, fix: str | None = None) -> EvalResult:
        """A result file of any hardneg version (``_upgrade``). With ``fix``, a broken file is one error line
        naming it and the fix (``hardneg.config.read_json``); without, ``json.JSONDecodeError`` propagates.
        A file that is not a JSON object, or lacks one of ``REQUIRED`` (absent, null or not text), is one
        ``ValueError`` line naming the file, the missing fields and ``fix``."""
        path = Path(path)
        fix_text = fix or "evaluate again"
        data = read_json(path, fix) if fix else json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path} is not a result file (a JSON object); fix: {fix_text}")
        missing = [k for k in cls.REQUIRED if not isinstance(data.get(k), str) or not data[k]]
        if missing:
            raise ValueError(
                f"{path} is not a result file of hardneg: it lacks {', '.join(map(repr, missing))} "
                f"(every result names its {', '.join(cls.REQUIRED)}); fix: {fix_text}"
            )
        return cls.from_dict(cls._upgrade(data), path=path)

    @staticmethod
    def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """Older files: no ``metric_list`` (the metric keys were the list), one passage format (hardneg) and
        one rule for queries without a relevant document (exclude)."""
        data.setdefault("metric_list", sorted(data.get("metrics") or {}))
        data.setdefault("passage_format", "hardneg")
        data.setdefault("queries_without_relevant", "exclude")
        return data

    def setting(self, key: str) -> Any:
        """A scoring setting (or any written field) by name, as ``hardneg.evaluate.scoring_settings`` names it."""
        return self.to_dict().get(key)

    def run_path(self) -> Path | None:
        """The gzip TREC run file beside the result file (None when the result names none or was not read
        from a file)."""
        if self.path is None or not self.run_file:
            return None
        return self.path.with_name(self.run_file)

    @property
    def file_name(self) -> str | None:
        return self.path.name if self.path is not None else None
