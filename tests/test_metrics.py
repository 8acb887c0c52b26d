"""Cross-check hardneg.metrics (pytrec_eval) against a straightforward independent implementation.

Random runs with graded qrels (0-3), many tied scores, queries without relevant documents, queries
without judgements, judged documents missing from the run, and a judged query missing from the run.
The reference ranks like trec_eval: score decreasing, ties by document id decreasing (string order).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from hardneg.metrics import (
    DEFAULT_METRICS,
    cut_run,
    evaluate_run,
    holm,
    paired_test,
    parse_metric,
    trec_order,
)


def _ranking(scores: dict[str, float]) -> list[str]:
    # Independent of trec_order: two stable sorts (secondary key first).
    docs = sorted(scores, reverse=True)
    return sorted(docs, key=lambda d: -scores[d])


def _reference(qrels, run, name):
    fam, k = parse_metric(name)
    out = {}
    for q, judged in qrels.items():
        rel = {d: g for d, g in judged.items() if g >= 1}
        if not rel:
            continue
        ranked = _ranking(run.get(q, {}))
        top = ranked[:k]
        if fam == "p":
            out[q] = sum(d in rel for d in top) / k
        elif fam == "recall":
            out[q] = sum(d in rel for d in top) / len(rel)
        elif fam == "mrr":
            out[q] = next((1.0 / (i + 1) for i, d in enumerate(top) if d in rel), 0.0)
        elif fam == "map":
            hits, total = 0, 0.0
            for i, d in enumerate(top):
                if d in rel:
                    hits += 1
                    total += hits / (i + 1)
            out[q] = total / len(rel)
        elif fam == "ndcg":
            dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top))
            ideal = sorted(rel.values(), reverse=True)[:k]
            idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
            out[q] = dcg / idcg
    return out


def _random_case(seed: int):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) for d in judged}
        if q % 7 == 0:
            qrels[qid] = {d: 0 for d in judged}  # judged, nothing relevant
        # coarse scores -> many ties; some judged docs never retrieved
        run[qid] = {d: float(rng.randint(0, 5)) for d in rng.sample(docs, rng.randint(5, 40))}
    run["q_unjudged"] = {"d1": 1.0}
    qrels["q_absent"] = {"d3": 2}  # judged query the run does not mention
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_independent_implementation(seed):
    qrels, run = _random_case(seed)
    metrics = list(DEFAULT_METRICS) + ["ndcg@3", "p@5", "recall@10", "mrr@3"]
    result = evaluate_run(qrels, run, metrics)
    for name in metrics:
        ref = _reference(qrels, run, name)
        assert set(ref) == set(result.per_query)
        for q, value in ref.items():
            assert result.per_query[q][name] == pytest.approx(value, abs=1e-4), (name, q)
        assert result.mean[name] == pytest.approx(np.mean(list(ref.values())), abs=1e-4)
    c = result.counts
    assert c.queries_without_judgements == 1 and c.excluded_query_ids["without_judgements"] == ["q_unjudged"]
    no_rel = [q for q, judged in qrels.items() if max(judged.values()) < 1]
    assert len(no_rel) >= 6 and c.queries_without_relevant == len(no_rel)
    assert c.judged_queries_missing_from_run == 1
    assert c.queries_evaluated == len(result.per_query) == len(qrels) - len(no_rel)
    assert all(v == 0.0 for v in result.per_query["q_absent"].values())


def test_ties_follow_trec_eval_not_input_order():
    qrels = {"q": {"a": 1}}
    # a and b tie; trec_eval puts "b" first (ids decreasing), so a is rank 2 whatever the dict order
    for run in ({"q": {"a": 1.0, "b": 1.0}}, {"q": {"b": 1.0, "a": 1.0}}):
        r = evaluate_run(qrels, run, ["mrr@10", "p@1"])
        assert r.per_query["q"]["mrr@10"] == pytest.approx(0.5)
        assert r.per_query["q"]["p@1"] == 0.0
    assert trec_order({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "b", "a"]
    assert list(cut_run({"q": {"a": 1.0, "b": 1.0, "c": 2.0}}, 2)["q"]) == ["c", "b"]


def test_queries_without_relevant_exclude_or_zero():
    # q1: its one relevant document at rank 2; q2: at rank 1; q0: judged, but every judgement is grade 0
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q0": {"y": 0, "z": 0}}
    run = {"q1": {"x": 2.0, "a": 1.0}, "q2": {"b": 1.0}, "q0": {"z": 3.0, "y": 2.0}}
    metrics = ["ndcg@10", "recall@100", "p@1", "mrr@10"]
    ndcg_q1 = 1 / math.log2(3)  # gain 1 at rank 2, ideal DCG 1
    excluded = evaluate_run(qrels, run, metrics)  # the default: left out of the mean
    assert excluded.mean == pytest.approx(
        {"ndcg@10": (ndcg_q1 + 1) / 2, "recall@100": 1.0, "p@1": 0.5, "mrr@10": 0.75}
    )
    assert set(excluded.per_query) == {"q1", "q2"}
    c = excluded.counts
    assert (c.queries_evaluated, c.queries_without_relevant, c.queries_without_relevant_scored_zero) == (
        2,
        1,
        0,
    )
    assert c.excluded_query_ids["without_relevant"] == ["q0"] and c.zero_scored_query_ids == []
    zero = evaluate_run(qrels, run, metrics, queries_without_relevant="zero")  # MTEB's, BEIR's, ranx's rule
    assert zero.mean == pytest.approx(
        {"ndcg@10": (ndcg_q1 + 1) / 3, "recall@100": 2 / 3, "p@1": 1 / 3, "mrr@10": 0.5}
    )
    assert zero.per_query["q0"] == dict.fromkeys(metrics, 0.0)
    assert {q: v for q, v in zero.per_query.items() if q != "q0"} == excluded.per_query
    c = zero.counts
    assert (c.queries_evaluated, c.queries_without_relevant, c.queries_without_relevant_scored_zero) == (
        3,
        1,
        1,
    )
    assert c.excluded_query_ids["without_relevant"] == [] and c.zero_scored_query_ids == ["q0"]
    with pytest.raises(ValueError, match="queries_without_relevant 'keep' is not exclude or zero"):
        evaluate_run(qrels, run, metrics, queries_without_relevant="keep")


def test_bad_metric_name():
    with pytest.raises(ValueError, match="unknown metric 'ndcg10'"):
        evaluate_run({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["ndcg10"])


def test_paired_tests_and_holm():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=200)
    assert paired_test(a, a) == 1.0
    better = a + 0.2 + rng.normal(0, 0.01, size=200)
    assert paired_test(better, a, n_resamples=2000) < 0.01
    assert paired_test(better, a, test="t-test") < 1e-10
    noise = a + rng.normal(0, 0.05, size=200)
    noise -= noise.mean() - a.mean()  # same mean: no real difference
    assert paired_test(noise, a, n_resamples=2000) > 0.5
    # randomisation p-value agrees with scipy's exact-ish permutation test on a small case
    from scipy.stats import permutation_test

    x, y = rng.uniform(size=12), rng.uniform(size=12)
    ref = permutation_test(
        (x, y), lambda u, v: np.mean(u - v), permutation_type="samples", n_resamples=np.inf
    )
    assert paired_test(x, y, n_resamples=20_000) == pytest.approx(ref.pvalue, abs=0.02)
    # Holm: classic worked example
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_two_level_bootstrap_variance_and_pairing():
    from hardneg.metrics import bootstrap_p_value, two_level_bootstrap

    rng = np.random.default_rng(0)
    # pure seed effect (every query of a seed moves together): the bootstrap variance of the mean must be
    # var(seed means) / S, which needs the sqrt(S/(S-1)) inflation with S = 3 (plain: 2/3 of it)
    shifts = np.array([0.30, 0.34, 0.41])
    x = np.repeat(shifts[:, None], 50, axis=1)[:, :, None]
    reps = two_level_bootstrap({"a": x}, n_resamples=20_000, seed=1)["a"][:, 0]
    assert reps.var() == pytest.approx(shifts.var(ddof=1) / 3, rel=0.05)
    # one seed row: query sampling only, the classic bootstrap SE of a mean
    q = rng.uniform(0, 1, 400)[None, :, None]
    reps = two_level_bootstrap({"q": q}, n_resamples=20_000, seed=2)["q"][:, 0]
    assert reps.std() == pytest.approx(q.std() / np.sqrt(400), rel=0.05)
    # the same query resample for every method: a constant offset gives a zero-width difference
    both = two_level_bootstrap({"a": q, "b": q + 0.1}, n_resamples=1000, seed=3)
    assert np.allclose(both["b"] - both["a"], 0.1)
    assert bootstrap_p_value(both["b"] - both["a"], np.array([0.1]))[0] == pytest.approx(1 / 1001)
    assert bootstrap_p_value(np.zeros((10, 1)), np.array([0.0]))[0] == 1.0
    assert bootstrap_p_value(np.zeros((10, 1)), np.array([np.nan]))[0] == 1.0
    with pytest.raises(ValueError, match="equal queries"):
        two_level_bootstrap({"a": q, "b": q[:, :10]})


def _crossed(rng, n: int, q: int, s: int, seed_sd: float, noise_sd: float, delta: float = 0.0):
    """``n`` experiments at once (last axis): two methods, ``s`` seeds each, crossed with ``q`` queries."""
    base = rng.normal(0.4, 0.25, (q, n))
    a = base[None] + delta + rng.normal(0, seed_sd, (s, 1, n)) + rng.normal(0, noise_sd, (s, q, n))
    b = base[None] + rng.normal(0, seed_sd, (s, 1, n)) + rng.normal(0, noise_sd, (s, q, n))
    return a, b


def test_welch_test_is_calibrated_when_seed_luck_dominates_and_still_has_power():
    from hardneg.metrics import seed_terms, welch_pair

    rng = np.random.default_rng(0)
    # 300 null experiments, S = 3, seed effect dominating: the bootstrap rejected 12.5% here at alpha .05
    a, b = _crossed(rng, 300, 200, 3, seed_sd=0.01, noise_sd=0.01)
    t = seed_terms({"a": a, "b": b})
    null = welch_pair(a, b, t["a"], t["b"])
    assert np.mean(null.p < 0.05) <= 0.08
    assert np.mean((null.ci_low < 0) & (0 < null.ci_high)) >= 0.92  # the interval agrees with the test
    # a planted difference of 5 seed SDs is found in most experiments
    a, b = _crossed(rng, 300, 200, 3, seed_sd=0.01, noise_sd=0.01, delta=0.05)
    t = seed_terms({"a": a, "b": b})
    assert np.mean(welch_pair(a, b, t["a"], t["b"]).p < 0.05) >= 0.8
    # a NaN difference is never a win
    a[0, 0, 0] = np.nan
    assert welch_pair(a, b, t["a"], t["b"]).p[0] == 1.0
    # one query, no seeds: no variance to test against, never significant
    zero = seed_terms({"x": np.ones((1, 1, 1))})["x"]
    assert welch_pair(np.ones((1, 1, 1)), np.zeros((1, 1, 1)), zero, zero).p[0] == 1.0


def test_one_seed_trained_method_borrows_pooled_seed_variance():
    from hardneg.metrics import seed_terms, welch_pair

    rng = np.random.default_rng(1)
    a, b = _crossed(rng, 4, 100, 3, seed_sd=0.02, noise_sd=0.01)
    terms = seed_terms({"a": a, "b": b[:1], "bm25": b[:1]}, trained={"a": True, "b": True, "bm25": False})
    assert terms["b"].borrowed and terms["b"].df == 2 and np.allclose(terms["b"].var, terms["a"].var * 3)
    assert not terms["bm25"].borrowed and terms["bm25"].df == 0 and np.all(terms["bm25"].var == 0)
    # null calibration of a 1-seed method against 3 seeds: borrowing keeps seed luck from being a win
    a, b = _crossed(rng, 300, 200, 3, seed_sd=0.01, noise_sd=0.05)
    one = b[:1]
    t = seed_terms({"a": a, "b": one}, trained={"a": True, "b": True})
    assert np.mean(welch_pair(a, one, t["a"], t["b"]).p < 0.05) <= 0.09
    t = seed_terms({"a": a, "b": one})  # not borrowed: the lucky single seed is called a win far too often
    assert np.mean(welch_pair(a, one, t["a"], t["b"]).p < 0.05) > 0.12
