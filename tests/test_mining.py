"""Mining interface: contract, shared filters, false-negative guards, bad input (BM25 + dense, real assets)."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from hardneg.bm25 import BM25Index
from hardneg.corpus import passage_text
from hardneg.negatives import MINED_COLUMNS, mine_hard_negatives, suspected_false_negative_rate
from hardneg.negatives.mining import MiningParams, positive_matrix, select_negatives


@pytest.fixture(scope="module")
def small(cranfield_corpus, cranfield_dir):
    """300 real Cranfield passages and, as 'generated' queries, real queries paired with a judged passage."""
    from hardneg.corpus import load_beir_folder

    corpus = cranfield_corpus.select(range(300))
    beir = load_beir_folder(cranfield_dir)
    row_of = {d: i for i, d in enumerate(corpus["id"])}
    rows = []
    for qid, judged in beir.qrels.items():
        doc = next((d for d in sorted(judged, key=judged.get, reverse=True) if d in row_of), None)
        if doc is not None:
            r = corpus[row_of[doc]]
            rows.append(
                {
                    "query_id": qid,
                    "query": beir.queries[qid],
                    "positive_id": doc,
                    "positive": passage_text(r["title"], r["text"]),
                    "model": "human",
                }
            )
    return corpus, Dataset.from_list(rows[:40])


def _mine(queries, corpus, **kw):
    kw.setdefault("show_progress", False)
    return mine_hard_negatives(queries, corpus, **kw)


def test_bm25_contract_and_scores(small):
    corpus, queries = small
    triplets, stats = _mine(queries, corpus, method="bm25", num_negatives=3, range_max=20)
    assert triplets.column_names == list(MINED_COLUMNS)
    assert set(triplets["method"]) == {"bm25_hn"}
    assert len(triplets) == stats["rows"] == 3 * len(queries) - 3 * stats["queries_short_of_negatives"]
    assert all(r["negative_id"] != r["positive_id"] for r in triplets)
    # Scores are the BM25 scores a plain search gives, positives included.
    texts = [passage_text(t, x) for t, x in zip(corpus["title"], corpus["text"], strict=True)]
    index = BM25Index(texts, corpus["id"], show_progress=False)
    first = triplets[0]
    ids, scores = index.search([first["anchor"]], k=50)
    assert first["negative_score"] == pytest.approx(
        float(scores[0][ids[0].index(first["negative_id"])]), rel=1e-5
    )
    assert first["negative_rank"] == ids[0].index(first["negative_id"]) + 1
    pos_row = corpus["id"].index(first["positive_id"])
    assert first["positive_score"] == pytest.approx(
        float(index.score_pairs([first["anchor"]], [pos_row])[0]), rel=1e-5
    )
    # Negatives come best first per query; ranks rise.
    q0 = [r for r in triplets if r["query_id"] == first["query_id"]]
    assert [r["negative_rank"] for r in q0] == sorted(r["negative_rank"] for r in q0)
    assert stats["score_stats"]["negative"]["count"] == len(triplets)
    assert stats["candidates_considered"] > 0 and stats["skipped"]["positive"] > 0
    assert stats["score_name"].startswith("BM25")


def test_known_positives_and_duplicates_never_negatives(small):
    corpus, queries = small
    pos = dict(queries[0], query=queries[0]["positive"][:80])  # a query its positive (and copies) answer best
    q = Dataset.from_list([pos] + [queries[i] for i in range(1, 5)])
    # An exact copy (different id, different white space and case) and a near copy of the first positive.
    extra = Dataset.from_list(
        [
            {"id": "dup-exact", "title": "", "text": "  " + pos["positive"].upper().replace(" ", "  ")},
            {"id": "dup-near", "title": "", "text": pos["positive"] + " indeed"},
        ]
    )
    from datasets import concatenate_datasets

    pool = concatenate_datasets([corpus, extra])
    other = corpus["id"][:3]
    triplets, stats = _mine(
        q, pool, method="bm25", num_negatives=5, range_max=30, extra_positives={pos["query_id"]: set(other)}
    )
    negs = set(triplets.filter(lambda r: r["query_id"] == pos["query_id"])["negative_id"])
    assert not negs & {"dup-exact", "dup-near", pos["positive_id"], *other}
    assert stats["skipped"]["duplicate_of_positive"] >= 1
    assert stats["skipped"]["near_duplicate_of_positive"] >= 1
    # Same query text with another positive: each is the other's known positive.
    twin = Dataset.from_list([dict(pos, query_id="twin", positive_id=corpus["id"][10])] + [pos])
    t2, _ = _mine(twin, corpus, method="bm25", num_negatives=5, range_max=30)
    assert not set(t2["negative_id"]) & {pos["positive_id"], corpus["id"][10]}


def test_margins_and_window(small):
    corpus, queries = small
    t, s = _mine(queries, corpus, method="bm25", absolute_margin=0.0, num_negatives=2, range_max=20)
    assert all(r["negative_score"] <= r["positive_score"] for r in t)
    assert s["skipped"]["absolute_margin"] > 0
    t, s = _mine(
        queries, corpus, method="bm25", relative_margin=0.1, max_score=12.0, min_score=1.0, range_max=20
    )
    assert all(1.0 <= r["negative_score"] <= min(12.0, 0.9 * r["positive_score"]) + 1e-6 for r in t)
    top, _ = _mine(queries, corpus, method="bm25", range_max=20)
    skip, s = _mine(queries, corpus, method="bm25", range_min=3, range_max=20)
    assert s["skipped"]["range_min"] == 3 * len(queries)
    assert sum(a != b for a, b in zip(top["negative_id"], skip["negative_id"], strict=True)) > 0


def test_random_sampling_is_seeded(small):
    corpus, queries = small
    a, _ = _mine(queries, corpus, method="bm25", sampling_strategy="random", num_negatives=2, seed=1)
    b, _ = _mine(queries, corpus, method="bm25", sampling_strategy="random", num_negatives=2, seed=1)
    c, _ = _mine(queries, corpus, method="bm25", sampling_strategy="random", num_negatives=2, seed=2)
    top, _ = _mine(queries, corpus, method="bm25", num_negatives=2)
    assert a["negative_id"] == b["negative_id"] != c["negative_id"]
    assert a["negative_id"] != top["negative_id"]


def test_select_negatives_sign_safe_relative_margin_and_shortfall():
    # Log-likelihood-like scores (all < 0). Row 0: positive -2.0, relative 0.1 -> keep scores <= -2.2.
    # Row 1: positive -1.0 -> keep <= -1.1; the sign-unsafe pos * (1 - m) = -0.9 would wrongly keep -1.05.
    idx = np.array([[0, 1, 2, 3], [4, 5, -1, -1]])
    scores = np.array([[-1.9, -2.1, -2.3, -3.0], [-1.05, -1.5, 0, 0]])
    params = MiningParams(range_max=4, num_negatives=3, relative_margin=0.1)
    sel = select_negatives(
        idx, scores, np.array([-2.0, -1.0]), np.array([9, 8]), positive_matrix([[9], [8]]), params
    )
    assert sel.negatives[0].tolist() == [2, 3] and sel.negatives[1].tolist() == [5]
    assert sel.skipped["relative_margin"] == 3
    assert sel.ranks[0].tolist() == [3, 4] and sel.ranks[1].tolist() == [2]
    assert sel.queries_short_of_negatives == 2  # never padded
    assert sel.candidates_considered == 6


def test_bad_input(small, tiny_corpus):
    corpus, queries = small
    with pytest.raises(ValueError, match="range_min"):
        _mine(queries, corpus, range_min=5, range_max=5)
    with pytest.raises(ValueError, match="larger than the pool"):
        _mine(queries, corpus, num_negatives=10, range_max=5)
    with pytest.raises(ValueError, match="empty"):
        _mine(queries, corpus.select([]))
    dup = Dataset.from_list([{"id": "a", "title": "", "text": "x"}, {"id": "a", "title": "", "text": "y"}])
    with pytest.raises(ValueError, match="duplicate ids"):
        _mine(queries, dup)
    with pytest.raises(ValueError, match="not in the corpus"):
        _mine(queries, tiny_corpus)
    with pytest.raises(ValueError, match="lack column"):
        _mine(queries.remove_columns("positive_id"), corpus)
    with pytest.raises(ValueError, match="unknown method"):
        _mine(queries, corpus, method="magic")
    # a query of invisible characters only is empty under the one blank rule (hardneg.text.is_blank)
    invisible = Dataset.from_list([dict(queries[0], query="\u200b\u2060 \ufeff")])
    with pytest.raises(ValueError, match="some queries are empty"):
        _mine(invisible, corpus)
    # A query with no term in the corpus and a pool smaller than asked: counted, not crashed, not padded.
    odd = Dataset.from_list([dict(queries[0], query_id="oov", query="zzzqqq xxyyzz")])
    t, s = _mine(odd, corpus, method="bm25")
    assert len(t) == 0 and s["queries_without_candidates"] == 1 and s["queries_short_of_negatives"] == 1
    few = corpus.select(range(4)).map(lambda r: r)
    q = Dataset.from_list(
        [
            {
                "query_id": "q",
                "query": few[0]["text"][:60],
                "positive_id": few[0]["id"],
                "positive": few[0]["text"],
            }
        ]
    )
    t, s = _mine(q, few, method="bm25", num_negatives=5, range_max=10)
    assert len(t) <= 3 and s["queries_short_of_negatives"] == 1


def test_decontamination_in_mining(small):
    corpus, queries = small
    banned = set(corpus["id"][:150]) - set(queries["positive_id"])
    t, s = _mine(
        queries,
        corpus,
        method="bm25",
        num_negatives=3,
        exclude_ids=banned,
        exclude_queries=[queries[0]["query"].upper()],
    )
    assert not set(t["negative_id"]) & banned
    assert queries[0]["query_id"] not in set(t["query_id"])
    assert s["decontamination"]["passages_removed"] == len(banned)
    assert s["decontamination"]["exact_query_match"] == 1


class _OverlapScorer:
    """A transparent test scorer (word overlap), to check the rate's arithmetic without a model."""

    name = "overlap"
    score_name = "shared words"

    def score(self, queries, passages, batch_size=16):
        return np.array(
            [len(set(q.split()) & set(p.split())) for q, p in zip(queries, passages, strict=True)],
            dtype=float,
        )


def test_suspected_false_negative_rate_any_table():
    rows = Dataset.from_dict(
        {
            "anchor": ["a b c", "a b c", "x y"],
            "positive": ["a b c", "a", "x"],
            "negative": ["a", "a b", "q"],
            "method": ["llm_hn"] * 3,
            "negative_id": [None] * 3,
        }
    )
    rate, detail = suspected_false_negative_rate(rows, _OverlapScorer())
    assert rate == pytest.approx(1 / 3) and detail["suspected"] == 1 and detail["scorer"] == "overlap"
    empty_rate, _ = suspected_false_negative_rate(rows.select([]), _OverlapScorer())
    assert empty_rate is None


@pytest.fixture(scope="module")
def minilm(embedder_id):
    from hardneg.negatives.dense import load_embedder

    return load_embedder(embedder_id)


@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_bm25_pair_scores_equal_search_scores(small, method):
    corpus, queries = small
    texts = [passage_text(t, x) for t, x in zip(corpus["title"][:], corpus["text"][:], strict=True)]
    index = BM25Index(texts, corpus["id"][:], method=method, show_progress=False)
    q = queries["query"][:3]
    rows, scores = index.search_indices(q, k=20)
    got = index.score_pairs([x for x in q for _ in range(20)], rows.reshape(-1))
    np.testing.assert_allclose(got, scores.reshape(-1), rtol=1e-5, atol=1e-6)


def test_dense_faiss_search_gives_the_exact_search_negatives(small, minilm):
    pytest.importorskip("faiss")
    corpus, queries = small
    corpus = corpus.select(range(120))
    keep = set(corpus["id"])
    queries = queries.filter(lambda r: r["positive_id"] in keep).select(range(8))
    kw = dict(method="dense", embedder=minilm, num_negatives=3, range_max=10, output_scores=True)
    exact, _ = _mine(queries, corpus, **kw)
    flat, stats = _mine(queries, corpus, use_faiss=True, **kw)
    assert len(exact) == len(flat) > 0
    assert flat["negative_id"] == exact["negative_id"]
    np.testing.assert_allclose(flat["negative_score"], exact["negative_score"], rtol=1e-5, atol=1e-6)


def test_dense_search_normalises_the_pool_once_with_the_bits_of_model_similarity(minilm, monkeypatch):
    import torch

    import hardneg.negatives.dense as dense

    rng = np.random.default_rng(0)
    doc = rng.normal(size=(500, 384)).astype(np.float32)
    qry = torch.from_numpy(rng.normal(size=(7, 384)).astype(np.float32))
    assert minilm.similarity_fn_name == "cosine"
    pool = dense.PoolSearch(minilm, doc)
    assert torch.equal(pool.similarity(qry), minilm.similarity(qry, torch.from_numpy(doc)))
    rows = np.array([3, 0, 499, 3, 17, 250, 1])
    assert torch.equal(pool.pairwise(qry, rows), minilm.similarity_pairwise(qry, torch.from_numpy(doc[rows])))
    # a pool larger than the cell budget is searched a few queries at a time, and the queries are encoded a
    # chunk at a time: the same candidates and scores
    queries, passages = (
        [f"wing lift {i}" for i in range(6)],
        [f"passage {i} about wings and lift" for i in range(40)],
    )
    known = np.array([[i, (i + 7) % 40] for i in range(6)])
    whole = dense.dense_candidates(queries, passages, known, k=5, model=minilm, show_progress=False)
    monkeypatch.setattr(dense, "SIMILARITY_CELLS", 80)  # 2 queries x 40 passages per step
    monkeypatch.setattr(dense, "ENCODE_CHUNK", 4)  # 4 queries, then 2
    steps = dense.dense_candidates(queries, passages, known, k=5, model=minilm, show_progress=False)
    assert np.array_equal(whole.indices, steps.indices)
    np.testing.assert_allclose(whole.scores, steps.scores, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(whole.positive_scores, steps.positive_scores, rtol=1e-6, atol=1e-6)
    assert whole.positive_scores.shape == (6, 2) and not np.isnan(whole.positive_scores).any()
    # the pool is encoded a chunk at a time into one array: the same embeddings as one call
    chunked = dense.encode_pool(passages, minilm, show_progress=False)
    one_call = minilm.encode_document(passages, normalize_embeddings=True, convert_to_numpy=True)
    assert chunked.shape == one_call.shape == (40, 384) and chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, one_call, rtol=0, atol=1e-6)


def test_dense_pool_search_in_place_half_precision_and_a_larger_step(minilm, monkeypatch):
    import torch

    import hardneg.negatives.dense as dense

    rng = np.random.default_rng(1)
    doc = rng.normal(size=(300, 384)).astype(np.float32)
    qry = rng.normal(size=(9, 384)).astype(np.float32)
    copied = dense.PoolSearch(minilm, doc)
    owned = dense.PoolSearch(minilm, doc.copy(), in_place=True)  # normalised where it is: the same bits
    assert torch.equal(copied.doc, owned.doc)
    assert not np.shares_memory(copied.doc.numpy(), doc)

    def top(pool, q, k=7):
        scores, rows = np.zeros((len(q), k), np.float32), np.zeros((len(q), k), np.int64)
        pool.search(torch.from_numpy(q), k, scores, rows)
        return scores, rows

    expected = torch.topk(minilm.similarity(torch.from_numpy(qry), torch.from_numpy(doc)), k=7, dim=1)
    scores, rows = top(owned, qry)
    assert np.array_equal(rows, expected.indices.numpy()) and np.array_equal(scores, expected.values.numpy())
    assert len(owned._buffer) == 9  # the similarity buffer holds what the search needs, at most the step
    # a smaller step: the same buffer, the same rows (the matrix product's last bits depend on how many
    # queries it multiplies at once)
    monkeypatch.setattr(dense, "SIMILARITY_CELLS", 2 * 300)
    small = top(owned, qry)
    assert len(owned._buffer) == 9 and np.array_equal(small[1], rows)
    np.testing.assert_allclose(small[0], scores, rtol=0, atol=1e-6)
    # more queries than the buffer holds, in one step: a larger buffer, the same results
    monkeypatch.setattr(dense, "SIMILARITY_CELLS", 2**23)
    more = top(owned, np.concatenate([qry, qry]))
    assert len(owned._buffer) == 18 and np.array_equal(more[1], np.concatenate([rows, rows]))
    # half-precision embeddings are searched in float32, as model.similarity does
    half = dense.PoolSearch(minilm, doc.astype(np.float16), in_place=True)
    assert half.doc.dtype == torch.float32
    hq = qry.astype(np.float16)
    want = minilm.similarity(torch.from_numpy(hq), torch.from_numpy(doc.astype(np.float16)))
    assert torch.equal(half.similarity(torch.from_numpy(hq)), want)
    scores, rows = top(half, hq)
    assert np.array_equal(rows, torch.topk(want, k=7, dim=1).indices.numpy())
    got = half.pairwise(torch.from_numpy(hq), np.arange(9))
    assert torch.equal(
        got, minilm.similarity_pairwise(torch.from_numpy(hq), torch.from_numpy(doc[:9].astype(np.float16)))
    )
