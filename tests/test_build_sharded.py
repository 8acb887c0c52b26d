"""A build under torchrun with two CPU processes writes exactly the rows of a one-process build; each shard
keeps its own stages and cache, so a rerun reuses every shard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hardneg.distributed import Shard, merge_stats, shard_rows

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"

RECIPE = """
corpus: embedded:cranfield
num_passages: 5
methods: [llm_hn, bm25_hn]
model: embedded:smollm2
backend: transformers
batch_size: 1
temperature: 0.0
query_prompt: query_fewshot
llm_hn_prompt: llm_hn
query_max_new_tokens: 16
negative_max_new_tokens: 24
reject_retries: 0
range_max: 6
false_negative_scorer: none
paired: false
"""


def test_shards_are_contiguous_and_cover_every_row():
    from datasets import Dataset

    ds = Dataset.from_dict({"i": list(range(7))})
    parts = [shard_rows(ds, Shard(r, 3))["i"] for r in range(3)]
    assert [x for p in parts for x in p] == list(range(7)) and [len(p) for p in parts] == [2, 2, 3]
    merged = merge_stats(
        [
            {
                "rows": 2,
                "wall_seconds": 1.0,
                "items_per_second": 2.0,
                "rejects": {"empty": 1},
                "params": {"seed": 42},
            },
            {
                "rows": 3,
                "wall_seconds": 1.5,
                "items_per_second": 2.0,
                "rejects": {"empty": 2, "too_long": 1},
                "params": {"seed": 42},
            },
        ]
    )
    assert merged == {
        "rows": 5,
        "wall_seconds": 2.5,
        "items_per_second": 2.0,
        "rejects": {"empty": 3, "too_long": 1},
        "params": {"seed": 42},
    }


def _rows(folder: Path) -> dict[str, list[dict]]:
    """Every config's rows, without the columns that measure time (latency)."""
    out = {}
    for config in sorted(p for p in (folder / "dataset").iterdir() if any(p.glob("*.parquet"))):
        frame = pd.concat(pd.read_parquet(f) for f in sorted(config.glob("*.parquet")))
        frame = frame.drop(columns=[c for c in frame.columns if c == "latency_s"]).astype(object)
        out[config.name] = frame.where(frame.notna(), None).to_dict("records")  # NaN != NaN
    return out


@pytest.mark.slow
def test_two_process_build_writes_the_rows_of_a_one_process_build(tmp_path):
    recipe = tmp_path / "build.yaml"
    recipe.write_text(RECIPE)
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HARDNEG_DEBUG": "1"}
    script = str(ROOT / "builders" / "build.py")
    one = tmp_path / "one"
    subprocess.run(
        [sys.executable, script, "--config", str(recipe), "--output_dir", str(one)],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )
    two = tmp_path / "two"
    cmd = [
        str(TORCHRUN),
        "--nproc_per_node",
        "2",
        "--master_port",
        "0",
        script,
        "--config",
        str(recipe),
        "--output_dir",
        str(two),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows_one, rows_two = _rows(one), _rows(two)
    assert set(rows_one) == {"queries", "llm_hn", "bm25_hn"} and rows_one == rows_two
    assert len(rows_one["queries"]) >= 3 and len(rows_one["bm25_hn"]) >= 3
    for shard in ("shard-00-of-02", "shard-01-of-02"):  # per-shard stages and caches, each marked done
        assert (two / "stages" / shard / "done.json").is_file()
        assert (two / "cache" / shard / "generation.sqlite").is_file()
    stats = [json.loads((f / "dataset" / "build_stats.json").read_text()) for f in (one, two)]
    for name in ("queries", "llm_hn", "bm25_hn"):
        assert stats[0]["configs"][name]["rows"] == stats[1]["configs"][name]["rows"]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and _rows(two) == rows_two
    assert "reusing finished stage" in again.stderr
