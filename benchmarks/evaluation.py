"""Evaluation speed: hardneg's evaluation vs sentence-transformers' InformationRetrievalEvaluator.

Same model (embedded all-MiniLM-L6-v2), same data (Cranfield), same batch size, in one run:
- documents/s encoding the corpus: ``hardneg.encode.encode_corpus`` (token-length-sorted batches) vs
  plain ``SentenceTransformer.encode`` (what the evaluator calls);
- end-to-end evaluation time, cold (no embedding cache) and on a rerun with the corpus-embedding cache;
- the metric values of both (binary relevance, as the evaluator uses it), which must agree.

hardneg runs twice: in float32 (the evaluator's precision: same numbers) and with bfloat16 matmuls
(``EvalConfig.dtype``; weights, norms and softmax stay float32), which CPUs with avx512_bf16/AMX run
natively. The last line is the bfloat16 ratio on such CPUs (float32 elsewhere); both are printed.

    python benchmarks/evaluation.py                      # 700 Cranfield docs, 225 queries
    python benchmarks/evaluation.py --num_docs 1400      # all of Cranfield
    python benchmarks/evaluation.py --num_docs 400 --num_queries 50 --repeats 3

The last line is the headline: cold end-to-end evaluation time ratio (higher is better).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--num_docs", type=int, default=700, help="Cranfield documents (judged ones first; all: 1400)."
    )
    parser.add_argument("--num_queries", type=int, default=225, help="Judged queries.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="Timed runs of each side (best is kept).")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="hardneg encoder precisions to time.")
    args = parser.parse_args()

    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from hardneg.assets import cpu_has_native_bf16
    from hardneg.beir import load_eval_dataset
    from hardneg.corpus import passage_text
    from hardneg.eval_config import ModelSpec
    from hardneg.evaluate import load_eval_model
    from hardneg.metrics import evaluate_run
    from hardneg.retrieval import search_dense

    data = load_eval_dataset("embedded:cranfield")
    qids = [q for q in data.qrels if q in data.queries][: args.num_queries]
    judged = [d for q in qids for d in data.qrels[q] if d in data.corpus]
    docs = list(dict.fromkeys(judged + list(data.corpus)))[: args.num_docs]
    data.corpus = {d: data.corpus[d] for d in docs}
    data.queries = {q: data.queries[q] for q in qids}
    binary = {q: {d: 1 for d, g in data.qrels[q].items() if g >= 1} for q in qids}
    binary = {q: v for q, v in binary.items() if v}
    qids = list(binary)
    texts = {d: passage_text(v["title"], v["text"]) for d, v in data.corpus.items()}
    model = load_eval_model(ModelSpec("zero-shot", "embedded:minilm"), "cpu")
    model.encode(["warm up"] * 4)
    import torch

    print(
        f"{len(texts)} documents, {len(qids)} queries, batch size {args.batch_size}, "
        f"CPU torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )

    def baseline():
        t0 = time.perf_counter()
        evaluator = InformationRetrievalEvaluator(
            {q: data.queries[q] for q in qids},
            texts,
            {q: set(v) for q, v in binary.items()},
            batch_size=args.batch_size,
            mrr_at_k=[10],
            ndcg_at_k=[10],
            precision_recall_at_k=[10, 100],
            map_at_k=[100],
            accuracy_at_k=[1],
            write_csv=False,
            show_progress_bar=False,
        )
        res = evaluator(model)
        return time.perf_counter() - t0, res

    def ours(cache_dir, dtype):
        t0 = time.perf_counter()
        run, info = search_dense(
            model,
            data,
            qids,
            100,
            batch_size=args.batch_size,
            cache_dir=cache_dir,
            dtype=dtype,
            show_progress=False,
        )
        scored = evaluate_run(binary, run, ["ndcg@10", "p@10", "recall@100", "map@100", "mrr@10"])
        return time.perf_counter() - t0, scored.mean, info

    def st_encode():
        t0 = time.perf_counter()
        model.encode(list(texts.values()), batch_size=args.batch_size, show_progress_bar=False)
        return time.perf_counter() - t0

    dtypes = args.dtypes.split(",")
    t_base, t_st = [], []
    t_cold, t_warm, t_enc = ({d: [] for d in dtypes} for _ in range(3))
    mine = {}
    for _ in range(args.repeats):
        t, res = baseline()
        t_base.append(t)
        t_st.append(st_encode())
        for dtype in dtypes:
            with tempfile.TemporaryDirectory() as cache:
                t, mine[dtype], info = ours(cache, dtype)
                t_cold[dtype].append(t)
                t_enc[dtype].append(info["encode_corpus_s"])
                t_warm[dtype].append(ours(cache, dtype)[0])

    n = len(texts)
    names = {
        "ndcg@10": "ndcg@10",
        "p@10": "precision@10",
        "recall@100": "recall@100",
        "map@100": "map@100",
        "mrr@10": "mrr@10",
    }
    for dtype in dtypes:
        worst = 0.0
        for ours_name, st_name in names.items():
            theirs = next(v for k, v in res.items() if k.endswith(f"cosine_{st_name}"))
            worst = max(worst, abs(mine[dtype][ours_name] - theirs))
            print(
                f"  {ours_name:>10}: hardneg ({dtype}) {mine[dtype][ours_name]:.5f}  InformationRetrievalEvaluator {theirs:.5f}"
            )
        # float32 must agree up to tie-breaking; bf16 matmuls move scores by ~1e-3, so a few ranks swap.
        limit = 2e-3 if dtype == "float32" else 1e-2
        if worst > limit:
            raise SystemExit(
                f"{dtype} metric values disagree by {worst:.4f}: the comparison is not like for like"
            )
        print(f"{dtype}: largest metric difference from the evaluator {worst:.2e} (limit {limit:.0e})")
    print(
        f"corpus encoding: SentenceTransformer.encode {n / min(t_st):.1f} docs/s, evaluator end-to-end {min(t_base):.1f} s"
    )
    for dtype in dtypes:
        print(
            f"{dtype}: hardneg encoding {n / min(t_enc[dtype]):.1f} docs/s ({min(t_st) / min(t_enc[dtype]):.2f}x), "
            f"end-to-end cold {min(t_cold[dtype]):.1f} s ({min(t_base) / min(t_cold[dtype]):.2f}x), "
            f"cached rerun {min(t_warm[dtype]):.1f} s ({min(t_base) / min(t_warm[dtype]):.2f}x)"
        )
    head = "bfloat16" if cpu_has_native_bf16() and "bfloat16" in dtypes else dtypes[0]
    precision = "float32" if head == "float32" else f"{head} matmuls"
    print(
        f"end-to-end evaluation (cold, no cache, {precision}) vs InformationRetrievalEvaluator (float32): "
        f"{min(t_base) / min(t_cold[head]):.2f}x"
    )


if __name__ == "__main__":
    main()
