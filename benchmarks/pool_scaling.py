"""Scaling of the sharded build's dense step: N processes encode the mining pool vs one process, the same
threads per process, the same pool.

    python benchmarks/pool_scaling.py                      # 2 processes x 1 thread vs 1 x 1, Cranfield
    python benchmarks/pool_scaling.py --processes 4 --threads 2 --repeats 2

Each side calls ``hardneg.negatives.dense.encode_pool`` (what ``dense_hn`` and ``ce_candidates: dense`` run in
a build) for the embedded all-MiniLM-L6-v2 on the build's pool of Cranfield (``pool_passages``: 1,398 distinct
passages), with a fresh shared cache folder; under ``accelerate launch`` each process encodes its token-balanced part and reads the others' parts
from the folder (no process group). Timed on the main process from a file barrier after the model is loaded
to the joined embeddings (it waits for the slowest part). Both sides must give the same dense top-10 for the
225 Cranfield queries and the same nDCG@10 (to 1e-6).
The last line is ``build pool encode N processes x T threads vs 1 process x T threads: N.NNx`` (goal >= 1.6x
for 2 x 1 on 2 free cores); the machine's load average is printed with it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluation_scaling import scaling_main  # noqa: E402


def _barrier(folder: Path, rank: int, world: int) -> None:
    (folder / f"ready-{rank}").touch()
    while not all((folder / f"ready-{r}").exists() for r in range(world)):
        time.sleep(0.01)


def worker(out: str) -> None:
    import numpy as np

    from hardneg.beir import load_eval_dataset
    from hardneg.corpus import load_corpus
    from hardneg.distributed import current_shard
    from hardneg.encode import search_topk
    from hardneg.metrics import evaluate_run
    from hardneg.negatives import pool_passages
    from hardneg.negatives.dense import encode_pool, load_embedder

    shard = current_shard()
    data = load_eval_dataset("embedded:cranfield")
    pool = pool_passages(load_corpus("embedded:cranfield"))  # the build's pool, as dense_hn mines it
    ids, texts = list(pool.ids), pool.passages
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


def same_top10(one: dict, many: dict) -> tuple[str, bool]:
    same = sum(a == b for a, b in zip(one["top10"], many["top10"], strict=True))
    n = len(one["top10"])
    return f"identical top-10 for {same} of {n} queries ({one['rows']} passages)", same == n


if __name__ == "__main__":
    scaling_main(__file__, worker, "build pool encode", agree=same_top10)
