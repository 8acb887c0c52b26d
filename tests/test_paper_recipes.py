"""recipes/paper/build_<generator>.yaml: one build per generator of the paper's later versions, each with the
zero-shot chat prompt, thinking off, and decontamination against every evaluation set; ``decontaminate`` takes
a list (one string still works)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hardneg.build import BuildConfig, load_inputs
from hardneg.config import ConfigError, parse
from hardneg.llm import GeneratorConfig
from hardneg.prompts import load_prompt

PAPER = Path(__file__).resolve().parent.parent / "recipes" / "paper"
GENERATORS = {
    "qwen3-4b": "Qwen/Qwen3-4B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-14b": "Qwen/Qwen3-14B",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
    "llama-3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "phi-4": "microsoft/phi-4",
}


@pytest.mark.parametrize("slug", sorted(GENERATORS))
def test_one_build_recipe_per_generator(slug):
    build, gen = parse(BuildConfig, GeneratorConfig, args=["--config", str(PAPER / f"build_{slug}.yaml")])
    assert gen.model == GENERATORS[slug] and gen.backend == "http" and gen.api == "chat"
    assert gen.enable_thinking is False
    assert load_prompt(build.query_prompt).format == "chat"
    evaluated = yaml.safe_load((PAPER / "eval.yaml").read_text())["datasets"]
    assert build.decontaminate == evaluated


def test_decontaminate_takes_a_list(tmp_path, cranfield_dir):
    other = tmp_path / "other"
    (other / "qrels").mkdir(parents=True)
    (other / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "", "text": "a passage"}) + "\n")
    (other / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "what is wing flutter really"}) + "\n"
    )
    (other / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert BuildConfig(decontaminate="embedded:cranfield").decontaminate == ["embedded:cranfield"]
    one = load_inputs(BuildConfig(decontaminate=["embedded:cranfield"], num_passages=4), seed=0)
    both = load_inputs(BuildConfig(decontaminate=["embedded:cranfield", str(other)], num_passages=4), seed=0)
    assert (
        both.eval_queries == one.eval_queries + ["what is wing flutter really"]
        and len(one.eval_queries) > 200
    )
    assert both.key != one.key


def test_one_evaluation_set_may_be_a_string_but_methods_must_be_a_list(tmp_path):
    recipe = tmp_path / "build.yaml"
    recipe.write_text("decontaminate: embedded:cranfield\nmethods: [bm25_hn]\n")
    build, _ = parse(BuildConfig, GeneratorConfig, args=["--config", str(recipe)])
    assert build.decontaminate == ["embedded:cranfield"]
    recipe.write_text("methods: bm25_hn\n")  # a string here is a mistake (it was read as 'b','m','2',...)
    with pytest.raises(ConfigError, match="must be a list; fix: write methods: \\[bm25_hn\\]"):
        parse(BuildConfig, GeneratorConfig, args=["--config", str(recipe)])
