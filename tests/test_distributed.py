"""Work every process of a sharded build needs (the dense pool embeddings): each process computes its part,
balanced by tokens, and reads the others' from the shared folder; files are reused by later calls."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hardneg.distributed import Shard, balanced_bounds, merge_stats, shared_array


def test_balanced_bounds_split_by_length_not_rows():
    lengths = [100, 1, 1, 1, 1, 1, 1, 1, 1, 100]
    assert balanced_bounds(lengths, 2) == [0, 5, 10]
    assert balanced_bounds([10] * 7, 3) == [0, 3, 5, 7]
    bounds = balanced_bounds([5, 500, 5, 5], 3)
    assert bounds[0] == 0 and bounds[-1] == 4 and bounds == sorted(bounds)
    assert balanced_bounds([], 2) == [0, 0, 0]


def _rows(start: int, stop: int) -> np.ndarray:
    return np.arange(start, stop, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)


def test_two_processes_each_compute_their_part_and_read_the_other(tmp_path):
    calls: dict[int, tuple[int, int]] = {}
    out: dict[int, np.ndarray] = {}
    lengths = [1] * 6 + [10] * 4  # the long rows end up in fewer hands

    def process(rank: int) -> None:
        def compute(start: int, stop: int) -> np.ndarray:
            calls[rank] = (start, stop)
            return _rows(start, stop)

        out[rank] = shared_array(
            tmp_path, "emb", 10, compute, Shard(rank, 2), lengths=lambda: lengths, poll_s=0.01, timeout_s=30
        )

    threads = [threading.Thread(target=process, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == {0: (0, 8), 1: (8, 10)}  # 6 + 20 = 26 vs 20 tokens, not 5 rows each
    for rank in (0, 1):
        np.testing.assert_array_equal(out[rank], _rows(0, 10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.part-00-of-02.npy", "emb.part-01-of-02.npy"]

    def never(start: int, stop: int) -> np.ndarray:
        raise AssertionError("a finished part is computed again")

    again = shared_array(tmp_path, "emb", 10, never, Shard(1, 2), lengths=None, poll_s=0.01)
    np.testing.assert_array_equal(again, _rows(0, 10))


def test_one_process_caches_the_whole_array_and_a_missing_part_times_out(tmp_path):
    first = shared_array(tmp_path, "one", 4, _rows, Shard())
    assert (tmp_path / "one.npy").is_file()
    np.testing.assert_array_equal(shared_array(tmp_path, "one", 4, None, Shard()), first)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"did not finish within 0 s; fix: check those processes' logs"):
        shared_array(tmp_path, "lonely", 4, _rows, Shard(0, 2), poll_s=0.01, timeout_s=0.05)


def test_encode_corpus_equals_encode_document_and_reuses_its_cache(tmp_path, tiny_corpus, embedder_id):
    from hardneg.negatives.dense import encode_pool, load_embedder

    model = load_embedder(embedder_id, device="cpu")
    texts = tiny_corpus["text"][:]
    plain = model.encode_document(texts, normalize_embeddings=True, convert_to_numpy=True)
    cached = encode_pool(texts, model, cache_folder=tmp_path, model_id=embedder_id, show_progress=False)
    np.testing.assert_allclose(cached, plain, atol=1e-6)
    [saved] = list(tmp_path.glob("corpus_embeddings_*.npy"))

    halves: dict[int, np.ndarray] = {}

    def process(rank: int) -> None:
        halves[rank] = encode_pool(
            texts,
            model,
            cache_folder=tmp_path / "two",
            model_id=embedder_id,
            shard=Shard(rank, 2),
            show_progress=False,
        )

    threads = [threading.Thread(target=process, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rank in (0, 1):
        np.testing.assert_allclose(halves[rank], plain, atol=1e-6)
    assert len(list((tmp_path / "two").glob("corpus_embeddings_*.part-0[01]-of-02.npy"))) == 2

    model.encode_document = None  # a second call must not encode
    again = encode_pool(texts, model, cache_folder=tmp_path, model_id=embedder_id, show_progress=False)
    np.testing.assert_array_equal(again, cached)
    other = encode_pool(
        texts[:5],
        load_embedder(embedder_id, device="cpu"),
        cache_folder=tmp_path,
        model_id=embedder_id,
        show_progress=False,
    )
    assert other.shape == (5, plain.shape[1]) and len(list(tmp_path.glob("corpus_embeddings_*.npy"))) == 2
    assert saved.is_file()


def test_every_process_shares_out_the_pool_before_its_methods(tmp_path, tiny_corpus, monkeypatch):
    """share_pool runs in every process before the methods, also in one that will reuse its finished dense
    stage, so no process waits for a part never written; a shard without queries then mines nothing."""
    import hardneg.build.shards
    from hardneg.build import BuildConfig, share_pool
    from hardneg.methods import QUERY_FEATURES, MethodContext, empty_table
    from hardneg.methods.dense_hn import run as run_dense_hn
    from hardneg.negatives import pool_passages
    from hardneg.negatives.dense import encode_pool, load_embedder

    config = BuildConfig(methods=["bm25_hn", "dense_hn"], score_batch_size=8)
    folder = tmp_path / "cache" / "pool_embeddings"
    # One model for both "processes": loading models in two threads at once races on transformers' global
    # patches (no_tie_weights) and leaves later loads in this test process untied.
    shared = load_embedder(config.options_of("dense_hn")["embedder"], device="cpu")
    monkeypatch.setattr(hardneg.build.shards, "load_embedder", lambda name: shared)
    threads = [
        threading.Thread(
            target=share_pool, args=(config, tiny_corpus, tmp_path / "cache", Shard(r, 2)), daemon=True
        )
        for r in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(list(folder.glob("corpus_embeddings_*.part-0[01]-of-02.npy"))) == 2

    options = config.options_of("dense_hn")
    model = shared
    model.encode_document = None  # the methods read the parts: encoding again would fail
    texts = pool_passages(tiny_corpus).passages
    joined = encode_pool(texts, model, cache_folder=folder, model_id=options["embedder"], shard=Shard(1, 2))
    assert joined.shape[0] == len(texts)
    ctx = MethodContext(
        name="dense_hn",
        queries=empty_table(QUERY_FEATURES),
        pool=tiny_corpus,
        options=options,
        seed=0,
        cache_dir=tmp_path / "cache" / "shard-01-of-02",
        shared_cache_dir=tmp_path / "cache",
        shard=Shard(1, 2),
    )
    table, stats = run_dense_hn(ctx)  # every query of process 1 was rejected
    assert len(table) == 0 and stats == {"rows": 0, "method": "dense_hn"}
    assert share_pool(BuildConfig(methods=["bm25_hn"]), tiny_corpus, tmp_path / "none", Shard(0, 2)) is None
    assert not (tmp_path / "none").exists()  # no dense method: nothing to share, nobody waits


def test_rates_merge_over_the_shards_that_have_one():
    parts = [{"rows": 2, "x_rate": 0.5, "duplicate_passages_merged": 2}, {"rows": 2, "x_rate": 0.1}]
    merged = merge_stats([{"rows": 0}, *parts])
    assert merged["rows"] == 4 and merged["x_rate"] == pytest.approx(0.3)
    assert merge_stats([parts[0], parts[0]])["duplicate_passages_merged"] == 2  # the pool's, not per shard


def test_a_marker_naming_stages_being_redone_is_waited_for(tmp_path):
    """A rerun of the same command finds the last run's done.json; the main process waits until the stages it
    names are finished again (the resume in the two-process build test hit this race on a slower machine)."""
    from hardneg.distributed import wait_for_shards, write_done

    write_done(tmp_path / "s0", "run", {"keys": {"dense_hn": "k"}})
    with pytest.raises(RuntimeError, match=r"did not finish within 0 s"):
        wait_for_shards([tmp_path / "s0"], "run", poll_s=0.01, timeout_s=0.05, ready=lambda f, m: False)
    [marker] = wait_for_shards([tmp_path / "s0"], "run", ready=lambda f, m: m["keys"] == {"dense_hn": "k"})
    assert marker["run_id"] == "run"
