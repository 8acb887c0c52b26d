"""The diagnostics figures: ``diagnostics.png`` (hardness ECDFs, ECI, probe AUC) and, when the run has trained
results, ``diagnostics_vs_results.png`` (each diagnostic against the trained metric, one point per method)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hardneg.diagnose.against import DIAGNOSTICS
from hardneg.diagnose.record import Diagnostics
from hardneg.report.plots import pyplot

LABELS = {
    "eci": "ECI (v1, hardneg's reading)",
    "eci_sem": "ECI_sem (hardneg's reading)",
    "at_or_above": "share of negatives >= positive",
    "margin_mean": "mean s(q,n) - s(q,p)",
    "probe_auc": "source probe AUC",
    "diversity": "diversity",
}


def _ecdf(ax, values: np.ndarray, label: str, **kw) -> None:
    x = np.sort(values)
    ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=label, **kw)


def plot_diagnostics(diag: Diagnostics, run_dir: str | Path) -> list[Path]:
    """Write the figures into ``run_dir``; returns their paths."""
    plt = pyplot()
    run_dir = Path(run_dir)
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(diag.configs)}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    _hardness_panel(axes[0, 0], diag, colors)
    _safety_panel(axes[0, 1], diag)
    _eci_panel(axes[1, 0], diag, colors)
    _probe_panel(axes[1, 1], diag)
    fig.suptitle(
        f"Diagnostics of {diag.dataset} (frozen {diag.target_encoder}, before any training)", fontsize=11
    )
    fig.tight_layout()
    path = run_dir / "diagnostics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths = [path]
    if diag.against_results:
        paths.append(plot_against(diag, run_dir / "diagnostics_vs_results.png"))
    return paths


def _hardness_panel(ax, diag: Diagnostics, colors: dict) -> None:
    """ECDF per config of the target encoder's s(q, n) - s(q, p)."""
    for n, c in diag.configs.items():
        margin = np.asarray(c.per_row.get("margin", []), dtype=float)
        if len(margin):
            _ecdf(ax, margin, f"{n} (n={len(margin)})", color=colors[n])
    ax.axvline(0, color="0.3", lw=0.8, ls=":")
    ax.set_xlabel("s(q, negative) - s(q, positive), frozen target encoder (cosine)")
    ax.set_ylabel("share of rows")
    ax.set_title(
        f"Hardness under {diag.target_encoder}\n(right of the dotted line: negative at or above positive)",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")


def _safety_panel(ax, diag: Diagnostics) -> None:
    """Per config: the share of negatives at or above the positive, by the target encoder and the FN scorer."""
    names_fn = [n for n, c in diag.configs.items() if c.fn_scorer.get("at_or_above") is not None]
    y = np.arange(len(names_fn))
    vals = [diag.configs[n].fn_scorer["at_or_above"] for n in names_fn]
    enc = [diag.configs[n].hardness.get("at_or_above") or 0 for n in names_fn]
    ax.barh(y - 0.2, enc, height=0.4, color="0.6", label=f"target encoder ({diag.target_encoder})")
    ax.barh(y + 0.2, vals, height=0.4, color="tab:red", label=f"false-negative scorer ({diag.fn_scorer})")
    for yy, v in [*zip(y - 0.2, enc, strict=True), *zip(y + 0.2, vals, strict=True)]:
        ax.text(v + 0.01, yy, f"{v:.0%}", va="center", fontsize=8)
    ax.set_yticks(y, names_fn)
    ax.set_xlabel("share of negatives scored at or above their positive", fontsize=9)
    ax.set_title("Safety: how often the negative beats the positive", fontsize=9)
    ax.set_xlim(0, 1.08)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)


def _eci_panel(ax, diag: Diagnostics, colors: dict) -> None:
    """Per config: ECI (solid) and ECI_sem (hatched, own axis)."""
    names = list(diag.configs)
    x = np.arange(len(names))
    eci = [diag.configs[n].eci.get("eci") or 0 for n in names]
    sem = [diag.configs[n].eci_sem.get("eci_sem") or 0 for n in names]
    ax.bar(x - 0.2, eci, width=0.4, color=[colors[n] for n in names], label="ECI v1")
    ax2 = ax.twinx()
    ax2.bar(
        x + 0.2, sem, width=0.4, color=[colors[n] for n in names], alpha=0.45, hatch="//", label="ECI_sem"
    )
    ax.set_xticks(x, names)
    ax.set_ylabel("ECI (solid)")
    ax2.set_ylabel("ECI_sem (hatched)")
    ax.set_title("ECI and ECI_sem (hardneg's reading of arXiv 2603.20990; docs/diagnostics.md)", fontsize=9)


def _probe_panel(ax, diag: Diagnostics) -> None:
    """Per probed config: the source probe's AUC with its DeLong interval (and conditioned on the query)."""
    probed = [n for n in diag.configs if diag.configs[n].probe.get("auc") is not None]
    if probed:
        auc = np.array([diag.configs[n].probe["auc"] for n in probed])
        lo = auc - np.array([diag.configs[n].probe["low"] for n in probed])
        hi = np.array([diag.configs[n].probe["high"] for n in probed]) - auc
        ax.errorbar(
            auc,
            np.arange(len(probed)),
            xerr=[lo, hi],
            fmt="o",
            color="k",
            capsize=3,
            label="negative text alone",
        )
        qa = [diag.configs[n].probe_query.get("auc") for n in probed]
        if all(v is not None for v in qa):
            ax.plot(
                qa, np.arange(len(probed)) + 0.15, "s", color="tab:orange", label="conditioned on the query"
            )
        ax.set_yticks(np.arange(len(probed)), probed)
        ax.set_ylim(-0.6, len(probed) - 0.3)
        ax.axvline(0.5, color="0.3", lw=0.8, ls=":")
        ax.set_xlim(0.3, 1.02)
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, diag.probe_note or "no probe", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("ROC AUC, LLM-written vs corpus passages (DeLong 95% CI)")
    ax.set_title("Source detectability (CausalNeg's shortcut): 0.5 = indistinguishable", fontsize=9)


def plot_against(diag: Diagnostics, path: Path) -> Path:
    """One panel per diagnostic: the methods' diagnostic vs their trained metric (seed mean and each seed)."""
    plt = pyplot()
    block = diag.against_results[0]
    metric = block["metric"]
    keys = [k for k in DIAGNOSTICS if all(p.get(k) is not None for p in block["points"])]
    cols = 3
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.3 * rows), squeeze=False)
    rho = {c["diagnostic"]: c for c in block["correlations"]}
    for ax, key in zip(axes.flat, keys, strict=False):
        for i, p in enumerate(block["points"]):
            color = plt.cm.tab10(i % 10)
            ax.scatter([p[key]] * len(p["per_seed"]), p["per_seed"], color=color, alpha=0.35, s=14)
            ax.scatter([p[key]], [p[metric]], color=color, s=50, label=p["method"], edgecolor="k")
        c = rho.get(key, {})
        if c.get("rho") is None:
            line = "no rank correlation (too few methods or a constant diagnostic)"
        else:
            line = f"rho={c['rho']:.2f}  95% CI [{c['low']:.2f}, {c['high']:.2f}]  p={c['p']:.3f}"
        ax.set_title(f"{LABELS[key]}\n{line}", fontsize=8)
        ax.set_xlabel(LABELS[key], fontsize=8)
        ax.set_ylabel(f"{metric} (fine-tuned)", fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{block['dataset']}: {block['statement']}", fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
