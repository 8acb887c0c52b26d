"""Source detectability (CausalNeg's "source-dependent shortcut", arXiv 2606.01304): can a linear probe on frozen
embeddings tell LLM-written negatives from corpus passages?

CausalNeg names the failure mode (a retriever "distinguishes negatives by origin rather than relevance") and
counters it in training by minimising the mutual information between source identity and similarity scores.
It does not, as far as hardneg could read (its abstract), publish a probe; this probe is hardneg's
measurement of how separable the two sources are to a linear model, docs/diagnostics.md:

- ``probe_auc``: logistic regression (scikit-learn) on the negative text's embedding alone, out-of-fold
  scores from stratified k-fold cross-validation, ROC AUC with DeLong's 95% interval of those scores. 0.5: the sources look the same to the encoder; 1.0: perfectly separable.
- the same conditioned on the query: features ``[n, q * n]`` (the negative and its elementwise interaction
  with the query), folds grouped by query so no query is on both sides.

Everything runs once on the whole folder; a config's AUC is its own LLM rows' out-of-fold scores against all
corpus rows'.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC (ties count half), as ``sklearn.metrics.roc_auc_score``."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def auc_interval(y: np.ndarray, score: np.ndarray, *, level: float = 0.95) -> list[float]:
    """DeLong's interval of the AUC (DeLong, DeLong & Clarke-Pearson 1988, in the fast mid-rank form of Sun & Xu
    2014): the AUC's variance from its per-row structural components, O(n log n), so 100k rows cost nothing."""
    from scipy.stats import norm, rankdata

    pos, neg = score[y == 1], score[y == 0]
    m, n = len(pos), len(neg)
    tz = rankdata(np.concatenate([pos, neg]))
    value = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:m] - rankdata(pos)) / n  # per positive: share of negatives it beats
    v01 = 1 - (tz[m:] - rankdata(neg)) / m  # per negative: share of positives that beat it
    se = np.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n) if m > 1 and n > 1 else np.nan
    z = norm.ppf(0.5 + level / 2)
    lo, hi = max(0.0, value - z * se), min(1.0, value + z * se)
    return [round(float(lo), 4), round(float(hi), 4)]


def probe_model(c: float = 1.0):
    """Standardised features -> L2 logistic regression with balanced class weights (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=1000, tol=1e-3, class_weight="balanced")
    )


def held_out_scores(x: np.ndarray, y: np.ndarray, x_new: np.ndarray, *, c: float = 1.0) -> np.ndarray:
    """P(LLM-written) of rows outside the probe's sample, from one fit on the whole sample (never saw them)."""
    if len(x_new) == 0:
        return np.zeros(0)
    return probe_model(c).fit(x, y).predict_proba(x_new)[:, 1]


def out_of_fold_scores(
    x: np.ndarray,
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    folds: int = 5,
    c: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """P(LLM-written) for every row from a logistic regression that never saw that row (k-fold CV).

    ``groups``: rows of a group stay in one fold (``StratifiedGroupKFold``). ``folds`` shrinks to the
    smaller class's size (or number of groups) when that is smaller; at least 2 of each are needed."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    smallest = int(min((y == 1).sum(), (y == 0).sum()))
    k = min(folds, smallest if groups is None else min(smallest, len(np.unique(groups))))
    if k < 2:
        raise ValueError("the probe needs at least 2 rows of each source")
    model = probe_model(c)
    if groups is None:
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, y, cv=cv, groups=groups, method="predict_proba")[:, 1]


def probe_result(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """``{auc, low, high, n_llm, n_corpus}`` of out-of-fold scores (DeLong 95% interval)."""
    low, high = auc_interval(y, score)
    return {
        "auc": round(auc(y, score), 4),
        "low": low,
        "high": high,
        "n_llm": int((y == 1).sum()),
        "n_corpus": int((y == 0).sum()),
    }


def source_probe(
    x: np.ndarray,
    is_llm: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    folds: int = 5,
    c: float = 1.0,
    seed: int = 0,
) -> tuple[dict[str, Any], np.ndarray]:
    """Cross-validated probe of ``is_llm`` from features ``x``: (result, out-of-fold scores)."""
    y = np.asarray(is_llm, dtype=np.int64)
    score = out_of_fold_scores(x, y, groups=groups, folds=folds, c=c, seed=seed)
    return probe_result(y, score), score
