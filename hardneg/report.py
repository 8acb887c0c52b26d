"""The comparison report: paper-style table, paired significance tests, plots, model-card metadata.

Reads every ``<run_dir>/results/*.json`` written by ``hardneg.evaluate`` and writes

- ``results.json``: one row per (model, method, dataset): ``model, method, dataset`` + each metric
  (``ndcg@10, p@10, recall@100, map@100, mrr@10``) + ``queries`` (how many queries were averaged);
- ``results.csv`` (same rows) and ``results.md`` (the table: rows model x method, columns dataset x metric
  plus the average over datasets; then every pairwise test, saying which differences are noise);
- ``significance.json`` / ``significance.csv``: paired tests between the methods of each base model on a
  dataset (``compare=all``: every two rows), per metric, Holm-corrected within each (dataset, metric) family;
- ``results.png`` (grouped bars per dataset) and ``results_scatter.png`` (per-query scores of two methods).

Significance: a difference is called real only when the Holm-adjusted p-value of a paired test over the
same queries is below ``alpha``; otherwise the report says it is noise (the paper's versions drew opposite
conclusions from differences of this size).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hardneg.curves import plot_training_loss
from hardneg.metrics import holm, paired_test

TABLE_METRICS = ("ndcg@10", "p@10", "recall@100")


@dataclass
class ReportConfig:
    """What to render from a run folder."""

    run_dir: str = field(default="runs/demo", metadata={"help": "Run folder holding results/*.json."})
    metrics: list[str] = field(
        default_factory=lambda: list(TABLE_METRICS), metadata={"help": "Metrics in the table and the tests."}
    )
    test: str = field(
        default="randomization", metadata={"help": "Paired test over queries: randomization or t-test."}
    )
    n_resamples: int = field(
        default=10_000, metadata={"help": "Random sign flips of the randomisation test."}
    )
    alpha: float = field(default=0.05, metadata={"help": "Significance level after Holm correction."})
    baseline: str = field(
        default="zero-shot",
        metadata={"help": "Method the table marks significant differences against (* better, - worse)."},
    )
    compare: str = field(
        default="same_model",
        metadata={"help": "Pairs to test: same_model (methods of one base model) or all (every two rows)."},
    )
    scatter: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Two methods for the per-query scatter (default: the best method vs the baseline)."
        },
    )
    model_index: bool = field(
        default=False,
        metadata={"help": "Write each local model folder's results into its README model-index metadata."},
    )

    def __post_init__(self) -> None:
        if self.test not in ("randomization", "t-test"):
            raise ValueError(f"unknown test '{self.test}'; fix: use randomization or t-test")
        if self.scatter and len(self.scatter) != 2:
            raise ValueError(
                f"scatter needs exactly two methods, got {self.scatter}; fix: e.g. llm_hn zero-shot"
            )
        if self.compare not in ("same_model", "all"):
            raise ValueError(f"unknown compare '{self.compare}'; fix: use same_model or all")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")


def load_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every result file of a run, sorted by (dataset, model, method)."""
    folder = Path(run_dir) / "results"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"no result files in {folder}; fix: run `python evaluation/evaluate.py --config ... --run_dir {run_dir}` first"
        )
    results = [json.loads(f.read_text()) for f in files]
    return sorted(results, key=lambda r: (r["dataset"], r["model"], r["method"]))


def result_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows: model, method, dataset, every metric, queries averaged, queries excluded."""
    rows = []
    for r in results:
        c = r.get("counts", {})
        rows.append(
            {
                "model": r["model"],
                "method": r["method"],
                "dataset": r["dataset"],
                **{k: round(float(v), 6) for k, v in r["metrics"].items()},
                "queries": c.get("queries_evaluated"),
                "queries_excluded": c.get("queries_without_judgements", 0)
                + c.get("queries_without_relevant", 0),
            }
        )
    return rows


def significance(
    results: list[dict[str, Any]],
    metrics: list[str],
    *,
    test: str = "randomization",
    n_resamples: int = 10_000,
    alpha: float = 0.05,
    compare: str = "same_model",
) -> list[dict[str, Any]]:
    """Paired tests between rows of the same dataset (``same_model``: only methods of one base model;
    ``all``: every two rows), per metric, Holm-corrected within each (dataset, metric) family."""
    out = []
    by_dataset: dict[str, list[dict]] = {}
    for r in results:
        by_dataset.setdefault(r["dataset"], []).append(r)
    for dataset, rs in by_dataset.items():
        for metric in metrics:
            family = []
            for a, b in itertools.combinations(rs, 2):
                if compare == "same_model" and a["model"] != b["model"]:
                    continue
                common = sorted(set(a["per_query"]) & set(b["per_query"]))
                if not common or metric not in a["metrics"] or metric not in b["metrics"]:
                    continue
                xa = [a["per_query"][q][metric] for q in common]
                xb = [b["per_query"][q][metric] for q in common]
                p = paired_test(xa, xb, test=test, n_resamples=n_resamples)
                family.append(
                    {
                        "dataset": dataset,
                        "metric": metric,
                        "a": f"{a['model']} / {a['method']}",
                        "b": f"{b['model']} / {b['method']}",
                        "a_method": a["method"],
                        "b_method": b["method"],
                        "a_model": a["model"],
                        "b_model": b["model"],
                        "mean_a": sum(xa) / len(xa),
                        "mean_b": sum(xb) / len(xb),
                        "diff": (sum(xa) - sum(xb)) / len(xa),
                        "queries": len(common),
                        "test": test,
                        "p": p,
                    }
                )
            for row, p_adj in zip(family, holm([f["p"] for f in family]), strict=True):
                row["p_holm"] = p_adj
                row["significant"] = p_adj < alpha
                side = "a" if row["diff"] > 0 else "b"
                winner = row[f"{side}_method"] if row["a_model"] == row["b_model"] else row[side]
                row["verdict"] = f"{winner} better" if row["significant"] else "noise"
            out += family
    return out


def paper_table(rows: list[dict], metrics: list[str], tests: list[dict], baseline: str) -> pd.DataFrame:
    """Rows model x method; columns (dataset, metric) + (average, metric); values as text, with ``*``
    (``-``) where a row is significantly better (worse) than ``baseline`` on that dataset and metric."""
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index=["model", "method"], columns="dataset", values=metrics, aggfunc="first")
    wide = wide.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    table = wide
    if df["dataset"].nunique() > 1:
        avg = df.groupby(["model", "method"])[metrics].mean()
        avg.columns = pd.MultiIndex.from_product([["average"], metrics])
        table = pd.concat([wide, avg], axis=1)
    marks: dict[tuple, str] = {}
    for t in tests:
        if not t["significant"]:
            continue
        for me, other, sign in (("a", "b", 1), ("b", "a", -1)):
            if t[f"{other}_method"] == baseline and t[f"{me}_method"] != baseline:
                better = t["diff"] * sign > 0
                marks[(t[f"{me}_model"], t[f"{me}_method"], t["dataset"], t["metric"])] = (
                    "*" if better else "-"
                )
    text = table.copy().astype(object)
    for (model, method), row in table.iterrows():
        for ds, metric in table.columns:
            v = row[(ds, metric)]
            text.loc[(model, method), (ds, metric)] = (
                "" if pd.isna(v) else f"{v:.4f}{marks.get((model, method, ds, metric), '')}"
            )
    return text


def plot_bars(rows: list[dict], metrics: list[str], path: Path) -> None:
    """Grouped bars: one panel per dataset, one group per metric, one bar per (model, method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(rows)
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(6, 5 * len(datasets)), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        sub = df[df["dataset"] == ds]
        labels = [f"{m} / {me}" for m, me in zip(sub["model"], sub["method"], strict=True)]
        width = 0.8 / max(1, len(sub))
        for i, (label, (_, r)) in enumerate(zip(labels, sub.iterrows(), strict=True)):
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(xs, [r[m] for m in metrics], width, label=label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], metrics)
        ax.set_title(ds)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scatter(a: dict, b: dict, metric: str, path: Path) -> None:
    """Per-query ``metric`` of result ``a`` (x) vs ``b`` (y) on the same queries, with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def _markdown(table: pd.DataFrame, tests: list[dict], rows: list[dict], config: ReportConfig) -> str:
    flat = table.copy()
    flat.columns = [f"{ds} {m}" for ds, m in flat.columns]
    flat = flat.reset_index()
    lines = [
        "# Retrieval results",
        "",
        flat.to_markdown(index=False, disable_numparse=True),
        "",
        f"`*` / `-`: significantly better / worse than `{config.baseline}` on that dataset and metric "
        f"({config.test} test over queries, Holm-corrected, alpha {config.alpha}). Unmarked differences are noise.",
        "",
    ]
    excluded = [r for r in rows if r.get("queries_excluded")]
    for r in excluded:
        lines.append(
            f"- {r['dataset']}: {r['queries_excluded']} queries without relevant judgements are excluded from "
            f"the averages of {r['model']} / {r['method']} ({r['queries']} averaged)."
        )
    lines += ["", "## Paired significance tests", ""]
    if tests:
        df = pd.DataFrame(tests)[["dataset", "metric", "a", "b", "diff", "p", "p_holm", "verdict"]]
        lines.append(df.to_markdown(index=False, floatfmt=".4f"))
        noise = [t for t in tests if not t["significant"]]
        lines += [
            "",
            f"{len(tests) - len(noise)} of {len(tests)} differences are significant; "
            f"{len(noise)} are noise (Holm-adjusted p >= {config.alpha}): do not read them as wins.",
        ]
    else:
        lines.append(
            "No pairs to test (no two methods of the same model on a dataset; compare=all tests every pair)."
        )
    return "\n".join(lines) + "\n"


def render_report(config: ReportConfig) -> dict[str, Path]:
    """Write results.{json,csv,md,png}, results_scatter.png and significance.{json,csv}; return paths."""
    run = Path(config.run_dir)
    results = load_results(run)
    metrics = [m for m in config.metrics if all(m in r["metrics"] for r in results)]
    if not metrics:
        raise ValueError(f"no result file has all of {config.metrics}; fix: evaluate with these metrics")
    rows = result_rows(results)
    tests = significance(
        results,
        metrics,
        test=config.test,
        n_resamples=config.n_resamples,
        alpha=config.alpha,
        compare=config.compare,
    )
    table = paper_table(rows, metrics, tests, config.baseline)
    paths = {
        "json": run / "results.json",
        "csv": run / "results.csv",
        "md": run / "results.md",
        "png": run / "results.png",
        "significance_json": run / "significance.json",
        "significance_csv": run / "significance.csv",
    }
    paths["json"].write_text(json.dumps(rows, indent=1))
    pd.DataFrame(rows).to_csv(paths["csv"], index=False)
    paths["significance_json"].write_text(json.dumps(tests, indent=1))
    pd.DataFrame(tests).to_csv(paths["significance_csv"], index=False)
    markdown = _markdown(table, tests, rows, config)
    paths["md"].write_text(markdown)
    plot_bars(rows, metrics, paths["png"])
    pair = _scatter_pair(results, config)
    if pair:
        paths["scatter"] = run / "results_scatter.png"
        plot_scatter(pair[0], pair[1], metrics[0], paths["scatter"])
    if plot_training_loss(run, run / "training_loss.png"):  # models' trainer_state.json, per method and seed
        paths["training_loss"] = run / "training_loss.png"
    if config.model_index:
        write_model_index(results, metrics)
    print(markdown)
    return paths


def _scatter_pair(results: list[dict], config: ReportConfig) -> tuple[dict, dict] | None:
    first = results[0]["dataset"]
    rs = [r for r in results if r["dataset"] == first]
    if config.scatter:
        pick = [next((r for r in rs if r["method"] == m), None) for m in config.scatter]
        if None in pick:
            raise ValueError(f"scatter methods {config.scatter} not all in the results of {first}")
        return pick[0], pick[1]
    if len(rs) < 2:
        return None
    metric = config.metrics[0]
    base = next((r for r in rs if r["method"] == config.baseline), None)
    ranked = sorted((r for r in rs if r is not base), key=lambda r: -r["metrics"].get(metric, 0))
    return (base, ranked[0]) if base else (ranked[1], ranked[0])
