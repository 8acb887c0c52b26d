"""Every recipe of the demo evaluation and of the paper's reproduction parses and validates with the
project's own dataclasses (the paper's stages cannot run here: no Hub, no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardneg.beir import BEIR_NAMES
from hardneg.config import parse
from hardneg.eval_config import EvalConfig, model_key

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_demo_eval_recipe():
    (config,) = parse(
        EvalConfig, args=["--config", str(RECIPES / "demo" / "eval.yaml"), "--run_dir", "runs/x"]
    )
    assert [s.method for s in config.model_specs] == [
        "bm25",
        "zero-shot",
        "llm_hn",
        "bm25_hn",
        "ce_hn",
        "hybrid_hn",
    ]
    assert config.model_specs[2].model == "runs/x/models/llm_hn"
    assert [d.source for d in config.dataset_specs] == ["embedded:cranfield"]
    assert {model_key(s) for s in config.model_specs[1:]} == {
        f"all-MiniLM-L6-v2.{m}" for m in ("zero-shot", "llm_hn", "bm25_hn", "ce_hn", "hybrid_hn")
    }


def test_paper_eval_recipe():
    (config,) = parse(EvalConfig, args=["--config", str(RECIPES / "paper" / "eval.yaml")])
    assert {d.name for d in config.dataset_specs} <= set(BEIR_NAMES)
    assert {"scifact", "nfcorpus", "fiqa", "arguana", "scidocs", "trec-covid"} <= {
        d.name for d in config.dataset_specs
    }
    names = {s.name for s in config.model_specs}
    assert names == {"BM25", "e5-base-v2", "gte-base", "distilbert-base-uncased"}
    e5 = [s for s in config.model_specs if s.name == "e5-base-v2"]
    assert len(e5) == 5 and all(s.query_prompt == "query: " and s.passage_prompt == "passage: " for s in e5)
    trained = [s for s in config.model_specs if s.method not in ("bm25", "zero-shot")]
    assert len(trained) == 12 and all(s.model.startswith("runs/paper/models/") for s in trained)


@pytest.mark.parametrize("base", ["e5-base-v2", "gte-base", "distilbert-base-uncased"])
def test_paper_train_recipes(base):
    from hardneg.train import TrainConfig

    path = RECIPES / "paper" / f"train_{base}.yaml"
    (config,) = parse(TrainConfig, args=["--config", str(path), "--dataset_config", "ce_hn"])
    assert config.model.endswith(base) and config.bf16 and config.seed == 42
    assert f"models/{base}/" in path.read_text()


def test_paper_build_recipe():
    from hardneg.build import BuildConfig
    from hardneg.llm import GeneratorConfig

    build, generator = parse(
        BuildConfig, GeneratorConfig, args=["--config", str(RECIPES / "paper" / "build.yaml")]
    )
    assert build.num_passages == 7250 and set(build.methods) >= {"llm_hn", "bm25_hn", "ce_hn"}
    assert generator.backend == "http" and generator.urls
