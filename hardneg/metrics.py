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
relevant judgement. Queries with no judgements at all and queries whose judgements are all below the
relevance level are excluded and *counted* (``EvalCounts``); a judged query that the run does not
mention scores 0 on every metric (trec_eval ``-c``) and is counted too.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

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
        out[qid] = {d: kept[d] for d in trec_order(kept)[:k]} if k is not None else kept
    return out, dropped


def write_run_file(path: str | Path, run: Run, tag: str) -> Path:
    """Write ``run`` as a gzip TREC run file, one line ``qid Q0 docid rank score tag`` per document, ranked
    in trec_eval order (rank 1 first), readable by trec_eval and ``read_run_file`` (ranx:
    ``ranx.Run(read_run_file(path))``; its ``Run.from_file`` reads plain text only)."""
    path = Path(path)
    tag = re.sub(r"\s+", "_", tag) or "hardneg"
    tmp = path.with_name(path.name + ".tmp")
    lines = (
        f"{qid} Q0 {doc} {rank} {float(scores[doc])!r} {tag}\n"
        for qid, scores in run.items()
        for rank, doc in enumerate(trec_order(scores), start=1)
    )
    # the gzip header names the final file and carries no time stamp: the same run gives the same bytes
    with open(tmp, "wb") as raw, gzip.GzipFile(path.name, "wb", fileobj=raw, mtime=0) as f:
        f.write("".join(lines).encode("utf-8"))
    tmp.replace(path)
    return path


def read_run_file(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file (gzip or plain) back into ``{qid: {doc_id: score}}``."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    run: dict[str, dict[str, float]] = {}
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(
                    f"{path} line {n} has {len(parts)} fields, not 6 (qid Q0 docid rank score tag); "
                    "fix: pass a TREC run file"
                )
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
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


@dataclass
class RunEvaluation:
    """Mean and per-query metric values of one run."""

    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    counts: EvalCounts

    def to_dict(self) -> dict:
        return {"mean": self.mean, "per_query": self.per_query, "counts": asdict(self.counts)}


def evaluate_run(
    qrels: Qrels, run: Run, metrics: Sequence[str] = DEFAULT_METRICS, *, relevance_level: int = 1
) -> RunEvaluation:
    """Score ``run`` against ``qrels`` with pytrec_eval (trec_eval semantics, see the module docstring).

    ``metrics``: names like ``ndcg@10``, ``p@10``, ``recall@100``, ``map@100``, ``mrr@10``.
    Returns the mean over evaluated queries, per-query values, and counts of excluded queries.
    """
    import pytrec_eval

    parsed = {name: parse_metric(name) for name in metrics}
    if not parsed:
        raise ValueError("no metrics requested; fix: pass e.g. ['ndcg@10', 'p@10', 'recall@100']")
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

    mean = {
        name: (float(np.mean([per_query[q][name] for q in evaluated])) if evaluated else math.nan)
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
