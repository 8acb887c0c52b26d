"""The report's plots: bars with 95% intervals, the forest of differences to a reference method, and the
per-query scatter of two methods (matplotlib, Agg backend; imported only when a plot is drawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hardneg.records import EvalResult
from hardneg.report.analysis import DatasetAnalysis, System, reference_system
from hardneg.report.config import ReportConfig


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bars(analyses: list[DatasetAnalysis], path: Path) -> None:
    """Grouped bars with 95% intervals: one panel per dataset, one group per metric, one bar per method."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(analyses), figsize=(max(6, 5 * len(analyses)), 4), squeeze=False)
    for ax, an in zip(axes[0], analyses, strict=True):
        width = 0.8 / max(1, len(an.systems))
        for i, s in enumerate(an.systems):
            st = [
                next(t for t in an.summary if t["label"] == s.label and t["metric"] == m) for m in an.metrics
            ]
            xs = [j + i * width for j in range(len(an.metrics))]
            err = [
                [max(0.0, t["mean"] - t["ci_low"]) for t in st],
                [max(0.0, t["ci_high"] - t["mean"]) for t in st],
            ]
            ax.bar(xs, [t["mean"] for t in st], width, yerr=err, capsize=2, label=s.label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(an.metrics))], an.metrics)
        ax.set_title(an.dataset)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pair(an: DatasetAnalysis, metric: str, x: str, y: str) -> dict[str, Any] | None:
    return next((t for t in an.pairs if t["metric"] == metric and {t["a"], t["b"]} == {x, y}), None)


def plot_forest(analyses: list[DatasetAnalysis], reference: str, path: Path) -> None:
    """Per dataset (rows) and metric (columns): each method's mean difference to ``reference`` with its
    95% interval; filled markers are significant after Holm; the axis is fitted to the intervals."""
    plt = pyplot()
    n_m = len(analyses[0].metrics)
    height = max(2.0, 0.45 * max(len(an.systems) for an in analyses) + 1.2)
    fig, axes = plt.subplots(
        len(analyses), n_m, figsize=(3.6 * n_m + 1.5, height * len(analyses)), squeeze=False
    )
    for r, an in enumerate(analyses):
        ref = reference_system(an, reference)
        others = [s for s in an.systems if s is not ref]
        for c, m in enumerate(an.metrics):
            ax = axes[r][c]
            for y, s in enumerate(others):
                t = _pair(an, m, s.label, ref.label)
                if t is None:
                    continue
                if t["a"] == s.label:
                    d, lo, hi = t["diff"], t["ci_low"], t["ci_high"]
                else:
                    d, lo, hi = -t["diff"], -t["ci_high"], -t["ci_low"]
                color = "tab:grey"
                if t["significant"]:
                    color = "tab:green" if d > 0 else "tab:red"
                ax.errorbar(
                    d,
                    y,
                    xerr=[[max(0.0, d - lo)], [max(0.0, hi - d)]],
                    fmt="o",
                    color=color,
                    capsize=3,
                    mfc=color if t["significant"] else "white",
                )
            ax.axvline(0, color="black", lw=0.8)
            ax.set_yticks(range(len(others)), [s.label for s in others] if c == 0 else [""] * len(others))
            ax.set_ylim(-0.6, len(others) - 0.4)
            ax.invert_yaxis()
            ax.margins(x=0.15)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{an.dataset} {m}", fontsize=9)
            ax.set_xlabel(f"difference to {ref.label}", fontsize=8)
    fig.suptitle(
        "Mean difference to the reference, 95% interval (seeds x queries); filled: significant (Holm)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scatter(a: EvalResult, b: EvalResult, metric: str, path: Path) -> None:
    """Per-query ``metric`` of result ``a`` (x) vs ``b`` (y) on the same queries, with the diagonal."""
    plt = pyplot()
    common = sorted(set(a.per_query) & set(b.per_query))
    xs = [a.per_query[q][metric] for q in common]
    ys = [b.per_query[q][metric] for q in common]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(xs, ys, s=12, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", lw=1)
    above = sum(y > x for x, y in zip(xs, ys, strict=True))
    below = sum(y < x for x, y in zip(xs, ys, strict=True))
    ax.set_xlabel(f"{a.method} ({a.model}) {metric}")
    ax.set_ylabel(f"{b.method} ({b.model}) {metric}")
    ax.set_title(
        f"{a.dataset}: per-query {metric}\n{above} queries above the diagonal, {below} below", fontsize=9
    )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scatter_pair(an: DatasetAnalysis, config: ReportConfig) -> tuple[System, System] | None:
    """The two systems of the per-query scatter: ``config.scatter``, else the reference vs the best other."""
    if config.scatter:
        pick = [next((s for s in an.systems if m in (s.method, s.label)), None) for m in config.scatter]
        if None in pick:
            raise ValueError(
                f"scatter methods {config.scatter} not all in the results of {an.dataset}; "
                f"fix: choose from {[s.label for s in an.systems]}"
            )
        return pick[0], pick[1]
    if len(an.systems) < 2:
        return None
    ref = reference_system(an, config.reference)
    metric = an.metrics[0]
    means = {t["label"]: t["mean"] for t in an.summary if t["metric"] == metric}
    best = max((s for s in an.systems if s is not ref), key=lambda s: means[s.label])
    return ref, best
