"""``ce`` mining with the offline LM query-likelihood scorer, its resumable cache, and the false-negative rate."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from hardneg.corpus import passage_text
from hardneg.negatives import MINED_COLUMNS, mine_hard_negatives, suspected_false_negative_rate
from hardneg.scorers import load_scorer


@pytest.fixture(scope="session")
def ql():
    return load_scorer("embedded:ql", show_progress=False, max_passage_tokens=48)  # short: fast tests


@pytest.fixture(scope="module")
def data(cranfield_corpus):
    corpus = cranfield_corpus.select(range(60))
    rows = []
    for i in (0, 7, 21):
        r = corpus[i]
        text = passage_text(r["title"], r["text"])
        rows.append(
            {"query_id": f"q{i}", "query": r["title"] or text[:60], "positive_id": r["id"], "positive": text}
        )
    return corpus, Dataset.from_list(rows)


def test_ce_mining_rescores_and_guards(data, ql, tmp_path):
    corpus, queries = data
    kw = dict(method="ce", scorer=ql, range_max=3, num_negatives=2, show_progress=False, batch_size=8)
    triplets, stats = mine_hard_negatives(queries, corpus, cache_dir=tmp_path, **kw)
    assert triplets.column_names == list(MINED_COLUMNS) and set(triplets["method"]) == {"ce_hn"}
    assert stats["score_name"] == ql.score_name
    # Scores in the rows are the scorer's own scores of those pairs.
    head = triplets.select(range(2))
    direct = ql.score(head["anchor"][:], head["negative"][:])
    np.testing.assert_allclose(head["negative_score"][:], direct, atol=2e-4)
    # The rate from the mining stats equals the standalone estimate with the same scorer.
    rate, detail = suspected_false_negative_rate(triplets, ql, show_progress=False)
    assert rate == pytest.approx(stats["suspected_false_negative_rate"]) and detail["rows"] == len(triplets)
    # Resumable: a rerun reads every chunk from the cache (same rows), and the guard removes suspects.
    assert list(tmp_path.glob("scores-*.npy"))
    again, _ = mine_hard_negatives(queries, corpus, cache_dir=tmp_path, **kw)
    assert again["negative_id"] == triplets["negative_id"]
    guarded, gstats = mine_hard_negatives(queries, corpus, cache_dir=tmp_path, absolute_margin=0.0, **kw)
    assert all(r["negative_score"] <= r["positive_score"] for r in guarded)
    assert gstats["suspected_false_negative_rate"] in (0.0, None)
