"""The commit of a loaded model is recorded and checked against a pinned revision (issue 13, case 4)."""

from __future__ import annotations

import pytest

from hardneg import revisions
from hardneg.train import load_model


def test_model_commit_is_recorded_and_a_cached_copy_of_another_revision_refused(monkeypatch, embedder_id):
    model = load_model(embedder_id, max_seq_length=32)
    assert revisions.model_commit(model) is None  # a local folder has no Hub commit
    config = model[0].auto_model.config
    monkeypatch.setattr(
        config, "_commit_hash", "a" * 40, raising=False
    )  # as transformers sets it for Hub files
    assert revisions.model_commit(model) == "a" * 40

    monkeypatch.setattr(revisions, "resolve_revision", lambda repo, rev, kind="dataset": "b" * 40)
    with pytest.raises(
        ValueError, match=r"org/model@v1 is commit bbbbbbbbbbbb but the copy loaded is commit aaaaaaaa"
    ):
        revisions.check_model_loaded(model, "org/model", "v1")
    monkeypatch.setattr(revisions, "resolve_revision", lambda repo, rev, kind="dataset": "a" * 40)
    assert revisions.check_model_loaded(model, "org/model", "v1") == "a" * 40
    assert revisions.check_model_loaded(model, "org/model", None) == "a" * 40  # nothing pinned: recorded only
