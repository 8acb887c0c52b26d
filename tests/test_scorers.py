"""Joint scorers: the LM query-likelihood scorer (real embedded LLM) and the CrossEncoder wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from hardneg.corpus import passage_text
from hardneg.scorers import CrossEncoderScorer, load_scorer


@pytest.fixture(scope="session")
def ql():
    return load_scorer("embedded:ql", show_progress=False, max_passage_tokens=48)  # short: fast tests


@pytest.fixture(scope="module")
def passages(cranfield_corpus):
    small = cranfield_corpus.select(range(4))
    return [passage_text(t, x) for t, x in zip(small["title"][:], small["text"][:], strict=True)]


def test_ql_equals_a_plain_forward_pass(ql, passages):
    import torch

    queries = ["what is the effect of heat transfer on boundary layers", "hypersonic similarity laws"] * 2
    got = ql.score(queries, passages, batch_size=4)
    # Reference: one unpadded sequence at a time, full logits, mean log-prob of the query tokens.
    for q, p, value in list(zip(queries, passages, got, strict=True))[:2]:
        prompt = ql._prefix + ql._encode([p.strip()])[0][: ql.max_passage_tokens] + ql._suffix
        query = ql._encode([" " + q])[0]
        ids = torch.tensor([prompt + query])
        with torch.no_grad():
            logp = torch.log_softmax(ql.model(ids).logits[0, :-1].float(), -1)
        ref = logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][-len(query) :].mean().item()
        assert value == pytest.approx(ref, abs=2e-4)
    # Batching, order and duplicate pairs do not change a score (computed again, not remembered).
    ql.forget()
    again = ql.score(queries[::-1] + queries[:1], passages[::-1] + passages[:1], batch_size=2)
    np.testing.assert_allclose(again[:4][::-1], got, atol=2e-4)
    assert again[4] == pytest.approx(got[0], abs=2e-4)
    assert np.all(got < 0) and "log-likelihood" in ql.score_name


def test_scorer_remembers_pairs_across_calls(ql, passages, monkeypatch):
    ql.forget()
    computed = []
    real = ql._score_pairs
    monkeypatch.setattr(ql, "_score_pairs", lambda pairs, bs: computed.append(len(pairs)) or real(pairs, bs))
    q = ["heat transfer in boundary layers", "hypersonic similarity"]
    first = ql.score(q, passages[:2])
    second = ql.score(q[::-1] + ["wing flutter"], passages[:2][::-1] + passages[2:3])
    assert computed == [2, 1]  # only the new pair was scored the second time
    np.testing.assert_array_equal(second[:2], first[::-1])
    ql.memo_limit = 0
    try:
        ql.forget()
        ql.score(q, passages[:2])
        ql.score(q, passages[:2])
        assert computed == [2, 1, 2, 2]  # memo_limit 0: nothing is remembered
    finally:
        ql.memo_limit = type(ql).memo_limit


def test_ql_prefers_the_passage_a_query_is_about(ql, passages):
    # A query copied from passage 0 is likelier given passage 0 than given unrelated passages.
    query = " ".join(passages[0].split()[:12])
    scores = ql.score([query] * 4, passages[:4])
    assert scores.argmax() == 0


def test_ql_bad_input(ql):
    with pytest.raises(ValueError, match="one per pair"):
        ql.score(["a"], ["b", "c"])
    assert ql.score([], []).shape == (0,)
    with pytest.raises(ValueError, match="unknown embedded scorer"):
        load_scorer("embedded:nope")


def test_cross_encoder_scorer_matches_predict(embedder_id, passages):
    # Speed/equality check only: this CrossEncoder's head is random (FACTS.md) and must never be used to mine.
    from sentence_transformers import CrossEncoder

    from hardneg.assets import resolve_embedder

    ce = CrossEncoder(resolve_embedder(embedder_id).name_or_path, num_labels=1, max_length=128)
    scorer = CrossEncoderScorer("minilm-random-head", model=ce, show_progress=False)
    queries = ["boundary layer transition", "shock waves at hypersonic speed", "heat transfer", "drag"]
    pairs = list(zip(queries, passages, strict=True))
    want = ce.predict(pairs, batch_size=4, show_progress_bar=False)
    got = scorer.score(queries + queries[:2], passages + passages[:2], batch_size=4)
    np.testing.assert_allclose(got[:4], want, atol=1e-5)
    np.testing.assert_allclose(got[4:], want[:2], atol=1e-5)
