"""The whole pipeline, end to end, through the same `make` targets and scripts users run.

A handful of real Cranfield passages -> SmolLM2 queries -> llm / bm25 / ce negatives -> Hub-ready
folder -> MiniLM fine-tuned on each config (accelerate launch) -> evaluation -> report.
The evaluation set is a small real slice of Cranfield (judged queries over the first 300 documents)
so that the run fits in a couple of minutes on 2 cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset

from hardneg.corpus import load_beir_folder
from hardneg.mteb_results import load_model_meta

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["llm_hn", "bm25_hn", "ce_hn", "hybrid_hn"]


def _slice_cranfield(cranfield_dir: str, folder: Path, n_docs: int = 300) -> Path:
    data = load_beir_folder(cranfield_dir)
    keep = {str(i) for i in range(1, n_docs + 1)}
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for did in sorted(keep, key=int):
            f.write(json.dumps({"_id": did, **data.corpus[did]}) + "\n")
    qrels = {q: {d: g for d, g in docs.items() if d in keep} for q, docs in data.qrels.items()}
    qrels = {q: docs for q, docs in qrels.items() if docs}
    with open(folder / "queries.jsonl", "w") as f:
        for qid in qrels:
            f.write(json.dumps({"_id": qid, "text": data.queries[qid]}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for did, grade in docs.items():
                f.write(f"{qid}\t{did}\t{grade}\n")
    return folder


@pytest.mark.integration
def test_make_demo_end_to_end(tmp_path, cranfield_dir):
    beir = _slice_cranfield(cranfield_dir, tmp_path / "cranfield300")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    demo = ROOT / "recipes" / "demo"
    # The demo recipes, shrunk: same code path, fewer passages, tokens and steps (a recipe may name a key once).
    shrink = {
        "build.yaml": dict(
            corpus=str(beir), num_passages=6, query_max_new_tokens=24, decontaminate=str(beir),
        ),
        "train.yaml": dict(per_device_train_batch_size=4, max_steps=2, seeds=[0, 1]),
    }  # fmt: skip
    for name, overrides in shrink.items():
        recipe = yaml.safe_load((demo / name).read_text()) | overrides
        for method, options in recipe.get("methods", {}).items() if name == "build.yaml" else ():
            options.update({"max_new_tokens": 40} if method == "llm_hn" else {})
            options.update({"range_max": 5} if "range_max" in options else {})
        (recipes / name).write_text(yaml.safe_dump(recipe, sort_keys=False))
    (recipes / "eval.yaml").write_text(
        (demo / "eval.yaml").read_text().replace("embedded:cranfield", str(beir))
    )
    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        ["make", "demo", f"RECIPES={recipes}", f"RUN_DIR={run}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # under heavy load on 2 cores; quiet: a few minutes
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    folder = run / "dataset"
    for config in ["queries", *METHODS]:
        ds = load_dataset(str(folder), config, split="train")
        assert len(ds) > 0, config
        if config != "queries":
            assert ds.column_names[:3] == ["anchor", "positive", "negative"]
            assert all(r["anchor"] and r["positive"] and r["negative"] for r in ds)
            assert all(r["negative"] != r["positive"] for r in ds)
    card = (folder / "README.md").read_text()
    assert "configs:" in card and "llm_hn" in card
    # the demo publishes both layouts (layout: both), and the card explains them
    assert "holds both layouts" in card and "resolve_ids" in card
    for m in METHODS:
        assert load_dataset(str(folder), f"{m}_ids", split="train").column_names[:3] == [
            "query_id",
            "positive_id",
            "negative_id",
        ]
    assert (folder / "croissant.json").is_file() == (importlib.util.find_spec("mlcroissant") is not None)

    for m in METHODS:  # two training seeds per method, each its own model, result file and run file
        for seed in (0, 1):
            assert (run / "models" / m / f"seed{seed}" / "model.safetensors").is_file()
            result = run / "results" / f"all-MiniLM-L6-v2.{m}.seed{seed}__cranfield300.json"
            assert json.loads(result.read_text())["seed"] == seed
            assert result.with_name(result.stem + ".trec.gz").is_file()
    rows = json.loads((run / "results.json").read_text())
    assert {r["method"] for r in rows} == {"bm25", "zero-shot", *METHODS}
    assert {r["method"]: r["seeds"] for r in rows} == {"bm25": 1, "zero-shot": 1, **dict.fromkeys(METHODS, 2)}
    for r in rows:
        assert {"model", "method", "dataset", "ndcg@10", "p@10", "recall@100"} <= set(r)
        assert 0.0 <= r["ndcg@10"] <= 1.0 and 0.0 <= r["recall@100"] <= 1.0
    by_method = {r["method"]: r for r in rows}
    # Real retrieval on real data: BM25 and the zero-shot MiniLM are far above chance on Cranfield.
    assert by_method["bm25"]["ndcg@10"] > 0.2 and by_method["zero-shot"]["ndcg@10"] > 0.2
    assert (run / "results.md").is_file() and (run / "results.png").stat().st_size > 10_000
    assert (run / "results_forest.png").is_file() and "Minimum detectable effect" in proc.stdout
    assert "ndcg@10" in proc.stdout.lower()

    # MTEB results next to hardneg's, in MTEB's layout, loaded back by mteb; trained models are not zero-shot
    # on the set whose passages generated their queries
    mteb = pytest.importorskip("mteb")
    for result_file in (run / "results").glob("*.json"):
        result = json.loads(result_file.read_text())
        task_result = mteb.TaskResult.from_disk(run / result["mteb_result"])
        assert task_result.task_name == "hardneg-cranfield300"
        assert task_result.scores["test"][0]["ndcg_at_10"] == pytest.approx(
            result["metrics"]["ndcg@10"], abs=1e-4
        )
    cached = mteb.ResultCache(cache_path=run / "mteb_results").get_cache_paths(require_model_meta=True)
    assert len(cached) == len(list((run / "results").glob("*.json")))
    meta = load_model_meta(run / "models" / "llm_hn" / "seed0" / "model_meta.json")
    assert meta.is_zero_shot_on(["hardneg-cranfield300"]) is False
