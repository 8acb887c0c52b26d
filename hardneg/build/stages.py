"""The build's stage cache: finished stages on disk (``stages/<name>/{data.arrow,stats.json}``, valid only for
the same key), the lazily loaded generator and scorers, and the record that leaves an unchanged dataset folder
untouched."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datasets import Dataset, Features, load_from_disk

from hardneg.files import write_atomic
from hardneg.llm import Generator, GeneratorConfig, load_generator
from hardneg.methods import empty_table, table_blocks, write_arrow_file
from hardneg.scorers import load_scorer

logger = logging.getLogger(__name__)

DATA_FILE = "data.arrow"  # a stage's table (``datasets``' Arrow cache-file format)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Log a named step's wall time (``step <name>: N s``; benchmarks/scale.py reads these lines)."""
    start = time.perf_counter()
    yield
    logger.info("step %s: %.1f s", name, time.perf_counter() - start)


def load_data(path: Path) -> Dataset:
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


class Stages:
    """Finished stages on disk: ``stages/<name>/{data.arrow,stats.json}`` valid only for the same key."""

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
        return self._data(folder), saved["stats"]

    def put(self, name: str, key: str, data: Dataset, stats: dict) -> Dataset:
        """Save a finished stage: its table is copied into ``data.arrow`` in blocks (``write_arrow_file``:
        bounded memory, whatever its size and wherever it is read from); returns the table read back
        memory-mapped (what was in memory is freed)."""
        folder = self.root / name
        tmp = self.root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        write_arrow_file(table_blocks(data), data.features, tmp / DATA_FILE)
        (tmp / "stats.json").write_text(json.dumps({"key": key, "stats": stats}, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # atomic: a stage is either complete or absent
        return self._data(folder)

    @staticmethod
    def _data(folder: Path) -> Dataset:
        file = folder / DATA_FILE
        if file.is_file():
            return Dataset.from_file(str(file))
        return load_data(folder / "data")  # a stage saved by an earlier version (``save_to_disk``)

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
class Resources:
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
        merged = read_labels(self.labels_file) | labels
        self.labels_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.labels_file, json.dumps(merged, indent=1))

    def scorer_label(self, name: str, dtype: str | None = None) -> str | None:
        """The full name (``scorer.name``) a scorer id loaded as in this run folder, without loading it."""
        labels = read_labels(self.labels_file) if self.labels_file else {}
        return labels.get(self.label_key(name, dtype))

    def label_key(self, name: str, dtype: str | None = None) -> str:
        return f"{name}|{dtype or self.scorer_dtype}"


LABELS_FILE = "scorer_names.json"


def read_labels(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.is_file() else {}


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
