"""The report's analysis: result records grouped into systems, per-dataset bootstrap intervals, pair tests
with Holm verdicts, variance components and the minimum detectable effect, and the flat rows of the tables.

Statistics (docs/evaluation.md): seeds and queries are crossed. Pairs are tested with a studentized
Welch-Satterthwaite t test over the query and per-method seed variance components
(``hardneg.metrics.welch_pair``; interval d +- t SE), Holm-corrected within each (dataset, metric); a
trained method with one seed borrows the pooled seed variance of the others. Per-method intervals come
from a two-level bootstrap (seeds, then queries, paired across methods).
"""

from __future__ import annotations

import itertools
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hardneg.metrics import (
    bootstrap_p_value,
    holm,
    paired_test,
    seed_terms,
    two_level_bootstrap,
    variance_components,
    welch_pair,
)
from hardneg.records import EvalResult
from hardneg.report.config import ReportConfig


def load_results(run_dir: str | Path) -> list[EvalResult]:
    """Every result file of a run (``EvalResult.from_disk``), sorted by (dataset, model, method, seed)."""
    folder = Path(run_dir) / "results"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"no result files in {folder}; fix: run `python evaluation/evaluate.py --config ... --run_dir {run_dir}` first"
        )
    fix = "delete it and rerun evaluation/evaluate.py (it rewrites missing results)"
    results = [EvalResult.from_disk(f, fix) for f in files]
    return sorted(results, key=lambda r: (r.dataset, r.model, r.method, _seed_order(r.seed)))


def _seed_order(seed: int | None) -> int:
    return -1 if seed is None else int(seed)


# ---------------------------------------------------------------------------------------------------------
# one dataset: the methods' score arrays on common queries, bootstrap, pairs


@dataclass
class System:
    """One method of one base model on one dataset: its result records (one per seed)."""

    model: str
    method: str
    results: list[EvalResult]
    label: str = ""
    letter: str = ""

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.results]


def group_systems(results: list[EvalResult]) -> dict[str, list[System]]:
    """``{dataset: [System, ...]}``; a system's label is its method, or ``model / method`` when two base
    models share a method name; letters a, b, c ... in table order."""
    by_key: dict[tuple[str, str, str], list[EvalResult]] = {}
    for r in results:
        by_key.setdefault((r.dataset, r.model, r.method), []).append(r)
    methods_models: dict[str, set[str]] = {}
    for _, model, method in by_key:
        methods_models.setdefault(method, set()).add(model)
    out: dict[str, list[System]] = {}
    for (dataset, model, method), rs in by_key.items():
        seeds = [r.seed for r in rs]
        if len(set(seeds)) != len(seeds) or (None in seeds and len(seeds) > 1):
            stale = [r.file_name for r in rs if r.seed is None] or [r.file_name for r in rs]
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
    sets = [set(r.per_query) for s in systems for r in s.results]
    return sorted(set.intersection(*sets)) if sets else []


def score_array(system: System, queries: list[str], metrics: list[str]) -> np.ndarray:
    """(seeds, queries, metrics) per-query scores of a system; a non-finite score is an error naming the
    file, metric and query (a NaN would otherwise count as a significant difference)."""
    x = np.array(
        [[[r.per_query[q][m] for m in metrics] for q in queries] for r in system.results], dtype=np.float64
    )
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, q, m = bad[0]
        raise ValueError(
            f"{system.results[i].file_name}: non-finite per-query {metrics[m]} for {queries[q]} "
            f"({len(bad)} non-finite scores in all); fix: re-evaluate it (overwrite=true)"
        )
    return x


def dropped_queries(systems: list[System], queries: list[str]) -> dict[str, int]:
    """Per system label: queries some of its result files scored that are not in the common ``queries``."""
    keep = set(queries)
    return {s.label: max(len(set(r.per_query) - keep) for r in s.results) for s in systems}


@dataclass
class DatasetAnalysis:
    """Everything the report says about one dataset; ``arrays``: each system's (seeds, queries, metrics)
    scores on the common ``queries`` (``score_array``), kept for the ranx export."""

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
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def analyse_dataset(
    dataset: str, systems: list[System], metrics: list[str], config: ReportConfig
) -> DatasetAnalysis:
    """Score arrays on the common queries -> bootstrap replicates (with borrowed seed variance) -> per-method
    summary -> pair tests with Holm verdicts -> variance components and MDE."""
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
    notes = _borrow_seed_variance(systems, terms, reps, config.seed)
    notes += _design_notes(systems, trained, multi_seed)
    dropped = dropped_queries(systems, queries)
    if any(dropped.values()):
        detail = ", ".join(f"{k}: {n}" for k, n in dropped.items() if n)
        union = set().union(*(r.per_query for s in systems for r in s.results))
        notes.append(
            f"{len(union) - len(queries)} queries scored by only some methods are left out (paired design; "
            f"per method: {detail})."
        )
    summary = _summary_rows(dataset, systems, arrays, reps, metrics, len(queries))
    pairs = _pair_rows(dataset, systems, arrays, reps, terms, metrics, len(queries), config)
    _holm_verdicts(pairs, metrics, config.alpha)
    components = _components(dataset, arrays, metrics, config) if len(systems) >= 2 else {}
    return DatasetAnalysis(
        dataset,
        systems,
        queries,
        metrics,
        summary,
        pairs,
        components,
        multi_seed,
        dropped,
        notes,
        arrays=arrays,
    )


def _borrow_seed_variance(systems: list[System], terms: dict, reps: dict, seed: int) -> list[str]:
    """A method with one training run: its replicates get the pooled seed luck too (``reps`` in place)."""
    notes = []
    rng = np.random.default_rng(seed + 1)
    for s in systems:
        if terms[s.label].borrowed:
            sd = np.sqrt(terms[s.label].var)
            reps[s.label] = reps[s.label] + rng.normal(0.0, 1.0, reps[s.label].shape) * sd
            notes.append(
                f"{s.label}: 1 training seed; seed variance borrowed from the other methods "
                f"(pooled, {terms[s.label].df:.0f} df)."
            )
    return notes


def _design_notes(systems: list[System], trained: dict[str, bool], multi_seed: bool) -> list[str]:
    notes = []
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
    return notes


def _summary_rows(
    dataset: str, systems: list[System], arrays: dict, reps: dict, metrics: list[str], n_queries: int
) -> list[dict[str, Any]]:
    """Per system and metric: the mean over seeds, the seed SD and the bootstrap 95% interval."""
    summary = []
    for s in systems:
        seed_means = arrays[s.label].mean(axis=1)  # (seeds, metrics)
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
                    "queries": n_queries,
                }
            )
    return summary


def _pair_p(a: np.ndarray, b: np.ndarray, diff_reps: np.ndarray, observed, welch, config: ReportConfig):
    """(p-values, interval low, interval high) per metric of one pair under ``config.test``."""
    lo, hi = np.percentile(diff_reps, [2.5, 97.5], axis=0)
    if config.test == "welch":
        return welch.p, welch.ci_low, welch.ci_high
    if config.test == "bootstrap":
        return bootstrap_p_value(diff_reps, observed), lo, hi
    avg_a, avg_b = a.mean(axis=0), b.mean(axis=0)
    p = [
        paired_test(avg_a[:, j], avg_b[:, j], test=config.test, n_resamples=config.n_resamples)
        for j in range(a.shape[2])
    ]
    return p, lo, hi


def _pair_rows(
    dataset: str,
    systems: list[System],
    arrays: dict,
    reps: dict,
    terms: dict,
    metrics: list[str],
    n_queries: int,
    config: ReportConfig,
) -> list[dict[str, Any]]:
    """Every pair of systems (``compare``) and metric: the difference, its interval and p-value."""
    pairs = []
    for a, b in itertools.combinations(systems, 2):
        if config.compare == "same_model" and a.model != b.model:
            continue
        xa, xb = arrays[a.label], arrays[b.label]
        observed = xa.mean(axis=(0, 1)) - xb.mean(axis=(0, 1))
        welch = welch_pair(xa, xb, terms[a.label], terms[b.label], alpha=0.05)
        p, lo, hi = _pair_p(xa, xb, reps[a.label] - reps[b.label], observed, welch, config)
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
                    "mean_a": float(xa[:, :, j].mean()),
                    "mean_b": float(xb[:, :, j].mean()),
                    "diff": float(observed[j]),
                    "ci_low": float(lo[j]),
                    "ci_high": float(hi[j]),
                    "seeds_a": len(a.results),
                    "seeds_b": len(b.results),
                    "queries": n_queries,
                    "se": float(welch.se[j]),
                    "df": float(welch.df[j]),
                    "test": config.test,
                    "p": float(p[j]),
                }
            )
    return pairs


def _holm_verdicts(pairs: list[dict[str, Any]], metrics: list[str], alpha: float) -> None:
    """Holm-adjusted p-values within each metric's family, and the verdicts (better / worse / noise)."""
    for m in metrics:
        family = [t for t in pairs if t["metric"] == m]
        for t, p_adj in zip(family, holm([t["p"] for t in family]), strict=True):
            t["p_holm"] = p_adj
            t["significant"] = bool(p_adj < alpha)
            t["verdict"] = ("better" if t["diff"] > 0 else "worse") if t["significant"] else "noise"


def _components(
    dataset: str, arrays: dict, metrics: list[str], config: ReportConfig
) -> dict[str, dict[str, Any]]:
    """Per metric: the variance components and the minimum detectable effect of the design."""
    components = {}
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
    return components


# ---------------------------------------------------------------------------------------------------------
# rows and tables


def result_rows(analyses: list[DatasetAnalysis]) -> list[dict[str, Any]]:
    """One flat row per (model, method, dataset): means over seeds, then seeds/queries/intervals."""
    rows = []
    for an in analyses:
        for s in an.systems:
            stats = {t["metric"]: t for t in an.summary if t["label"] == s.label}
            c = s.results[0].counts
            row = {"model": s.model, "method": s.method, "dataset": an.dataset}
            row.update({m: round(stats[m]["mean"], 6) for m in an.metrics})
            row.update(
                {
                    "seeds": len(s.results),
                    "queries": len(an.queries),
                    "queries_dropped": an.dropped.get(s.label, 0),
                    "queries_excluded": c.get("queries_without_judgements", 0)
                    + c.get("queries_without_relevant", 0)
                    - c.get("queries_without_relevant_scored_zero", 0),
                }
            )
            for m in an.metrics:
                sd = stats[m]["seed_sd"]
                row[f"{m}_seed_sd"] = None if sd is None else round(sd, 6)
                row[f"{m}_ci_low"] = round(stats[m]["ci_low"], 6)
                row[f"{m}_ci_high"] = round(stats[m]["ci_high"], 6)
            rows.append(row)
    return rows


def per_seed_rows(results: list[EvalResult], metrics: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "model": r.model,
            "method": r.method,
            "seed": r.seed,
            "dataset": r.dataset,
            **{m: r.metrics.get(m) for m in metrics},
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


def reference_system(an: DatasetAnalysis, reference: str) -> System:
    """The system whose method (or label) is ``reference``; else the first one."""
    return next((s for s in an.systems if reference in (s.method, s.label)), an.systems[0])


def seed_averaged(system: System, metrics: list[str]) -> EvalResult:
    """A result whose per-query scores are the mean over the system's seeds."""
    queries = sorted(set.intersection(*(set(r.per_query) for r in system.results)))
    per_query = {
        q: {m: float(np.mean([r.per_query[q][m] for r in system.results])) for m in metrics} for q in queries
    }
    return EvalResult(
        model=system.model, method=system.method, dataset=system.results[0].dataset, per_query=per_query
    )
