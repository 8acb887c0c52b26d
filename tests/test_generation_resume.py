"""SIGKILL the real query-generation command mid-run, run it again: nothing lost, nothing duplicated,
nothing recomputed, and the result equals an uninterrupted run (greedy)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

N = 6


def _command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hardneg.queries",
        "--corpus",
        "embedded:cranfield",
        "--limit",
        str(N),
        "--batch_size",
        "1",
        "--max_new_tokens",
        "16",
        "--output_dir",
        str(out),
    ]


def _env() -> dict:
    # Passive OpenMP waiting keeps two busy-waiting processes from starving each other on a shared CPU.
    return os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "TQDM_DISABLE": "1"}


def _cached(out: Path) -> int:
    db = out / "cache" / "generation.sqlite"
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_then_rerun_resumes_without_loss_or_duplicates(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    done = subprocess.run(_command(ref), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    proc = subprocess.Popen(
        _command(killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while _cached(killed) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; raise N"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _cached(killed)
    assert 2 <= at_kill < N and not (killed / "queries.parquet").exists()

    again = subprocess.run(_command(killed), env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    stats = json.loads((killed / "stats.json").read_text())
    assert (
        stats["cached_this_run"] == at_kill and stats["generated_this_run"] == N - at_kill
    )  # nothing recomputed
    a = pd.read_parquet(ref / "queries.parquet").drop(columns=["latency_s"])
    b = pd.read_parquet(killed / "queries.parquet").drop(columns=["latency_s"])
    assert b["query_id"].is_unique and len(b) == len(a)
    pd.testing.assert_frame_equal(a, b)
