"""The report's ``results.md``: the design's caveats, per dataset the table with significance letters, the
minimum detectable effect and the excluded queries, the multi-dataset summary, every pair's verdict, and the
diagnostics section when ``make diagnose`` ran."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from hardneg.config import read_json
from hardneg.diagnose.against import against_results
from hardneg.diagnose.record import Diagnostics
from hardneg.records import EvalResult
from hardneg.report.analysis import DatasetAnalysis, dataset_table, summary_tables
from hardneg.report.config import ReportConfig

TEST_NAMES = {
    "welch": "Welch-Satterthwaite t test over the crossed seed and query variance",
    "bootstrap": "two-level bootstrap test",
    "randomization": "randomisation test over queries on seed-averaged scores",
    "t-test": "paired t-test over queries on seed-averaged scores",
}


def training_budgets(results: list[EvalResult]) -> dict[str, set[int]]:
    """Optimizer steps each fine-tuned method trained for (from ``training_summary.json`` beside the model; each
    model's file read once, however many datasets it was evaluated on). A result without a model path has
    none (never ``./training_summary.json``)."""
    step_of: dict[str, int | None] = {}  # model path -> its global_step
    steps: dict[str, set[int]] = {}
    for r in results:
        if not r.model_path:
            continue
        if r.model_path not in step_of:
            step_of[r.model_path] = _global_step(Path(r.model_path) / "training_summary.json")
        if step_of[r.model_path] is not None:
            steps.setdefault(r.method, set()).add(step_of[r.model_path])
    return steps


def _global_step(summary: Path) -> int | None:
    if not summary.is_file():
        return None
    data = read_json(summary, "train that model again (training writes it last) or delete the file")
    step = data.get("global_step") if isinstance(data, dict) else None
    return None if step is None else int(step)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(
    analyses: list[DatasetAnalysis],
    results: list[EvalResult],
    config: ReportConfig,
    dropped_metrics: list[str] | None = None,
) -> str:
    """``results.md`` (without the diagnostics section, ``diagnostics_section``)."""
    lines = ["# Retrieval results", ""]
    lines += _intro_lines(any(an.multi_seed for an in analyses), config, dropped_metrics)
    lines += _budget_lines(training_budgets(results))
    for an in analyses:
        lines += [f"## {an.dataset} ({len(an.queries)} queries)", ""]
        lines.append(dataset_table(an).to_markdown(index=False, disable_numparse=True))
        lines.append("")
        if an.notes:
            lines += [f"- {n}" for n in an.notes] + [""]
        lines += _mde_lines(an, config) + _excluded_lines(an)
    lines += _summary_lines(analyses) + _pairs_lines(analyses, config)
    return "\n".join(lines) + "\n"


def _intro_lines(multi_seed: bool, config: ReportConfig, dropped_metrics: list[str] | None) -> list[str]:
    lines = []
    if dropped_metrics:
        lines += [
            f"**Metrics left out** (missing from some result files): {', '.join(dropped_metrics)}; "
            "re-evaluate with them to include them.",
            "",
        ]
    if multi_seed:
        lines.append(
            "Means over training seeds; seed SD: standard deviation of a run's mean across seeds; a method's "
            f"95% CI: two-level bootstrap (training seeds, then queries; {config.n_resamples} replicates)."
        )
    else:
        lines.append(
            "**One training seed per method**: the intervals and tests cover query sampling only; how much "
            "of a difference is training-seed luck is unknown (train with `seeds: [0, 1, 2]` or "
            '`make train SEEDS="0 1 2"`).'
        )
    return lines + [
        f"`>b,c`: significantly better than rows b and c on that metric ({TEST_NAMES[config.test]}, "
        f"Holm-corrected within each dataset and metric, alpha {config.alpha}). Differences not marked are "
        "noise. Intervals are per comparison (not multiplicity-adjusted): a pair's interval may exclude 0 "
        "while its Holm verdict is noise. Pair verdicts read a vs b: better, worse, or noise.",
        "",
    ]


def _budget_lines(budgets: dict[str, set[int]]) -> list[str]:
    if not budgets:
        return []
    all_steps = set().union(*budgets.values())
    if len(all_steps) == 1:
        return [f"Training budget: every fine-tuned model trained {all_steps.pop()} optimizer steps.", ""]
    detail = ", ".join(f"{m}: {sorted(s)}" for m, s in sorted(budgets.items()))
    return [f"**Unequal training budgets** (optimizer steps): {detail}; compare with care.", ""]


def _mde_lines(an: DatasetAnalysis, config: ReportConfig) -> list[str]:
    if not an.components:
        return []
    lines = [
        f"Minimum detectable effect ({config.power:.0%} power at alpha {config.alpha}, two-sided Welch "
        "test, t quantiles at its Welch-Satterthwaite df; a method pair "
        f"with {next(iter(an.components.values()))['seeds']} seed(s) each on these "
        f"{len(an.queries)} queries, from the observed variances):",
        "",
    ]
    mde_rows = [
        {
            "metric": m,
            "MDE": _fmt(c["mde"]),
            "seed SD": _fmt(c["seed_sd"]),
            "per-query diff SD": _fmt(c["query_sd"]),
            "MDE with 10 seeds": _fmt(c["mde_10_seeds"]),
            "MDE with 4x queries": _fmt(c["mde_4x_queries"]),
        }
        for m, c in an.components.items()
    ]
    lines.append(pd.DataFrame(mde_rows).to_markdown(index=False, disable_numparse=True))
    return lines + [
        "",
        'A true difference smaller than the MDE is likely to be reported as noise: read "noise" as '
        '"not detectable with this design", not as "equal".',
        "",
    ]


def _excluded_lines(an: DatasetAnalysis) -> list[str]:
    lines = []
    excluded = [(s, s.results[0].counts) for s in an.systems if s.results[0].counts]
    for s, c in excluded:
        zero = c.get("queries_without_relevant_scored_zero", 0)  # queries_without_relevant: zero
        n = c.get("queries_without_judgements", 0) + c.get("queries_without_relevant", 0) - zero
        if n:
            lines.append(
                f"- {n} queries without relevant judgements are excluded from the averages of {s.label}."
            )
        if zero:
            lines.append(
                f"- {zero} judged queries without a relevant document are averaged in with score 0 for "
                f"{s.label} (queries_without_relevant: zero, MTEB's rule)."
            )
    if any(
        c.get("queries_without_judgements", 0) + c.get("queries_without_relevant", 0) for _, c in excluded
    ):
        lines.append("")
    return lines


def _summary_lines(analyses: list[DatasetAnalysis]) -> list[str]:
    summary = summary_tables(analyses)
    if not summary:
        return []
    table, pairs = summary
    lines = ["## All datasets", "", "Mean over datasets (each dataset weighs the same):", ""]
    lines.append(table.to_markdown(index=False, floatfmt=".4f"))
    lines += ["", "Wins / ties / losses over datasets (a tie is a noise verdict):", ""]
    lines.append(pairs.to_markdown(index=False))
    return lines + [""]


def _pairs_lines(analyses: list[DatasetAnalysis], config: ReportConfig) -> list[str]:
    lines = ["## All pairs", ""]
    tests = [t for an in analyses for t in an.pairs]
    if not tests:
        return lines + [
            "No pairs to test (one method per dataset, or compare=same_model with one per model)."
        ]
    df = pd.DataFrame(tests)
    df["95% CI"] = [f"[{lo:.4f}, {hi:.4f}]" for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)]
    df = df.rename(columns={"verdict": "a vs b"})
    df = df[["dataset", "metric", "a", "b", "diff", "95% CI", "p", "p_holm", "a vs b"]]
    lines.append(df.to_markdown(index=False, floatfmt=".4f"))
    noise = [t for t in tests if not t["significant"]]
    return lines + [
        "",
        f"{len(tests) - len(noise)} of {len(tests)} differences are significant; "
        f"{len(noise)} are noise (Holm-adjusted p >= {config.alpha}): do not read them as wins.",
    ]


def diagnostics_section(run: Path, results: list[EvalResult]) -> str:
    """The "Diagnostics" section when ``make diagnose`` wrote ``diagnostics.json``: the table, and the rank
    correlation with these results (recomputed here, so it matches the results the report shows)."""
    diag = Diagnostics.find(run)
    if diag is None:
        return ""
    against = against_results(diag.table(), results, metric=diag.params.get("metric", "ndcg@10"))
    figures = [f for f in ("diagnostics.png", "diagnostics_vs_results.png") if (run / f).is_file()]
    return "\n" + diag.markdown(against) + "\n" + "".join(f"![{f}]({f})\n" for f in figures)
