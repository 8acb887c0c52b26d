"""hardneg's dense mining equals sentence-transformers' ``util.mine_hard_negatives`` on every shared option.

Compared with whatever sentence-transformers is installed (the pytest header names its version and the
``MiningRules`` hardneg follows for it; ``make test-parity`` reruns this file against the other version in
requirements/parity.txt).

Data (real Cranfield, short passages so it stays fast): queries with two or three judged positives (one
row each) and queries with one, a pool that holds two ids for one hard passage, a copy of a positive
under another id, and a passage that is a query's own text. Each case runs both functions with the embedded MiniLM (embeddings cached per text, so
both see identical vectors) and ``near_duplicate_threshold=None`` (hardneg's own extra filter, off here).
"""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset
from sentence_transformers.util import mine_hard_negatives as st_mine

from hardneg.corpus import load_beir_folder, passage_text
from hardneg.negatives import mine_hard_negatives
from hardneg.negatives.mining import mining_rules

MULTI = ["1", "2", "3", "5", "6"]  # queries mined with up to three judged positives each
SINGLE = ["9", "10", "11", "12"]
CHARS = 300


@pytest.fixture(scope="module")
def data(cranfield_dir):
    beir = load_beir_folder(cranfield_dir)
    text = {
        d: passage_text(beir.corpus[d]["title"], beir.corpus[d]["text"])[:CHARS].strip() for d in beir.corpus
    }
    rows = []
    for qid in MULTI + SINGLE:
        judged = sorted(beir.qrels[qid], key=lambda d: (-beir.qrels[qid][d], int(d)))
        for doc in judged[: 3 if qid in MULTI else 1]:
            rows.append(
                {"query_id": qid, "query": beir.queries[qid], "positive_id": doc, "positive": text[doc]}
            )
    used = {r["positive_id"] for r in rows}
    # An unused judged passage of query 1 (hard for it) under two ids, and a positive under a second id.
    hard = next(d for d in sorted(beir.qrels["1"], key=int) if d not in used)
    ids = sorted(used | {str(i) for i in range(1, 41)} | {hard}, key=int)
    corpus = [{"id": d, "title": "", "text": text[d]} for d in ids]
    corpus += [
        {"id": "copy-of-hard", "title": "", "text": text[hard]},
        {"id": "copy-of-positive", "title": "", "text": rows[3]["positive"]},
        # A passage that is a query's own text: sentence-transformers >= 6.3 never mines it, earlier versions do.
        {"id": "query-as-passage", "title": "", "text": beir.queries[SINGLE[0]]},
    ]
    return Dataset.from_list(rows), Dataset.from_list(corpus), text[hard]


@pytest.fixture(scope="module")
def model(embedder_id):
    """The embedded MiniLM with per-text embedding caches (both libraries then see the same vectors)."""
    from hardneg.negatives.dense import load_embedder

    m = load_embedder(embedder_id)
    for name in ("encode_query", "encode_document"):
        original, cache = getattr(m, name), {}

        def encode(texts, *args, _original=original, _cache=cache, **kwargs):
            missing = [t for t in dict.fromkeys(texts) if t not in _cache]
            if missing:
                kwargs["show_progress_bar"] = False
                _cache.update(zip(missing, _original(missing, *args, **kwargs), strict=True))
            return np.stack([_cache[t] for t in texts])

        setattr(m, name, encode)
    return m


def _ours(data, model, **options):
    queries, corpus, _ = data
    return mine_hard_negatives(
        queries,
        corpus,
        method="dense",
        embedder=model,
        near_duplicate_threshold=None,
        show_progress=False,
        **options,
    )


def _both(data, model, **options):
    queries, corpus, _ = data
    ours, stats = _ours(data, model, **options)
    options.setdefault("output_format", "triplet")
    pairs = Dataset.from_dict({"anchor": queries["query"][:], "positive": queries["positive"][:]})
    theirs = st_mine(pairs, model, corpus=corpus["text"][:], verbose=False, **options)
    return ours, stats, theirs


def _assert_same(ours: Dataset, theirs: Dataset) -> None:
    assert ours.column_names == theirs.column_names
    assert len(ours) == len(theirs) > 0
    for column in ours.column_names:
        a, b = ours[column][:], theirs[column][:]
        if column in ("scores", "score"):
            np.testing.assert_allclose(
                np.array(a, dtype=float), np.array(b, dtype=float), rtol=1e-5, atol=1e-6
            )
        else:
            assert a == b, column


# Every option the two functions share, each case on the multi-positive, duplicate-text data above.
CASES = {
    "window": dict(range_max=10, num_negatives=3),
    "range_min": dict(range_min=2, range_max=8, num_negatives=2),
    "absolute_margin=0": dict(range_max=15, num_negatives=3, absolute_margin=0.0),
    "absolute_margin=0.05": dict(range_max=15, num_negatives=2, absolute_margin=0.05),
    "relative_margin": dict(range_max=15, num_negatives=3, relative_margin=0.05),
    "max_score": dict(range_max=15, num_negatives=3, max_score=0.45),
    "min_score": dict(range_max=15, num_negatives=4, min_score=0.3),
    "all filters": dict(
        range_min=1, range_max=12, num_negatives=2, absolute_margin=0.0, relative_margin=0.1, max_score=0.6
    ),
    "triplet no scores": dict(range_max=10, num_negatives=2, output_scores=False),
    "n-tuple": dict(
        range_max=10, num_negatives=3, max_score=0.42, output_format="n-tuple", output_scores=False
    ),
    "n-tuple scores": dict(range_max=10, num_negatives=3, max_score=0.42, output_format="n-tuple"),
    "labeled-pair": dict(
        range_max=10, num_negatives=2, absolute_margin=0.0, output_format="labeled-pair", output_scores=False
    ),
    "labeled-pair scores": dict(
        range_max=10, num_negatives=2, absolute_margin=0.0, output_format="labeled-pair"
    ),
    "labeled-list": dict(
        range_max=10, num_negatives=3, max_score=0.42, output_format="labeled-list", output_scores=False
    ),
    "labeled-list scores": dict(range_max=10, num_negatives=3, max_score=0.42, output_format="labeled-list"),
}


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
def test_same_output_as_sentence_transformers(data, model, options):
    options = {"output_scores": True, "output_format": "triplet", **options}
    ours, _, theirs = _both(data, model, **options)
    _assert_same(ours, theirs)


def test_hardneg_table_holds_the_same_triplets(data, model):
    """The default table (provenance columns) carries sentence-transformers' triplets and scores."""
    queries, corpus, hard_text = data
    ours, stats, theirs = _both(
        data, model, range_max=15, num_negatives=3, absolute_margin=0.0, output_scores=True
    )
    triplet = ("anchor", "positive", "negative")
    assert [ours[c][:] for c in triplet] == [theirs[c][:] for c in triplet]
    np.testing.assert_allclose(
        ours["positive_score"][:], [s[0] for s in theirs["scores"]], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        ours["negative_score"][:], [s[1] for s in theirs["scores"]], rtol=1e-5, atol=1e-6
    )
    # What the equivalence is about is in the data: repeated queries, duplicate texts, and passages that score
    # between a query's lowest and highest positive (the old rule, each row's own positive, let them through).
    assert stats["distinct_queries"] < len(queries) and stats["duplicate_passages_merged"] == 2
    assert stats["params"]["mining_rules"] == mining_rules().follows
    assert hard_text in ours["negative"][:] and "copy-of-hard" not in ours["negative_id"][:]
    lowest: dict[str, float] = {}
    for r in ours:
        lowest[r["anchor"]] = min(lowest.get(r["anchor"], np.inf), r["positive_score"])
    assert all(r["negative_score"] <= lowest[r["anchor"]] for r in ours)
    between = 0
    for anchor in lowest:
        positives = set(queries.filter(lambda r, a=anchor: r["query"] == a)["positive"])
        others = [t for t in corpus["text"] if t not in positives]
        sim = model.similarity(model.encode_query([anchor]), model.encode_document(others))[0].numpy()
        highest = max(r["positive_score"] for r in ours if r["anchor"] == anchor)
        between += int(((sim > lowest[anchor] + 1e-6) & (sim <= highest)).sum())
    assert between > 0
    for anchor in lowest:  # the same negatives for every positive of a query
        rows = [r for r in ours if r["anchor"] == anchor]
        by_positive: dict[str, list[str]] = {}
        for r in rows:
            by_positive.setdefault(r["positive"], []).append(r["negative"])
        assert len({tuple(v) for v in by_positive.values()}) == 1


def test_random_sampling_draws_from_the_same_window(data, model):
    """Random sampling (seeded numpy here, Python's random there): the same window, one draw per query."""
    options = dict(range_min=1, range_max=9, absolute_margin=0.0)
    ours, _ = _ours(data, model, num_negatives=3, sampling_strategy="random", seed=7, **options)
    _, _, window = _both(data, model, num_negatives=8, sampling_strategy="top", **options)
    pool: dict[str, list[str]] = {}
    for r in window:
        if r["negative"] not in pool.setdefault(r["anchor"], []):
            pool[r["anchor"]].append(r["negative"])
    picked: dict[tuple[str, str], list[str]] = {}
    for r in ours:
        picked.setdefault((r["anchor"], r["positive"]), []).append(r["negative"])
    for (anchor, _), negs in picked.items():
        assert set(negs) <= set(pool[anchor]) and len(negs) == min(3, len(pool[anchor]))
        assert all(picked[k] == negs for k in picked if k[0] == anchor)
    assert any(set(negs) != set(pool[a][:3]) for (a, _), negs in picked.items())  # not the top three


def test_unknown_output_format_is_refused_before_mining(data):
    queries, corpus, _ = data
    with pytest.raises(ValueError, match="output_format 'pairs'"):
        mine_hard_negatives(queries, corpus, method="dense", embedder="no-such-model", output_format="pairs")


def test_the_query_text_rule_follows_the_installed_version(data, model):
    """The passage holding a query's own text: a negative of that query before 6.3, never from 6.3 on."""
    queries, _, _ = data
    ours, stats, theirs = _both(data, model, range_max=10, num_negatives=3, output_scores=True)
    query = queries.filter(lambda r: r["query_id"] == SINGLE[0])["query"][0]
    mined = [r["negative"] for r in ours if r["anchor"] == query]
    theirs_mined = [r["negative"] for r in theirs if r["anchor"] == query]
    assert mined == theirs_mined
    assert (query in mined) != mining_rules().exclude_query_text
    assert stats["skipped"].get("query_text", 0) == int(mining_rules().exclude_query_text)


@pytest.mark.parametrize(
    "version, extra, excluded",
    [
        ("6.0.0", 0, False),
        ("6.2.0", 0, False),
        ("6.3.0", 1, True),
        ("6.3.1", 1, True),
        ("6.10.0.dev0", 1, True),
    ],
)
def test_rules_per_sentence_transformers_version(version, extra, excluded):
    rules = mining_rules(version)
    assert (rules.extra_candidates, rules.exclude_query_text) == (extra, excluded)
