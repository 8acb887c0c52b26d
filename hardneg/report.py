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

Statistics (docs/evaluation.md): seeds and queries are crossed. Pairs are tested with a studentized
Welch-Satterthwaite t test over the query and per-method seed variance components
(``hardneg.metrics.welch_pair``; interval d +- t SE), Holm-corrected within each (dataset, metric); a
trained method with one seed borrows the pooled seed variance of the others. Per-method intervals come
from a two-level bootstrap (seeds, then queries, paired across methods). With one seed per method
everything covers queries only, and the report says so. A difference is called real (better / worse)
only when its Holm-adjusted p-value is below ``alpha``; otherwise the report calls it noise.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import string
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from hardneg.config import read_json
from hardneg.curves import plot_training_loss
from hardneg.diagnose.against import against_results
from hardneg.diagnose.record import Diagnostics
from hardneg.metrics import (
    bootstrap_p_value,
    holm,
    paired_test,
    seed_terms,
    two_level_bootstrap,
    variance_components,
    welch_pair,
)
from hardneg.options import ConfigError, check_fields
from hardneg.ranx_export import P_ADJUSTMENTS, RANX_FILE, ranx_export, write_ranx_export

TABLE_METRICS = ("ndcg@10", "p@10", "recall@100")
TESTS = ("welch", "bootstrap", "randomization", "t-test")


@dataclass
class ReportConfig:
    """What to render from a run folder."""

    OUTPUT_KIND: ClassVar[str] = "run"  # hardneg.config.check_outputs

    run_dir: str = field(default="runs/demo", metadata={"help": "Run folder holding results/*.json."})
    metrics: list[str] = field(
        default_factory=lambda: list(TABLE_METRICS), metadata={"help": "Metrics in the table and the tests."}
    )
    test: str = field(
        default="welch",
        metadata={
            "help": "pair test: welch (studentized Welch-Satterthwaite over the crossed seed and query "
            "variance; default), bootstrap (two-level: seeds and queries; over-covers the seed x query noise), "
            "or randomization / t-test over queries on seed-averaged scores (these ignore seed variance)."
        },
    )
    n_resamples: int = field(
        default=10_000,
        metadata={
            "bounds": (1, None),
            "help": "Bootstrap replicates (and sign flips of the randomisation test).",
        },
    )
    alpha: float = field(
        default=0.05, metadata={"bounds": (0, 1), "help": "Significance level after Holm correction."}
    )
    power: float = field(
        default=0.8, metadata={"bounds": (0, 1), "help": "Power for the minimum detectable effect."}
    )
    reference: str = field(
        default="zero-shot",
        metadata={"help": "Method the forest plot and the scatter compare against (default zero-shot)."},
    )
    compare: str = field(
        default="all",
        metadata={
            "help": "Pairs to test: all (every two methods) or same_model (methods of one base model)."
        },
    )
    scatter: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Two methods for the per-query scatter (default: the reference vs the best other method)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap's random numbers."})
    model_index: bool = field(
        default=False,
        metadata={"help": "Write each local model folder's results into its README model-index metadata."},
    )
    ranx: bool = field(
        default=False,
        metadata={
            "help": "Also write significance_ranx.json: each dataset's comparison as a ranx compare Report "
            "(ranx test names, max_p = alpha, its table); hardneg.ranx_export."
        },
    )
    ranx_p_adjustment: str = field(
        default="holm",
        metadata={
            "help": "p-values in the ranx export: holm (hardneg's verdicts) or none (raw, as ranx reports)."
        },
    )

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ValueError(f"unknown test '{self.test}'; fix: use one of {', '.join(TESTS)}")
        if self.scatter and len(self.scatter) != 2:
            raise ValueError(
                f"scatter needs exactly two methods, got {self.scatter}; fix: e.g. llm_hn zero-shot"
            )
        if self.compare not in ("same_model", "all"):
            raise ValueError(f"unknown compare '{self.compare}'; fix: use all or same_model")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}; fix: e.g. --alpha 0.05")
        if not 0 < self.power < 1:
            raise ValueError(f"power must be in (0, 1), got {self.power}; fix: e.g. --power 0.8")
        if self.ranx and importlib.util.find_spec("ranx") is None:  # before the report, not after it
            raise ConfigError(
                "--ranx needs ranx, which is not installed; fix: pip install ranx (in hardneg[dev])"
            )
        if self.ranx_p_adjustment not in P_ADJUSTMENTS:
            raise ValueError(
                f"ranx_p_adjustment '{self.ranx_p_adjustment}' is not holm or none; fix: use holm (default) or none"
            )
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples {self.n_resamples} is too few; fix: use >= 1000")
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)


def load_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every result file of a run, sorted by (dataset, model, method, seed)."""
    folder = Path(run_dir) / "results"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"no result files in {folder}; fix: run `python evaluation/evaluate.py --config ... --run_dir {run_dir}` first"
        )
    fix = "delete it and rerun evaluation/evaluate.py (it rewrites missing results)"
    results = []
    for f in files:
        r = read_json(f, fix)
        r.setdefault("seed", None)
        r["_file"] = f.name
        results.append(r)
    return sorted(results, key=lambda r: (r["dataset"], r["model"], r["method"], _seed_order(r["seed"])))


def _seed_order(seed: int | None) -> int:
    return -1 if seed is None else int(seed)


# ---------------------------------------------------------------------------------------------------------
# one dataset: the methods' score arrays on common queries, bootstrap, pairs


@dataclass
class System:
    """One method of one base model on one dataset: its result files (one per seed)."""

    model: str
    method: str
    results: list[dict[str, Any]]
    label: str = ""
    letter: str = ""

    @property
    def seeds(self) -> list[int | None]:
        return [r["seed"] for r in self.results]


def group_systems(results: list[dict[str, Any]]) -> dict[str, list[System]]:
    """``{dataset: [System, ...]}``; a system's label is its method, or ``model / method`` when two base
    models share a method name; letters a, b, c ... in table order."""
    by_key: dict[tuple[str, str, str], list[dict]] = {}
    for r in results:
        by_key.setdefault((r["dataset"], r["model"], r["method"]), []).append(r)
    methods_models: dict[str, set[str]] = {}
    for _, model, method in by_key:
        methods_models.setdefault(method, set()).add(model)
    out: dict[str, list[System]] = {}
    for (dataset, model, method), rs in by_key.items():
        seeds = [r["seed"] for r in rs]
        if len(set(seeds)) != len(seeds) or (None in seeds and len(seeds) > 1):
            stale = [r["_file"] for r in rs if r["seed"] is None] or [r["_file"] for r in rs]
            raise ValueError(
                f"{dataset}: {model} / {method} has result files of seeds {seeds} (a result without a training "
                f"seed next to seeded ones, or a seed twice); fix: remove the stale file(s) {stale} from results/"
            )
        label = method if len(methods_models[method]) == 1 else f"{model} / {method}"
        out.setdefault(dataset, []).append(System(model, method, rs, label))
    for systems in out.values():
        letters = _letters(len(systems))
        for s, letter in zip(systems, letters, strict=True):
            s.letter = letter
    return out


def _letters(n: int) -> list[str]:
    single = list(string.ascii_lowercase)
    if n <= len(single):
        return single[:n]
    return [a + b for a in single for b in single][:n]


def common_queries(systems: list[System]) -> list[str]:
    """Query ids every result file of the dataset scored (the paired design)."""
    sets = [set(r["per_query"]) for s in systems for r in s.results]
    return sorted(set.intersection(*sets)) if sets else []


def score_array(system: System, queries: list[str], metrics: list[str]) -> np.ndarray:
    """(seeds, queries, metrics) per-query scores of a system; a non-finite score is an error naming the
    file, metric and query (a NaN would otherwise count as a significant difference)."""
    x = np.array(
        [[[r["per_query"][q][m] for m in metrics] for q in queries] for r in system.results], dtype=np.float64
    )
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, q, m = bad[0]
        raise ValueError(
            f"{system.results[i]['_file']}: non-finite per-query {metrics[m]} for {queries[q]} "
            f"({len(bad)} non-finite scores in all); fix: re-evaluate it (overwrite=true)"
        )
    return x


def dropped_queries(systems: list[System], queries: list[str]) -> dict[str, int]:
    """Per system label: queries some of its result files scored that are not in the common ``queries``."""
    keep = set(queries)
    return {s.label: max(len(set(r["per_query"]) - keep) for r in s.results) for s in systems}


@dataclass
class DatasetAnalysis:
    """Everything the report says about one dataset."""

    dataset: str
    systems: list[System]
    queries: list[str]
    metrics: list[str]
    summary: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    components: dict[str, dict[str, Any]]
    multi_seed: bool
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def analyse_dataset(
    dataset: str, systems: list[System], metrics: list[str], config: ReportConfig
) -> DatasetAnalysis:
    queries = common_queries(systems)
    if not queries:
        raise ValueError(
            f"{dataset}: the result files share no query; fix: evaluate them on the same queries"
        )
    arrays = {s.label: score_array(s, queries, metrics) for s in systems}
    reps = two_level_bootstrap(arrays, n_resamples=config.n_resamples, seed=config.seed)
    multi_seed = any(len(s.results) > 1 for s in systems)
    trained = {s.label: any(x is not None for x in s.seeds) for s in systems}
    terms = seed_terms(arrays, trained)
    notes = []
    rng = np.random.default_rng(config.seed + 1)
    for s in systems:
        if terms[s.label].borrowed:  # one training run: its replicates get the pooled seed luck too
            sd = np.sqrt(terms[s.label].var)
            reps[s.label] = reps[s.label] + rng.normal(0.0, 1.0, reps[s.label].shape) * sd
            notes.append(
                f"{s.label}: 1 training seed; seed variance borrowed from the other methods "
                f"(pooled, {terms[s.label].df:.0f} df)."
            )
    counts = {len(s.results) for s in systems if trained[s.label]}
    if len(counts) > 1:
        detail = ", ".join(f"{s.label}: {len(s.results)}" for s in systems if trained[s.label])
        notes.append(
            f"Training seed counts differ between methods ({detail}); each test uses each method's own."
        )
    if not multi_seed:
        notes.append(
            "One training seed per method on this dataset: intervals and tests cover query sampling only."
        )
    dropped = dropped_queries(systems, queries)
    if any(dropped.values()):
        detail = ", ".join(f"{k}: {n}" for k, n in dropped.items() if n)
        union = set().union(*(r["per_query"] for s in systems for r in s.results))
        notes.append(
            f"{len(union) - len(queries)} queries scored by only some methods are left out (paired design; "
            f"per method: {detail})."
        )
    summary = []
    for s in systems:
        x = arrays[s.label]
        seed_means = x.mean(axis=1)  # (seeds, metrics)
        lo, hi = np.percentile(reps[s.label], [2.5, 97.5], axis=0)
        for j, m in enumerate(metrics):
            summary.append(
                {
                    "dataset": dataset,
                    "model": s.model,
                    "method": s.method,
                    "label": s.label,
                    "letter": s.letter,
                    "metric": m,
                    "mean": float(seed_means[:, j].mean()),
                    "seed_sd": float(seed_means[:, j].std(ddof=1)) if len(seed_means) > 1 else None,
                    "ci_low": float(lo[j]),
                    "ci_high": float(hi[j]),
                    "seeds": len(s.results),
                    "seed_list": [x for x in s.seeds if x is not None],
                    "queries": len(queries),
                }
            )
    pairs = []
    for a, b in itertools.combinations(systems, 2):
        if config.compare == "same_model" and a.model != b.model:
            continue
        observed = arrays[a.label].mean(axis=(0, 1)) - arrays[b.label].mean(axis=(0, 1))
        diff_reps = reps[a.label] - reps[b.label]
        lo, hi = np.percentile(diff_reps, [2.5, 97.5], axis=0)
        welch = welch_pair(arrays[a.label], arrays[b.label], terms[a.label], terms[b.label], alpha=0.05)
        if config.test == "welch":
            p, lo, hi = welch.p, welch.ci_low, welch.ci_high
        elif config.test == "bootstrap":
            p = bootstrap_p_value(diff_reps, observed)
        else:
            avg_a, avg_b = arrays[a.label].mean(axis=0), arrays[b.label].mean(axis=0)
            p = [
                paired_test(avg_a[:, j], avg_b[:, j], test=config.test, n_resamples=config.n_resamples)
                for j in range(len(metrics))
            ]
        for j, m in enumerate(metrics):
            pairs.append(
                {
                    "dataset": dataset,
                    "metric": m,
                    "a": a.label,
                    "b": b.label,
                    "a_letter": a.letter,
                    "b_letter": b.letter,
                    "a_method": a.method,
                    "b_method": b.method,
                    "a_model": a.model,
                    "b_model": b.model,
                    "mean_a": float(arrays[a.label][:, :, j].mean()),
                    "mean_b": float(arrays[b.label][:, :, j].mean()),
                    "diff": float(observed[j]),
                    "ci_low": float(lo[j]),
                    "ci_high": float(hi[j]),
                    "seeds_a": len(a.results),
                    "seeds_b": len(b.results),
                    "queries": len(queries),
                    "se": float(welch.se[j]),
                    "df": float(welch.df[j]),
                    "test": config.test,
                    "p": float(p[j]),
                }
            )
    for m in metrics:
        family = [t for t in pairs if t["metric"] == m]
        for t, p_adj in zip(family, holm([t["p"] for t in family]), strict=True):
            t["p_holm"] = p_adj
            t["significant"] = bool(p_adj < config.alpha)
            t["verdict"] = ("better" if t["diff"] > 0 else "worse") if t["significant"] else "noise"
    components = {}
    if len(systems) >= 2:
        for j, m in enumerate(metrics):
            vc = variance_components(
                {k: v[:, :, j] for k, v in arrays.items()}, alpha=config.alpha, power=config.power
            )
            components[m] = {
                "dataset": dataset,
                "metric": m,
                **asdict(vc),
                "df": vc.df(),
                "mde": vc.mde(),
                "mde_10_seeds": vc.mde(seeds=10) if vc.seed_sd is not None else None,
                "mde_4x_queries": vc.mde(queries=4 * vc.queries),
            }
    return DatasetAnalysis(
        dataset, systems, queries, metrics, summary, pairs, components, multi_seed, dropped, notes
    )


# ---------------------------------------------------------------------------------------------------------
# rows and tables


def result_rows(analyses: list[DatasetAnalysis], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per (model, method, dataset): means over seeds, then seeds/queries/intervals."""
    rows = []
    for an in analyses:
        for s in an.systems:
            stats = {t["metric"]: t for t in an.summary if t["label"] == s.label}
            c = s.results[0].get("counts", {})
            row = {"model": s.model, "method": s.method, "dataset": an.dataset}
            row.update({m: round(stats[m]["mean"], 6) for m in an.metrics})
            row.update(
                {
                    "seeds": len(s.results),
                    "queries": len(an.queries),
                    "queries_dropped": an.dropped.get(s.label, 0),
                    "queries_excluded": c.get("queries_without_judgements", 0)
                    + c.get("queries_without_relevant", 0),
                }
            )
            for m in an.metrics:
                sd = stats[m]["seed_sd"]
                row[f"{m}_seed_sd"] = None if sd is None else round(sd, 6)
                row[f"{m}_ci_low"] = round(stats[m]["ci_low"], 6)
                row[f"{m}_ci_high"] = round(stats[m]["ci_high"], 6)
            rows.append(row)
    return rows


def per_seed_rows(results: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "model": r["model"],
            "method": r["method"],
            "seed": r["seed"],
            "dataset": r["dataset"],
            **{m: r["metrics"].get(m) for m in metrics},
        }
        for r in results
    ]


def dataset_table(an: DatasetAnalysis) -> pd.DataFrame:
    """Rows: the dataset's methods (letter, model, method, seeds); per metric: mean with the letters of
    the rows it is significantly better than, the seed SD and the 95% interval."""
    better: dict[tuple[str, str], list[str]] = {}
    for t in an.pairs:
        if t["significant"]:
            win, lose = (t["a"], t["b_letter"]) if t["diff"] > 0 else (t["b"], t["a_letter"])
            better.setdefault((win, t["metric"]), []).append(lose)
    rows = []
    for s in an.systems:
        row = {"": s.letter, "model": s.model, "method": s.method, "seeds": str(len(s.results))}
        for m in an.metrics:
            st = next(t for t in an.summary if t["label"] == s.label and t["metric"] == m)
            marks = sorted(better.get((s.label, m), []))
            row[m] = f"{st['mean']:.4f}" + (f" >{','.join(marks)}" if marks else "")
            row[f"{m} seed SD"] = "-" if st["seed_sd"] is None else f"{st['seed_sd']:.4f}"
            row[f"{m} 95% CI"] = f"[{st['ci_low']:.4f}, {st['ci_high']:.4f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def summary_tables(analyses: list[DatasetAnalysis]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Several datasets: (mean over datasets per method and metric, win/tie/loss per pair and metric)."""
    if len(analyses) < 2:
        return None
    means = pd.DataFrame([t for an in analyses for t in an.summary])
    table = means.pivot_table(index="label", columns="metric", values="mean", aggfunc="mean")
    counts = means.groupby("label")["dataset"].nunique()
    table.insert(0, "datasets", counts)
    table = table.reset_index().rename(columns={"label": "method"})
    wtl: dict[tuple[str, str, str], list[int]] = {}
    for an in analyses:
        for t in an.pairs:
            a, b = sorted((t["a"], t["b"]))
            sign = 1 if (t["a"], t["b"]) == (a, b) else -1
            key = (a, b, t["metric"])
            wtl.setdefault(key, [0, 0, 0])
            if not t["significant"]:
                wtl[key][1] += 1
            elif t["diff"] * sign > 0:
                wtl[key][0] += 1
            else:
                wtl[key][2] += 1
    pairs = pd.DataFrame(
        [
            {"a": a, "b": b, "metric": m, "a wins": w, "ties": ti, "a losses": lo}
            for (a, b, m), (w, ti, lo) in wtl.items()
        ]
    )
    return table, pairs


# ---------------------------------------------------------------------------------------------------------
# plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bars(analyses: list[DatasetAnalysis], path: Path) -> None:
    """Grouped bars with 95% intervals: one panel per dataset, one group per metric, one bar per method."""
    plt = _pyplot()
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


def reference_system(an: DatasetAnalysis, reference: str) -> System:
    """The system whose method (or label) is ``reference``; else the first one."""
    return next((s for s in an.systems if reference in (s.method, s.label)), an.systems[0])


def _pair(an: DatasetAnalysis, metric: str, x: str, y: str) -> dict[str, Any] | None:
    return next((t for t in an.pairs if t["metric"] == metric and {t["a"], t["b"]} == {x, y}), None)


def plot_forest(analyses: list[DatasetAnalysis], reference: str, path: Path) -> None:
    """Per dataset (rows) and metric (columns): each method's mean difference to ``reference`` with its
    95% interval; filled markers are significant after Holm; the axis is fitted to the intervals."""
    plt = _pyplot()
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


def plot_scatter(a: dict, b: dict, metric: str, path: Path) -> None:
    """Per-query ``metric`` of result ``a`` (x) vs ``b`` (y) on the same queries, with the diagonal."""
    plt = _pyplot()
    common = sorted(set(a["per_query"]) & set(b["per_query"]))
    xs = [a["per_query"][q][metric] for q in common]
    ys = [b["per_query"][q][metric] for q in common]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(xs, ys, s=12, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="grey", lw=1)
    above = sum(y > x for x, y in zip(xs, ys, strict=True))
    below = sum(y < x for x, y in zip(xs, ys, strict=True))
    ax.set_xlabel(f"{a['method']} ({a['model']}) {metric}")
    ax.set_ylabel(f"{b['method']} ({b['model']}) {metric}")
    ax.set_title(
        f"{a['dataset']}: per-query {metric}\n{above} queries above the diagonal, {below} below", fontsize=9
    )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def seed_averaged(system: System, metrics: list[str]) -> dict[str, Any]:
    """A result-like dict whose per-query scores are the mean over the system's seeds."""
    queries = sorted(set.intersection(*(set(r["per_query"]) for r in system.results)))
    per_query = {
        q: {m: float(np.mean([r["per_query"][q][m] for r in system.results])) for m in metrics}
        for q in queries
    }
    first = system.results[0]
    return {
        "model": system.model,
        "method": system.method,
        "dataset": first["dataset"],
        "per_query": per_query,
    }


def _scatter_pair(an: DatasetAnalysis, config: ReportConfig) -> tuple[System, System] | None:
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


# ---------------------------------------------------------------------------------------------------------
# model index, budget check, markdown


def write_model_index(results: list[dict], rows_metrics: list[str]) -> list[Path]:
    """Put each local model folder's results into its README's model-index (Hub metadata)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    by_model: dict[str, list[dict]] = {}
    for r in results:
        if (Path(r["model_path"]) / "config.json").is_file() or (
            Path(r["model_path"]) / "modules.json"
        ).is_file():
            by_model.setdefault(r["model_path"], []).append(r)
    written = []
    for folder, rs in by_model.items():
        readme = Path(folder) / "README.md"
        card = ModelCard.load(readme) if readme.is_file() else ModelCard("---\n---\n")
        if card.data is None:
            card.data = ModelCardData()
        card.data.model_name = card.data.model_name or Path(folder).name
        card.data.eval_results = [
            EvalResult(
                task_type="retrieval",
                dataset_type=r.get("dataset_source", r["dataset"]),
                dataset_name=r["dataset"],
                dataset_split=r.get("split", "test"),
                metric_type=m.replace("@", "_at_"),
                metric_name=m,
                metric_value=float(r["metrics"][m]),
            )
            for r in rs
            for m in rows_metrics
            if m in r["metrics"]
        ]
        card.save(readme)
        written.append(readme)
    return written


def training_budgets(results: list[dict[str, Any]]) -> dict[str, set[int]]:
    """Optimizer steps each fine-tuned method trained for (from ``training_summary.json`` beside the model)."""
    steps: dict[str, set[int]] = {}
    for r in results:
        summary = Path(str(r.get("model_path", ""))) / "training_summary.json"
        if summary.is_file():
            step = json.loads(summary.read_text()).get("global_step")
            if step is not None:
                steps.setdefault(r["method"], set()).add(int(step))
    return steps


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _markdown(
    analyses: list[DatasetAnalysis],
    results: list[dict],
    config: ReportConfig,
    dropped_metrics: list[str] | None = None,
) -> str:
    multi_seed = any(an.multi_seed for an in analyses)
    lines = ["# Retrieval results", ""]
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
    test_name = {
        "welch": "Welch-Satterthwaite t test over the crossed seed and query variance",
        "bootstrap": "two-level bootstrap test",
        "randomization": "randomisation test over queries on seed-averaged scores",
        "t-test": "paired t-test over queries on seed-averaged scores",
    }[config.test]
    lines += [
        f"`>b,c`: significantly better than rows b and c on that metric ({test_name}, Holm-corrected within "
        f"each dataset and metric, alpha {config.alpha}). Differences not marked are noise. Intervals are "
        "per comparison (not multiplicity-adjusted): a pair's interval may exclude 0 while its Holm verdict "
        "is noise. Pair verdicts read a vs b: better, worse, or noise.",
        "",
    ]
    budgets = training_budgets(results)
    if budgets:
        all_steps = set().union(*budgets.values())
        if len(all_steps) == 1:
            lines += [
                f"Training budget: every fine-tuned model trained {all_steps.pop()} optimizer steps.",
                "",
            ]
        else:
            detail = ", ".join(f"{m}: {sorted(s)}" for m, s in sorted(budgets.items()))
            lines += [f"**Unequal training budgets** (optimizer steps): {detail}; compare with care.", ""]
    for an in analyses:
        lines += [f"## {an.dataset} ({len(an.queries)} queries)", ""]
        lines.append(dataset_table(an).to_markdown(index=False, disable_numparse=True))
        lines.append("")
        if an.notes:
            lines += [f"- {n}" for n in an.notes] + [""]
        if an.components:
            lines += [
                f"Minimum detectable effect ({config.power:.0%} power at alpha {config.alpha}, two-sided Welch "
                "test, t quantiles at its Welch-Satterthwaite df; a method pair "
                f"with {next(iter(an.components.values()))['seeds']} seed(s) each on these "
                f"{len(an.queries)} queries, from the observed variances):",
                "",
            ]
            mde_rows = []
            for m, c in an.components.items():
                mde_rows.append(
                    {
                        "metric": m,
                        "MDE": _fmt(c["mde"]),
                        "seed SD": _fmt(c["seed_sd"]),
                        "per-query diff SD": _fmt(c["query_sd"]),
                        "MDE with 10 seeds": _fmt(c["mde_10_seeds"]),
                        "MDE with 4x queries": _fmt(c["mde_4x_queries"]),
                    }
                )
            lines.append(pd.DataFrame(mde_rows).to_markdown(index=False, disable_numparse=True))
            lines += [
                "",
                'A true difference smaller than the MDE is likely to be reported as noise: read "noise" as '
                '"not detectable with this design", not as "equal".',
                "",
            ]
        excluded = [(s, s.results[0].get("counts", {})) for s in an.systems if s.results[0].get("counts")]
        for s, c in excluded:
            n = c.get("queries_without_judgements", 0) + c.get("queries_without_relevant", 0)
            if n:
                lines.append(
                    f"- {n} queries without relevant judgements are excluded from the averages of {s.label}."
                )
        if any(
            c.get("queries_without_judgements", 0) + c.get("queries_without_relevant", 0) for _, c in excluded
        ):
            lines.append("")
    summary = summary_tables(analyses)
    if summary:
        table, pairs = summary
        lines += ["## All datasets", "", "Mean over datasets (each dataset weighs the same):", ""]
        lines.append(table.to_markdown(index=False, floatfmt=".4f"))
        lines += ["", "Wins / ties / losses over datasets (a tie is a noise verdict):", ""]
        lines.append(pairs.to_markdown(index=False))
        lines.append("")
    lines += ["## All pairs", ""]
    tests = [t for an in analyses for t in an.pairs]
    if tests:
        df = pd.DataFrame(tests)
        df["95% CI"] = [f"[{lo:.4f}, {hi:.4f}]" for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)]
        df = df.rename(columns={"verdict": "a vs b"})
        df = df[["dataset", "metric", "a", "b", "diff", "95% CI", "p", "p_holm", "a vs b"]]
        lines.append(df.to_markdown(index=False, floatfmt=".4f"))
        noise = [t for t in tests if not t["significant"]]
        lines += [
            "",
            f"{len(tests) - len(noise)} of {len(tests)} differences are significant; "
            f"{len(noise)} are noise (Holm-adjusted p >= {config.alpha}): do not read them as wins.",
        ]
    else:
        lines.append("No pairs to test (one method per dataset, or compare=same_model with one per model).")
    return "\n".join(lines) + "\n"


def diagnostics_section(run: Path, results: list[dict[str, Any]]) -> str:
    """The "Diagnostics" section when ``make diagnose`` wrote ``diagnostics.json``: the table, and the rank
    correlation with these results (recomputed here, so it matches the results the report shows)."""
    diag = Diagnostics.find(run)
    if diag is None:
        return ""
    against = against_results(diag.table(), results, metric=diag.params.get("metric", "ndcg@10"))
    figures = [f for f in ("diagnostics.png", "diagnostics_vs_results.png") if (run / f).is_file()]
    return "\n" + diag.markdown(against) + "\n" + "".join(f"![{f}]({f})\n" for f in figures)


def render_report(config: ReportConfig) -> dict[str, Path]:
    """Write the tables, tests, MDE and plots (see the module docstring); print the Markdown; return paths."""
    run = Path(config.run_dir)
    results = load_results(run)
    metrics = [m for m in config.metrics if all(m in r["metrics"] for r in results)]
    if not metrics:
        raise ValueError(f"no result file has all of {config.metrics}; fix: evaluate with these metrics")
    dropped_metrics = [
        f"{m} (missing from {sum(m not in r['metrics'] for r in results)} of {len(results)} files)"
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
    rows = result_rows(analyses, results)
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
    markdown = _markdown(analyses, results, config, dropped_metrics) + diagnostics_section(run, results)
    paths["md"].write_text(markdown)
    plot_bars(analyses, paths["png"])
    plot_forest(analyses, config.reference, paths["forest"])
    pair = _scatter_pair(analyses[0], config)
    if pair:
        paths["scatter"] = run / "results_scatter.png"
        plot_scatter(
            seed_averaged(pair[0], metrics), seed_averaged(pair[1], metrics), metrics[0], paths["scatter"]
        )
    if plot_training_loss(run, run / "training_loss.png"):  # models' trainer_state.json, per method and seed
        paths["training_loss"] = run / "training_loss.png"
    if config.ranx:
        arrays = {
            an.dataset: {s.label: score_array(s, an.queries, an.metrics) for s in an.systems}
            for an in analyses
        }
        export = ranx_export(
            analyses, arrays, test=config.test, alpha=config.alpha, p_adjustment=config.ranx_p_adjustment
        )
        paths["ranx"] = write_ranx_export(run / RANX_FILE, export)
    if config.model_index:
        write_model_index(results, metrics)
    print(markdown)
    return paths
