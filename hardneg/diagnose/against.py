"""Did the diagnostics predict what training showed? Rank correlation across methods, with its uncertainty.

For each evaluation dataset and each diagnostic (ECI, ECI_sem, share at or above the positive, mean margin,
probe AUC, diversity), Spearman's rho between the configs' diagnostic and their fine-tuned models' metric
(mean over training seeds), with

- a bootstrap interval that resamples each method's training seeds (how much seed noise moves rho);
- an exact permutation p-value (every ordering of the methods, up to 8; a Monte Carlo one beyond);
- ``rho_seeds``: rho over every (method, seed) point; seeds of one method share its diagnostic, so these points
  are not independent and this is descriptive only;
- the plain statement of what the sample can support: with ``n`` methods the smallest two-sided p-value any
  ranking can reach is ``2 / n!`` (0.083 with 4 methods), so below 5 methods no correlation can be significant
  at 0.05, whatever its size.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from hardneg.records import EvalResult

DIAGNOSTICS = ("eci", "eci_sem", "at_or_above", "margin_mean", "probe_auc", "diversity")


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    if len(set(np.round(x, 12))) < 2 or len(set(np.round(y, 12))) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def permutation_p(
    x: np.ndarray, y: np.ndarray, *, exact_up_to: int = 8, n_resamples: int = 20000, seed: int = 0
) -> float:
    """Two-sided permutation p-value of Spearman's rho (exact over all orderings up to ``exact_up_to`` items)."""
    observed = abs(_rho(x, y))
    if not np.isfinite(observed):
        return float("nan")
    if len(y) <= exact_up_to:
        perms = [np.asarray(p) for p in itertools.permutations(range(len(y)))]
    else:
        rng = np.random.default_rng(seed)
        perms = [rng.permutation(len(y)) for _ in range(n_resamples)]
    hits = sum(abs(_rho(x, y[p])) >= observed - 1e-12 for p in perms)
    return hits / len(perms)


def smallest_p(n: int) -> float:
    """The smallest two-sided permutation p-value of a rank correlation over ``n`` distinct items."""
    return 1.0 if n < 2 else min(1.0, 2 / math.factorial(n))


def statement(n: int, seeds: int, alpha: float = 0.05) -> str:
    """What a sample of ``n`` methods (``seeds`` training seeds each) can support, in one plain sentence."""
    if n < 3:
        return f"{n} method(s) with both diagnostics and trained results: too few for any rank correlation."
    p = smallest_p(n)
    if p > alpha:
        return (
            f"With {n} methods the smallest p-value any ranking can reach is {p:.3f} (> {alpha}): this sample "
            "cannot support a claim that any diagnostic predicts the trained result, whatever rho shows; "
            "it needs at least 5 methods (more for a useful interval)."
        )
    return (
        f"{n} methods x {seeds} seed(s): permutation p-values below; with this few methods the correlations are "
        "exploratory, and a single method can flip them."
    )


def against_results(
    table: list[dict[str, Any]],
    results: list[EvalResult],
    *,
    metric: str = "ndcg@10",
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One record per evaluation dataset: the points (diagnostics and metric per method) and the correlations.

    ``table``: ``Diagnostics.table()`` (one row per config); ``results``: ``hardneg.report.load_results``.
    A method counts when a result's ``method`` names a diagnosed config. The seed bootstrap is drawn once per
    dataset and shared by every diagnostic, so their intervals come from the same resamples."""
    by_config = {row["config"]: row for row in table}
    out = []
    rng = np.random.default_rng(seed)
    for ds in sorted({r.dataset for r in results}):
        per_method: dict[str, list[float]] = {}
        for r in results:
            if r.dataset == ds and r.method in by_config and metric in r.metrics:
                per_method.setdefault(r.method, []).append(float(r.metrics[metric]))
        methods = sorted(per_method)
        if not methods:
            continue
        seeds = min(len(v) for v in per_method.values())
        means = np.array([np.mean(per_method[m]) for m in methods])
        boot_means = _seed_bootstrap(per_method, methods, n_resamples, rng) if len(methods) >= 3 else None
        correlations = [
            _correlation(key, by_config, per_method, methods, means, boot_means, alpha, seed)
            for key in DIAGNOSTICS
            if len(methods) >= 3 and all(by_config[m].get(key) is not None for m in methods)
        ]
        out.append(
            {
                "dataset": ds,
                "metric": metric,
                "methods": len(methods),
                "seeds": seeds,
                "smallest_p": _round(smallest_p(len(methods))),
                "statement": statement(len(methods), seeds, alpha),
                "points": [
                    {
                        "method": m,
                        metric: _round(float(means[i])),
                        "per_seed": [_round(v) for v in per_method[m]],
                        **{k: by_config[m].get(k) for k in DIAGNOSTICS},
                    }
                    for i, m in enumerate(methods)
                ],
                "correlations": correlations,
            }
        )
    return out


def _seed_bootstrap(
    per_method: dict[str, list[float]], methods: list[str], n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_resamples, methods): each method's mean over its training seeds drawn with replacement."""
    return np.array(
        [
            [np.mean(rng.choice(per_method[m], size=len(per_method[m]))) for m in methods]
            for _ in range(n_resamples)
        ]
    )


def _correlation(
    key: str,
    by_config: dict[str, dict[str, Any]],
    per_method: dict[str, list[float]],
    methods: list[str],
    means: np.ndarray,
    boot_means: np.ndarray,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """Spearman's rho of one diagnostic with the metric: its seed-bootstrap interval, permutation p-value and
    the descriptive rho over every (method, seed) point."""
    x = np.asarray([by_config[m].get(key) for m in methods], dtype=np.float64)
    boot = np.asarray([_rho(x, y) for y in boot_means])
    boot = boot[np.isfinite(boot)]
    lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if len(boot) else (np.nan, np.nan)
    xs = np.concatenate([[x[i]] * len(per_method[m]) for i, m in enumerate(methods)])
    ys = np.concatenate([per_method[m] for m in methods])
    return {
        "diagnostic": key,
        "rho": _round(_rho(x, means)),
        "low": _round(lo),
        "high": _round(hi),
        "p": _round(permutation_p(x, means, seed=seed)),
        "rho_seeds": _round(_rho(xs, ys)),
    }


def _round(x: float, digits: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)
