"""What lets a build grow to millions of passages without changing its rows (issue 24): generation in blocks,
BM25 search on every core, the folder's parquet layout, a rerun that leaves an unchanged folder untouched,
streaming loads and a sampled explorer. benchmarks/scale.py measures the sizes; these check the behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, load_dataset
from scripted_llm import scripted

import hardneg.generation as generation
from hardneg.bm25 import BM25Index, available_threads
from hardneg.build import BuildConfig, build
from hardneg.corpus import load_corpus
from hardneg.dataset_folder import parquet_layout, save_dataset_folder
from hardneg.explore import build_payload
from hardneg.queries import generate_queries

BUILD = dict(num_passages=24, methods=["llm_hn", "bm25_hn"], false_negative_scorer="none")


def test_generation_in_blocks_gives_the_rows_of_one_call(tmp_path, monkeypatch):
    corpus = load_corpus("embedded:cranfield").select(range(30))
    _, gen = scripted()
    whole, whole_stats = generate_queries(corpus, gen, cache_dir=tmp_path / "a", progress=False)
    monkeypatch.setattr(generation, "GENERATION_BLOCK", 7)
    _, gen = scripted()
    blocks, stats = generate_queries(corpus, gen, cache_dir=tmp_path / "b", progress=False)
    assert blocks.to_list() == whole.to_list()
    assert stats["rows"] == whole_stats["rows"] and stats["rejects"] == whole_stats["rejects"]
    assert gen.prompts == whole_stats["generated_this_run"]  # each block generated its own items once
    rejects = [json.loads(x) for x in (tmp_path / "b" / "rejects" / "queries.jsonl").read_text().splitlines()]
    whole_rejects = (tmp_path / "a" / "rejects" / "queries.jsonl").read_text().splitlines()
    assert len(rejects) == len(whole_rejects)  # later blocks append, not overwrite


def test_bm25_search_on_threads_gives_the_same_ranking():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choice(words, size=40)) for _ in range(3000)]
    index = BM25Index(texts, [str(i) for i in range(len(texts))], show_progress=False)
    queries = [" ".join(rng.choice(words, size=4)) for _ in range(400)]
    one = index.search_indices(queries, k=10, n_threads=1)
    two = index.search_indices(queries, k=10, n_threads=2)
    default = index.search_indices(queries, k=10)
    for got in (two, default):
        assert np.array_equal(one[0], got[0]) and np.array_equal(one[1], got[1])


def test_bm25_index_tokenised_in_chunks_scores_as_bm25s_does_on_the_whole_list(monkeypatch):
    import bm25s
    import pyarrow as pa
    import Stemmer

    import hardneg.bm25 as bm25
    from hardneg.text import ArrowTexts

    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(200)] + ["the", "of", "Running", "runs"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(500)] + ["", "the of"]
    queries = [" ".join(rng.choice(words, size=3)) for _ in range(100)]
    stemmer = Stemmer.Stemmer("english")
    whole = bm25s.BM25(backend="numba")
    whole.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    want = whole.retrieve(
        bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False),
        k=20,
        show_progress=False,
    )
    monkeypatch.setattr(bm25, "TOKENIZE_CHUNK", 37)  # many chunks, one vocabulary
    index = bm25.BM25Index(ArrowTexts(pa.array(texts)), show_progress=False)
    got = index.search_indices(queries, k=20, n_threads=1)
    assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])  # same rows, same bits


def test_arrow_texts_reads_rows_slices_and_gathers_across_chunks():
    import pyarrow as pa

    from hardneg.text import ArrowTexts, take_texts

    texts = [f"t{i}" for i in range(25)]
    column = pa.chunked_array([texts[:10], [], texts[10:11], texts[11:]])
    seq = ArrowTexts(column)
    assert len(seq) == 25 and list(seq) == texts and seq[10] == "t10" and seq[-1] == "t24"
    assert seq[8:13] == texts[8:13] and seq[::7] == texts[::7]
    assert (
        take_texts(seq, [24, 0, 10]).to_pylist()
        == ["t24", "t0", "t10"]
        == take_texts(texts, [24, 0, 10]).to_pylist()
    )
    with pytest.raises(IndexError):
        seq[25]


@pytest.fixture
def mining_inputs():
    """200 Cranfield passages and 40 queries (words of every fifth passage, which is their positive)."""
    corpus = load_corpus("embedded:cranfield").select(range(200))
    first = corpus.select(range(0, 200, 5))
    queries = Dataset.from_dict(
        {
            "query_id": [f"q{i}" for i in range(len(first))],
            "query": [" ".join(t.split()[2:9]) for t in first["text"]],
            "positive_id": first["id"],
            "positive": first["text"],
        }
    )
    return corpus, queries


@pytest.mark.parametrize("strategy", ["top", "random"])
def test_mining_in_blocks_gives_the_rows_of_one_block(mining_inputs, monkeypatch, strategy):
    import hardneg.negatives as negatives

    corpus, queries = mining_inputs
    options = dict(
        method="bm25", num_negatives=2, range_max=12, sampling_strategy=strategy, show_progress=False
    )
    whole, whole_stats = negatives.mine_hard_negatives(queries, corpus, **options)
    monkeypatch.setattr(negatives, "MINING_BLOCK", 7)
    blocks, stats = negatives.mine_hard_negatives(queries, corpus, **options)
    assert blocks.to_list() == whole.to_list()
    for key in ("rows", "candidates_considered", "skipped", "queries_short_of_negatives", "score_stats"):
        assert stats[key] == whole_stats[key]


def test_mined_rows_written_to_a_file_in_blocks_are_the_rows_built_in_memory(
    mining_inputs, monkeypatch, tmp_path
):
    import hardneg.negatives as negatives

    corpus, queries = mining_inputs
    queries = queries.select(range(39, -1, -1))  # through an indices mapping too
    options = dict(method="bm25", num_negatives=2, range_max=12, show_progress=False)
    whole, whole_stats = negatives.mine_hard_negatives(queries, corpus, **options)
    monkeypatch.setattr(negatives, "MINING_BLOCK", 7)  # the rows are written 7 query rows at a time
    path = tmp_path / "rows" / "bm25_hn.arrow"
    on_file, stats = negatives.mine_hard_negatives(queries, corpus, cache_file_name=path, **options)
    assert on_file.cache_files == [{"filename": str(path)}]  # read back memory-mapped from the file
    assert on_file.features == whole.features and on_file.to_list() == whole.to_list()
    assert stats["rows"] == whole_stats["rows"]


def test_stage_tables_round_trip_through_one_arrow_file_and_earlier_folders_still_read(tmp_path):
    from hardneg.build.stages import DATA_FILE, Stages
    from hardneg.methods import MINED_FEATURES, empty_table

    stages = Stages(tmp_path / "stages")
    table = Dataset.from_dict({"a": list(range(120_000)), "b": [str(i) for i in range(120_000)]})
    picked = table.select(range(119_999, -1, -2))  # more than one block, through an indices mapping
    back = stages.put("s", "k1", picked, {"rows": len(picked)})
    assert back.cache_files == [{"filename": str(tmp_path / "stages" / "s" / DATA_FILE)}]
    assert back.to_dict() == picked.to_dict() and back.features == picked.features
    assert stages.get("s", "k2") is None
    assert stages.get("s", "k1")[0].to_dict() == picked.to_dict()
    empty = stages.put("e", "k", empty_table(MINED_FEATURES), {})
    assert len(empty) == 0 and empty.features == MINED_FEATURES
    old = tmp_path / "stages" / "old"  # a stage saved by an earlier version: a save_to_disk folder
    table.select(range(3)).save_to_disk(str(old / "data"))
    (old / "stats.json").write_text(json.dumps({"key": "k", "stats": {}}))
    assert stages.get("old", "k")[0].to_dict() == table.select(range(3)).to_dict()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resident set is read from /proc")
def test_dropped_file_pages_leave_the_resident_set_and_read_back_the_same(tmp_path):
    import pyarrow as pa

    from hardneg.memory import drop_file_pages

    def file_kb() -> int:
        status = open("/proc/self/status").read().splitlines()
        return next(int(x.split()[1]) for x in status if x.startswith("RssFile"))

    table = pa.table({"x": pa.array([f"{i:08d}" * 64 for i in range(40_000)])})  # ~20 MB
    with pa.OSFile(str(tmp_path / "t.arrow"), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)
    mapped = pa.ipc.open_stream(pa.memory_map(str(tmp_path / "t.arrow"))).read_all()
    before = file_kb()
    assert mapped.equals(table)  # every page read
    read = file_kb()
    assert read > before + 15_000  # the ~20 MB read are resident
    drop_file_pages(mapped)
    assert file_kb() < read - 15_000  # and are not any more
    assert mapped.equals(table)  # read again from the page cache
    drop_file_pages(table)  # anonymous memory is never touched
    assert table.column("x")[7].as_py() == "00000007" * 64


@pytest.mark.parametrize("strategy", ["top", "random"])
def test_killed_mining_redoes_only_the_block_it_was_in(mining_inputs, tmp_path, monkeypatch, strategy):
    import hardneg.negatives as negatives
    from hardneg.negatives.providers import BM25Provider

    corpus, queries = mining_inputs
    options = dict(num_negatives=2, range_max=12, sampling_strategy=strategy, show_progress=False)
    whole, _ = negatives.mine_hard_negatives(queries, corpus, method="bm25", **options)
    monkeypatch.setattr(negatives, "MINING_BLOCK", 7)  # 6 blocks

    class Dies(BM25Provider):
        calls = 0

        def candidates(self, *args, **kwargs):
            type(self).calls += 1
            if type(self).calls == 4:
                raise KeyboardInterrupt  # killed inside the fourth block
            return super().candidates(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        negatives.mine_hard_negatives(queries, corpus, method=Dies(), cache_dir=tmp_path, **options)
    assert len(list((tmp_path / "blocks").glob("*.npz"))) == 3
    Dies.calls = 10  # no more deaths; count the blocks the rerun searches
    resumed, _ = negatives.mine_hard_negatives(queries, corpus, method=Dies(), cache_dir=tmp_path, **options)
    assert Dies.calls == 10 + 3  # blocks 4-6 only
    assert resumed.to_list() == whole.to_list()


def test_pool_merges_equal_texts_under_the_first_id_and_adds_titles():
    from hardneg.negatives import pool_passages

    corpus = Dataset.from_dict(
        {
            "id": ["a", "b", "c", "d"],
            "title": ["", "Wings", "", "Wings"],
            "text": ["lift and drag", "wings flex", "lift and drag", "bend"],
        }
    )
    pool = pool_passages(corpus)
    assert list(pool.passages) == ["lift and drag", "wings flex", "Wings. bend"]
    assert list(pool.ids) == ["a", "b", "d"]
    assert pool.rows_of(["c", "d", "zzz"]).tolist() == [0, 2, -1]


def test_parquet_layout_shards_and_row_groups(tmp_path, monkeypatch):
    import hardneg.dataset_folder as folder_module

    texts = [f"passage {i} " + "x" * 200 for i in range(3000)]
    ds = Dataset.from_dict({"query_id": [str(i) for i in range(3000)], "query": texts, "positive": texts})
    shards, rows_per_group = parquet_layout(ds)
    assert shards == 1 and rows_per_group >= len(ds)  # 1.3 MB: one file, one row group
    # a mapped table (pairing's select) with small limits: several shards of several row groups, same rows
    monkeypatch.setattr(folder_module, "MAX_SHARD_BYTES", 400_000)
    monkeypatch.setattr(folder_module, "get_writer_batch_size_from_data_size", lambda n, b: 500)
    kept = ds.select(range(0, 3000, 2))
    folder = save_dataset_folder(tmp_path / "ds", {"queries": kept}, {}, default_config="queries")
    files = sorted((folder / "queries").glob("train-*.parquet"))
    assert len(files) > 1 and all(pq.ParquetFile(f).metadata.num_row_groups >= 1 for f in files)
    assert max(pq.ParquetFile(f).metadata.row_group(0).num_rows for f in files) <= 500
    loaded = load_dataset(str(folder), "queries", split="train")
    assert loaded["query_id"] == kept["query_id"]
    streamed = load_dataset(str(folder), "queries", split="train", streaming=True)
    assert [r["query_id"] for r in streamed] == kept["query_id"]


def test_rerun_with_nothing_to_do_leaves_the_folder_untouched(tmp_path):
    gen_config, gen = scripted()
    config = BuildConfig(output_dir=str(tmp_path / "run"), **BUILD)
    folder = build(config, gen_config, generator=gen)
    assert (tmp_path / "run" / "stages" / "bm25_hn" / "data.arrow").is_file()
    assert not list((tmp_path / "run" / "cache").rglob("*.arrow"))  # the mined rows' working file went
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    prompts = gen.prompts
    assert build(config, gen_config, generator=gen) == folder
    assert gen.prompts == prompts
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
    (folder / "llm_hn" / "train-00000-of-00001.parquet").unlink()  # the folder changed: it is written again
    build(config, gen_config, generator=gen)
    assert len(load_dataset(str(folder), "llm_hn", split="train")) > 0


def test_a_local_corpus_is_read_once_and_again_when_the_file_changes(tmp_path, monkeypatch):
    import hardneg.build.steps as steps

    corpus = tmp_path / "corpus.jsonl"
    rows = load_corpus("embedded:cranfield").select(range(40))
    corpus.write_text(
        "".join(json.dumps({"_id": r["id"], "title": r["title"], "text": r["text"]}) + "\n" for r in rows)
    )
    gen_config, gen = scripted()
    config = BuildConfig(output_dir=str(tmp_path / "run"), corpus=str(corpus), **BUILD)
    folder = build(config, gen_config, generator=gen)
    reads = []
    real = steps.load_corpus
    monkeypatch.setattr(steps, "load_corpus", lambda *a, **k: reads.append(1) or real(*a, **k))
    assert build(config, gen_config, generator=gen) == folder and reads == []  # the kept stage, no JSON read
    text = corpus.read_text().replace("aero", "AERO", 1)  # same size, new content and time: read anew
    corpus.write_text(text)
    build(config, gen_config, generator=gen)
    assert reads == [1]


@pytest.mark.parametrize("sample", [5, 0])
def test_explorer_samples_queries_of_a_large_build(tmp_path, sample):
    gen_config, gen = scripted()
    folder = build(BuildConfig(output_dir=str(tmp_path / "run"), **BUILD), gen_config, generator=gen)
    payload = build_payload(str(folder), sample_queries=sample)
    queries = len(load_dataset(str(folder), "queries", split="train"))
    shown = len(payload["queries"]["id"])
    assert shown == (sample or queries)
    assert payload["meta"]["sampled_from"] == (queries if sample else None)
    for method in payload["methods"].values():
        assert method["q"] and max(method["q"]) < shown  # every row points at a shown query


def test_bm25_default_threads_respect_numba_and_the_launcher(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("one core: NUMBA_NUM_THREADS=1 is the core count here, the cap cannot be exercised")
    search = (
        "from hardneg.bm25 import BM25Index\n"
        "index = BM25Index(['apple pear', 'pear plum', 'plum fig'], ['1', '2', '3'], show_progress=False)\n"
        "print(index.search_indices(['pear'], k=2)[0].tolist())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", search],
        env={**os.environ, "NUMBA_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))  # one process per core under accelerate / torchrun
    assert available_threads() == 1


def test_rerun_rewrites_the_folder_when_decontamination_removes_other_queries(tmp_path, monkeypatch):
    """The same number of queries removed, but other ones: the folder key sees which, not only how many."""
    import hardneg.build.steps as build_module

    gen_config, gen = scripted()
    config = BuildConfig(output_dir=str(tmp_path / "run"), decontaminate=["eval"], **BUILD)
    monkeypatch.setattr(
        build_module, "exclusions_from_beir", lambda source, split: (set(), ["an eval query"])
    )
    for drop in (0, 1):  # the first build drops the first query, the rerun the second

        def decontaminate(queries, exclude_queries, drop=drop):
            return queries.select([i for i in range(len(queries)) if i != drop]), {}

        monkeypatch.setattr(build_module, "decontaminate_queries", decontaminate)
        folder = build(config, gen_config, generator=gen)
        ids = list(load_dataset(str(folder), "queries", split="train")["query_id"])
        assert len(ids) == len(set(ids))
        if drop == 0:
            first = ids
    assert ids != first and len(ids) == len(first)


def test_an_empty_text_in_a_later_block_is_refused_before_any_generation(tmp_path, monkeypatch):
    """The input rule runs on the whole table up front: a blank passage in the last block stops the stage before
    the first block is generated (it used to be found only when its own block came)."""
    corpus = load_corpus("embedded:cranfield").select(range(20))
    texts = corpus["text"][:]
    texts[-1] = "\u200b "
    corpus = corpus.remove_columns("text").add_column("text", texts)
    monkeypatch.setattr(generation, "GENERATION_BLOCK", 7)
    _, gen = scripted()
    with pytest.raises(ValueError, match=rf"corpus row '{corpus['id'][-1]}' has an empty text"):
        generate_queries(corpus, gen, cache_dir=tmp_path, progress=False)
    assert gen.prompts == 0


def test_remapped_is_the_same_rows_over_a_new_map(tmp_path):
    from datasets import load_from_disk

    from hardneg.memory import release_freed_memory, remapped

    Dataset.from_dict({"a": list(range(50)), "b": [str(i) for i in range(50)]}).save_to_disk(
        str(tmp_path / "d")
    )
    ds = load_from_disk(str(tmp_path / "d")).select(range(3, 40, 2))  # an indices mapping is kept
    on_file = load_from_disk(str(tmp_path / "d")).select(
        range(9, 1, -3), indices_cache_file_name=str(tmp_path / "i")
    )
    assert remapped(on_file).to_list() == on_file.to_list()  # its indices file is not a data file
    again = remapped(ds)
    assert again.to_list() == ds.to_list() and again.features == ds.features
    assert again.data.table is not ds.data.table and again.cache_files == ds.cache_files
    memory = Dataset.from_dict({"a": [1]})
    assert remapped(memory) is memory  # nothing to map
    release_freed_memory()  # callable anywhere, gives back what was freed


def test_take_rows_gathers_chunk_by_chunk_with_the_rows_of_arrow_take():
    import pyarrow as pa

    from hardneg.text import ArrowTexts, take_rows

    rng = np.random.default_rng(0)
    chunks = [[f"text {i}-{j}" for j in range(n)] for i, n in enumerate([5, 0, 7, 1, 9])]
    column = pa.chunked_array([pa.array(c, pa.string()) for c in chunks])
    table = pa.Table.from_batches(
        [
            pa.record_batch({"t": pa.array(c, pa.string()), "n": pa.array(range(len(c)), pa.int64())})
            for c in chunks
        ]
    )
    every = [t for c in chunks for t in c]
    cases = [
        np.sort(rng.choice(len(every), 8, replace=False)),  # sorted (a sample)
        rng.integers(0, len(every), 30),  # any order, repeats
        np.repeat([3, 3, 20, 0], [2, 1, 3, 1]),  # one row per negative
        np.zeros(0, dtype=np.int64),
        pa.array([21, 0, 12], pa.int64()),  # an indices mapping's column
    ]
    for rows in cases:
        want = np.asarray(rows.to_numpy() if isinstance(rows, pa.Array) else rows, dtype=np.int64)
        got = take_rows(column, rows)
        assert isinstance(got, pa.ChunkedArray) and got.to_pylist() == [every[i] for i in want]
        got_table = take_rows(table, rows)
        assert got_table.schema == table.schema
        assert got_table.to_pydict() == table.take(pa.array(want, pa.int64())).to_pydict()
    assert ArrowTexts(column).take([20, 2]).to_pylist() == [every[20], every[2]]
    with pytest.raises(IndexError, match="outside 22 rows"):
        take_rows(column, [22])
