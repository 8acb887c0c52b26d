"""What a model was trained on, and reuse keyed on it (never on the folder name).

``training_record``: dataset, config, split, revision, the commit and a fingerprint of the rows loaded, every
option that changes the model (``hardneg.train.config.recorded_options``), the seed. A finished seed
(``SUMMARY_FILE``) or a folder of checkpoints (``TRAINED_ON_FILE`` beside them) is reused only for the same
record, and otherwise refused with one line that names what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datasets import Dataset

from hardneg.files import write_atomic
from hardneg.options import ConfigError
from hardneg.revisions import loaded_commit
from hardneg.train.config import TrainConfig, recorded_options
from hardneg.train.data import data_fingerprint

CHECKPOINTS_DIR = "checkpoints"
SUMMARY_FILE = "training_summary.json"
TRAINED_ON_FILE = "trained_on.json"  # in <output_dir>/checkpoints: what its checkpoints were trained on


def last_checkpoint(folder: str | Path) -> Path | None:
    """The newest *complete* checkpoint (``trainer_state.json`` is written last) in ``folder``, if any."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    done = [
        p
        for p in folder.glob("checkpoint-*")
        if (p / "trainer_state.json").is_file() and p.name[11:].isdigit()
    ]
    return max(done, key=lambda p: int(p.name[11:]), default=None)


def training_record(config: TrainConfig, data: Dataset, fingerprint: str | None = None) -> dict[str, Any]:
    """What a model is trained on and how: the reuse key of a finished seed (see the module docstring).
    ``fingerprint``: ``data_fingerprint(data)`` when the caller has it (one scan of the rows for every seed)."""
    options = recorded_options(config)
    return {
        "dataset_commit": loaded_commit(data),
        "data_fingerprint": fingerprint or data_fingerprint(data),
        **options,
    }


def _differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    first = [
        "max_steps",
        "dataset",
        "dataset_config",
        "dataset_split",
        "dataset_revision",
        "columns",
        "model",
    ]
    keys = first + sorted(set(saved) | set(wanted))  # what names the run first, the fingerprint after
    return [
        f"trained with {k} {saved.get(k)}, but the config asks for {wanted.get(k)}"
        if k != "data_fingerprint"
        else f"trained on rows with fingerprint {str(saved.get(k))[:12]}, but the dataset now has {str(wanted.get(k))[:12]}"
        for k in dict.fromkeys(keys)
        if saved.get(k) != wanted.get(k)
    ]


def _check_same(folder: Path, what: str, saved: dict[str, Any] | None, record: dict[str, Any]) -> None:
    """Refuse work in ``folder`` (a finished seed, checkpoints) that was trained on anything but ``record``."""
    fix = f"fix: delete {folder} to train it again, or choose another --output_dir"
    if saved is None:
        raise ConfigError(
            f"{folder} holds {what} that does not record what it was trained on (an older hardneg); {fix}"
        )
    diff = _differences(saved, json.loads(json.dumps(record, default=str)))
    if diff:
        more = f" (and {len(diff) - 1} more difference(s))" if len(diff) > 1 else ""
        raise ConfigError(
            f"{folder} holds {what} {diff[0]}{more}: its results would not be comparable; {fix}"
        )


def check_finished(folder: Path, record: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a finished model trained as ``record`` says (then it is reused); a finished
    model trained on anything else is refused with one line, never reused under the new name."""
    summary = folder / SUMMARY_FILE
    if not summary.is_file():
        return False
    done = json.loads(summary.read_text())
    _check_same(folder, "a finished seed", done.get("trained_on"), record)
    print(f"{folder}: already trained ({done.get('global_step')} steps), skipped", flush=True)
    return True


def check_checkpoints(folder: Path, record: dict[str, Any]) -> None:
    """Checkpoints are resumed only for the training they belong to (``TRAINED_ON_FILE`` beside them)."""
    marker = folder / TRAINED_ON_FILE
    if last_checkpoint(folder) is not None:
        _check_same(
            folder, "checkpoints", json.loads(marker.read_text()) if marker.is_file() else None, record
        )


def write_trained_on(folder: Path, record: dict[str, Any]) -> None:
    """Record what the checkpoints in ``folder`` are trained on (main process, before the first one)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / TRAINED_ON_FILE, json.dumps(record, default=str))
