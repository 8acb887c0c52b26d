"""The explorer: payload from a real build-shaped dataset folder + run files, and the page in headless Chromium.

The fixture is demo-like: Cranfield's own queries with a relevant passage as positive, real BM25-mined
negatives (hardneg.negatives.mine_hard_negatives), a few hand-written LLM-style negatives with a rejected
output, and a run folder whose result files and gzip TREC run files follow the evaluation contract
(BM25's run is real; the "fine-tuned" runs are deterministic reorderings of it, scored for real).
Set HARDNEG_EXPLORE_SCREENSHOT=path to keep the browser screenshot.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset

from hardneg.beir import load_eval_dataset
from hardneg.explore import build_payload, top_documents, write_explorer
from hardneg.hub import save_dataset_folder
from hardneg.methods import fn_scores_file
from hardneg.metrics import evaluate_run
from hardneg.negatives import mine_hard_negatives
from hardneg.records import FalseNegativeScores, write_false_negative_scores
from hardneg.retrieval import search_bm25

ROOT = Path(__file__).resolve().parents[1]
LLM_NEGATIVES = [
    "Wind-tunnel measurements of laminar separation on swept wings show that the transition point moves "
    "forward with increasing sweep, but the study does not address the heat transfer question asked.",
    "An analytical treatment of supersonic flow around blunt bodies is given, focusing on shock stand-off "
    "distance; boundary-layer effects are neglected throughout the analysis.",
    "Experiments on slender cones at hypersonic speeds report pressure distributions for several "
    "nose shapes; no results are given for the buckling of cylindrical shells.",
]


def _queries(data, n: int) -> Dataset:
    rows = []
    for qid in sorted(data.qrels, key=int)[:n]:
        rel = sorted(d for d, g in data.qrels[qid].items() if g > 0 and d in data.corpus)
        if not rel or qid not in data.queries:
            continue
        doc = data.corpus[rel[0]]
        rows.append(
            {
                "query_id": f"q{qid}",
                "query": data.queries[qid],
                "positive_id": rel[0],
                "positive": doc["text"],
            }
        )
    return Dataset.from_list(rows)


def _llm_rows(queries: Dataset) -> Dataset:
    rows = []
    for i, r in enumerate(queries):
        if i % 4 == 3:  # every 4th query: all outputs rejected -> no row, only rejects
            continue
        rows.append(
            {
                "anchor": r["query"],
                "positive": r["positive"],
                "negative": LLM_NEGATIVES[i % len(LLM_NEGATIVES)],
                "query_id": r["query_id"],
                "positive_id": r["positive_id"],
                "negative_id": None,
                "negative_rank": None,
                "positive_score": None,
                "negative_score": None,
                "method": "llm_hn",
            }
        )
    return Dataset.from_list(rows)


def make_demo_like_run(root: Path, n_queries: int = 40) -> tuple[Path, Path]:
    """A run folder: dataset/ (Hub layout), cache/rejects/, results/*.json + *.trec.gz. Returns (dataset, run)."""
    data = load_eval_dataset("embedded:cranfield")
    queries = _queries(data, n_queries)
    corpus = Dataset.from_list(
        [{"id": d, "title": v["title"], "text": v["text"]} for d, v in data.corpus.items()]
    )
    bm25, bm25_stats = mine_hard_negatives(
        queries, corpus, method="bm25", range_max=10, num_negatives=2, show_progress=False
    )
    llm = _llm_rows(queries)
    flagged = [0, 2]
    build_stats = {
        "hardneg_version": "0.0.test",
        "created": "2026-12-01T00:00:00Z",
        "generator": {"model": "embedded:smollm2"},
        "configs": {
            "queries": {"rows": len(queries)},
            "llm_hn": {
                "rows": len(llm),
                "rejects": {"too_long": 3, "copies_positive": 2},
                "suspected_false_negative_rate": len(flagged) / len(llm),
                "false_negative_scorer": "embedded:ql",
                "false_negative_detail": {"suspected_rows": flagged},
            },
            "bm25_hn": {
                **bm25_stats,
                "suspected_false_negative_rate": 0.0,
                "false_negative_scorer": "embedded:ql",
                # a repaired config: its rows and their scores live in the stage <name>.repaired
                "false_negative_detail": {"suspected_rows": [], "stage": "bm25_hn.repaired"},
                "repair": {"mode": "drop", "suspected": 0, "rows_before": len(bm25), "rows_after": len(bm25)},
            },
        },
    }
    run = root / "run"
    folder = save_dataset_folder(
        run / "dataset", {"queries": queries, "llm_hn": llm, "bm25_hn": bm25}, build_stats
    )
    # the build keeps the false-negative scorer's per-row scores with the stage (hardneg.methods.fn_scores_file)
    stage = run / "stages" / "llm_hn"
    llm.save_to_disk(str(stage / "data"))
    scores = {
        "positive": [1.0] * len(llm),
        "negative": [1.5 if i in flagged else 0.25 for i in range(len(llm))],
    }
    (stage / fn_scores_file("embedded:ql")).write_text(json.dumps(scores))
    repaired = run / "stages" / "bm25_hn.repaired"
    bm25.save_to_disk(str(repaired / "data"))
    bm25_scores = {"positive": [2.0] * len(bm25), "negative": [0.5] * len(bm25)}
    (repaired / fn_scores_file("embedded:ql")).write_text(json.dumps(bm25_scores))
    # ... and publishes the published rows' scores beside the dataset folder, which the explorer reads
    published = FalseNegativeScores()
    published.add("llm_hn", "embedded:ql", "logit", scores["positive"], scores["negative"])
    published.add("bm25_hn", "embedded:ql", "logit", bm25_scores["positive"], bm25_scores["negative"])
    write_false_negative_scores(run, published)
    rejects = run / "cache" / "rejects"
    rejects.mkdir(parents=True)
    # the false-negative judge's rejects: ids are row numbers of the judged suspects, not passage ids
    with open(rejects / "bm25_hn.fn_judge.jsonl", "w") as f:
        f.write(
            json.dumps({"id": queries[0]["positive_id"], "reason": "empty", "text": "JUDGEREJECT"}) + "\n"
        )
    with open(rejects / "llm_hn.jsonl", "w") as f:
        for i, r in enumerate(queries):
            if i % 4 == 3:
                for reason in ("too_long", "copies_positive"):
                    text = "REJECTED " + reason + " " + r["positive"][:120]
                    f.write(
                        json.dumps({"id": r["query_id"], "reason": reason, "text": text, "raw": text}) + "\n"
                    )
    with open(rejects / "queries.jsonl", "w") as f:
        f.write(
            json.dumps({"id": queries[0]["positive_id"], "reason": "too_long", "text": "QUERYREJECT x"})
            + "\n"
        )
    _write_results(run / "results", data)
    return folder, run


def _write_results(results: Path, data) -> None:
    results.mkdir(parents=True)
    qids = sorted(data.qrels, key=int)[:40]
    base = search_bm25(data, qids, top_k=100, show_progress=False)
    rng = random.Random(0)
    for method, seed, swap in (("bm25", None, 0.0), ("llm_hn", 0, 0.6), ("bm25_hn", 0, 0.2)):
        run = {}
        for q, docs in base.items():
            ranked = sorted(docs, key=docs.get, reverse=True)
            if swap and rng.random() < swap:  # a different model: another ranking of the same candidates
                rng.shuffle(ranked)
            run[q] = {d: float(len(ranked) - i) for i, d in enumerate(ranked)}
        scored = evaluate_run({q: data.qrels[q] for q in qids}, run, ["ndcg@10", "p@10"])
        stem = f"{method}{'' if seed is None else f'__seed{seed}'}__cranfield"
        with gzip.open(results / f"{stem}.trec.gz", "wt") as f:
            for q, docs in run.items():
                for rank, d in enumerate(sorted(docs, key=docs.get, reverse=True)[:100], 1):
                    f.write(f"{q} Q0 {d} {rank} {docs[d]:.4f} {method}\n")
        result = {
            "model": method,
            "method": method,
            "seed": seed,
            "dataset": "cranfield",
            "dataset_source": "embedded:cranfield",
            "split": "test",
            "metrics": scored.mean,
            "per_query": scored.per_query,
            "run_file": f"{stem}.trec.gz",
        }
        (results / f"{stem}.json").write_text(json.dumps(result))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return make_demo_like_run(tmp_path_factory.mktemp("explore"))


def test_payload_holds_what_the_build_recorded(demo_run):
    folder, run = demo_run
    p = build_payload(str(folder), run_dir=run)
    S = p["strings"]
    assert set(p["methods"]) == {"llm_hn", "bm25_hn"}
    bm25 = p["methods"]["bm25_hn"]
    assert len(bm25["q"]) == 2 * len(p["queries"]["id"])  # num_negatives=2
    assert all(r is not None and 0 <= r < 10 for r in bm25["rank"])
    assert all(s is not None for s in bm25["ns"]) and bm25["score_name"]
    llm = p["methods"]["llm_hn"]
    assert [i for i, f in enumerate(llm["flag"]) if f] == [0, 2]
    assert llm["rank"] == [None] * len(llm["q"])
    # the false-negative scorer's own scores of negative vs positive, from false_negative_scores.json
    assert llm["fs_n"][:3] == [1.5, 0.25, 1.5] and llm["fs_p"][0] == 1.0
    # a repaired config's scores too (the file holds the published rows, whichever stage they came from)
    assert bm25["fs_n"] == [0.5] * len(bm25["q"]) and bm25["fs_p"] == [2.0] * len(bm25["q"])
    # rejected outputs are attached to their query, with the reason
    rej = p["rejects"]["llm_hn"]
    assert {S[r] for r in rej["reason"]} == {"too_long", "copies_positive"}
    assert all(q % 4 == 3 for q in rej["q"]) and len(rej["q"]) == 2 * (len(p["queries"]["id"]) // 4)
    # a query-generation reject is keyed by passage: it shows on every query of that positive
    pos = p["queries"]["pos_id"]
    assert p["rejects"]["queries"]["q"] == [i for i, x in enumerate(pos) if x == pos[0]]
    assert S[p["rejects"]["queries"]["text"][0]] == "QUERYREJECT x"
    assert (
        set(p["rejects"]) == {"llm_hn", "queries"} and "JUDGEREJECT" not in S
    )  # judge rejects are not queries
    # strings are stored once: the positive text of a query is not repeated per method
    assert len(S) == len(set(S))
    ev = p["eval"]
    assert ev["metric"] == "ndcg@10" and ev["has_qrels"]
    assert [m["name"] for m in ev["models"]] == ["bm25", "bm25_hn seed0", "llm_hn seed0"]
    assert all(len(t) == 10 for m in ev["models"] for t in m["top"])
    # the metric shown is the result file's per-query value
    res = json.loads((run / "results" / "bm25__cranfield.json").read_text())
    qid = S[ev["qid"][0]]
    assert ev["models"][0]["per"][0] == round(res["per_query"][qid]["ndcg@10"], 4)


def test_top_documents_in_trec_eval_order_and_bad_lines(tmp_path):
    path = tmp_path / "r.trec.gz"
    with gzip.open(path, "wt") as f:
        f.write(
            "1 Q0 b 2 0.5 x\n1 Q0 a 1 0.9 x\n2 Q0 c 1 0.1 x\n"
            + "".join(f"3 Q0 d{i} {i} 1.0 x\n" for i in range(12))
        )
    top = top_documents(path)
    assert top["1"] == ["a", "b"] and top["2"] == ["c"] and len(top["3"]) == 10
    with gzip.open(path, "wt") as f:
        f.write("1 Q0 b\n")
    with pytest.raises(ValueError, match="not 6 .*fix:"):
        top_documents(path)


def test_page_is_self_contained(demo_run, tmp_path):
    folder, run = demo_run
    html = write_explorer(str(folder), tmp_path / "e.html", run_dir=run).read_text()
    assert "__HARDNEG_EXPLORER_DATA__" not in html
    for bad in ("<link", "src=", "http://", "https://", "import("):
        assert bad not in html, bad


@pytest.mark.parametrize("extra", [[], ["--sample_queries", "-1"]], ids=["no_build_stats", "negative_sample"])
def test_script_error_is_one_line(tmp_path, extra):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluation/explore.py"),
            "--dataset",
            str(tmp_path),
            "--output",
            str(tmp_path / "x.html"),
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip().startswith("error: ")
        and "fix:" in out.stderr
        and len(out.stderr.strip().splitlines()) == 1
    )
    assert not extra or "--sample_queries" in out.stderr


def _chromium() -> str | None:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and not os.environ.get("CI"):
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    assert path, "CI must have chromium: .ci/run installs it"
    return path


def test_explorer_in_headless_chromium(demo_run, tmp_path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    folder, run = demo_run
    page_path = write_explorer(str(folder), tmp_path / "explore.html", run_dir=run)
    shot = Path(os.environ.get("HARDNEG_EXPLORE_SCREENSHOT") or tmp_path / "explore.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        cards = page.locator("article.qcard")
        assert cards.count() == 20  # the first page of 40 queries
        first = cards.first
        assert first.locator(".col.pos").count() == 1
        assert first.locator(".col[data-method='bm25_hn'] .neg").count() == 2
        assert re.search(r"rank \d+\n", first.locator(".col[data-method='bm25_hn']").inner_text())
        llm_col = first.locator(".col[data-method='llm_hn']").inner_text()
        assert "suspected false negative" in llm_col and "embedded:ql 1.500 vs pos 1.000" in llm_col
        count = page.locator("#count").inner_text()
        assert count.startswith("40 of 40")
        page.screenshot(path=str(shot), full_page=False)

        # text search narrows the rows to the ones containing the words
        page.fill("#search", "buckling cylindrical")
        page.wait_for_function("!document.getElementById('count').textContent.startsWith('40 of')")
        texts = cards.all_inner_texts()
        assert 0 < len(texts) < 40 and all("buckling" in t.lower() for t in texts)
        page.fill("#search", "")
        page.wait_for_function("document.getElementById('count').textContent.startsWith('40 of')")

        # flagged-only keeps the two flagged llm_hn rows' queries
        page.check("#flagged")
        assert page.locator("#count").inner_text().startswith("2 of 40")
        assert cards.count() == 2
        page.uncheck("#flagged")
        # method filter: only the llm_hn column, and only queries with an llm_hn row or reject
        page.select_option("#method", "llm_hn")
        assert page.locator(".col[data-method='bm25_hn']").count() == 0
        assert page.locator(".col[data-method='llm_hn']").count() == cards.count() > 0
        page.check("#withrej")
        # 10 queries whose llm_hn outputs were all rejected + the 2 queries of the passage with a query reject
        assert page.locator("#count").inner_text().startswith("12 of 40")
        assert "too_long" in cards.first.inner_text() or cards.first.locator("details.rej").count() == 1
        page.uncheck("#withrej")
        page.select_option("#method", "")

        # retrievals: every model's top-10 with relevance marks and the per-query metric
        page.click("nav button[data-tab='ret']")
        first = cards.first
        assert first.locator(".col[data-model]").count() == 3
        assert first.locator("ol.top").first.locator("li").count() == 10
        assert first.locator(".rel").count() > 0
        assert "ndcg@10" in first.locator(".col h3").first.inner_text()
        # disagreement view: A=llm_hn seed0 vs the best other model, sorted by how much A loses
        page.click("nav button[data-tab='dis']")
        head = cards.first.locator(".qhead").inner_text()
        assert "llm_hn seed0 loses" in head
        losses = [
            float(t.split("loses")[1].split()[0])
            for t in cards.locator(".qhead .b.up, .qhead .b.down").all_inner_texts()
        ]
        assert losses == sorted(losses, reverse=True) and losses[0] > 0
        page.screenshot(path=str(shot.with_name(shot.stem + "_disagree.png")))
        assert page.locator("#meta").inner_text().split(" · ")[1] == "40 queries"
        # a sampled page says so, and how many queries the build has
        sampled = write_explorer(str(folder), tmp_path / "sampled.html", sample_queries=10)
        page.goto(sampled.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        meta = page.locator("#meta").inner_text()
        assert "a seeded sample of 10 of 40 queries (--sample_queries 0 shows all)" in meta
        browser.close()
    assert not errors, errors
    assert shot.stat().st_size > 10_000


class _OverlapScorer:
    name, score_name = "overlap", "word overlap"

    def score(self, queries, passages, batch_size=16):
        import numpy as np

        return np.array(
            [len(set(q.split()) & set(p.split())) for q, p in zip(queries, passages, strict=True)], float
        )


def test_false_negative_detail_names_the_rows_the_explorer_flags():
    from hardneg.negatives import suspected_false_negative_rate

    rows = Dataset.from_dict(
        {"anchor": ["a b c", "a b c", "x y"], "positive": ["a b c", "a", "x"], "negative": ["a", "a b", "q"]}
    )
    rate, detail = suspected_false_negative_rate(rows, _OverlapScorer(), show_progress=False)
    assert detail["suspected_rows"] == [1] and rate == pytest.approx(1 / 3)


def test_payload_has_the_independent_rate_and_hybrid_sources(tmp_path):
    from hardneg.methods import HYBRID_FEATURES, table

    query = {"query_id": "q1", "query": "what is lift", "positive_id": "d1", "positive": "Lift is a force."}
    rows = [
        {**query, "anchor": query["query"], "negative": neg, "method": "hybrid_hn", "source": source}
        for neg, source in (("Drag opposes motion.", "llm_hn"), ("Thrust moves it forward.", "bm25_hn"))
    ]
    stats = {
        "configs": {
            "queries": {"rows": 1},
            "hybrid_hn": {
                "rows": 2,
                "suspected_false_negative_rate": 0.5,
                "false_negative_scorer": "scorer-a",
                "independent_false_negative_rate": 0.25,
                "independent_false_negative_scorer": "scorer-b",
            },
        }
    }
    configs = {"queries": Dataset.from_list([query]), "hybrid_hn": table(rows, HYBRID_FEATURES)}
    folder = save_dataset_folder(tmp_path / "dataset", configs, stats)
    p = build_payload(str(folder))
    hybrid = p["methods"]["hybrid_hn"]
    assert [p["strings"][i] for i in hybrid["source"]] == ["llm_hn", "bm25_hn"]
    assert (hybrid["ind_rate"], hybrid["ind_scorer"]) == (0.25, "scorer-b")


def test_explorer_reads_the_published_scores_not_the_stages(demo_run, tmp_path):
    """The build's stages/ folder is private: without it the explorer shows the same scores."""
    import shutil

    folder, run = demo_run
    before = build_payload(str(folder))["methods"]
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("stages"))
    after = build_payload(str(copy / "dataset"))["methods"]
    for name in before:
        assert after[name]["fs_p"] == before[name]["fs_p"] and after[name]["fs_n"] == before[name]["fs_n"]
    assert after["llm_hn"]["fs_n"]
