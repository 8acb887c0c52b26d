"""Trainer callbacks that record what a run did: rows each process saw (``RecordingCollator``), each rank's
final weights (``RankRecordCallback``) and whole-run totals over resumed segments (``RunTotals``)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from hardneg.curves import TRAINER_STATE_FILE
from hardneg.train.model import weights_fingerprint


class RecordingCollator:
    """Wraps the trainer's collator to count the rows this process trained on and hash their anchors."""

    def __init__(self, inner):
        self.inner = inner
        self.rows = 0
        self.digest = hashlib.sha256()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __call__(self, features):
        self.rows += len(features)
        for row in features:
            self.digest.update(str(row.get("anchor", "")).encode())
        return self.inner(features)


class RankRecordCallback(TrainerCallback):
    """At the end of training every process writes ``<output_dir>/ranks/rank<N>.json``: its weights
    fingerprint, steps and the rows it saw. Equal fingerprints across ranks that saw different rows
    prove that gradients were synchronised."""

    def __init__(self, folder: Path, collator: RecordingCollator, initial: str):
        self.folder, self.collator, self.initial = folder, collator, initial

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": args.process_index,
            "world_size": args.world_size,
            "pid": os.getpid(),
            "global_step": state.global_step,
            "rows_seen": self.collator.rows,
            "anchors_sha256": self.collator.digest.hexdigest(),
            "initial_fingerprint": self.initial,
            "final_fingerprint": weights_fingerprint(model),
        }
        (self.folder / f"rank{args.process_index}.json").write_text(json.dumps(record, indent=2) + "\n")


class RunTotals(TrainerCallback, ExportableState):
    """Whole-run totals over resumed segments: optimizer steps, summed loss and training seconds.

    Each checkpoint's ``trainer_state.json`` stores the totals up to that checkpoint (``stateful_callbacks``);
    a resumed segment starts from the checkpoint's totals (``from_checkpoint``), so the final summary reports
    the whole run's mean loss and time, not only the last segment's. Time spent after the last checkpoint of
    an interrupted segment is lost work and is not counted.
    """

    def __init__(self, steps: int = 0, loss_sum: float = 0.0, seconds: float | None = 0.0, segments: int = 0):
        self.steps, self.loss_sum, self.seconds, self.segments = steps, loss_sum, seconds, segments
        self.trainer = None
        self.start = time.perf_counter()

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | None) -> RunTotals:
        if checkpoint is None:
            return cls()
        state = json.loads((checkpoint / TRAINER_STATE_FILE).read_text())
        saved = (state.get("stateful_callbacks") or {}).get(cls.__name__)
        if isinstance(saved, list):
            saved = saved[-1] if saved else None
        if saved:
            return cls(**saved["attributes"])
        # a checkpoint written before the totals existed: the logged losses, time unknown
        logged = [(h["step"], h["loss"]) for h in state.get("log_history", []) if "loss" in h]
        prev, loss_sum = 0, 0.0
        for step, loss in logged:
            loss_sum, prev = loss_sum + loss * (step - prev), step
        return cls(steps=prev, loss_sum=loss_sum, seconds=None, segments=1)

    def _segment(self) -> tuple[int, float]:
        trainer = self.trainer
        steps = trainer.state.global_step - getattr(trainer, "_initial_global_step", 0)
        pending = getattr(trainer, "_tr_loss", 0.0)
        pending = float(pending.item()) if hasattr(pending, "item") else float(pending or 0.0)
        return steps, float(getattr(trainer, "_total_loss_scalar", 0.0)) + pending

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()
        # a checkpoint written before these totals existed has no entry, and transformers would fail at save
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())

    def state(self) -> dict:
        """Totals up to now (called when a checkpoint is written)."""
        steps, loss_sum = self._segment() if self.trainer is not None else (0, 0.0)
        seconds = None if self.seconds is None else self.seconds + time.perf_counter() - self.start
        return {
            "args": {},
            "attributes": {
                "steps": self.steps + steps,
                "loss_sum": self.loss_sum + loss_sum,
                "seconds": seconds,
                "segments": self.segments + 1,
            },
        }

    def finish(self, train_metrics: dict, train_seconds: float) -> dict[str, Any]:
        """Whole-run statistics after the last segment (its loss and time from the trainer's own metrics)."""
        steps = self.trainer.state.global_step - getattr(self.trainer, "_initial_global_step", 0)
        loss = train_metrics.get("train_loss")
        total_steps = self.steps + steps
        loss_sum = self.loss_sum + (loss or 0.0) * steps
        return {
            "train_loss": loss_sum / total_steps if total_steps and loss is not None else loss,
            "train_seconds": None if self.seconds is None else self.seconds + train_seconds,
            "segments": self.segments + 1,
            "last_segment": {
                "steps": steps,
                "train_loss": loss,
                "train_seconds": train_seconds,
                "train_samples_per_second": train_metrics.get("train_samples_per_second"),
            },
        }
