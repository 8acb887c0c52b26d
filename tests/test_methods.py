"""The new configs on the registry: hybrid_hn, false-negative bookkeeping and repair, llm_perturb_hn."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from datasets import Dataset, load_dataset
from scripted_llm import RecordingGenerator, ScriptedJudge, patch_scorers, scripted

from hardneg.build import BuildConfig, build
from hardneg.hub import validate_dataset_folder
from hardneg.llm import GeneratorConfig
from hardneg.methods import HYBRID_FEATURES, LLM_FEATURES, MINED_FEATURES, QUERY_FEATURES, table
from hardneg.methods.llm_perturb_hn import PERTURB_STRENGTHS, perturb_negatives
from hardneg.negatives.hybrid import llm_slots, mix_negatives
from hardneg.negatives.repair import repair_false_negatives


def _rows(source: str, per_query: dict[str, int]) -> list[dict]:
    return [
        {
            "anchor": f"q{q}",
            "positive": f"p{q}",
            "negative": f"{source}-{q}-{i}",
            "query_id": q,
            "method": source,
        }
        for q, n in per_query.items()
        for i in range(n)
    ]


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 1.0])
def test_llm_slots_split_exactly_and_reproducibly(ratio):
    ids = [str(i) for i in range(10)]
    slots = llm_slots(ids, 2, ratio, seed=1)
    assert sum(slots.values()) == round(ratio * 20)
    assert all(0 <= v <= 2 for v in slots.values())
    assert slots == llm_slots(list(reversed(ids)), 2, ratio, seed=1)


def test_mix_negatives_ratio_source_and_fallback():
    queries = {str(i): 1 for i in range(8)}
    llm = table(_rows("llm_hn", queries | {"7": 0}), LLM_FEATURES)  # query 7: the LLM output was rejected
    mined = table(_rows("bm25_hn", {q: 3 for q in queries}), MINED_FEATURES)
    mixed, stats = mix_negatives(llm, mined, num_negatives=1, llm_ratio=0.5, seed=3)
    assert list(mixed.features) == list(HYBRID_FEATURES)
    assert len(mixed) == 8 and sorted(mixed["query_id"]) == sorted(queries)
    for row in mixed:
        assert row["negative"].startswith(row["source"]) and row["method"] == "hybrid_hn"
    assert stats["sources"]["llm_hn"] + stats["sources"]["bm25_hn"] == 8
    assert stats["sources"]["llm_hn"] in (3, 4)  # 4 slots wanted, query 7 may have had to fall back
    assert stats["fallback"] == 4 - stats["sources"]["llm_hn"]
    all_mined, _ = mix_negatives(llm, mined, num_negatives=2, llm_ratio=0.0)
    assert set(all_mined["source"]) == {"bm25_hn"} and len(all_mined) == 16


def test_hybrid_sources_are_checked():
    with pytest.raises(ValueError, match="hybrid_sources"):
        BuildConfig(methods={"hybrid_hn": {"hybrid_sources": ["bm25_hn", "llm_hn"]}})
    with pytest.raises(ValueError, match="hybrid_llm_ratio"):
        BuildConfig(methods={"hybrid_hn": {"hybrid_llm_ratio": 1.5}})


def test_hybrid_hn_builds_from_its_sources(tmp_path):
    cfg, gen = scripted()
    config = BuildConfig(
        output_dir=str(tmp_path / "run"),
        num_passages=6,
        # llm_hn is built as hybrid_hn's source but not published
        methods={"bm25_hn": {"range_max": 4, "num_negatives": 2}, "hybrid_hn": {"num_negatives": 2}},
        false_negative_scorer=None,
    )
    folder = build(config, cfg, generator=gen)
    report = validate_dataset_folder(folder)
    assert set(report.configs) == {"queries", "bm25_hn", "hybrid_hn"}
    hybrid = load_dataset(str(folder), "hybrid_hn", split="train")
    assert set(hybrid["source"]) == {"llm_hn", "bm25_hn"}
    stats = json.loads((folder / "build_stats.json").read_text())["configs"]["hybrid_hn"]
    assert stats["sources"]["llm_hn"] == hybrid["source"].count("llm_hn")
    assert stats["cost_includes"] == ["llm_hn", "bm25_hn"] and stats["completion_tokens"] > 0
    assert "SyNeg" in report.card


def test_false_negative_rate_same_as_guard_and_independent_judge(tmp_path, monkeypatch):
    scorers = patch_scorers(monkeypatch)
    cfg, gen = scripted()
    config = BuildConfig(
        output_dir=str(tmp_path / "run"),
        num_passages=6,
        methods={"bm25_hn": {"range_max": 4}, "ce_hn": {"range_max": 4, "ce_scorer": "overlap-a"}},
        false_negative_scorer="same",
        false_negative_judge="overlap-b",
    )
    folder = build(config, cfg, generator=gen)
    stats = json.loads((folder / "build_stats.json").read_text())["configs"]
    ce, bm25 = stats["ce_hn"], stats["bm25_hn"]
    assert ce["false_negative_scorer"] == bm25["false_negative_scorer"] == "overlap-a"
    assert ce["false_negative_same_as_guard"] is True and ce["suspected_false_negative_rate"] == 0.0
    assert bm25["false_negative_same_as_guard"] is False
    for name in ("bm25_hn", "ce_hn"):
        ds = load_dataset(str(folder), name, split="train")
        for key, scorer in (
            ("suspected_false_negative_rate", "overlap-a"),
            ("independent_false_negative_rate", "overlap-b"),
        ):
            s = scorers[scorer]
            pos = s.score(ds["anchor"], ds["positive"])
            neg = s.score(ds["anchor"], ds["negative"])
            assert stats[name][key] == pytest.approx(float((neg >= pos).mean()))
        assert stats[name]["independent_false_negative_scorer"] == "overlap-b"


def _two_negatives_per_query() -> Dataset:
    rows = []
    for q in range(3):
        for i in range(2):
            answer = " ANSWER" if (q, i) in {(0, 0), (1, 0), (2, 0), (2, 1)} else ""
            rows.append(
                {
                    "anchor": f"query {q}",
                    "positive": f"positive {q}",
                    "negative": f"negative {q}.{i}{answer}",
                    "query_id": str(q),
                    "positive_id": f"p{q}",
                    "negative_id": f"n{q}.{i}",
                    "method": "bm25_hn",
                }
            )
    return table(rows, MINED_FEATURES)


@pytest.mark.parametrize("mode", ["drop", "relabel"])
def test_repair_drops_or_relabels_judged_false_negatives(tmp_path, mode):
    data = _two_negatives_per_query()
    suspected = np.array([True, True, True, False, True, True])  # row 3 (query 1, negative 1) not suspected
    judge = ScriptedJudge(GeneratorConfig(model="scripted"))
    out, stats = repair_false_negatives(
        data, suspected, judge, mode=mode, cache_dir=tmp_path, config="bm25_hn"
    )
    assert judge.prompts == 5
    # the judge's rejects are the judged config's own file, never filed as query-generation rejects
    assert sorted(p.name for p in (tmp_path / "rejects").iterdir()) == ["bm25_hn.fn_judge.jsonl"]
    assert (stats["suspected"], stats["judged_false_negative"], stats["judged_true_negative"]) == (5, 4, 1)
    assert all("ANSWER" not in n for n in out["negative"])
    if mode == "drop":
        assert stats["dropped"] == 4 and len(out) == 2
    else:
        # query 0 and 1 keep one negative each, which lends itself to the relabelled positive; query 2 has none left
        assert (stats["relabelled"], stats["relabelled_without_negative"]) == (2, 2)
        relabelled = [r for r in out if r["positive"].endswith("ANSWER")]
        assert {(r["query_id"], r["positive_id"], r["negative_id"]) for r in relabelled} == {
            ("0", "n0.0", "n0.1"),
            ("1", "n1.0", "n1.1"),
        }
        # each in its false negative's place (not appended): the order a sharded build reproduces
        assert out["query_id"] == ["0", "0", "1", "1"] and out[0]["positive_id"] == "n0.0"
    assert stats["rows_after"] == len(out) and stats["prompt"]["name"] == "fn_judge"


def test_repaired_config_reuses_the_scores_of_the_rows_it_kept(tmp_path, monkeypatch):
    scorers = patch_scorers(monkeypatch)
    cfg, gen = scripted()  # as the judge it leaves every suspect undecided: the repair keeps every row
    config = BuildConfig(
        output_dir=str(tmp_path / "run"),
        num_passages=6,
        methods={"bm25_hn": {"range_max": 4}},
        false_negative_scorer="overlap-a",
        false_negative_repair="drop",
        repair_scope="suspected",
    )
    folder = build(config, cfg, generator=gen)
    stats = json.loads((folder / "build_stats.json").read_text())["configs"]["bm25_hn"]
    rows = stats["repair"]["rows_before"]
    assert rows > 0 and stats["repair"]["rows_after"] == rows == stats["rows"]
    # one (positive, negative) pair per row to pick the suspects; the repaired stage reuses them
    assert scorers["overlap-a"].calls == 2 * rows
    ds = load_dataset(str(folder), "bm25_hn", split="train")
    s = scorers["overlap-a"]
    expected = float((s.score(ds["anchor"], ds["negative"]) >= s.score(ds["anchor"], ds["positive"])).mean())
    assert stats["suspected_false_negative_rate"] == pytest.approx(expected)


@pytest.mark.slow  # loads the embedded LM: 50-80 s on the shared 2-core machine under load (~30 s of CPU)
def test_repair_with_the_embedded_lm_judge_in_a_build(tmp_path):
    cfg, gen = scripted()
    config = BuildConfig(
        output_dir=str(tmp_path / "run"),
        num_passages=3,
        methods={"bm25_hn": {"range_max": 4}},
        false_negative_scorer=None,
        false_negative_repair="drop",
        repair_scope="all",
        repair_judge_model="embedded:smollm2",
    )
    try:
        folder = build(config, cfg, generator=gen)
    except ValueError as err:
        # The 135M judge may call every row a false negative: all dropped, nothing left to publish, and the
        # build says so in one line; the repaired stage still records what the judge decided.
        assert "no query id is in every config" in str(err) and "'bm25_hn': 0" in str(err)
        saved = json.loads((tmp_path / "run" / "stages" / "bm25_hn.repaired" / "stats.json").read_text())
        repair, rows = saved["stats"]["repair"], 0
    else:
        stats = json.loads((folder / "build_stats.json").read_text())
        repair, rows = stats["configs"]["bm25_hn"]["repair"], stats["configs"]["bm25_hn"]["rows"]
        assert stats["prompts"]["fn_judge"]["version"] == "1.0"
    assert repair["judge_model"] != "scripted" and repair["suspects_from"] == "all rows"
    assert repair["suspected"] == repair["rows_before"] == 3
    assert repair["judged_false_negative"] + repair["judged_true_negative"] + repair["undecided"] == 3
    assert repair["rows_after"] == 3 - repair["dropped"] == rows
    assert repair["completion_tokens"] > 0 and repair["prompt"]["name"] == "fn_judge"


def test_llm_perturb_hn_names_the_change_and_is_keyed_by_it(tmp_path):
    cfg = GeneratorConfig(model="scripted")
    gen = RecordingGenerator(cfg)
    config = dict(
        output_dir=str(tmp_path / "run"),
        num_passages=4,
        methods={"llm_perturb_hn": {"strength": "light"}, "llm_hn": {}},
        false_negative_scorer=None,
    )
    folder = build(BuildConfig(**config), cfg, generator=gen)
    ds = load_dataset(str(folder), "llm_perturb_hn", split="train")
    assert len(ds) > 0 and set(ds["prompt_name"]) == {"llm_perturb_hn"}
    assert all(r["negative"] != r["positive"] for r in ds)
    perturb_prompts = [p for p in gen.seen if "Rewritten passage that does not answer it:" in p]
    assert perturb_prompts and all(PERTURB_STRENGTHS["light"] in p for p in perturb_prompts)
    stats = json.loads((folder / "build_stats.json").read_text())["configs"]["llm_perturb_hn"]
    assert stats["params"]["perturb_strength"] == "light" and stats["completion_tokens"] > 0
    assert "no longer answers the query" in validate_dataset_folder(folder).card

    # A stronger perturbation redoes llm_perturb_hn only.
    gen.seen.clear()
    heavy = {"llm_perturb_hn": {"strength": "heavy"}, "llm_hn": {}}
    build(BuildConfig(**(config | {"methods": heavy})), cfg, generator=gen)
    assert gen.seen and all(PERTURB_STRENGTHS["heavy"] in p for p in gen.seen)
    with pytest.raises(
        ValueError, match="llm_perturb_hn strength 'extreme'; fix: use one of light, medium, heavy"
    ):
        BuildConfig(methods={"llm_perturb_hn": {"strength": "extreme"}})


def test_llm_perturb_hn_with_the_embedded_lm_resumes_from_its_cache(tmp_path, tiny_corpus):
    from hardneg.llm import load_generator

    gen = load_generator(GeneratorConfig(max_new_tokens=48))
    queries = table(
        [
            {
                "query_id": f"q{i}",
                "query": r["title"],
                "positive_id": r["id"],
                "positive": " ".join(r["text"].split()[:40]),
            }
            for i, r in enumerate(tiny_corpus.select(range(3)))
        ],
        QUERY_FEATURES,
    )
    first, stats = perturb_negatives(
        queries,
        gen,
        strength="light",
        cache_dir=tmp_path,
        max_new_tokens=48,
        max_retries=1,
        progress=False,
    )
    assert stats["rows"] + stats["dropped"] == 3 and stats["prompt"]["name"] == "llm_perturb_hn"
    assert all(r["negative"] != r["positive"] and r["prompt_name"] == "llm_perturb_hn" for r in first)
    again, stats2 = perturb_negatives(
        queries,
        gen,
        strength="light",
        cache_dir=tmp_path,
        max_new_tokens=48,
        max_retries=1,
        progress=False,
    )
    assert stats2["generated_this_run"] == 0 and again["negative"] == first["negative"]


def test_an_independent_judge_must_not_be_the_guard_or_the_main_scorer(tmp_path):
    """The judge used to be accepted and reuse ce_hn's own columns: a 0% "independent" rate."""

    def methods(scorer: str) -> dict:
        return {"bm25_hn": {"range_max": 4}, "ce_hn": {"range_max": 4, "ce_scorer": scorer}}

    common = dict(output_dir=str(tmp_path / "run"))
    for judge, extra in (
        ("overlap-a", {"methods": methods("overlap-a")}),  # ce_hn's guard and (same) the main scorer
        ("overlap-c", {"methods": methods("overlap-a"), "false_negative_scorer": "overlap-c"}),  # main scorer
        (
            "overlap-d",
            {"methods": methods("overlap-d"), "false_negative_scorer": "overlap-e"},
        ),  # ce_hn's guard
    ):
        with pytest.raises(
            ValueError, match=r"would not be independent; fix: choose a scorer of another model"
        ):
            BuildConfig(**common, **extra, false_negative_judge=judge)
    BuildConfig(**common, methods=methods("overlap-a"), false_negative_judge="overlap-b")
    BuildConfig(**common, methods=methods("overlap-a"), false_negative_judge="none")


@pytest.mark.parametrize(
    "method,prompt,fragment",
    [
        ("llm_hn", "query_fewshot", "is a query prompt over {passage}, not a negative prompt over {query}"),
        ("llm_hn", "fn_judge", "is a judge prompt over {query} and {passage}, not a negative prompt"),
        ("llm_pos_hn", "llm_hn", "not a negative prompt over {query} and {positive}"),
        ("llm_perturb_hn", "llm_pos_hn", "not a negative prompt over {query}, {positive} and {change}"),
        ("llm_pos_hn", "missing.yaml", "template 'missing.yaml' not found"),
    ],
)
def test_an_llm_methods_prompt_is_checked_when_the_recipe_is_read(tmp_path, method, prompt, fragment):
    """Not when the method's stage runs, after the queries were generated: nothing is built or loaded."""
    with pytest.raises(ValueError, match=rf"^method '{method}': prompt .*{re.escape(fragment)}.*; fix: "):
        BuildConfig(output_dir=str(tmp_path / "run"), methods={method: {"prompt": prompt}})
    assert not (tmp_path / "run").exists()


def test_an_llm_method_takes_a_prompt_file_with_its_placeholders(tmp_path):
    prompt = tmp_path / "mine.yaml"
    prompt.write_text("name: mine\nversion: '1'\nkind: negative\ntext: 'Q: {query}\\nP: {positive}\\nN:'\n")
    config = BuildConfig(output_dir=str(tmp_path / "run"), methods={"llm_pos_hn": {"prompt": str(prompt)}})
    assert config.options_of("llm_pos_hn")["prompt"] == str(prompt)
    with pytest.raises(
        ValueError, match=r"prompt 'mine' is a negative prompt over \{positive\} and \{query\}"
    ):
        BuildConfig(output_dir=str(tmp_path / "run"), methods={"llm_hn": {"prompt": str(prompt)}})


def test_a_rebuild_reuses_false_negative_scores_without_loading_a_scorer(tmp_path, monkeypatch):
    patch_scorers(monkeypatch)
    cfg, gen = scripted()
    config = BuildConfig(
        output_dir=str(tmp_path / "run"),
        num_passages=6,
        methods={"bm25_hn": {"range_max": 4}, "ce_hn": {"range_max": 4, "ce_scorer": "overlap-a"}},
        false_negative_judge="overlap-b",
        paired=False,
    )
    first = json.loads((build(config, cfg, generator=gen) / "build_stats.json").read_text())["configs"]

    def refuse(name, **kwargs):
        raise AssertionError(f"scorer {name} loaded although every score is saved")

    monkeypatch.setattr("hardneg.build.stages.load_scorer", refuse)
    again = json.loads((build(config, cfg, generator=gen) / "build_stats.json").read_text())["configs"]
    for name in ("bm25_hn", "ce_hn"):
        for key in (
            "suspected_false_negative_rate",
            "independent_false_negative_rate",
            "false_negative_scorer",
        ):
            assert again[name][key] == first[name][key]
