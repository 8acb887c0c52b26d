"""Mining benchmarks: ours vs the tools researchers use, each ratio measured in one run on the same inputs.

    python benchmarks/mining.py                                   # defaults: a few minutes on 2 cores
    python benchmarks/mining.py --passages 200000 --queries 10000 --memory_passages 1000000   # the issue's sizes
    python benchmarks/mining.py --sections bm25                   # one section

Sections (each prints its numbers and a ratio line; higher is better):
- memory: BM25-mine a synthetic corpus of --memory_passages in a child process; print its peak RSS (goal < 8 GiB).
- dense: ours vs ``sentence_transformers.util.mine_hard_negatives`` (embedded MiniLM, Cranfield), same negatives.
- ce: pairs/s of our CrossEncoder scoring path vs ``CrossEncoder.predict`` on the same pairs (unsorted), same
  scores. The CrossEncoder is built from the embedded MiniLM folder, so its head is RANDOM: that is fine for a
  speed test and never for mining. The shipped offline scorer (LM query likelihood) is timed as well.
- bm25: index + mine a synthetic corpus (--passages, --queries): ours vs raw bm25s (tokenize + index +
  retrieve, same options), and vs rank_bm25 on a --rank_bm25_passages subset.
The last line is the BM25 ratio (or the last section's ratio).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def synthetic(n_passages: int, n_queries: int, seed: int = 0, vocab: int = 30000):
    """Zipf-distributed pseudo-words; each query is 5 words drawn from its positive passage."""
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = np.array(["".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(vocab)])
    p = 1.0 / np.arange(1, vocab + 1) ** 1.05
    p /= p.sum()
    lengths = rng.integers(30, 80, size=n_passages)
    flat = words[rng.choice(vocab, size=int(lengths.sum()), p=p)]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    texts = [" ".join(flat[bounds[i] : bounds[i + 1]]) for i in range(n_passages)]
    corpus = Dataset.from_dict(
        {"id": [f"d{i}" for i in range(n_passages)], "title": [""] * n_passages, "text": texts}
    )
    pos = rng.choice(n_passages, size=n_queries, replace=n_queries > n_passages)
    qtexts = [" ".join(rng.choice(texts[i].split(), size=5)) for i in pos]
    queries = Dataset.from_dict(
        {
            "query_id": [f"q{i}" for i in range(n_queries)],
            "query": qtexts,
            "positive_id": [f"d{i}" for i in pos],
            "positive": [texts[i] for i in pos],
        }
    )
    return corpus, queries, texts, pos


def section_bm25(args) -> str:
    import bm25s
    import Stemmer

    from hardneg.negatives import mine_hard_negatives

    corpus, queries, texts, pos = synthetic(args.passages, args.queries)
    qtexts = queries["query"][:]
    k = args.range_max + 1
    # Compile numba kernels on a toy index first so neither side pays the one-off compile.
    warm = bm25s.BM25(backend="numba")
    warm.index(
        bm25s.tokenize(["alpha beta gamma", "beta gamma delta"], show_progress=False), show_progress=False
    )
    warm.retrieve(bm25s.tokenize(["beta"], show_progress=False), k=1, show_progress=False)

    stem = Stemmer.Stemmer("english")
    t_raw = t_ours = float("inf")
    for _ in range(args.repeats):  # best of N, alternating, so background load hits both sides alike
        t = time.perf_counter()
        raw = bm25s.BM25(backend="numba")
        raw.index(
            bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False), show_progress=False
        )
        q_tok = bm25s.tokenize(qtexts, stopwords="en", stemmer=stem, show_progress=False, allow_empty=True)
        raw_docs, raw_scores = raw.retrieve(q_tok, k=k, show_progress=False)
        t_raw = min(t_raw, time.perf_counter() - t)
        del raw
        t = time.perf_counter()
        triplets, stats = mine_hard_negatives(
            queries, corpus, method="bm25", range_max=args.range_max, show_progress=False
        )
        t_ours = min(t_ours, time.perf_counter() - t)
    # Agreement: our negative is raw bm25s' best non-positive passage with a score > 0 (or one tied with it:
    # bm25s orders exact ties arbitrarily, we break them by corpus row).
    expected = []
    for i in range(len(qtexts)):
        row = [sc for d, sc in zip(raw_docs[i], raw_scores[i], strict=True) if d != pos[i] and sc > 0]
        expected.append(float(row[0]) if row else None)
    got = dict(zip(triplets["query_id"][:], triplets["negative_score"][:], strict=True))
    same = np.mean(
        [
            (got.get(f"q{i}") is None and e is None)
            or (e is not None and abs((got.get(f"q{i}") or -1) - e) < 1e-5)
            for i, e in enumerate(expected)
        ]
    )
    print(
        f"bm25 (best of {args.repeats}): {args.passages} passages, {args.queries} queries, top {k}: raw bm25s {t_raw:.1f} s, ours {t_ours:.1f} s "
        f"(overhead {100 * (t_ours / t_raw - 1):+.1f}%), same negative (or an exact tie) for {same:.1%} of queries"
    )
    assert same == 1.0, "our BM25 negatives differ from raw bm25s"

    # rank_bm25 on a subset, same tokens; time per query (rank_bm25 scores the whole corpus per query).
    from rank_bm25 import BM25Okapi

    n_sub = min(args.rank_bm25_passages, args.passages)
    sub_tokens = bm25s.tokenization.convert_tokenized_to_string_list(
        bm25s.tokenize(texts[:n_sub], stopwords="en", stemmer=stem, show_progress=False)
    )
    sub_q = [i for i in range(len(qtexts)) if pos[i] < n_sub][: args.rank_bm25_queries]
    sub_corpus, sub_queries = corpus.select(range(n_sub)), queries.select(sub_q)
    q_strings = bm25s.tokenization.convert_tokenized_to_string_list(
        bm25s.tokenize(
            [qtexts[i] for i in sub_q], stopwords="en", stemmer=stem, show_progress=False, allow_empty=True
        )
    )
    t = time.perf_counter()
    okapi = BM25Okapi(sub_tokens)
    top1 = []
    for i, q in zip(sub_q, q_strings, strict=True):  # best non-positive passage, like our negative
        scores = okapi.get_scores(q)
        scores[pos[i]] = -np.inf
        top1.append(int(np.argmax(scores)))
    t_rank = time.perf_counter() - t
    t = time.perf_counter()
    sub_trip, _ = mine_hard_negatives(
        sub_queries, sub_corpus, method="bm25", range_max=args.range_max, show_progress=False
    )
    t_sub = time.perf_counter() - t
    ours_top = [f"d{r}" for r in top1]
    agree = np.mean([a == b for a, b in zip(ours_top, sub_trip["negative_id"][:], strict=True)])
    print(
        f"rank_bm25 subset: {n_sub} passages, {len(sub_q)} queries: rank_bm25 {t_rank:.1f} s, ours {t_sub:.1f} s "
        f"-> ours vs rank_bm25: {t_rank / t_sub:.2f}x (top-1 agreement {agree:.0%}; idf formulas differ)"
    )
    return f"bm25 mining (ours) vs raw bm25s: {t_raw / t_ours:.2f}x"


def _cranfield_pairs(n_queries: int, range_max: int):
    from hardneg.assets import EMBEDDED_DATASET, resolve_dataset
    from hardneg.corpus import load_beir_folder, load_corpus, passage_text

    corpus = load_corpus(EMBEDDED_DATASET)
    beir = load_beir_folder(resolve_dataset(EMBEDDED_DATASET))
    row_of = {d: i for i, d in enumerate(corpus["id"][:])}
    rows = []
    for qid, judged in list(beir.qrels.items())[:n_queries]:
        doc = max(judged, key=judged.get)
        r = corpus[row_of[doc]]
        rows.append(
            {
                "query_id": qid,
                "query": beir.queries[qid],
                "positive_id": doc,
                "positive": passage_text(r["title"], r["text"]),
            }
        )
    from datasets import Dataset

    return corpus, Dataset.from_list(rows)


def section_ce(args) -> str:
    from sentence_transformers import CrossEncoder

    from hardneg.assets import EMBEDDED_EMBEDDER, cpu_has_native_bf16, resolve_embedder
    from hardneg.corpus import passage_text
    from hardneg.negatives.bm25 import bm25_candidates
    from hardneg.negatives.cross_encoder import rescore_candidates
    from hardneg.scorers import CrossEncoderScorer, load_scorer

    corpus, queries = _cranfield_pairs(args.ce_queries, args.ce_range_max)
    passages = [passage_text(t, x) for t, x in zip(corpus["title"][:], corpus["text"][:], strict=True)]
    row_of = {d: i for i, d in enumerate(corpus["id"][:])}
    qtexts = queries["query"][:]
    prow = np.array([row_of[p] for p in queries["positive_id"][:]])
    first = bm25_candidates(qtexts, passages, prow, k=args.ce_range_max + 1, show_progress=False)
    # The pairs mining scores: every (query, candidate) plus (query, positive), in mining order (unsorted).
    pairs = [
        (qtexts[q], passages[r])
        for q in range(len(qtexts))
        for r in [*first.indices[q][first.indices[q] >= 0], prow[q]]
    ]
    # RANDOM classification head (bare MiniLM encoder): speed/equality only, never for mining.
    ce = CrossEncoder(resolve_embedder(EMBEDDED_EMBEDDER).name_or_path, num_labels=1, max_length=256)
    scorer = CrossEncoderScorer("minilm-random-head", model=ce, show_progress=False)
    # No memo across calls in a benchmark: warm-up pairs must not be skipped in the timed run.
    scorer.memo_limit = 0
    ce.predict(pairs[:8], batch_size=8, show_progress_bar=False)  # warm-up
    t = time.perf_counter()
    base = ce.predict(pairs, batch_size=args.ce_batch_size, show_progress_bar=False)
    t_base = time.perf_counter() - t

    def rescore(scorer_):
        t0 = time.perf_counter()
        got = rescore_candidates(
            qtexts, passages, prow, first, scorer=scorer_, batch_size=args.ce_batch_size, show_progress=False
        )
        flat_ = np.concatenate(
            [
                np.append(got.scores[q][first.indices[q] >= 0], got.positive_scores[q])
                for q in range(len(qtexts))
            ]
        )
        return time.perf_counter() - t0, flat_

    t_ours, flat = rescore(scorer)
    # bf16 matmuls (autocast; CPUs with avx512_bf16/AMX run them natively): faster, scores move slightly.
    bf16 = CrossEncoderScorer("minilm-random-head", model=ce, dtype="bfloat16", show_progress=False)
    bf16.memo_limit = 0
    bf16.score([q for q, _ in pairs[:8]], [p for _, p in pairs[:8]], batch_size=8)  # warm-up
    t_bf16, flat_bf16 = rescore(bf16)
    # What sentence-transformers' mine_hard_negatives does with a cross_encoder: one predict call per query.
    per_query = [[pq for pq in pairs if pq[0] == q] for q in dict.fromkeys(qtexts)]
    t = time.perf_counter()
    for group in per_query:
        ce.predict(group, batch_size=args.ce_batch_size, show_progress_bar=False)
    t_per_query = time.perf_counter() - t
    print(
        f"ce: CrossEncoder.predict called per query (as util.mine_hard_negatives does): "
        f"{len(pairs) / t_per_query:.1f} pairs/s -> ours vs that: {t_per_query / t_ours:.2f}x"
    )
    max_diff = float(np.abs(flat - base).max())
    print(
        f"ce: {len(pairs)} pairs ({len(set(pairs))} distinct): CrossEncoder.predict {len(pairs) / t_base:.1f} pairs/s, "
        f"ours (float32) {len(pairs) / t_ours:.1f} pairs/s = {t_base / t_ours:.2f}x, max |score diff| {max_diff:.2e}"
    )
    assert max_diff < 1e-4, "scores differ from CrossEncoder.predict"
    # bf16: how far scores move and whether each query's ranking of its candidates (+ positive) survives.
    bounds = np.cumsum([0] + [int((first.indices[q] >= 0).sum()) + 1 for q in range(len(qtexts))])
    same_top = np.mean(
        [
            np.argmax(flat_bf16[a:b]) == np.argmax(base[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
    )
    spread = float(np.std(base)) or 1.0
    print(
        f"ce (bfloat16 matmuls): {len(pairs) / t_bf16:.1f} pairs/s = {t_base / t_bf16:.2f}x; max |score diff| "
        f"{np.abs(flat_bf16 - base).max():.2e} ({np.abs(flat_bf16 - base).max() / spread:.3f} score std); same "
        f"top candidate for {same_top:.1%} of queries"
    )
    if args.ql_pairs:
        ql = load_scorer("embedded:ql", show_progress=False)
        ql.memo_limit = 0
        sample = pairs[: args.ql_pairs]
        ql.score([q for q, _ in sample[:4]], [p for _, p in sample[:4]])  # warm-up
        t = time.perf_counter()
        ql.score([q for q, _ in sample], [p for _, p in sample], batch_size=16)
        print(
            f"ce (shipped offline scorer, embedded:ql, max {ql.max_passage_tokens} passage tokens): "
            f"{len(sample) / (time.perf_counter() - t):.2f} pairs/s"
        )
    if cpu_has_native_bf16():
        return (
            f"ce scoring (ours, bfloat16 matmuls) vs CrossEncoder.predict (float32): {t_base / t_bf16:.2f}x"
        )
    return f"ce scoring (ours) vs CrossEncoder.predict: {t_base / t_ours:.2f}x"


def section_dense(args) -> str:
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives as st_mine

    from hardneg.corpus import passage_text
    from hardneg.negatives import mine_hard_negatives
    from hardneg.negatives.dense import load_embedder

    corpus, queries = _cranfield_pairs(args.dense_queries, args.range_max)
    corpus = corpus.select(range(min(args.dense_passages, len(corpus))))
    keep = set(corpus["id"][:])
    queries = queries.filter(lambda r: r["positive_id"] in keep)
    model = load_embedder("embedded:minilm")
    model.encode(["warm up"])
    texts = [passage_text(t, x) for t, x in zip(corpus["title"][:], corpus["text"][:], strict=True)]
    row_of = {d: i for i, d in enumerate(corpus["id"][:])}
    pairs = Dataset.from_dict(
        {"query": queries["query"][:], "answer": [texts[row_of[p]] for p in queries["positive_id"][:]]}
    )
    settings = dict(range_max=args.range_max, num_negatives=3, relative_margin=0.05, batch_size=32)
    t = time.perf_counter()
    theirs = st_mine(pairs, model, corpus=texts, output_scores=True, verbose=False, **settings)
    t_st = time.perf_counter() - t
    t = time.perf_counter()
    ours, _ = mine_hard_negatives(
        queries,
        corpus,
        method="dense",
        embedder=model,
        near_duplicate_threshold=None,
        show_progress=False,
        **settings,
    )
    t_ours = time.perf_counter() - t
    same = ours["negative"][:] == theirs["negative"][:]
    print(
        f"dense: {len(corpus)} passages, {len(queries)} queries: sentence-transformers {t_st:.1f} s, ours {t_ours:.1f} s, "
        f"same negatives: {same} ({len(ours)} rows)"
    )
    assert same, "dense negatives differ from sentence-transformers"
    return f"dense mining (ours) vs sentence_transformers.util.mine_hard_negatives: {t_st / t_ours:.2f}x"


def memory_child(n: int) -> None:
    from hardneg.negatives import mine_hard_negatives

    corpus, queries, _, _ = synthetic(n, 10000, seed=1)
    t = time.perf_counter()
    triplets, _ = mine_hard_negatives(queries, corpus, method="bm25", range_max=50, show_progress=False)
    print(f"mined {len(triplets)} rows over {n} passages in {time.perf_counter() - t:.1f} s")


def section_memory(args) -> str:
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--memory_child", str(args.memory_passages)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(out.stdout.strip().splitlines()[-1])
    print(
        f"memory: BM25 mining of {args.memory_passages} synthetic passages (10k queries, incl. corpus generation): "
        f"peak RSS {peak_gib:.2f} GiB (limit 8 GiB), {time.perf_counter() - t:.0f} s"
    )
    return f"bm25 peak memory (8 GiB budget) vs used: {8 / peak_gib:.2f}x"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default="memory,dense,ce,bm25", help="comma list of memory,dense,ce,bm25")
    p.add_argument("--passages", type=int, default=50000, help="BM25 synthetic corpus size (issue: 200000)")
    p.add_argument("--queries", type=int, default=2000, help="BM25 queries (issue: 10000)")
    p.add_argument("--range_max", type=int, default=50)
    p.add_argument("--repeats", type=int, default=2, help="BM25 timings: best of N runs per side")
    p.add_argument("--rank_bm25_passages", type=int, default=5000)
    p.add_argument("--rank_bm25_queries", type=int, default=300)
    p.add_argument("--memory_passages", type=int, default=200000, help="issue: 1000000")
    p.add_argument("--ce_queries", type=int, default=40)
    p.add_argument("--ce_range_max", type=int, default=10)
    p.add_argument("--ce_batch_size", type=int, default=32)
    p.add_argument(
        "--ql_pairs", type=int, default=48, help="pairs to time the shipped LM scorer on (0 = skip)"
    )
    p.add_argument("--dense_passages", type=int, default=400)
    p.add_argument("--dense_queries", type=int, default=100)
    p.add_argument("--memory_child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    sections = {"memory": section_memory, "dense": section_dense, "ce": section_ce, "bm25": section_bm25}
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(chosen) - set(sections)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; choose from {sorted(sections)}")
    lines = [sections[s](args) for s in chosen]
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
