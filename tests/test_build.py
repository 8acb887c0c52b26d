"""The build on the method registry: a toy method flows end to end, and each stage is keyed only by its inputs.

A scripted generator stands in for the LLM (counts its calls, writes deterministic text), so these tests run
in seconds and check the build's bookkeeping, not the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from datasets import load_dataset
from scripted_llm import scripted

from hardneg.build import BuildConfig, build
from hardneg.hub import validate_dataset_folder
from hardneg.methods import MINED_FEATURES, Method, MethodContext, register, table, unregister
from hardneg.options import ConfigError

TOY_RUNS = []


def _toy(ctx: MethodContext):
    """Negative = the next query's positive; a method that needs nothing but the queries."""
    TOY_RUNS.append(ctx.options)
    q = ctx.queries
    rows = [
        {
            "anchor": q[i]["query"],
            "positive": q[i]["positive"],
            "negative": q[(i + 1) % len(q)]["positive"],
            "query_id": q[i]["query_id"],
            "positive_id": q[i]["positive_id"],
            "negative_id": q[(i + 1) % len(q)]["positive_id"],
            "method": ctx.name,
        }
        for i in range(len(q))
        if i % 2 == 0 or not ctx.options["toy_every_other"]
    ]
    return table(rows, MINED_FEATURES), {"rows": len(rows), "queries": len(q)}


@dataclass
class ToyOptions:
    toy_every_other: bool = field(default=False, metadata={"help": "Keep every other query only."})


@pytest.fixture
def toy_method():
    TOY_RUNS.clear()
    method = register(
        Method(
            "toy_hn",
            "derived",
            "Toy: the negative is another query's positive (registered by a test).",
            _toy,
            options=ToyOptions,
            features=MINED_FEATURES,
        )
    )
    yield method
    unregister("toy_hn")


SMALL = {"llm_hn": {"max_new_tokens": 16}, "bm25_hn": {"range_max": 4}}


def _config(tmp_path: Path, methods=("toy_hn",), options=None, **kw) -> BuildConfig:
    """A small build of ``methods``; ``options``: per-method overrides on top of the small defaults."""
    options = options or {}
    base = dict(
        output_dir=str(tmp_path / "run"),
        num_passages=6,
        methods={m: SMALL.get(m, {}) | options.get(m, {}) for m in methods},
        false_negative_scorer=None,
        query_max_new_tokens=8,
    )
    return BuildConfig(**(base | kw))


def test_toy_method_flows_through_build_folder_validation_and_card(tmp_path, toy_method):
    cfg, gen = scripted()
    folder = build(_config(tmp_path, options={"toy_hn": {"toy_every_other": True}}), cfg, generator=gen)
    ds = load_dataset(str(folder), "toy_hn", split="train")
    queries = load_dataset(str(folder), "queries", split="train")
    assert ds.column_names == list(MINED_FEATURES) and len(ds) == (len(queries) + 1) // 2
    report = validate_dataset_folder(folder)
    assert set(report.configs) == {"queries", "toy_hn"}
    assert "another query's positive (registered by a test)" in report.card
    stats = json.loads((folder / "build_stats.json").read_text())
    assert stats["configs"]["toy_hn"]["rows"] == len(ds)
    assert stats["paired"] == {"enabled": True, "query_ids": len(ds)}


def test_paired_keeps_common_query_ids_and_counts_drops(tmp_path, toy_method):
    cfg, gen = scripted()
    build_cfg = _config(
        tmp_path, methods=["toy_hn", "bm25_hn"], options={"toy_hn": {"toy_every_other": True}}
    )
    folder = build(build_cfg, cfg, generator=gen)
    toy = load_dataset(str(folder), "toy_hn", split="train")
    bm25 = load_dataset(str(folder), "bm25_hn", split="train")
    assert set(toy["query_id"]) == set(bm25["query_id"])
    stats = json.loads((folder / "build_stats.json").read_text())["configs"]
    n_queries = len(load_dataset(str(folder), "queries", split="train"))
    assert stats["bm25_hn"]["paired"]["dropped_queries"] == n_queries - len(toy) > 0
    assert stats["toy_hn"]["paired"] == {"dropped_rows": 0, "dropped_queries": 0}

    unpaired = _config(
        tmp_path,
        methods=["toy_hn", "bm25_hn"],
        paired=False,
        options={"toy_hn": {"toy_every_other": True}},
    )
    folder = build(unpaired, cfg, generator=gen)
    assert len(load_dataset(str(folder), "bm25_hn", split="train")) == n_queries


def _stage_keys(run: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["key"] for p in (run / "stages").glob("*/stats.json")}


def test_run_only_settings_redo_nothing_and_one_window_redoes_one_method(tmp_path, toy_method):
    cfg, gen = scripted(backend="http", urls=["http://a:1"])
    build_cfg = _config(tmp_path, methods=["toy_hn", "bm25_hn", "llm_hn"])
    build(build_cfg, cfg, generator=gen)
    keys = _stage_keys(tmp_path / "run")
    assert set(keys) == {"queries", "toy_hn", "bm25_hn", "llm_hn"}
    generated, toy_runs = gen.prompts, len(TOY_RUNS)

    # How the work is run: a server, concurrency, batch sizes, device. Nothing is redone.
    cfg2, gen2 = scripted(
        backend="http", urls=["http://a:1", "http://b:2"], concurrency=3, batch_size=2, device="cpu"
    )
    build(
        _config(tmp_path, methods=["toy_hn", "bm25_hn", "llm_hn"], score_batch_size=7), cfg2, generator=gen2
    )
    assert gen2.prompts == 0 and len(TOY_RUNS) == toy_runs
    assert _stage_keys(tmp_path / "run") == keys

    # One method's window: only that method is rebuilt.
    build(
        _config(
            tmp_path,
            methods=["toy_hn", "bm25_hn", "llm_hn"],
            options={"toy_hn": {"toy_every_other": False}, "bm25_hn": {"range_max": 2}},
        ),
        cfg,
        generator=gen,
    )
    after = _stage_keys(tmp_path / "run")
    assert after["bm25_hn"] != keys["bm25_hn"]
    assert {k: v for k, v in after.items() if k != "bm25_hn"} == {
        k: v for k, v in keys.items() if k != "bm25_hn"
    }
    assert gen.prompts == generated and len(TOY_RUNS) == toy_runs

    # The generator's output settings change what is generated: the queries (and all after them) are redone.
    cfg3, gen3 = scripted(backend="http", urls=["http://a:1"], temperature=0.7)
    build(_config(tmp_path, methods=["toy_hn", "llm_hn"]), cfg3, generator=gen3)
    assert gen3.prompts > 0


def test_method_options_are_checked(toy_method):
    """An option a method does not have is one line naming its options (no silent drop); old flat keys and
    method_options are one line naming the new spelling."""
    with pytest.raises(
        ConfigError,
        match=r"method 'bm25_hn' has no option\(s\) \['prompt'\]; fix: use its own options \(range_min, ",
    ):
        BuildConfig(methods={"bm25_hn": {"prompt": "x"}})
    with pytest.raises(ValueError, match="unknown method"):
        BuildConfig(methods=["nope_hn"])
    with pytest.raises(ConfigError, match=r"range_min \(0\) must be < range_max \(0\)"):
        BuildConfig(methods={"bm25_hn": {"range_max": 0}})
    line = BuildConfig.renamed_key("llm_hn_prompt", "my.yaml")
    assert line.endswith(
        "fix: write methods: {llm_hn: {prompt: my.yaml}} (keep the methods you build; docs/mining.md)"
    )
    assert "methods: {bm25_hn: {range_max: 10}, ce_hn: {range_max: 10}, dense_hn: {range_max: 10}}" in (
        BuildConfig.renamed_key("range_max", 10)
    )
    assert "method_options is now part of methods" in BuildConfig.renamed_key("method_options", {"a": {}})
    assert BuildConfig.renamed_key("num_passages", 3) is None and BuildConfig.renamed_key("nonsense") is None


def test_a_larger_sample_is_not_the_smaller_samples_queries(tmp_path):
    """The queries stage is keyed by every sampled passage id: `num_passages` 6 then 8 in one run folder (the
    same first ids) used to reuse the 6 queries (the key held a Column's repr, its first five ids)."""
    cfg, gen = scripted()
    for n in (6, 8):
        folder = build(_config(tmp_path, methods=["bm25_hn"], num_passages=n), cfg, generator=gen)
        assert len(load_dataset(str(folder), "queries", split="train")) == n


@pytest.mark.parametrize(
    "methods, fragment",
    [
        ({"llm_hn": {"max_new_tokens": "96"}}, "option 'max_new_tokens' is '96' (str), not int"),
        ({"bm25_hn": {"num_negatives": 1.5}}, "option 'num_negatives' is 1.5 (float), not int"),
        ({"bm25_hn": {"range_max": "10"}}, "option 'range_max' is '10' (str), not int"),
        ({"bm25_hn": 10}, "methods: bm25_hn: 10 is not a mapping of options"),
    ],
)
def test_a_method_option_of_the_wrong_type_is_one_line(methods, fragment):
    """Values under methods: are checked against the method's options dataclass, as recipe keys are against
    BuildConfig's fields: one line naming the method, the option and the type, never a TypeError later."""
    with pytest.raises((ConfigError, ValueError), match="fix:") as err:
        BuildConfig(methods=methods)
    assert fragment in str(err.value)
