"""Retrieval metrics with trec_eval semantics, and paired significance tests between runs.

Metrics come from ``pytrec_eval`` (pytrec-eval-terrier: the trec_eval C code), so the numbers match
``trec_eval -m ndcg_cut.10 -m P.10 -m recall.100 -m map_cut.100``:

- A run is ``{qid: {doc_id: score}}``. trec_eval ranks each query's documents by score, highest first,
  and breaks ties by document id in *decreasing* string order (``strcmp(b, a)`` in ``form_res_rels.c``).
  The order the caller lists documents in does not matter; ``trec_order`` reproduces that ranking.
- A document is relevant when its grade >= ``relevance_level`` (1); nDCG gains are the grades themselves
  (log2 discount, ideal ranking from all judged documents, including ones missing from the corpus).
- ``P@k`` divides by ``k`` even when fewer than ``k`` documents were retrieved; ``recall@k`` divides by the
  number of relevant documents; ``map@k`` is trec_eval's ``map_cut``.
- ``mrr@k`` is trec_eval's ``recip_rank`` on the run cut to its top ``k`` in trec_eval order (trec_eval has
  no cut for it; this is what BEIR and MTEB report as MRR@10).

Which queries are averaged is explicit, never silent: a query enters the mean when it has at least one
relevant judgement. Queries with no judgements at all are excluded and *counted* (``EvalCounts``); a judged
query that the run does not mention scores 0 on every metric (trec_eval ``-c``) and is counted too. A judged
query whose judgements are all below the relevance level (all grade 0) follows ``queries_without_relevant``:
``exclude`` (hardneg's rule, the default) leaves it out of the mean and counts it; ``zero`` (the rule of MTEB,
BEIR's ``EvaluateRetrieval.evaluate`` and ranx: pytrec_eval scores such a query 0 and they average every
query it scores) averages it in with 0 on every metric, counts it and names it in ``zero_scored_query_ids``.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hardneg.errors import first_line
from hardneg.files import write_atomic

DEFAULT_METRICS = ("ndcg@10", "p@10", "recall@100", "map@100", "mrr@10")
# metric family -> (pytrec_eval measure, result key pattern)
_TREC = {
    "ndcg": ("ndcg_cut.{k}", "ndcg_cut_{k}"),
    "p": ("P.{k}", "P_{k}"),
    "recall": ("recall.{k}", "recall_{k}"),
    "map": ("map_cut.{k}", "map_cut_{k}"),
    "mrr": ("recip_rank", "recip_rank"),
}
_METRIC_RE = re.compile(r"^(ndcg|p|recall|map|mrr)@([1-9][0-9]*)$")

# what a judged query with no relevant document (all judgements below the relevance level) counts as
QUERIES_WITHOUT_RELEVANT = ("exclude", "zero")

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; a clear error for anything else."""
    m = _METRIC_RE.match(name.strip().lower())
    if not m:
        raise ValueError(
            f"unknown metric '{name}'; fix: use <name>@<k> with name one of ndcg, p, recall, map, mrr (e.g. ndcg@10)"
        )
    return m.group(1), int(m.group(2))


def trec_order(scores: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval rank order: score decreasing, ties by doc id decreasing (string order)."""
    return [d for d, _ in sorted(scores.items(), key=lambda x: (x[1], x[0]), reverse=True)]


def cut_run(run: Run, k: int) -> dict[str, dict[str, float]]:
    """Keep each query's top ``k`` documents in trec_eval order."""
    out = {}
    for qid, scores in run.items():
        out[qid] = {d: float(scores[d]) for d in trec_order(scores)[:k]}
    return out


def drop_identical_ids(run: Run, k: int | None = None) -> tuple[dict[str, dict[str, float]], int]:
    """BEIR's and MTEB's ``ignore_identical_ids``: drop every retrieved document whose id equals the query
    id (ArguAna and Quora hold each query as a document too), then keep the top ``k`` (trec_eval order).
    Returns the new run and how many documents were dropped; search ``k + 1`` to still have ``k``."""
    out, dropped = {}, 0
    for qid, scores in run.items():
        kept = {d: float(s) for d, s in scores.items() if d != qid}
        dropped += len(scores) - len(kept)
        out[qid] = kept
    return (cut_run(out, k) if k is not None else out), dropped


def write_run_file(path: str | Path, run: Run, tag: str) -> Path:
    """Write ``run`` as a gzip TREC run file, one line ``qid Q0 docid rank score tag`` per document, ranked
    in trec_eval order (rank 1 first), readable by trec_eval and ``read_run_file`` (ranx:
    ``ranx.Run(read_run_file(path))``; its ``Run.from_file`` reads plain text only)."""
    path = Path(path)
    tag = re.sub(r"\s+", "_", tag) or "hardneg"
    lines = (
        f"{qid} Q0 {doc} {rank} {float(scores[doc])!r} {tag}\n"
        for qid, scores in run.items()
        for rank, doc in enumerate(trec_order(scores), start=1)
    )
    # the gzip header names the final file and carries no time stamp: the same run gives the same bytes
    buffer = io.BytesIO()
    with gzip.GzipFile(path.name, "wb", fileobj=buffer, mtime=0) as f:
        f.write("".join(lines).encode("utf-8"))
    return write_atomic(path, buffer.getvalue())


def read_run_file(path: str | Path, expected_queries: int | None = None) -> dict[str, dict[str, float]]:
    """Read a TREC run file (gzip or plain) back into ``{qid: {doc_id: score}}``. A gzip stream cut short, a
    file with no ranked document, or (with ``expected_queries``, from its result file) one ranking another
    number of queries is refused."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    run: dict[str, dict[str, float]] = {}
    fix = "fix: pass a TREC run file, or delete it and rerun evaluation/evaluate.py"
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 6:
                    raise ValueError(
                        f"{path} line {n} has {len(parts)} fields, not 6 (qid Q0 docid rank score tag); {fix}"
                    )
                try:
                    run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
                except ValueError:
                    raise ValueError(f"{path} line {n}: score {parts[4]!r} is not a number; {fix}") from None
    except EOFError as err:  # the gzip stream stops before its end marker
        raise ValueError(f"{path} is truncated ({first_line(err)}); {fix}") from None
    except (OSError, UnicodeDecodeError) as err:  # not gzip, not text
        raise ValueError(f"{path} is not a readable TREC run file ({first_line(err)}); {fix}") from None
    if not run:
        raise ValueError(f"{path} holds no ranked document (an empty or cut file); {fix}")
    if expected_queries is not None and len(run) != expected_queries:
        raise ValueError(
            f"{path} ranks documents for {len(run)} queries, but its result file counts {expected_queries} "
            f"(a truncated or replaced run file); {fix}"
        )
    return run


@dataclass
class EvalCounts:
    """Which queries were averaged and why the others were not."""

    queries_in_run: int = 0
    queries_judged: int = 0
    queries_evaluated: int = 0
    queries_without_judgements: int = 0
    queries_without_relevant: int = 0
    judged_queries_missing_from_run: int = 0
    excluded_query_ids: dict[str, list[str]] = field(default_factory=dict)
    # queries_without_relevant: zero -- the queries without a relevant document averaged in with score 0
    queries_without_relevant_scored_zero: int = 0
    zero_scored_query_ids: list[str] = field(default_factory=list)


@dataclass
class RunEvaluation:
    """Mean and per-query metric values of one run."""

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    counts: EvalCounts

    def to_dict(self) -> dict:
        return {"mean": self.mean, "per_query": self.per_query, "counts": asdict(self.counts)}


def evaluate_run(
    qrels: Qrels,
    run: Run,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    relevance_level: int = 1,
    queries_without_relevant: str = "exclude",
) -> RunEvaluation:
    """Score ``run`` against ``qrels`` with pytrec_eval (trec_eval semantics, see the module docstring).

    ``metrics``: names like ``ndcg@10``, ``p@10``, ``recall@100``, ``map@100``, ``mrr@10``.
    ``queries_without_relevant``: ``exclude`` (hardneg's default) leaves a judged query whose judgements are all
    below ``relevance_level`` out of the mean; ``zero`` (MTEB, BEIR, ranx) averages it in with 0 on every metric.
    Returns the mean over evaluated queries, per-query values, and counts of excluded queries.
    """
    import pytrec_eval

    parsed = {name: parse_metric(name) for name in metrics}
    if not parsed:
        raise ValueError("no metrics requested; fix: pass e.g. ['ndcg@10', 'p@10', 'recall@100']")
    if queries_without_relevant not in QUERIES_WITHOUT_RELEVANT:
        raise ValueError(
            f"queries_without_relevant '{queries_without_relevant}' is not exclude or zero; fix: use exclude "
            "(left out of the mean, hardneg's default) or zero (averaged in with score 0, as MTEB, BEIR and ranx do)"
        )
    qrels_int = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    run_f = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}

    counts = EvalCounts(queries_in_run=len(run_f), queries_judged=len(qrels_int))
    no_judgements = sorted(q for q in run_f if not qrels_int.get(q))
    no_relevant = sorted(q for q, docs in qrels_int.items() if docs and max(docs.values()) < relevance_level)
    evaluated = sorted(q for q, docs in qrels_int.items() if docs and max(docs.values()) >= relevance_level)
    missing = sorted(q for q in evaluated if not run_f.get(q))
    counts.queries_without_judgements = len(no_judgements)
    counts.queries_without_relevant = len(no_relevant)
    counts.judged_queries_missing_from_run = len(missing)
    counts.queries_evaluated = len(evaluated)
    counts.excluded_query_ids = {"without_judgements": no_judgements, "without_relevant": no_relevant}

    eval_qrels = {q: qrels_int[q] for q in evaluated}
    per_query: dict[str, dict[str, float]] = {q: {} for q in evaluated}
    plain = {n: (fam, k) for n, (fam, k) in parsed.items() if fam != "mrr"}
    if plain and eval_qrels:
        measures = {_TREC[fam][0].format(k=k) for fam, k in plain.values()}
        evaluator = pytrec_eval.RelevanceEvaluator(eval_qrels, measures, relevance_level=relevance_level)
        result = evaluator.evaluate({q: run_f[q] for q in evaluated if run_f.get(q)})
        for q in evaluated:
            for name, (fam, k) in plain.items():
                per_query[q][name] = float(result.get(q, {}).get(_TREC[fam][1].format(k=k), 0.0))
    for name, (_fam, k) in parsed.items():
        if name in plain or not eval_qrels:
            continue
        evaluator = pytrec_eval.RelevanceEvaluator(
            eval_qrels, {"recip_rank"}, relevance_level=relevance_level
        )
        result = evaluator.evaluate(cut_run({q: run_f[q] for q in evaluated if run_f.get(q)}, k))
        for q in evaluated:
            per_query[q][name] = float(result.get(q, {}).get("recip_rank", 0.0))

    averaged = evaluated
    if queries_without_relevant == "zero" and no_relevant:
        # MTEB's and trec_eval's mean: the query stays in with 0 on every metric (no relevant document to find)
        per_query.update({q: dict.fromkeys(parsed, 0.0) for q in no_relevant})
        averaged = sorted(evaluated + no_relevant)
        per_query = {q: per_query[q] for q in averaged}
        counts.queries_without_relevant_scored_zero = len(no_relevant)
        counts.zero_scored_query_ids = no_relevant
        counts.excluded_query_ids["without_relevant"] = []
        counts.queries_evaluated = len(averaged)
        counts.judged_queries_missing_from_run = sum(1 for q in averaged if not run_f.get(q))
    mean = {
        name: (float(np.mean([per_query[q][name] for q in averaged])) if averaged else math.nan)
        for name in parsed
    }
    return RunEvaluation(mean, per_query, counts)


# ---------------------------------------------------------------------------------------------------
# Significance


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    test: Literal["randomization", "t-test"] = "randomization",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided p-value that paired per-query scores ``a`` and ``b`` have the same mean.

    ``randomization``: the paired randomisation (sign-flip) test of Smucker, Allan & Carterette (CIKM 2007),
    ``p = (1 + #{|mean(s * d)| >= |mean(d)|}) / (1 + n_resamples)`` over random signs ``s``.
    ``t-test``: scipy's paired t-test (``scipy.stats.ttest_rel``). Identical runs give p = 1.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(a) != len(b):
        raise ValueError(f"paired test needs two score lists of the same length, got {len(a)} and {len(b)}")
    if len(d) == 0 or np.allclose(d, 0.0):
        return 1.0
    if test == "t-test":
        from scipy.stats import ttest_rel

        p = float(ttest_rel(a, b).pvalue)
        return 1.0 if math.isnan(p) else p
    if test != "randomization":
        raise ValueError(f"unknown test '{test}'; fix: use randomization or t-test")
    rng = np.random.default_rng(seed)
    observed = abs(d.mean())
    hits = 0
    done = 0
    chunk = 2000  # bounded memory for long query lists
    while done < n_resamples:
        m = min(chunk, n_resamples - done)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(m, len(d)))
        hits += int(np.sum(np.abs(signs @ d) / len(d) >= observed - 1e-12))
        done += m
    return (hits + 1) / (n_resamples + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


# ---------------------------------------------------------------------------------------------------
# Seeds x queries: two-level bootstrap, minimum detectable effect
#
# A method's scores on one dataset form a matrix X[seed, query] (one row per training seed; one row for
# models without training seeds such as BM25 and zero-shot). Two sources of randomness stand between a
# result and a conclusion: which queries the collection happens to hold, and which training seed a run
# happens to get (Bouthillier et al. 2021, "Accounting for Variance in Machine Learning Benchmarks").
# The two-level (hierarchical) bootstrap resamples both: seeds with replacement, then queries with
# replacement (Davison & Hinkley 1997, sect. 3.8; Saravanan et al. 2020). Queries are resampled once per
# replicate for all methods (the design is paired: every method answers the same queries); seeds are
# resampled per method (seed 0 of one method has nothing in common with seed 0 of another). With few seeds
# the plain bootstrap underestimates the seed variance by (S - 1) / S; seed-level residuals are inflated by
# sqrt(S / (S - 1)) first, so a mean over S seeds gets an unbiased bootstrap variance (Davison & Hinkley
# 1997, sect. 3.8, adjusted residuals).


def resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` bootstrap resamples of ``n`` items as counts: row b says how often each item was drawn
    (rows sum to ``n``); ``counts @ x / n`` is the mean of ``x`` over the resample, for every row at once."""
    idx = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def inflate_seed_residuals(scores: np.ndarray) -> np.ndarray:
    """``scores`` (seeds, queries, ...) with each seed's deviation from the seed mean scaled by
    sqrt(S / (S - 1)), so that resampling S seeds reproduces the unbiased seed variance; S = 1 unchanged."""
    s = scores.shape[0]
    if s < 2:
        return scores
    mean = scores.mean(axis=0, keepdims=True)
    return mean + math.sqrt(s / (s - 1)) * (scores - mean)


def two_level_bootstrap(
    scores: Mapping[str, np.ndarray],
    *,
    n_resamples: int = 10_000,
    seed: int = 0,
    chunk: int = 1000,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each method's mean score, resampling seeds then queries.

    ``scores[name]``: array (seeds, queries, metrics), the same queries in the same order for every
    method. Returns ``{name: (n_resamples, metrics)}``; replicate ``b`` of every method used the same
    query resample (paired), so ``out[a] - out[b]`` are bootstrap replicates of the difference. Seeds are
    resampled independently per method (after ``inflate_seed_residuals``); a method with one seed row
    contributes query sampling only. Vectorised: one (chunk x queries) @ (queries x seeds*metrics) product
    per method and chunk of replicates.
    """
    shapes = {name: np.shape(x) for name, x in scores.items()}
    if not shapes:
        return {}
    if any(len(s) != 3 for s in shapes.values()) or len({s[1:] for s in shapes.values()}) != 1:
        raise ValueError(f"scores must be (seeds, queries, metrics) with equal queries and metrics: {shapes}")
    n_q, n_m = next(iter(shapes.values()))[1:]
    if n_q == 0:
        raise ValueError("no queries to resample; fix: evaluate the methods on common queries")
    rng = np.random.default_rng(seed)
    prepared = {
        name: np.ascontiguousarray(
            inflate_seed_residuals(np.asarray(x, np.float64)).transpose(1, 0, 2).reshape(n_q, -1)
        )
        for name, x in scores.items()
    }
    out = {name: np.empty((n_resamples, n_m)) for name in scores}
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        query_weights = resample_counts(rng, n_q, b) / n_q
        for name, flat in prepared.items():
            n_s = shapes[name][0]
            per_seed = (query_weights @ flat).reshape(b, n_s, n_m)  # mean over resampled queries, per seed
            if n_s == 1:
                out[name][start : start + b] = per_seed[:, 0, :]
            else:
                seed_weights = resample_counts(rng, n_s, b) / n_s
                out[name][start : start + b] = np.einsum("bs,bsm->bm", seed_weights, per_seed)
    return out


def bootstrap_p_value(replicates: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of "no difference", per column: the replicates shifted to the null
    (Hall & Wilson 1991), ``(1 + #{|d*_b - d| >= |d|}) / (1 + B)``; exactly 1 where ``d`` is 0 or not finite."""
    observed = np.asarray(observed, np.float64)
    with np.errstate(invalid="ignore"):
        hits = (np.abs(replicates - observed) >= np.abs(observed) - 1e-12).sum(axis=0)
    p = (1 + hits) / (1 + replicates.shape[0])
    return np.where((np.abs(observed) < 1e-12) | ~np.isfinite(observed), 1.0, p)


# ---------------------------------------------------------------------------------------------------
# Seeds x queries, crossed: studentized Welch-Satterthwaite test (the default pairwise test)
#
# Seeds and queries are crossed, not nested: every seed of a method answers every query. A method's
# seed-averaged mean then varies through (1) the query sample, shared by every method and cancelling
# partly in a paired difference, and (2) the seed main effects, independent per method, estimated from
# S - 1 degrees of freedom. The seed x query interaction enters the per-query difference of seed-averaged
# scores and is counted there once. The variance of a difference d = mean_A - mean_B is estimated as
#   SE^2 = var_q(mA_q - mB_q) / Q + seed_A + seed_B,
#   seed_X = max(0, var_s(row means of X) - s2e_X / Q) / S_X   (s2e: double-centred residual variance),
# and d / SE is referred to a t distribution with Welch-Satterthwaite degrees of freedom (Welch 1947;
# Satterthwaite 1946), because the seed terms come from very few seeds. Resampling seeds and queries
# together instead (a two-level bootstrap) counts the interaction about three times and treats the seed
# variance as known (Owen 2007 "the pigeonhole bootstrap"; McCullagh 2000), which is why the bootstrap is
# kept for per-method intervals but is not the default test.


@dataclass
class SeedTerm:
    """One method's seed term on one dataset, per metric: ``var`` the seed variance of its seed-averaged
    mean (the per-run seed variance divided by its seed count), ``df`` its degrees of freedom (S - 1;
    0 for a deterministic system), ``borrowed`` when it comes from the other methods (a 1-seed run).
    ``sources``: the independent variance estimates it is made of, ``{method: (part of var, df, part of
    the mean square it was estimated from)}``, so that ``welch_df`` counts an estimate shared by both
    sides of a pair once (a borrowed term reuses the other methods' estimates) and takes each estimate's
    variability from its raw mean square (the seed mean square before the query-noise correction; the
    corrected value understates how much a 2-df estimate varies); None: the term is its own source."""

    var: np.ndarray
    df: float
    borrowed: bool = False
    sources: dict[str, tuple[np.ndarray, float, np.ndarray]] | None = None


def crossed_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``x``: (seeds, queries, ...) one method's scores. Returns (per-query seed means (Q, ...), the
    per-run seed variance component sigma_seed^2 (...), the double-centred residual variance (...), df);
    with one seed the variances are 0 and df 0."""
    x = np.asarray(x, np.float64)
    s, q = x.shape[:2]
    m = x.mean(axis=0)
    zero = np.zeros(x.shape[2:])
    if s < 2:
        return m, zero, zero, 0
    rows = x.mean(axis=1, keepdims=True)
    grand = x.mean(axis=(0, 1), keepdims=True)
    e = x - m[None] - rows + grand
    s2e = (e**2).sum(axis=(0, 1)) / ((s - 1) * max(q - 1, 1))
    g = rows[:, 0] - grand[:, 0]
    seed_var = np.maximum(0.0, (g**2).sum(axis=0) / (s - 1) - s2e / q)
    return m, seed_var, s2e, s - 1


def seed_terms(
    scores: Mapping[str, np.ndarray], trained: Mapping[str, bool] | None = None
) -> dict[str, SeedTerm]:
    """Per method the seed term of the Welch test. ``scores[name]``: (seeds, queries, ...). A method marked
    ``trained`` that has one seed while another method has >= 2 borrows the pooled per-run seed variance
    (df-weighted over the methods with >= 2 seeds, with their pooled df): one training run says nothing
    about its own seed luck, but it has some."""
    parts = {k: crossed_parts(v) for k, v in scores.items()}
    ms = {
        k: np.asarray(v, np.float64).mean(axis=1).var(axis=0, ddof=1)
        for k, v in scores.items()
        if parts[k][3]
    }
    seeded = {k: (p[1], p[3], ms[k]) for k, p in parts.items() if p[3] > 0}
    pooled_df = sum(d for _, d, _ in seeded.values())
    out = {}
    for k, (_, var, _, df) in parts.items():
        s = np.shape(scores[k])[0]
        if df > 0:
            out[k] = SeedTerm(var / s, float(df), sources={k: (var / s, float(df), ms[k] / s)})
        elif pooled_df and (trained or {}).get(k, False):
            shares = {j: (v * d / pooled_df, float(d), m * d / pooled_df) for j, (v, d, m) in seeded.items()}
            pooled = sum(v for v, _, _ in shares.values())
            out[k] = SeedTerm(np.asarray(pooled, np.float64), float(pooled_df), borrowed=True, sources=shares)
        else:
            out[k] = SeedTerm(np.zeros_like(var), 0.0)
    return out


@dataclass
class WelchResult:
    """Per metric: difference, standard error, Welch-Satterthwaite df, two-sided p, interval."""

    diff: np.ndarray
    se: np.ndarray
    df: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def welch_df(qterm: np.ndarray, q: int, terms: Sequence[SeedTerm]) -> tuple[np.ndarray, np.ndarray]:
    """(SE^2, Welch-Satterthwaite df) from the query term (df Q - 1) and the seed terms. Terms built on
    the same variance estimate (``SeedTerm.sources``: a borrowed pooled variance reuses the other side's)
    are added before squaring, as Satterthwaite's formula for a sum of independent estimates requires."""
    se2 = qterm + sum(t.var for t in terms)
    merged: dict[Any, tuple[Any, float]] = {}
    for i, t in enumerate(terms):
        for key, (_, d, m) in (t.sources or {("own", i): (t.var, t.df, t.var)}).items():
            merged[key] = (merged[key][0] + m if key in merged else m, d)
    den = qterm**2 / max(q - 1, 1) + sum((m**2 / d) if d > 0 else 0.0 * m for m, d in merged.values())
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, se2**2 / np.where(den > 0, den, 1.0), max(q - 1, 1))
    return se2, df


def welch_pair(
    xa: np.ndarray, xb: np.ndarray, ta: SeedTerm, tb: SeedTerm, *, alpha: float = 0.05
) -> WelchResult:
    """Studentized Welch-Satterthwaite test of mean(xa) - mean(xb): ``xa``, ``xb`` (seeds, queries, ...)
    on the same queries; ``ta``/``tb`` their seed terms (``seed_terms``). Vectorised over trailing axes."""
    from scipy import stats

    xa, xb = np.asarray(xa, np.float64), np.asarray(xb, np.float64)
    q = xa.shape[1]
    d = xa.mean(axis=(0, 1)) - xb.mean(axis=(0, 1))
    per_query = xa.mean(axis=0) - xb.mean(axis=0)
    qterm = per_query.var(axis=0, ddof=1) / q if q > 1 else np.zeros_like(d)
    se2, df = welch_df(qterm, q, (ta, tb))
    se = np.sqrt(se2)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, np.abs(d) / np.where(se > 0, se, 1.0), np.where(d == 0, 0.0, np.inf))
    p = 2 * stats.t.sf(t, df)
    informative = q > 1 or ta.df > 0 or tb.df > 0  # one query and no seeds: nothing to test against
    p = np.where(np.isfinite(d) & informative, p, 1.0)
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return WelchResult(d, se, df, p, d - half, d + half)


@dataclass
class VarianceComponents:
    """What one dataset-metric design can detect, from its observed variances (seeds x queries, crossed).

    ``seed_sd``: SD of a training run's mean score across seeds, net of query noise (per-run seed variance
    pooled over the methods with >= 2 seeds, weighted by their df; None with one seed). ``residual_sd``:
    SD of the seed x query interaction (double-centred residual, pooled likewise). ``query_sd``: SD over
    queries of the per-query difference between two methods' seed-averaged scores, net of seed noise.
    ``mde``: the smallest true difference between two methods with ``seeds`` seeds each, on ``queries``
    queries, that the Welch test (``welch_pair``) at ``alpha`` detects with probability ``power``:
    ``(t_{df,1-alpha/2} + t_{df,power}) * SE``, with the test's SE^2 = query_sd^2 / Q + 2 residual_sd^2 /
    (S Q) + 2 seed_sd^2 / S and its Welch-Satterthwaite df (query term: Q - 1, each seed term: S - 1, its
    variability from the seed mean square seed_sd^2 + residual_sd^2 / Q, as in ``welch_df``).
    """

    queries: int
    seeds: int
    seed_sd: float | None
    residual_sd: float | None
    query_sd: float
    alpha: float
    power: float

    def _terms(self, seeds: int | None, queries: int | None) -> tuple[np.ndarray, np.ndarray]:
        s, q = seeds or self.seeds, queries or self.queries
        qvar = self.query_sd**2
        terms: list[SeedTerm] = []
        if self.seed_sd is not None and self.residual_sd is not None and s >= 2:
            qvar += 2 * self.residual_sd**2 / s
            v, ms = self.seed_sd**2 / s, (self.seed_sd**2 + self.residual_sd**2 / q) / s
            terms = [
                SeedTerm(
                    np.asarray(v), float(s - 1), sources={side: (np.asarray(v), float(s - 1), np.asarray(ms))}
                )
                for side in ("a", "b")
            ]
        return welch_df(np.asarray(qvar / q), q, terms)

    def standard_error(self, seeds: int | None = None, queries: int | None = None) -> float:
        return float(math.sqrt(float(self._terms(seeds, queries)[0])))

    def df(self, seeds: int | None = None, queries: int | None = None) -> float:
        return float(self._terms(seeds, queries)[1])

    def mde(self, seeds: int | None = None, queries: int | None = None) -> float:
        from scipy.stats import t

        se2, df = self._terms(seeds, queries)
        mult = t.ppf(1 - self.alpha / 2, df) + t.ppf(self.power, df)
        return float(mult * math.sqrt(float(se2)))


def variance_components(
    scores: Mapping[str, np.ndarray], *, alpha: float = 0.05, power: float = 0.8
) -> VarianceComponents:
    """Variance components of one (dataset, metric) from ``scores[name]`` = (seeds, queries) arrays on
    the same queries (see ``VarianceComponents``). Pairs for the query term: the pairs of methods with
    >= 2 seeds (the trained methods being compared) when there are two or more; with one such method its
    pairs with the others (not the pairs among deterministic baselines, which say nothing about it); with
    none, every pair."""
    arrays = {k: np.asarray(v, np.float64) for k, v in scores.items()}
    if len(arrays) < 2:
        raise ValueError("variance components need at least two methods on the same queries")
    n_q = next(iter(arrays.values())).shape[1]
    parts = {k: crossed_parts(x) for k, x in arrays.items()}
    seeded = [k for k, p in parts.items() if p[3] > 0]
    seed_sd = residual_sd = None
    if seeded:
        total_df = sum(parts[k][3] for k in seeded)
        seed_sd = math.sqrt(sum(float(parts[k][1]) * parts[k][3] for k in seeded) / total_df)
        residual_sd = math.sqrt(sum(float(parts[k][2]) * parts[k][3] for k in seeded) / total_df)
    names = list(arrays)
    pairs = list(itertools.combinations(names, 2))
    if len(seeded) >= 2:
        pairs = list(itertools.combinations(seeded, 2))
    elif len(seeded) == 1:
        pairs = [(a, b) for a, b in pairs if seeded[0] in (a, b)]
    query_vars = []
    for a, b in pairs:
        xa, xb = arrays[a], arrays[b]
        d = xa.mean(axis=0) - xb.mean(axis=0)
        noise = float(parts[a][2]) / xa.shape[0] + float(parts[b][2]) / xb.shape[0]
        query_vars.append(max(0.0, float(d.var(ddof=1)) - noise) if n_q > 1 else 0.0)
    seeds = min((arrays[k].shape[0] for k in seeded), default=1)
    return VarianceComponents(
        queries=n_q,
        seeds=seeds,
        seed_sd=seed_sd,
        residual_sd=residual_sd,
        query_sd=math.sqrt(float(np.mean(query_vars))),
        alpha=alpha,
        power=power,
    )
