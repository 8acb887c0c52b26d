"""A build under torchrun with two CPU processes writes exactly the rows of a one-process build; each shard
keeps its own stages and cache, so a rerun reuses every shard; the dense pool embeddings are encoded once
across the processes (a part each); repair and false-negative scoring run in the shards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hardneg.distributed import Shard, merge_stats, shard_rows

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"

RECIPE = """
corpus: embedded:cranfield
num_passages: 5
methods:
  llm_hn: {prompt: llm_hn, max_new_tokens: 24}
  bm25_hn: {range_max: 6}
  dense_hn: {range_max: 6}
model: embedded:smollm2
backend: transformers
batch_size: 1
temperature: 0.0
query_prompt: query_fewshot
query_max_new_tokens: 16
reject_retries: 0
false_negative_scorer: embedded:ql
false_negative_repair: drop
repair_scope: all
repair_configs: [llm_hn]
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


SCORES = ("positive_score", "negative_score")


def _rows(folder: Path) -> dict[str, list[dict]]:
    """Every config's rows, without the columns that measure time (latency); scores rounded to 5 decimals
    (a passage embedded in another batch differs in the 7th: the same rows, the same order)."""
    out = {}
    for config in sorted(p for p in (folder / "dataset").iterdir() if any(p.glob("*.parquet"))):
        frame = pd.concat(pd.read_parquet(f) for f in sorted(config.glob("*.parquet")))
        frame = frame.drop(columns=[c for c in frame.columns if c == "latency_s"])
        frame = frame.round({c: 5 for c in SCORES if c in frame.columns}).astype(object)
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
    assert set(rows_one) == {"queries", "llm_hn", "bm25_hn", "dense_hn"} and rows_one == rows_two
    assert len(rows_one["queries"]) >= 3 and len(rows_one["bm25_hn"]) >= 3 and rows_one["dense_hn"]
    for shard in ("shard-00-of-02", "shard-01-of-02"):  # per-shard stages and caches, each marked done
        assert (two / "stages" / shard / "done.json").is_file()
        assert (two / "cache" / shard / "generation.sqlite").is_file()
        assert (two / "stages" / shard / "llm_hn.repaired").is_dir()  # repaired in the shard
    # The pool (1,398 distinct passages) is encoded once: a part per process, joined by each; one file in one process.
    [whole] = (one / "cache" / "pool_embeddings").glob("corpus_embeddings_*.npy")
    parts = sorted((two / "cache" / "pool_embeddings").glob("corpus_embeddings_*.npy"))
    assert [p.name for p in parts] == [f"{whole.stem}.part-0{r}-of-02.npy" for r in (0, 1)]
    assert sum(np.load(p).shape[0] for p in parts) == np.load(whole).shape[0] > 1000
    stats = [json.loads((f / "dataset" / "build_stats.json").read_text()) for f in (one, two)]
    for name in ("queries", "llm_hn", "bm25_hn", "dense_hn"):
        assert stats[0]["configs"][name]["rows"] == stats[1]["configs"][name]["rows"]
    for name in (
        "llm_hn",
        "bm25_hn",
        "dense_hn",
    ):  # scored in the shards, the scores joined by the main process
        a, b = stats[0]["configs"][name], stats[1]["configs"][name]
        assert a["suspected_false_negative_rate"] == b["suspected_false_negative_rate"] is not None
        stage = a["false_negative_detail"]["stage"]
        assert list((two / "stages" / stage).glob("fn_scores_*.json")), stage
    for name in ("llm_hn", "bm25_hn", "dense_hn"):  # the same rows flagged, not only the same share
        a, b = (s["configs"][name]["false_negative_detail"] for s in stats)
        assert a["suspected_rows"] == b["suspected_rows"]
    # The explorer reads the published false-negative scores (not stages/) and the rejects like those of a
    # one-process build.
    from hardneg.explore import build_payload
    from hardneg.records import FALSE_NEGATIVE_SCORES_FILE

    assert all((f / FALSE_NEGATIVE_SCORES_FILE).is_file() for f in (one, two))

    payloads = [build_payload(str(f / "dataset")) for f in (one, two)]
    for name in ("llm_hn", "bm25_hn", "dense_hn"):
        fs = [
            [round(x, 3) for x in p["methods"][name]["fs_p"] + p["methods"][name]["fs_n"]] for p in payloads
        ]
        assert fs[0] and fs[0] == fs[1], name
    assert payloads[1]["rejects"].keys() == payloads[0]["rejects"].keys()
    repair = [s["configs"]["llm_hn"]["repair"] for s in stats]
    assert {k: repair[0][k] for k in ("suspected", "dropped", "rows_after")} == {
        k: repair[1][k] for k in ("suspected", "dropped", "rows_after")
    }
    # Resume where process 0 reuses its finished dense stage and process 1 redoes its own, with the pool's
    # parts gone: every process shares out the pool before its methods, so nobody waits for a missing part.
    shutil.rmtree(two / "cache" / "pool_embeddings")
    shutil.rmtree(two / "stages" / "shard-01-of-02" / "dense_hn")
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _rows(two) == rows_two
    assert "reusing finished stage" in again.stderr


def test_more_processes_than_passages_is_one_clear_error(tmp_path, monkeypatch):
    from scripted_llm import scripted

    from hardneg.build import BuildConfig, build

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    cfg, gen = scripted()
    config = BuildConfig(output_dir=str(tmp_path / "run"), num_passages=3, methods=["bm25_hn"])
    with pytest.raises(ValueError, match=r"3 sampled passages leave process 0 of 4 none; fix: sample more"):
        build(config, cfg, generator=gen)


def test_gather_rejects_streams_the_shards_files_in_rank_order(tmp_path):
    """Each reject file is the shards' files joined byte for byte in rank order (a shard without one adds
    nothing), copied in chunks: memory stays far below one shard's file."""
    from hardneg.build.shards import gather_rejects

    folders = [tmp_path / f"shard{r}" for r in range(3)]
    for folder in folders:
        folder.mkdir()
    line = json.dumps({"id": "q", "text": "réponse " * 60}) + "\n"  # non-ASCII: copied as bytes
    big = line * (4_000_000 // len(line))
    (folders[0] / "llm_hn.jsonl").write_text(big + "shard 0\n", encoding="utf-8")
    (folders[2] / "llm_hn.jsonl").write_text("shard 2\n", encoding="utf-8")
    (folders[1] / "queries.jsonl").write_text("only shard 1\n", encoding="utf-8")
    out = tmp_path / "cache" / "rejects"
    tracemalloc.start()
    try:
        gather_rejects(folders, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (out / "llm_hn.jsonl").read_bytes() == (big + "shard 0\nshard 2\n").encode("utf-8")
    assert (out / "queries.jsonl").read_text() == "only shard 1\n"
    assert sorted(p.name for p in out.iterdir()) == ["llm_hn.jsonl", "queries.jsonl"]  # no temporary left
    assert peak < 1_000_000, f"{peak} bytes allocated: a shard's file was read whole"
