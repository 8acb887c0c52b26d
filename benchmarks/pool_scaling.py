"""Scaling of the sharded build's dense step: N processes encode the mining pool vs one process, the same
threads per process, the same pool.

    python benchmarks/pool_scaling.py                      # 2 processes x 1 thread vs 1 x 1, Cranfield
    python benchmarks/pool_scaling.py --processes 4 --threads 2 --repeats 2

Each side calls ``hardneg.negatives.dense.encode_pool`` (what ``dense_hn`` and ``ce_candidates: dense`` run in
a build) for the embedded all-MiniLM-L6-v2 on the 1,398 distinct Cranfield passages, with a fresh shared cache
folder; under ``accelerate launch`` each process encodes its token-balanced part and reads the others' parts
from the folder (no process group). Timed on the main process from a file barrier after the model is loaded
to the joined embeddings (it waits for the slowest part). Both sides must give the same dense top-10 for the
225 Cranfield queries and the same nDCG@10 (to 1e-6).
The last line is ``build pool encode N processes x T threads vs 1 process x T threads: N.NNx`` (goal >= 1.6x
for 2 x 1 on 2 free cores); the machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluation_scaling import side  # noqa: E402


def _barrier(folder: Path, rank: int, world: int) -> None:
    (folder / f"ready-{rank}").touch()
    while not all((folder / f"ready-{r}").exists() for r in range(world)):
        time.sleep(0.01)


def worker(out: str) -> None:
    import numpy as np

    from hardneg.beir import load_eval_dataset
    from hardneg.corpus import passage_text
    from hardneg.distributed import current_shard
    from hardneg.encode import search_topk
    from hardneg.metrics import evaluate_run
    from hardneg.negatives.dense import encode_pool, load_embedder
    from hardneg.negatives.mining import distinct_texts

    shard = current_shard()
    data = load_eval_dataset("embedded:cranfield")
    ids = list(data.corpus)
    texts = [passage_text(data.corpus[i]["title"], data.corpus[i]["text"]) for i in ids]
    keep, _ = distinct_texts(texts)  # the build's pool: one candidate per distinct text
    ids, texts = [ids[r] for r in keep], [texts[r] for r in keep]
    model = load_embedder("embedded:minilm", device="cpu")
    folder = Path(out).parent / f"cache-{shard.world}-{Path(out).stem}"
    folder.mkdir(exist_ok=True)
    encode_pool(texts[:64], model, show_progress=False)  # warm-up (thread pools, allocator), not cached
    _barrier(folder, shard.rank, shard.world)
    start = time.perf_counter()
    emb = encode_pool(texts, model, cache_folder=folder, model_id="embedded:minilm", show_progress=False)
    seconds = time.perf_counter() - start
    if not shard.is_main:
        return
    qids = [q for q in data.queries if data.qrels.get(q)]
    q_emb = model.encode_query([data.queries[q] for q in qids], normalize_embeddings=True, batch_size=64)
    index, scores = search_topk(np.asarray(q_emb), emb, 10, device="cpu")
    run = {
        q: {ids[j]: float(s) for j, s in zip(index[n], scores[n], strict=True)} for n, q in enumerate(qids)
    }
    metrics = evaluate_run(data.qrels, run, ["ndcg@10"]).mean
    Path(out).write_text(
        json.dumps({"seconds": seconds, "metrics": metrics, "top10": index.tolist(), "rows": len(emb)})
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per process, the same on both sides")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each side; the best is kept")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    best: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n in (1, args.processes):
                res = side(n, args.threads, Path(tmp) / f"{n}-{r}.json", script=__file__)
                print(
                    f"{n} process(es) x {args.threads} thread(s): pool encode {res['seconds']:.2f} s "
                    f"({res['rows']} passages), nDCG@10 {res['metrics']['ndcg@10']:.6f}",
                    flush=True,
                )
                if n not in best or res["seconds"] < best[n]["seconds"]:
                    best[n] = res
    one, many = best[1], best[args.processes]
    same_top = sum(a == b for a, b in zip(one["top10"], many["top10"], strict=True))
    same = abs(one["metrics"]["ndcg@10"] - many["metrics"]["ndcg@10"]) < 1e-6
    print(
        f"identical top-10 for {same_top} of {len(one['top10'])} queries; identical metrics: {same}",
        flush=True,
    )
    one_min, five_min, _ = os.getloadavg()
    print(f"machine load average {one_min:.1f} (1 min) / {five_min:.1f} (5 min) on {os.cpu_count()} CPUs")
    print(
        f"build pool encode {args.processes} processes x {args.threads} thread(s) vs 1 process x {args.threads} "
        f"thread(s): {one['seconds'] / many['seconds']:.2f}x"
    )


if __name__ == "__main__":
    main()
