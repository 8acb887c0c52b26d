"""Explorer at scale: file size and open time in headless Chromium for a synthetic 100k-query build.

    python benchmarks/explore.py                      # 100k queries x (llm_hn, bm25_hn, ce_hn)
    python benchmarks/explore.py --queries 10000

The build is synthetic but shaped like a real one: 100k distinct positives (~60 words, words drawn
Zipf-like from Cranfield's vocabulary, so the text compresses like prose), one LLM-written negative per
query (distinct text), and two mined negatives per query for bm25_hn and ce_hn drawn from the same passage
pool (as mining does: a corpus passage is stored once). The dataset folder is written with
``hardneg.hub.save_dataset_folder`` and the page with ``hardneg.explore.write_explorer`` (the real path).
Measured in Chromium (playwright): time from navigation to the first rendered page, a text search over all
queries, a method + flagged filter, and the next page. The last line compares the page's embedded data
(gzip + base64) with the same payload as plain JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from datasets import Dataset

from hardneg.beir import load_eval_dataset
from hardneg.explore import build_payload, write_explorer
from hardneg.hub import save_dataset_folder


def _vocabulary() -> tuple[list[str], list[float]]:
    data = load_eval_dataset("embedded:cranfield")
    counts: dict[str, int] = {}
    for d in data.corpus.values():
        for w in d["text"].split():
            counts[w] = counts.get(w, 0) + 1
    words = sorted(counts, key=counts.get, reverse=True)
    return words, [counts[w] for w in words]


def synthetic_folder(root: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    words, weights = _vocabulary()

    def text(k: int) -> str:
        return " ".join(rng.choices(words, weights, k=k))

    qids = [f"q{i}" for i in range(n)]
    pids = [f"d{i}" for i in range(n)]
    queries = [text(8) for _ in range(n)]
    positives = [text(60) for _ in range(n)]
    configs = {
        "queries": Dataset.from_dict(
            {"query_id": qids, "query": queries, "positive_id": pids, "positive": positives}
        )
    }
    configs["llm_hn"] = Dataset.from_dict(
        {
            "anchor": queries,
            "positive": positives,
            "negative": [text(60) for _ in range(n)],
            "query_id": qids,
            "positive_id": pids,
            "negative_id": [None] * n,
            "negative_rank": [None] * n,
            "positive_score": [None] * n,
            "negative_score": [None] * n,
            "method": ["llm_hn"] * n,
        }
    )
    for method in ("bm25_hn", "ce_hn"):
        picks = [rng.randrange(n) for _ in range(2 * n)]
        configs[method] = Dataset.from_dict(
            {
                "anchor": [q for q in queries for _ in range(2)],
                "positive": [p for p in positives for _ in range(2)],
                "negative": [positives[j] for j in picks],
                "query_id": [q for q in qids for _ in range(2)],
                "positive_id": [p for p in pids for _ in range(2)],
                "negative_id": [pids[j] for j in picks],
                "negative_rank": [r for _ in range(n) for r in (1, 2)],
                "positive_score": [round(rng.uniform(5, 20), 3) for _ in range(2 * n)],
                "negative_score": [round(rng.uniform(5, 20), 3) for _ in range(2 * n)],
                "method": [method] * (2 * n),
            }
        )
    stats = {
        name: {
            "rows": len(ds),
            "suspected_false_negative_rate": 0.05,
            "false_negative_scorer": "embedded:ql",
            "false_negative_detail": {"suspected_rows": sorted(rng.sample(range(len(ds)), len(ds) // 20))},
        }
        for name, ds in configs.items()
        if name != "queries"
    }
    build_stats = {"hardneg_version": "bench", "created": "2026-12-01T00:00:00Z", "configs": stats}
    return save_dataset_folder(root / "dataset", configs, build_stats)


def time_in_chromium(page_path: Path, executable: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(page_path.resolve().as_uri(), timeout=600_000)
        page.wait_for_selector("body[data-ready='1']", timeout=600_000)
        out = {"open_s": time.perf_counter() - start}
        for k, v in json.loads(page.evaluate("document.body.dataset.timings")).items():
            out[f"page_{k}_s"] = v / 1000
        heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
        out["js_heap_mb"] = heap / 1e6

        def timed(action, until: str) -> float:
            t = time.perf_counter()
            action()
            page.wait_for_function(until, timeout=600_000)
            return time.perf_counter() - t

        before = page.locator("#count").inner_text()
        out["first_search_s"] = timed(
            lambda: page.fill("#search", "boundary layer"),
            f"document.getElementById('count').textContent.split(' ·')[0] !== {json.dumps(before.split(' ·')[0])}",
        )
        out["search_matches"] = int(page.locator("#count").inner_text().split()[0])
        page.fill("#search", "")
        page.wait_for_function(
            "document.getElementById('count').textContent.split(' of ')[0] === document.getElementById('count').textContent.split(' of ')[1].split(' ')[0]"
        )
        out["filter_s"] = timed(
            lambda: (page.select_option("#method", "llm_hn"), page.check("#flagged")),
            "!document.getElementById('count').textContent.startsWith(document.getElementById('count').textContent.split(' of ')[1].split(' ')[0] + ' of')",
        )
        t = time.perf_counter()
        page.click("#next")
        page.wait_for_function("document.getElementById('page').textContent.startsWith('page 2')")
        out["next_page_s"] = time.perf_counter() - t
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--workdir", help="keep the synthetic build here and reuse it on the next run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        t = time.perf_counter()
        ready = root / "dataset" / "build_stats.json"
        folder = ready.parent if ready.is_file() else synthetic_folder(root, args.queries)
        print(f"synthetic dataset folder: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        page = write_explorer(str(folder), root / "explore.html", sample_queries=0)
        write_s = time.perf_counter() - t
        size = page.stat().st_size
        plain = len(
            json.dumps(build_payload(str(folder)), ensure_ascii=False, separators=(",", ":")).encode()
        )
        rows = sum(1 for _ in folder.glob("*/train-*.parquet"))
        print(f"queries: {args.queries}; parquet files: {rows}; write_explorer: {write_s:.1f} s")
        print(f"html file: {size / 1e6:.1f} MB (plain JSON payload would be {plain / 1e6:.1f} MB)")
        for k, v in time_in_chromium(page, args.chromium).items():
            print(f"chromium {k}: {v:.2f}" if isinstance(v, float) else f"chromium {k}: {v}")
        print(f"explorer file size, plain JSON vs gzip+base64 embedded: {plain / size:.2f}x")


if __name__ == "__main__":
    main()
