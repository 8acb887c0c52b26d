"""Training stage: bad input in one line, the sampler, a real (tiny) run with card + prompts, resume
after SIGKILL, and a two-process (gloo) run whose ranks end with identical weights."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from datasets import Dataset

from hardneg.config import ConfigError, run_main
from hardneg.corpus import load_beir_folder, passage_text
from hardneg.train import (
    TrainConfig,
    last_checkpoint,
    load_triplets,
    train,
)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "training" / "train.py"
ACCELERATE = Path(sys.executable).parent / "accelerate"


def write_dataset_folder(folder: Path, configs: dict[str, Dataset]) -> Path:
    """A dataset folder in Hub layout, as the build stage writes it: README ``configs:`` + parquet."""
    lines = ["---", "configs:"]
    for name, ds in configs.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(folder / name / "train-00000-of-00001.parquet"))
        lines += [
            f"- config_name: {name}",
            "  data_files:",
            "  - split: train",
            f"    path: {name}/train-*.parquet",
        ]
    (folder / "README.md").write_text("\n".join(lines + ["---", "# test dataset", ""]))
    return folder


@pytest.fixture(scope="session")
def cranfield_triplets(cranfield_dir) -> Dataset:
    """96 real Cranfield triplets: query, a judged-relevant passage, a passage judged for a later query.

    Every passage is used once, as in a built dataset, so no batch sampler has to drop rows."""
    beir = load_beir_folder(cranfield_dir, "test")
    qids = [q for q in beir.queries if beir.qrels.get(q)]
    rows = {"anchor": [], "positive": [], "negative": [], "query_id": [], "method": []}
    used: set[str] = set()  # texts, not ids: Cranfield holds a few identical passages under two ids

    def text(doc_id: str) -> str:
        return passage_text(beir.corpus[doc_id]["title"], beir.corpus[doc_id]["text"])

    for n, qid in enumerate(qids):
        if beir.queries[qid] in used:
            continue
        pos = next((d for d in sorted(beir.qrels[qid], key=beir.qrels[qid].get) if text(d) not in used), None)
        neg = next(
            (
                d
                for other in qids[n + 1 :]
                for d in beir.qrels[other]
                if d not in beir.qrels[qid] and text(d) not in used and d != pos
            ),
            None,
        )
        if pos is None or neg is None or text(pos) == text(neg):
            continue
        used.update((beir.queries[qid], text(pos), text(neg)))
        rows["anchor"].append(beir.queries[qid])
        rows["positive"].append(text(pos))
        rows["negative"].append(text(neg))
        rows["query_id"].append(qid)
        rows["method"].append("test")
        if len(rows["anchor"]) == 96:
            break
    return Dataset.from_dict(rows)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory, cranfield_triplets) -> Path:
    queries_only = cranfield_triplets.select_columns(["anchor", "query_id"]).rename_column("anchor", "query")
    return write_dataset_folder(
        tmp_path_factory.mktemp("dataset"), {"bm25_hn": cranfield_triplets, "queries": queries_only}
    )


def tiny_config(dataset_dir: Path, output_dir: Path, **overrides) -> TrainConfig:
    values = dict(
        dataset=str(dataset_dir),
        dataset_config="bm25_hn",
        model="embedded:minilm",
        output_dir=str(output_dir),
        max_seq_length=32,
        per_device_train_batch_size=4,
        max_train_samples=8,
        num_train_epochs=1,
        logging_steps=1,
        learning_rate=1e-4,
    )
    values.update(overrides)
    return TrainConfig(**values)


# ---------------------------------------------------------------------------------------------------------
# bad input: one clear line, before any training


def test_load_triplets_keeps_three_columns(dataset_dir):
    ds = load_triplets(str(dataset_dir), config="bm25_hn")
    assert ds.column_names == ["anchor", "positive", "negative"]
    assert len(ds) == 96
    texts = [t for column in ("anchor", "positive", "negative") for t in ds[column]]
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"config": "queries"}, "lacks column(s) ['anchor', 'positive', 'negative']"),
        ({"config": "nope_hn"}, "config 'nope_hn'"),
        ({"config": "bm25_hn", "revision": "v9.9.9"}, "dataset_revision 'v9.9.9'"),
        ({"config": "bm25_hn", "split": "test"}, "split 'test'"),
    ],
)
def test_load_triplets_errors(dataset_dir, kwargs, expected):
    with pytest.raises((ConfigError, RuntimeError, ValueError)) as info:
        load_triplets(str(dataset_dir), **kwargs)
    message = str(info.value)
    assert expected in message and "fix:" in message and "\n" not in message


def test_hub_id_offline_is_one_line():
    with pytest.raises(RuntimeError, match=r"cannot load dataset 'no-org/no-such-dataset'.*fix:"):
        load_triplets("no-org/no-such-dataset", config="llm_hn")


def test_missing_folder():
    with pytest.raises(FileNotFoundError, match="does not exist; fix"):
        load_triplets("runs/nowhere/dataset", config="llm_hn")


def _run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def script_main():
    """``main`` of training/train.py, loaded from the file (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["--model", "no-org/no-such-model"], "error: cannot load model 'no-org/no-such-model'"),
        (["--model", "embedded:nope"], "error: unknown embedded model 'embedded:nope'"),
        (["--per_device_train_batch_size", "64", "--max_train_samples", "32"], "larger than the 32 training"),
        (["--dataset_config", "queries"], "lacks column(s)"),
        (["--dataset_config", "nope_hn"], "config 'nope_hn'"),
        (["--dataset_revision", "v1.0.0"], "dataset_revision 'v1.0.0'"),
        (["--loss", "gist"], "needs a guide model"),
        (["--bf16", "true", "--fp16", "true"], "choose one mixed-precision mode"),
    ],
)
def test_script_bad_input_one_line(
    script_main, dataset_dir, tmp_path, monkeypatch, capsys, overrides, expected
):
    out = tmp_path / "model"
    argv = [
        "train.py",
        "--config",
        "recipes/demo/train.yaml",
        "--dataset",
        str(dataset_dir),
        "--dataset_config",
        "bm25_hn",
        "--output_dir",
        str(out),
        *overrides,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("HARDNEG_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        run_main(script_main, TrainConfig)
    assert info.value.code == 2
    stderr = capsys.readouterr().err
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0] and "fix:" in error_lines[0], stderr[-2000:]
    assert not out.exists(), "nothing may be written before the input is checked"


@pytest.mark.parametrize(
    "recipe", sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("recipes/*/train*.yaml"))
)
def test_recipes_parse(recipe):
    from hardneg.config import parse

    (config,) = parse(TrainConfig, args=["--config", recipe, "--dataset_config", "bm25_hn"])
    assert config.dataset_config == "bm25_hn" and config.per_device_train_batch_size >= 1
    if "e5" in config.model:
        assert config.query_prompt == "query: " and config.passage_prompt == "passage: "


# ---------------------------------------------------------------------------------------------------------
# a real run in-process: prompts stored, card rendered, weights changed


@pytest.fixture(scope="session")
def trained(tmp_path_factory, dataset_dir) -> Path:
    out = tmp_path_factory.mktemp("run") / "model"
    config = tiny_config(dataset_dir, out, query_prompt="query: ", passage_prompt="passage: ", eval_size=8)
    return train(config)


def test_train_saves_model_card_and_prompts(trained: Path):
    from sentence_transformers import SentenceTransformer

    st_config = json.loads((trained / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "document": "passage: "}
    card = (trained / "README.md").read_text()
    assert "bm25_hn" in card and "MultipleNegativesRankingLoss" in card and "query: " in card
    assert not (trained / "checkpoints").exists(), "checkpoints are removed after the final save"
    summary = json.loads((trained / "training_summary.json").read_text())
    assert summary["global_step"] == 2 and summary["train_samples"] == 8 and summary["world_size"] == 1
    assert summary["metrics"] and 0.0 <= summary["metrics"][0]["heldout_cosine_accuracy"] <= 1.0
    rank = json.loads((trained / "ranks" / "rank0.json").read_text())
    assert rank["rows_seen"] == 8 and rank["initial_fingerprint"] != rank["final_fingerprint"]
    model = SentenceTransformer(str(trained))
    assert model.max_seq_length == 32 and model.prompts["query"] == "query: "
    assert model.encode_query(["wing flutter"]).shape == (1, 384)


@pytest.mark.parametrize(
    ("loss", "extra", "loss_class"),
    [
        ("cached_mnrl", {"mini_batch_size": 2}, "CachedMultipleNegativesRankingLoss"),
        ("gist", {"guide_model": "embedded:minilm"}, "GISTEmbedLoss"),
    ],
)
def test_other_losses_train(dataset_dir, tmp_path, loss, extra, loss_class):
    config = tiny_config(
        dataset_dir,
        tmp_path / "model",
        loss=loss,
        max_seq_length=16,
        max_steps=1,
        warmup_ratio=0.0,
        **extra,
    )
    folder = train(config)
    summary = json.loads((folder / "training_summary.json").read_text())
    rank = json.loads((folder / "ranks" / "rank0.json").read_text())
    assert summary["global_step"] == 1 and rank["initial_fingerprint"] != rank["final_fingerprint"]
    assert loss_class in (folder / "README.md").read_text()


# ---------------------------------------------------------------------------------------------------------
# resume after a kill (real subprocess, SIGKILL after the first checkpoint)


@pytest.mark.slow  # two fresh interpreters + three checkpoints: ~2 min on a busy 2-core machine
@pytest.mark.integration
def test_resume_after_kill(dataset_dir, tmp_path):
    out = tmp_path / "model" / "seed0"  # the demo recipe trains per seed: <output_dir>/seed<S>
    args = [
        "--config",
        "recipes/demo/train.yaml",
        "--dataset",
        str(dataset_dir),
        "--dataset_config",
        "bm25_hn",
        "--output_dir",
        str(out.parent),
        "--seeds",
        "0",
        "--max_seq_length",
        "32",
        "--per_device_train_batch_size",
        "4",
        "--max_steps",
        "3",
        "--save_steps",
        "2",
        "--save_total_limit",
        "10",
        "--logging_steps",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    try:
        while last_checkpoint(out / "checkpoints") is None:
            assert proc.poll() is None, f"training ended before a checkpoint: {proc.stdout.read()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 90 s"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = int(last_checkpoint(out / "checkpoints").name.split("-")[1])
    assert killed_at < 3 and not (out / "model.safetensors").exists(), "killed before the end"

    result = _run_script(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "resuming from checkpoint" in log
    resumed_at = int(log.split("resuming from checkpoint")[1].split("(global step ")[1].split(")")[0])
    assert resumed_at >= killed_at
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["global_step"] == 3
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


# ---------------------------------------------------------------------------------------------------------
# two processes (MULTI_CPU over gloo): both ranks train, gradients synchronised


@pytest.mark.integration
def test_two_processes_synchronised(dataset_dir, tmp_path):
    out = tmp_path / "model" / "seed0"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        str(ACCELERATE),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(SCRIPT),
        "--config",
        "recipes/demo/train.yaml",
        "--dataset",
        str(dataset_dir),
        "--dataset_config",
        "bm25_hn",
        "--output_dir",
        str(out.parent),
        "--seeds",
        "0",
        "--max_steps",
        "2",
        "--max_seq_length",
        "32",
        "--per_device_train_batch_size",
        "4",
        "--max_train_samples",
        "16",
        "--logging_steps",
        "1",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert {r["world_size"] for r in ranks} == {2} and ranks[0]["pid"] != ranks[1]["pid"]
    assert all(r["global_step"] == 2 and r["rows_seen"] == 8 for r in ranks), ranks
    assert ranks[0]["anchors_sha256"] != ranks[1]["anchors_sha256"], "each rank trains on its own shard"
    assert ranks[0]["final_fingerprint"] == ranks[1]["final_fingerprint"], "gradients were not synchronised"
    assert ranks[0]["final_fingerprint"] != ranks[0]["initial_fingerprint"], "weights did not change"
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["final_fingerprint"] == ranks[0]["final_fingerprint"]
    assert len(list(out.glob("**/model.safetensors"))) == 1, "exactly one saved model"


def test_push_failure_is_one_line_without_token(tmp_path, monkeypatch):
    from hardneg.train import push_model

    secret = "hf_" + "x" * 34
    monkeypatch.setenv("HF_TOKEN", secret)
    (tmp_path / "model.safetensors").write_bytes(b"0")
    with pytest.raises(RuntimeError) as info:
        push_model(tmp_path, repo_id="someone/retriever", version="1.0.0")
    message = str(info.value)
    assert "cannot push" in message and "fix:" in message and "\n" not in message
    assert secret not in message


# ---------------------------------------------------------------------------------------------------------
# several training seeds: one folder per seed, equal step budget, finished seeds skipped


def test_seeds_need_a_step_budget(dataset_dir, tmp_path):
    with pytest.raises(ConfigError, match="budget in optimizer steps"):
        tiny_config(dataset_dir, tmp_path / "m", seeds=[0, 1])
    with pytest.raises(ConfigError, match="repeat a seed"):
        tiny_config(dataset_dir, tmp_path / "m", seeds=[0, 0], max_steps=1)


def test_train_seeds_one_folder_per_seed(dataset_dir, tmp_path, capsys):
    from hardneg.train import seed_dir, train_seeds

    # 8 triplets, batch 4: one epoch is 2 steps; the budget of 3 steps runs past an epoch boundary
    config = tiny_config(dataset_dir, tmp_path / "m", seeds=[1, 2], max_steps=3, warmup_ratio=0.0)
    folders = train_seeds(config)
    assert folders == [seed_dir(tmp_path / "m", 1), seed_dir(tmp_path / "m", 2)]
    summaries = [json.loads((f / "training_summary.json").read_text()) for f in folders]
    assert [s["seed"] for s in summaries] == [1, 2]
    assert all(s["global_step"] == s["max_steps"] == 3 for s in summaries)
    assert summaries[0]["final_fingerprint"] != summaries[1]["final_fingerprint"], "seeds must differ"
    mtime = (folders[0] / "training_summary.json").stat().st_mtime_ns
    assert train_seeds(config) == folders
    assert (folders[0] / "training_summary.json").stat().st_mtime_ns == mtime
    assert "already trained (3 steps), skipped" in capsys.readouterr().out
    with pytest.raises(ValueError, match="trained with max_steps 3, but the config asks for 5"):
        train_seeds(replace(config, max_steps=5))  # a finished seed of another budget is not reused
