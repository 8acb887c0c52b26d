"""The typed records (hardneg.records): each round-trips through its file, reads older files through its
one converter, writes the JSON the code wrote before it, and the stats merge rule lives on ConfigStats."""

from __future__ import annotations

import json
import math

import pytest

from hardneg.distributed import merge_stats
from hardneg.records import (
    FALSE_NEGATIVE_SCORES_FILE,
    BuildStats,
    ConfigStats,
    EvalResult,
    FalseNegativeScores,
    write_false_negative_scores,
)


def _config_stats() -> dict:
    """A mined config's stats as the build writes them: method-specific keys first, then the fields."""
    return {
        "params": {"scorer": "embedded:ql", "absolute_margin": 0.0, "range_max": 10},
        "rejects": {"too_long": 2},
        "score_name": "logit",
        "score_stats": {"positive": {"mean": 1.0}},
        "method": "ce_hn",
        "rows": 80,
        "queries": 40,
        "wall_seconds": 2.5,
        "items_per_second": 32.0,
        "false_negative_scorer": "embedded:ql",
        "suspected_false_negative_rate": 0.0,
        "false_negative_same_as_guard": True,
        "false_negative_detail": {"suspected_rows": [], "stage": "ce_hn"},
    }


def _build_stats() -> dict:
    return {
        "hardneg_version": "0.3.0",
        "created": "2026-12-07T00:00:00Z",
        "corpus": {"source": "embedded:cranfield", "seed": 0},
        "generator": {
            "model": "embedded:smollm2",
            "backend": "transformers",
            "settings": {"temperature": 0.0},
        },
        "prompts": {"query": {"name": "query", "version": 1, "sha256": "ab"}},
        "build": {"layout": "text"},
        "configs": {"queries": {"rows": 40}, "ce_hn": _config_stats()},
        "decontamination": {},
        "paired": {"enabled": True, "query_ids": 40},
        "versions": {"datasets": "3.0"},
    }


def _result() -> dict:
    """A result file in the order hardneg.evaluate wrote it before EvalResult (scoring settings appended)."""
    return {
        "model": "BM25",
        "method": "bm25",
        "seed": None,
        "model_path": "bm25",
        "source_stamp": "bm25",
        "dataset": "cranfield",
        "dataset_source": "embedded:cranfield",
        "dataset_revision": {"revision": None, "how": "local"},
        "split": "test",
        "ignore_identical_ids": False,
        "identical_ids_dropped": 0,
        "metrics": {"ndcg@10": 0.5},
        "per_query": {"1": {"ndcg@10": 0.25}, "2": {"ndcg@10": 0.75}},
        "counts": {"queries_evaluated": 2},
        "prompts": {"query": "", "passage": ""},
        "top_k": 100,
        "timing": {"wall_s": 0.1},
        "fingerprints": {},
        "similarity": "bm25",
        "dtype": None,
        "model_commit": None,
        "processes": 1,
        "hardneg_version": "0.3.0",
        "created": "2026-12-07T00:00:00+00:00",
        "max_queries": None,
        "metric_list": ["ndcg@10"],
        "dataset_request": {"revision": None, "how": "local"},
        "passage_format": "hardneg",
        "queries_without_relevant": "exclude",
        "run_file": "BM25.bm25__cranfield.trec.gz",
        "run_file_queries": 2,
    }


def test_build_stats_round_trip_writes_the_same_json(tmp_path):
    data = _build_stats()
    stats = BuildStats.from_dict(data)
    assert isinstance(stats.configs["ce_hn"], ConfigStats) and stats.config("ce_hn").rows == 80
    assert stats.config("missing") == ConfigStats()
    assert json.dumps(stats.to_dict()) == json.dumps(data)  # same keys, values and order
    path = stats.to_disk(tmp_path / "build_stats.json")
    assert path.read_text() == json.dumps(data, indent=2) + "\n"
    assert BuildStats.from_disk(path) == stats


def test_config_stats_fields_extras_and_file_order():
    data = {"queries": 3, **_config_stats()}  # a hand-written file: a field before the extras
    stats = ConfigStats.from_dict(data)
    assert stats.extra["rejects"] == {"too_long": 2} and stats.get("score_name") == "logit"
    assert stats.get("rows") == 80 and stats.get("nothing", {}) == {}
    assert [k for k, _ in stats.items()] == list(data)  # readers see the file's order
    assert ConfigStats.from_dict(stats.to_dict()) == stats


def test_eval_result_round_trip_and_json_unchanged(tmp_path):
    data = _result()
    result = EvalResult.from_dict(data)
    path = result.to_disk(tmp_path / "x.json")
    assert path.read_text() == json.dumps(data, indent=1)  # byte for byte what evaluate wrote
    again = EvalResult.from_disk(path)
    assert again == result and again.path == path
    assert again.run_path() == path.with_name("BM25.bm25__cranfield.trec.gz")
    assert again.setting("top_k") == 100 and again.file_name == "x.json"
    with_mteb = EvalResult.from_dict({**data, "mteb_result": "mteb/x.json", "new_key": 1})
    assert list(with_mteb.to_dict())[-3:] == ["mteb_result", "run_file_queries", "new_key"]


def test_older_files_read_through_from_disk(tmp_path):
    # a result from before the scoring settings were recorded: the metric keys were the list, one format,
    # queries without a relevant document left out of the mean (queries_without_relevant: exclude)
    settings = ("metric_list", "passage_format", "dataset_request", "queries_without_relevant")
    old = {k: v for k, v in _result().items() if k not in settings}
    (tmp_path / "old.json").write_text(json.dumps(old))
    result = EvalResult.from_disk(tmp_path / "old.json")
    assert result.metric_list == ["ndcg@10"] and result.passage_format == "hardneg"
    assert (
        result.queries_without_relevant == "exclude"
        and result.setting("queries_without_relevant") == "exclude"
    )
    # a build from before false_negative_same_as_guard, with the generator's settings named "sampling"
    stats = _build_stats()
    stats["generator"] = {"model": "m", "sampling": {"temperature": 0.7}, "commit": "abc"}
    for name in ("ce_hn",):
        del stats["configs"][name]["false_negative_same_as_guard"]
    stats["configs"]["bm25_hn"] = {
        "rows": 5,
        "false_negative_scorer": "embedded:ql",
        "params": {"range_max": 5},
    }
    (tmp_path / "build_stats.json").write_text(json.dumps(stats))
    read = BuildStats.from_disk(tmp_path / "build_stats.json")
    assert read.generator["settings"] == {"temperature": 0.7} and read.generator["revision"] == "abc"
    assert read.config("ce_hn").false_negative_same_as_guard is True  # its guard used that scorer
    assert read.config("bm25_hn").false_negative_same_as_guard is False
    assert read.config("queries").false_negative_same_as_guard is None  # no scorer: nothing to decide
    # the build's own stats (from_dict, not a file) are taken as they are
    assert ConfigStats.from_dict({"rows": 1}).to_dict() == {"rows": 1}


@pytest.mark.parametrize("drop", [("model",), ("dataset", "method")])
def test_a_result_file_without_its_names_is_one_line(tmp_path, drop):
    """Absent ('model', 'dataset') or null ('method'): the report could not sort or group the result."""
    data = {k: v for k, v in _result().items() if k not in drop}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**data, **({"method": None} if "method" in drop else {})}))
    missing = ", ".join(repr(k) for k in EvalResult.REQUIRED if k in drop)
    with pytest.raises(
        ValueError, match=rf"r\.json is not a result file of hardneg: it lacks {missing} .*fix: x$"
    ):
        EvalResult.from_disk(path, "x")


def test_merge_rules_are_part_of_the_type():
    assert ConfigStats.merge_rule("rows") == ("sum", None)
    assert ConfigStats.merge_rule("items_per_second") == ("derived", ("rows", "wall_seconds"))
    assert ConfigStats.merge_rule("suspected_false_negative_rate")[0] == "rate"
    assert ConfigStats.merge_rule("params")[0] == "first"  # a method setting (ConfigStats.EXTRA_MERGE)
    assert ConfigStats.merge_rule("score_stats")[0] == "per_shard"
    assert ConfigStats.merge_rule("reject_rate")[0] == "rate" and ConfigStats.merge_rule("other")[0] == "sum"
    a = {**_config_stats(), "rows": 60, "wall_seconds": 2.0, "suspected_false_negative_rate": 0.5}
    b = {**_config_stats(), "rows": 20, "wall_seconds": 0.5, "suspected_false_negative_rate": 0.1}
    merged = ConfigStats.merge([a, ConfigStats.from_dict(b)])
    assert merged == merge_stats([a, b])  # hardneg.distributed.merge_stats is the type's rule
    assert merged["rows"] == 80 and merged["rejects"] == {"too_long": 4}
    assert merged["params"] == a["params"] and merged["method"] == "ce_hn"
    assert merged["suspected_false_negative_rate"] == pytest.approx((0.5 * 60 + 0.1 * 20) / 80)
    assert merged["items_per_second"] == round(80 / 2.5, 4)
    assert merged["score_stats"] == {"per_shard": [a["score_stats"], b["score_stats"]]}
    assert merged["false_negative_same_as_guard"] is True and ConfigStats.merge([]) == {}


def test_false_negative_scores_round_trip(tmp_path):
    scores = FalseNegativeScores()
    scores.add("llm_hn", "embedded:ql", "logit", [1.0, 2.0], [0.5, math.nan])
    path = write_false_negative_scores(tmp_path, scores)
    assert path == tmp_path / FALSE_NEGATIVE_SCORES_FILE
    read = FalseNegativeScores.from_disk(path)
    assert read == scores and read.configs["llm_hn"].negative == [0.5, None]  # NaN: not scored
    assert read.rows("llm_hn", "embedded:ql", 2) is not None
    assert read.rows("llm_hn", "other scorer", 2) is None and read.rows("llm_hn", "embedded:ql", 3) is None
    assert FalseNegativeScores.from_disk(tmp_path / "none.json") == FalseNegativeScores()


@pytest.mark.parametrize(
    "text",
    [
        '{"format": 1, "configs": {"llm_hn": {"scorer": "s"',
        "[]",
        '{"configs": {"llm_hn": {"scorer": "s"}}}',
        '{"configs": {"a": {"scorer": "s", "score_name": null, "positive": [1.0], "negative": []}}}',
    ],
)
def test_a_malformed_false_negative_scores_file_is_one_line(tmp_path, text):
    """A truncated, hand-edited or foreign scores file is one error line naming the file and the fix."""
    path = tmp_path / "false_negative_scores.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"false_negative_scores\.json.*fix: rebuild"):
        FalseNegativeScores.from_disk(path)
