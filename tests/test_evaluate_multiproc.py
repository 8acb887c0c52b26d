"""`accelerate launch` with 2 processes (gloo on this GPU-less machine): corpus encoding is sharded and
gathered, and the numbers equal a one-process run on the same slice of Cranfield."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hardneg.corpus import load_beir_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_two_processes_match_one(tmp_path, cranfield_dir):
    data = load_beir_folder(cranfield_dir, "test")
    qids = list(data.qrels)[:5]
    docs = list(dict.fromkeys([d for q in qids for d in data.qrels[q]] + list(data.corpus)))[:40]
    folder = tmp_path / "slice"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, **data.corpus[d]}) + "\n" for d in docs)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": data.queries[q]}) + "\n" for q in qids)
    )
    rows = [f"{q}\t{d}\t{g}" for q in qids for d, g in data.qrels[q].items() if d in docs]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")

    args = ["--datasets", str(folder), "--models", "zero-shot=embedded:minilm", "--part_size", "8"]
    args += ["--show_progress", "false"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += [
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    script = str(ROOT / "evaluation" / "evaluate.py")
    for cmd, run in ((launch + [script], "two"), ([sys.executable, script], "one")):
        out = subprocess.run(
            cmd + args + ["--run_dir", str(tmp_path / run)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert out.returncode == 0, out.stderr[-3000:]
    two, one = (
        json.loads(next((tmp_path / r / "results").glob("*.json")).read_text()) for r in ("two", "one")
    )
    assert (two["processes"], one["processes"]) == (2, 1)
    assert two["counts"]["queries_evaluated"] == one["counts"]["queries_evaluated"] > 0
    for q, values in one["per_query"].items():
        assert two["per_query"][q] == pytest.approx(values, abs=1e-6)
    # both processes wrote their own share of the cached parts (5 parts of 8 passages)
    assert (
        len(list((tmp_path / "two" / "cache" / "embeddings").glob("*/part8-*.npy"))) == 5
    )  # parts are named by their size
