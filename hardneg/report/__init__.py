"""The comparison report: per-method means over training seeds with intervals, all-pairs verdicts, the
minimum detectable effect, forest and scatter plots, a multi-dataset summary, model-card metadata.

Reads every ``<run_dir>/results/*.json`` written by ``hardneg.evaluate`` (one file per model, training
seed and dataset) and writes

- ``results.json`` / ``results.csv``: one row per (model, method, dataset): ``model, method, dataset`` +
  each metric's mean over seeds, then ``seeds``, ``queries``, ``queries_dropped``, ``queries_excluded`` and per metric
  ``<m>_seed_sd``, ``<m>_ci_low``, ``<m>_ci_high``; ``results_per_seed.csv``: one row per seed;
- ``results.md``: per dataset a table (rows: methods with a letter; per metric the mean, the seed SD and
  the 95% interval, and the letters of the rows it is significantly better than), the minimum detectable
  effect of the design, then the multi-dataset summary and every pairwise comparison with its verdict;
- ``significance.json`` / ``significance.csv``: every pair of methods per (dataset, metric): mean
  difference, its SE and Welch df, 95% interval, p-value, Holm-adjusted p-value within the (dataset,
  metric) family, verdict of a vs b (better / worse / noise);
- ``mde.json``: the variance components and minimum detectable effect per (dataset, metric);
- ``results.png`` (bars with intervals), ``results_forest.png`` (differences to a reference method, per
  dataset and metric) and ``results_scatter.png`` (per-query scores of two methods, seed-averaged).

The jobs, one module each: ``config`` (``ReportConfig``), ``analysis`` (result records -> systems -> tests,
MDE and table rows), ``plots``, ``markdown`` (``results.md``), ``model_index``; this module runs them
(``render_report``) and re-exports the names scripts and benchmarks use.

Statistics (docs/evaluation.md): seeds and queries are crossed. Pairs are tested with a studentized
Welch-Satterthwaite t test over the query and per-method seed variance components
(``hardneg.metrics.welch_pair``; interval d +- t SE), Holm-corrected within each (dataset, metric); a
trained method with one seed borrows the pooled seed variance of the others. Per-method intervals come
from a two-level bootstrap (seeds, then queries, paired across methods). With one seed per method
everything covers queries only, and the report says so. A difference is called real (better / worse)
only when its Holm-adjusted p-value is below ``alpha``; otherwise the report calls it noise.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pandas as pd

from hardneg.curves import plot_training_loss
from hardneg.ranx_export import RANX_FILE, ranx_export, write_ranx_export
from hardneg.report.analysis import (
    DatasetAnalysis,
    System,
    analyse_dataset,
    common_queries,
    group_systems,
    load_results,
    per_seed_rows,
    result_rows,
    score_array,
    seed_averaged,
)
from hardneg.report.config import TABLE_METRICS, TESTS, ReportConfig
from hardneg.report.markdown import diagnostics_section, markdown
from hardneg.report.model_index import write_model_index
from hardneg.report.plots import plot_bars, plot_forest, plot_scatter, scatter_pair

__all__ = [
    "TABLE_METRICS",
    "TESTS",
    "DatasetAnalysis",
    "ReportConfig",
    "System",
    "analyse_dataset",
    "common_queries",
    "group_systems",
    "load_results",
    "render_report",
    "score_array",
]


def render_report(config: ReportConfig) -> dict[str, Path]:
    """Write the tables, tests, MDE and plots (see the module docstring); print the Markdown; return paths."""
    run = Path(config.run_dir)
    results = load_results(run)
    metrics = [m for m in config.metrics if all(m in r.metrics for r in results)]
    if not metrics:
        raise ValueError(f"no result file has all of {config.metrics}; fix: evaluate with these metrics")
    dropped_metrics = [
        f"{m} (missing from {sum(m not in r.metrics for r in results)} of {len(results)} files)"
        for m in config.metrics
        if m not in metrics
    ]
    grouped = group_systems(results)
    known = {n for systems in grouped.values() for s in systems for n in (s.method, s.label)}
    default_reference = next(f.default for f in fields(ReportConfig) if f.name == "reference")
    if config.reference not in known and config.reference != default_reference:  # a typo: say so
        raise ValueError(
            f"reference '{config.reference}' is not a method in the results; fix: use one of {', '.join(sorted(known))}"
        )
    analyses = [analyse_dataset(ds, systems, metrics, config) for ds, systems in sorted(grouped.items())]
    rows = result_rows(analyses)
    tests = [t for an in analyses for t in an.pairs]
    paths = {
        "json": run / "results.json",
        "csv": run / "results.csv",
        "per_seed_csv": run / "results_per_seed.csv",
        "md": run / "results.md",
        "png": run / "results.png",
        "forest": run / "results_forest.png",
        "significance_json": run / "significance.json",
        "significance_csv": run / "significance.csv",
        "mde_json": run / "mde.json",
    }
    paths["json"].write_text(json.dumps(rows, indent=1))
    pd.DataFrame(rows).to_csv(paths["csv"], index=False)
    pd.DataFrame(per_seed_rows(results, metrics)).to_csv(paths["per_seed_csv"], index=False)
    paths["significance_json"].write_text(json.dumps(tests, indent=1))
    pd.DataFrame(tests).to_csv(paths["significance_csv"], index=False)
    paths["mde_json"].write_text(json.dumps([c for an in analyses for c in an.components.values()], indent=1))
    text = markdown(analyses, results, config, dropped_metrics) + diagnostics_section(run, results)
    paths["md"].write_text(text)
    plot_bars(analyses, paths["png"])
    plot_forest(analyses, config.reference, paths["forest"])
    pair = scatter_pair(analyses[0], config)
    if pair:
        paths["scatter"] = run / "results_scatter.png"
        plot_scatter(
            seed_averaged(pair[0], metrics), seed_averaged(pair[1], metrics), metrics[0], paths["scatter"]
        )
    if plot_training_loss(run, run / "training_loss.png"):  # models' trainer_state.json, per method and seed
        paths["training_loss"] = run / "training_loss.png"
    if config.ranx:
        arrays = {an.dataset: an.arrays for an in analyses}  # the analysis's score arrays, not rebuilt
        export = ranx_export(
            analyses, arrays, test=config.test, alpha=config.alpha, p_adjustment=config.ranx_p_adjustment
        )
        paths["ranx"] = write_ranx_export(run / RANX_FILE, export)
    if config.model_index:
        write_model_index(results, metrics)
    print(text)
    return paths
