"""Sharded builds: each process of ``accelerate launch`` / ``torchrun`` takes a contiguous shard of the items.

    accelerate launch --num_processes 8 builders/build.py --config recipes/paper/build_qwen3-8b.yaml ...
    torchrun --nproc_per_node 2 builders/build.py --config recipes/demo/build.yaml --output_dir runs/demo

The contract (used by ``hardneg.build``):

- ``current_shard()`` reads the process's rank and the world size from the launcher's environment
  (``RANK``/``WORLD_SIZE``, set by accelerate and torchrun; ``LOCAL_RANK`` picks the GPU). No process group is
  needed: processes meet through the output folder, which several nodes must share (NFS, Lustre ...).
- ``shard_rows`` gives process ``rank`` the rows ``[rank * n / world, (rank + 1) * n / world)``: contiguous, so
  the main process restores the one-process order by concatenating the shards in rank order.
- Each shard keeps its own stages and generation cache (``stages/shard-RR-of-WW/``, ``cache/shard-RR-of-WW/``),
  so a killed process resumes its own shard, and writes ``done.json`` (``write_done``) naming the stage
  keys it finished under a run id that every process computes alike. The main process waits for all of them
  (``wait_for_shards``), reads the shards' stages and writes the folder.
- ``merge_stats`` adds the shards' counters (rows, tokens, seconds, rejects by reason) and keeps the
  settings, which are the same in every shard: the rule of each key is part of ``hardneg.records.ConfigStats``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, concatenate_datasets

from hardneg.records import ConfigStats

logger = logging.getLogger(__name__)

DONE_FILE = "done.json"


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def name(self) -> str:
        return f"shard-{self.rank:02d}-of-{self.world:02d}"


ONE_PROCESS = Shard()


def current_shard() -> Shard:
    """This process's shard from the launcher's environment (one process: ``Shard(0, 1)``)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    if not 0 <= rank < world:
        raise ValueError(
            f"RANK={rank} is outside WORLD_SIZE={world}; fix: start the build with accelerate launch or torchrun"
        )
    return Shard(rank, world)


def bind_local_device() -> None:
    """One GPU per process: make ``cuda`` mean this process's GPU (``LOCAL_RANK``), for generator and scorers."""
    import torch

    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())


def shard_generator_config(config, shard: Shard):
    """The generator settings of one shard: with at least as many server URLs as processes, each process
    sends to its own share of them (``urls[rank::world]``); a local model goes on the process's GPU. URLs and
    devices are run-only settings, so stage keys and caches are the same as in a one-process build."""
    import torch

    changes: dict[str, Any] = {}
    if config.backend == "http" and len(config.urls) >= shard.world:
        changes["urls"] = config.urls[shard.rank :: shard.world]
    if config.device is None and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        changes["device"] = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return replace(config, **changes) if changes else config


def shard_bounds(n: int, shard: Shard) -> tuple[int, int]:
    return n * shard.rank // shard.world, n * (shard.rank + 1) // shard.world


def shard_rows(ds: Dataset, shard: Shard) -> Dataset:
    """The shard's contiguous slice of ``ds`` (sizes differ by at most one row)."""
    start, stop = shard_bounds(len(ds), shard)
    return ds.select(range(start, stop))


def write_done(folder: Path, run_id: str, value: dict[str, Any]) -> None:
    """Mark this shard finished: its stage keys (and counts the main process adds up), atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{DONE_FILE}.tmp"
    tmp.write_text(json.dumps({"run_id": run_id, **value}, default=str))
    tmp.replace(folder / DONE_FILE)


def _wait(
    read: Callable[[], list[Any]], names: list[str], what: str, poll_s: float, timeout_s: float | None
) -> list[Any]:
    """Poll ``read`` (one value per name, None while not ready) until every value is ready; log every minute."""
    start, last_log = time.monotonic(), 0.0
    while True:
        values = read()
        if all(v is not None for v in values):
            return values
        waited = time.monotonic() - start
        if timeout_s is not None and waited > timeout_s:
            missing = [n for n, v in zip(names, values, strict=True) if v is None]
            raise RuntimeError(
                f"{what} {missing} did not finish within {timeout_s:.0f} s; fix: check those processes' logs and "
                "rerun the same command (finished work is reused)"
            )
        if waited - last_log > 60:
            last_log = waited
            logger.info(
                "waiting for %s: %d of %d finished", what, sum(v is not None for v in values), len(values)
            )
        time.sleep(poll_s)


def wait_for_shards(
    folders: list[Path],
    run_id: str,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
    ready: Callable[[Path, dict], bool] | None = None,
) -> list[dict]:
    """Block until every shard folder holds a ``done.json`` of this run for which ``ready(folder, marker)``
    holds (a marker left by an earlier run of the same command may name work the shard is redoing right now);
    returns them in rank order."""

    def read() -> list[dict | None]:
        done = []
        for folder in folders:
            path = folder / DONE_FILE
            try:
                value = json.loads(path.read_text()) if path.is_file() else None
            except ValueError:  # being replaced right now
                value = None
            ok = value and value.get("run_id") == run_id and (ready is None or ready(folder, value))
            done.append(value if ok else None)
        return done

    return _wait(read, [f.name for f in folders], "shards", poll_s, timeout_s)


def balanced_bounds(lengths: Sequence[int], world: int) -> list[int]:
    """Cut points ``[0, c1, ..., n]`` of ``world`` contiguous parts holding about equal total length (the
    work of encoding a part grows with its tokens, not its row count)."""
    total = np.cumsum(np.asarray(lengths, dtype=np.int64))
    if not len(total):
        return [0] * (world + 1)
    targets = total[-1] * np.arange(1, world) / world
    cuts = np.searchsorted(total, targets, side="left") + 1
    return [0, *np.minimum(cuts, len(total)).tolist(), len(total)]


def shared_array(
    folder: Path,
    stem: str,
    n: int,
    compute: Callable[[int, int], np.ndarray],
    shard: Shard,
    *,
    lengths: Callable[[], Sequence[int]] | None = None,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
) -> np.ndarray:
    """An array of ``n`` rows that every process needs, computed once across the processes and kept on disk.

    One process (``world == 1``) computes ``compute(0, n)`` into ``<stem>.npy``. Under a launcher each process
    computes its contiguous part (``balanced_bounds`` of ``lengths()``, called only when the part is missing;
    rows otherwise) into ``<stem>.part-RR-of-WW.npy``, then waits for the other parts in the shared ``folder``
    and returns them joined in row order. Every process must call it (each writes one part). Files are written
    atomically and reused: a rerun, or a later step asking for the same ``stem``, computes nothing, and a
    killed process recomputes only its own part. Parts that do not add up to ``n`` rows are an error.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if shard.world == 1:
        paths = [folder / f"{stem}.npy"]
    else:
        paths = [folder / f"{stem}.part-{r:02d}-of-{shard.world:02d}.npy" for r in range(shard.world)]
    mine = paths[shard.rank]
    value = None
    if not mine.is_file():
        if shard.world == 1:
            bounds = [0, n]
        elif lengths is not None:
            bounds = balanced_bounds(lengths(), shard.world)
        else:
            bounds = [shard_bounds(n, Shard(r, shard.world))[0] for r in range(shard.world)] + [n]
        value = np.asarray(compute(bounds[shard.rank], bounds[shard.rank + 1]))
        tmp = mine.with_name(f".{mine.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.save(f, value)
        tmp.replace(mine)
        if shard.world > 1:
            value = None  # read back below with the other parts, not held beside them
    if value is not None:  # one process, computed now: the array in hand, not a second copy read back
        joined = value
    else:
        parts = _wait(
            lambda: [p if p.is_file() else None for p in paths],
            [p.name for p in paths],
            stem,
            poll_s,
            timeout_s,
        )
        joined = np.concatenate([np.load(p) for p in parts]) if len(parts) > 1 else np.load(parts[0])
    if len(joined) != n:
        raise RuntimeError(
            f"the parts of {stem} in {folder} hold {len(joined)} rows, not {n}; fix: delete {folder / stem}* "
            "and rerun (they were written for other inputs)"
        )
    return joined


def merge_stats(parts: Iterable[dict]) -> dict:
    """Add the shards' stats of one stage by the rules of ``hardneg.records.ConfigStats`` (``merge_rule``):
    counters summed (rows, tokens, seconds, rejects ...), nested dicts merged key by key, settings and text
    taken from the first shard, rates averaged weighted by rows, distribution summaries kept per shard,
    items/s recomputed."""
    return ConfigStats.merge(parts)


def concat_shards(tables: list[Dataset]) -> Dataset:
    tables = [t for t in tables if t is not None]
    return tables[0] if len(tables) == 1 else concatenate_datasets(tables)
