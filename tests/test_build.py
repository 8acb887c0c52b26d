"""The build on the method registry: a toy method flows end to end, and each stage is keyed only by its inputs.

A scripted generator stands in for the LLM (counts its calls, writes deterministic text), so these tests run
in seconds and check the build's bookkeeping, not the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from scripted_llm import scripted

from hardneg.build import BuildConfig, build
from hardneg.hub import validate_dataset_folder
from hardneg.methods import MINED_FEATURES, Method, MethodContext, register, table, unregister

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


@pytest.fixture
def toy_method():
    TOY_RUNS.clear()
    method = register(
        Method(
            "toy_hn",
            "derived",
            "Toy: the negative is another query's positive (registered by a test).",
            _toy,
            features=MINED_FEATURES,
            options=("toy_every_other",),
        )
    )
    yield method
    unregister("toy_hn")


def _config(tmp_path: Path, **kw) -> BuildConfig:
    base = dict(
        output_dir=str(tmp_path / "run"),
        num_passages=6,
        methods=["toy_hn"],
        false_negative_scorer=None,
        query_max_new_tokens=8,
        negative_max_new_tokens=16,
        range_max=4,
        method_options={"toy_hn": {"toy_every_other": False}},
    )
    return BuildConfig(**(base | kw))


def test_toy_method_flows_through_build_folder_validation_and_card(tmp_path, toy_method):
    cfg, gen = scripted()
    folder = build(
        _config(tmp_path, method_options={"toy_hn": {"toy_every_other": True}}), cfg, generator=gen
    )
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
        tmp_path, methods=["toy_hn", "bm25_hn"], method_options={"toy_hn": {"toy_every_other": True}}
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
        method_options={"toy_hn": {"toy_every_other": True}},
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
            method_options={"toy_hn": {"toy_every_other": False}, "bm25_hn": {"range_max": 2}},
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
    with pytest.raises(ValueError, match="method_options for 'bm25_hn'"):
        BuildConfig(method_options={"bm25_hn": {"llm_hn_prompt": "x"}})
    with pytest.raises(ValueError, match="unknown method"):
        BuildConfig(methods=["nope_hn"])
