"""Report speed: the multi-seed report on a paper-sized design, and its bootstrap vs a per-replicate loop.

Synthetic result files (no model needed): 5 methods x 5 training seeds x 1,000 queries x 3 metrics x
3 datasets (75 files), with per-method effects, seed effects and per-query noise. In one run:

- ``render_report`` end to end (load, two-level bootstrap with the default 10,000 replicates for the
  per-method intervals, all-pairs Welch-Satterthwaite tests (the default pair test) with Holm, MDE,
  Markdown/CSV/JSON, bar, forest and scatter plots); goal: < 30 s on 2 cores;
- the bootstrap alone (it still runs in every report, for the per-method intervals) (``hardneg.metrics.two_level_bootstrap``, all datasets) vs the straightforward
  implementation: a Python loop over replicates that draws seed and query indices and averages
  ``X[seeds][:, queries]`` per method (numpy fancy indexing inside the loop). The loop runs on a subset
  of replicates (``--baseline_resamples``) and is scaled linearly to the full count (it is linear in the
  replicates by construction); both sides' bootstrap SDs of a method's mean must agree within 10%.

    python benchmarks/report.py
    python benchmarks/report.py --queries 1000 --seeds 5 --methods 5 --datasets 3 --n_resamples 10000

The last line is the headline: ``two-level bootstrap (vectorised) vs per-replicate Python loop: N.NNx``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = ("ndcg@10", "p@10", "recall@100")


def write_results(run: Path, *, methods: int, seeds: int, queries: int, datasets: int) -> None:
    rng = np.random.default_rng(0)
    (run / "results").mkdir(parents=True)
    for d in range(datasets):
        base = rng.uniform(0.05, 0.8, queries)
        for m in range(methods):
            effect = 0.01 * m
            for s in range(seeds):
                shift = rng.normal(0, 0.01)
                scores = np.clip(
                    base[:, None] * (1 + np.arange(3) / 10)
                    + effect
                    + shift
                    + rng.normal(0, 0.08, (queries, 3)),
                    0,
                    1,
                )
                per_query = {
                    f"q{i}": dict(zip(METRICS, map(float, row), strict=True)) for i, row in enumerate(scores)
                }
                result = {
                    "model": "all-MiniLM-L6-v2",
                    "method": f"method{m}",
                    "seed": s,
                    "model_path": f"models/method{m}/seed{s}",
                    "dataset": f"set{d}",
                    "metrics": dict(zip(METRICS, map(float, scores.mean(axis=0)), strict=True)),
                    "per_query": per_query,
                    "counts": {"queries_evaluated": queries},
                }
                (run / "results" / f"m.method{m}.seed{s}__set{d}.json").write_text(json.dumps(result))


def loop_bootstrap(arrays: dict[str, np.ndarray], n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """The baseline: one replicate at a time, seeds then queries drawn as indices (same design)."""
    rng = np.random.default_rng(seed)
    out = {name: np.empty((n_resamples, x.shape[2])) for name, x in arrays.items()}
    n_q = next(iter(arrays.values())).shape[1]
    for b in range(n_resamples):
        q_idx = rng.integers(0, n_q, n_q)
        for name, x in arrays.items():
            s_idx = rng.integers(0, x.shape[0], x.shape[0])
            out[name][b] = x[s_idx][:, q_idx].mean(axis=(0, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=3)
    parser.add_argument("--n_resamples", type=int, default=10_000)
    parser.add_argument("--baseline_resamples", type=int, default=500, help="Loop replicates actually run.")
    args = parser.parse_args()

    from hardneg.metrics import inflate_seed_residuals, two_level_bootstrap
    from hardneg.report import (
        ReportConfig,
        common_queries,
        group_systems,
        load_results,
        render_report,
        score_array,
    )

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        write_results(
            run, methods=args.methods, seeds=args.seeds, queries=args.queries, datasets=args.datasets
        )
        n_files = len(list((run / "results").glob("*.json")))
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the report prints its Markdown
            paths = render_report(ReportConfig(run_dir=str(run), n_resamples=args.n_resamples))
        render_s = time.perf_counter() - t0
        assert paths["forest"].is_file() and paths["md"].is_file()
        n_pairs = len(json.loads(paths["significance_json"].read_text()))

        grouped = group_systems(load_results(run))
        per_dataset = []
        for systems in grouped.values():
            queries = common_queries(systems)
            per_dataset.append({s.label: score_array(s, queries, list(METRICS)) for s in systems})
        t0 = time.perf_counter()
        ours = [two_level_bootstrap(a, n_resamples=args.n_resamples, seed=1) for a in per_dataset]
        ours_s = time.perf_counter() - t0
        # the baseline on the same (inflated) arrays, a subset of replicates of every dataset, scaled
        inflated = [{k: inflate_seed_residuals(v) for k, v in a.items()} for a in per_dataset]
        t0 = time.perf_counter()
        theirs = [loop_bootstrap(a, args.baseline_resamples, seed=2) for a in inflated]
        loop_s = (time.perf_counter() - t0) * args.n_resamples / args.baseline_resamples

    name = next(iter(per_dataset[0]))
    sd_ours, sd_loop = ours[0][name][:, 0].std(), theirs[0][name][:, 0].std()
    agree = abs(sd_ours / sd_loop - 1)
    print(
        f"design: {args.methods} methods x {args.seeds} seeds x {args.queries} queries x {len(METRICS)} metrics x "
        f"{args.datasets} datasets ({n_files} result files), {args.n_resamples} bootstrap replicates, {n_pairs} pair tests"
    )
    print(
        f"render_report end to end: {render_s:.1f} s (goal < 30 s: {'met' if render_s < 30 else 'NOT met'})"
    )
    print(
        f"check: bootstrap SD of {name}'s mean nDCG@10: vectorised {sd_ours:.5f}, loop {sd_loop:.5f} "
        f"({agree:.1%} apart; loop on {args.baseline_resamples} replicates)"
    )
    assert agree < 0.1, "the two bootstraps disagree"
    print(
        f"bootstrap: vectorised {ours_s:.2f} s, loop {loop_s:.1f} s (scaled from {args.baseline_resamples} replicates)"
    )
    print(f"two-level bootstrap (vectorised) vs per-replicate Python loop: {loop_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
