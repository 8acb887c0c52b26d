"""Evaluation speed: hardneg's evaluation vs sentence-transformers' InformationRetrievalEvaluator.

Same model (embedded all-MiniLM-L6-v2), same data (Cranfield), same batch size, in one run:
- documents/s encoding the corpus: ``hardneg.encode.encode_corpus`` (token-length-sorted batches) vs
  plain ``SentenceTransformer.encode`` (what the evaluator calls);
- end-to-end evaluation time, cold (no embedding cache) and on a rerun with the corpus-embedding cache;
- the metric values of both (binary relevance, as the evaluator uses it), which must agree.

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
    args = parser.parse_args()

    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from hardneg.beir import load_eval_dataset
    from hardneg.corpus import passage_text
    from hardneg.evaluate import ModelSpec, load_embedder, search_dense
    from hardneg.metrics import evaluate_run

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
    model = load_embedder(ModelSpec("zero-shot", "embedded:minilm"), "cpu")
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

    def ours(cache_dir):
        t0 = time.perf_counter()
        run, info = search_dense(
            model, data, qids, 100, batch_size=args.batch_size, cache_dir=cache_dir, show_progress=False
        )
        scored = evaluate_run(binary, run, ["ndcg@10", "p@10", "recall@100", "map@100", "mrr@10"])
        return time.perf_counter() - t0, scored.mean, info

    def st_encode():
        t0 = time.perf_counter()
        model.encode(list(texts.values()), batch_size=args.batch_size, show_progress_bar=False)
        return time.perf_counter() - t0

    t_base, t_cold, t_warm, t_st, t_enc = [], [], [], [], []
    for _ in range(args.repeats):
        t, res = baseline()
        t_base.append(t)
        t_st.append(st_encode())
        with tempfile.TemporaryDirectory() as cache:
            t, mine, info = ours(cache)
            t_cold.append(t)
            t_enc.append(info["encode_corpus_s"])
            t_warm.append(ours(cache)[0])

    n = len(texts)
    print(
        f"corpus encoding: hardneg {n / min(t_enc):.1f} docs/s, SentenceTransformer.encode {n / min(t_st):.1f} docs/s"
    )
    names = {
        "ndcg@10": "ndcg@10",
        "p@10": "precision@10",
        "recall@100": "recall@100",
        "map@100": "map@100",
        "mrr@10": "mrr@10",
    }
    worst = 0.0
    for ours_name, st_name in names.items():
        theirs = next(v for k, v in res.items() if k.endswith(f"cosine_{st_name}"))
        worst = max(worst, abs(mine[ours_name] - theirs))
        print(f"  {ours_name:>10}: hardneg {mine[ours_name]:.5f}  InformationRetrievalEvaluator {theirs:.5f}")
    if worst > 2e-3:
        raise SystemExit(f"metric values disagree by {worst:.4f}: the comparison is not like for like")
    print(f"metrics agree (largest difference {worst:.2e}; ties may be broken differently)")
    print(
        f"end-to-end: hardneg cold {min(t_cold):.1f} s, cached rerun {min(t_warm):.1f} s; evaluator {min(t_base):.1f} s"
    )
    print(f"corpus encoding docs/s vs SentenceTransformer.encode: {min(t_st) / min(t_enc):.2f}x")
    print(
        f"evaluation rerun with embedding cache vs InformationRetrievalEvaluator: {min(t_base) / min(t_warm):.2f}x"
    )
    print(
        f"end-to-end evaluation (cold, no cache) vs InformationRetrievalEvaluator: {min(t_base) / min(t_cold):.2f}x"
    )


if __name__ == "__main__":
    main()
