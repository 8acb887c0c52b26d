"""A method from ONE new file outside hardneg (a recipe's ``plugins:``): its options, prompt and function live in
that file, and it flows build -> dataset folder -> card -> training. The same for a mined method whose file also
registers its own candidate provider. Nothing in hardneg is edited; the scripted generator stands in for the LLM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from datasets import load_dataset
from scripted_llm import scripted

from hardneg.build import BuildConfig, build
from hardneg.config import parse
from hardneg.dataset_folder import validate_dataset_folder
from hardneg.llm import GeneratorConfig
from hardneg.methods import unregister
from hardneg.negatives.providers import PROVIDERS
from hardneg.options import ConfigError

LLM_PLUGIN = '''
"""my_llm_hn: the LLM writes a negative about another aspect of the query's topic, named by an option."""

from dataclasses import dataclass, field

from hardneg.methods import Method, MethodContext, register
from hardneg.methods.common import LLMOptions
from hardneg.negatives.llm import generate_negatives
from hardneg.prompts import register_prompt

PROMPT = register_prompt(
    """
name: my_llm_hn
version: "0.1"
kind: negative
inputs: [query, change]
text: |-
  Write a passage on the topic of the query about {change}, which does not answer it.
  Query: {query}
  Passage:
"""
)


@dataclass
class MyOptions(LLMOptions):
    prompt: str = field(default="my_llm_hn", metadata={"help": "Prompt taking {query} and {change}."})
    aspect: str = field(default="its history", metadata={"help": "The aspect the negative is about."})

    def __post_init__(self):
        if not self.aspect.strip():
            raise ValueError("my_llm_hn aspect is empty; fix: name an aspect")
        super().__post_init__()


def run(ctx: MethodContext):
    o = ctx.options
    return generate_negatives(
        ctx.queries,
        ctx.generator(),
        method=ctx.name,
        prompt=o["prompt"],
        inputs=("query", "change"),
        extra={"change": o["aspect"]},
        cache_dir=ctx.cache_dir,
        seed=ctx.seed,
        max_new_tokens=o["max_new_tokens"],
        max_retries=o["reject_retries"],
    )


register(
    Method(
        "my_llm_hn",
        "llm",
        "A plugin's LLM negatives: another aspect of the query's topic.",
        run,
        options=MyOptions,
        needs=("generator",),
        prompt_option="prompt",
    )
)
'''

PROVIDER_PLUGIN = '''
"""overlap_hn: negatives mined with a toy candidate provider (shared words with the query)."""

from dataclasses import dataclass, field

import numpy as np

from hardneg.methods import MINED_FEATURES, Method, register
from hardneg.methods.common import MiningOptions, run_mined
from hardneg.negatives.mining import Candidates, positive_pairs, positive_score_array
from hardneg.negatives.providers import register_provider


@dataclass
class OverlapProvider:
    min_shared: int = 1
    name: str = "overlap"
    scorer_name: str | None = None

    def candidates(self, query_texts, passages, positive_rows, *, k, run):
        words = [set(p.lower().split()) for p in passages]
        shared = np.array([[len(set(q.lower().split()) & w) for w in words] for q in query_texts], float)
        rows = np.argsort(-shared, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(shared, rows, axis=1)
        rows[scores < self.min_shared] = -1
        pq, prow = positive_pairs(positive_rows)
        positives = positive_score_array(positive_rows, shared[pq, prow])
        return Candidates(rows, scores.astype(np.float32), positives, "shared words")

    def params(self):
        return {"min_shared": self.min_shared}


register_provider("overlap", lambda settings: OverlapProvider(), first_stage=True)


@dataclass
class OverlapOptions(MiningOptions):
    min_shared: int = field(default=1, metadata={"bounds": (1, None), "help": "Fewest shared words."})


def run(ctx):
    return run_mined(ctx, OverlapProvider(ctx.options["min_shared"]))


register(
    Method(
        "overlap_hn",
        "mined",
        "A plugin's mined negatives: passages sharing the most words with the query.",
        run,
        options=OverlapOptions,
        features=MINED_FEATURES,
        needs=("pool",),
    )
)
'''


@pytest.fixture
def plugin(tmp_path):
    files = []

    def write(name: str, text: str) -> str:
        path = tmp_path / "plugins" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text))
        files.append(name)
        return str(path)

    yield write
    for name in files:
        unregister(name)
    PROVIDERS.pop("overlap", None)


def _train(folder: Path, config: str, out: Path) -> Path:
    from hardneg.train import TrainConfig, train

    return train(
        TrainConfig(
            dataset=str(folder),
            dataset_config=config,
            model="embedded:minilm",
            output_dir=str(out),
            max_seq_length=32,
            per_device_train_batch_size=2,
            max_train_samples=4,
            num_train_epochs=1,
            logging_steps=1,
        )
    )


def _flows(tmp_path: Path, build_config: BuildConfig, name: str, description: str) -> dict:
    cfg, gen = scripted()
    folder = build(build_config, cfg, generator=gen)
    report = validate_dataset_folder(folder)
    assert name in report.configs and description in report.card
    rows = load_dataset(str(folder), name, split="train")
    assert len(rows) > 0 and set(rows["method"]) == {name}
    model = _train(folder, name, tmp_path / "model")
    summary = json.loads((model / "training_summary.json").read_text())
    assert summary["train_samples"] == 4 and name in (model / "README.md").read_text()
    return json.loads((folder / "build_stats.json").read_text())


def test_an_llm_method_from_one_file_flows_to_a_trained_model(tmp_path, plugin):
    path = plugin("my_llm_hn", LLM_PLUGIN)
    config = BuildConfig(
        output_dir=str(tmp_path / "run"),
        num_passages=6,
        plugins=[path],
        methods={"my_llm_hn": {"aspect": "its instruments", "max_new_tokens": 24}},
        false_negative_scorer=None,
    )
    stats = _flows(tmp_path, config, "my_llm_hn", "another aspect of the query's topic")
    assert stats["prompts"]["my_llm_hn"]["version"] == "0.1"
    assert stats["build"]["methods"]["my_llm_hn"]["aspect"] == "its instruments"
    # its option keys its stage: another aspect redoes that stage only
    keys = {
        p.parent.name: json.loads(p.read_text())["key"]
        for p in (tmp_path / "run/stages").glob("*/stats.json")
    }
    again = BuildConfig(**{**vars(config), "methods": {"my_llm_hn": {"aspect": "its cost"}}})
    cfg, gen = scripted()
    build(again, cfg, generator=gen)
    after = {
        p.parent.name: json.loads(p.read_text())["key"]
        for p in (tmp_path / "run/stages").glob("*/stats.json")
    }
    assert after["queries"] == keys["queries"] and after["my_llm_hn"] != keys["my_llm_hn"]
    with pytest.raises(
        ConfigError, match=r"method 'my_llm_hn' has no option\(s\) \['aspects'\]; fix: use its own"
    ):
        BuildConfig(plugins=[path], methods={"my_llm_hn": {"aspects": "x"}})
    # its prompt is checked when the recipe is read (a plugin's options declare no INPUTS: any negative prompt)
    with pytest.raises(ConfigError, match=r"method 'my_llm_hn': prompt 'query_fewshot' is a query prompt"):
        BuildConfig(plugins=[path], methods={"my_llm_hn": {"prompt": "query_fewshot"}})


def test_a_candidate_provider_and_its_mined_method_from_one_file(tmp_path, plugin):
    path = plugin("overlap_hn", PROVIDER_PLUGIN)
    # the recipe spelling: plugins + a methods mapping with the method's own option
    recipe = tmp_path / "build.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path / 'run'}\nnum_passages: 6\nfalse_negative_scorer: none\nplugins: [{path}]\n"
        "methods:\n  overlap_hn: {range_max: 4, min_shared: 1}\n  bm25_hn: {range_max: 4}\n"
    )
    config, _ = parse(BuildConfig, GeneratorConfig, args=["--config", str(recipe)])
    stats = _flows(tmp_path, config, "overlap_hn", "passages sharing the most words")
    params = stats["configs"]["overlap_hn"]["params"]
    assert params["method"] == "overlap" and params["min_shared"] == 1
    assert stats["configs"]["overlap_hn"]["score_name"] == "shared words"


@pytest.mark.parametrize(
    "source, fragment",
    [
        ('raise RuntimeError("boom")\n', "RuntimeError: boom"),
        ("x = (\n", "SyntaxError: '(' was never closed"),
        ("import hardneg_no_such_dependency\n", "No module named 'hardneg_no_such_dependency'"),
    ],
)
def test_a_plugin_that_fails_while_loading_is_one_line_naming_it(tmp_path, source, fragment):
    """Whatever a plugin's own code raises on import (its syntax, a raise, a missing dependency) is one error line
    naming the plugin, and nothing of it stays registered or imported."""
    plugin = tmp_path / "broken.py"
    plugin.write_text(source)
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            str(root / "builders" / "build.py"),
            "--plugins",
            str(plugin),
            "--output_dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: plugin '{plugin}' failed while loading")
    assert fragment in lines[0] and "Traceback" not in done.stderr
    assert not out.exists()
