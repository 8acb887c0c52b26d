"""Scaling efficiency of evaluation: N processes vs one process, the same threads per process, the same corpus.

    python benchmarks/evaluation_scaling.py                           # 2 processes x 1 thread vs 1 x 1, Cranfield
    python benchmarks/evaluation_scaling.py --processes 4 --threads 2 --repeats 2

Each side runs the dense part of ``hardneg.evaluate`` (``encode_corpus`` with its automatic part size and
token-balanced parts, then the exact search and the metrics) for the embedded all-MiniLM-L6-v2 on all 1,400
Cranfield passages, without an embedding cache; the N-process side runs under ``accelerate launch --multi_gpu``
(CPU: MULTI_CPU over gloo). Timed: from a barrier after the model is loaded to the gathered embeddings, on the
main process (the slowest process decides). Both sides must give the same nDCG@10 (to 1e-6).
The last line is ``evaluation encode N processes x T threads vs 1 process x T threads: N.NNx`` (goal >= 1.6x for
2 x 1 on 2 free cores); the machine's load average is printed with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(out: str) -> None:
    """One side: encode the corpus (every process its parts), search and score on the main process."""
    import numpy as np

    from hardneg.beir import load_eval_dataset
    from hardneg.corpus import passage_text
    from hardneg.encode import encode_corpus, process_state, search_topk
    from hardneg.eval_config import ModelSpec
    from hardneg.evaluate import load_eval_model
    from hardneg.metrics import evaluate_run

    state = process_state()
    data = load_eval_dataset("embedded:cranfield")
    ids = list(data.corpus)
    texts = [passage_text(data.corpus[i]["title"], data.corpus[i]["text"]) for i in ids]
    model = load_eval_model(ModelSpec("zero-shot", "embedded:minilm"), device="cpu")
    encode_corpus(model, texts[:64], show_progress=False)  # warm-up (thread pools, allocator)
    state.wait_for_everyone()
    start = time.perf_counter()
    emb = encode_corpus(model, texts, batch_size=32, show_progress=False)
    seconds = time.perf_counter() - start
    if not state.is_main_process:
        return
    qids = [q for q in data.queries if data.qrels.get(q)]
    q_emb = model.encode([data.queries[q] for q in qids], batch_size=64)
    index, scores = search_topk(np.asarray(q_emb), emb, 10, device="cpu")
    run = {
        q: {ids[j]: float(s) for j, s in zip(index[n], scores[n], strict=True)} for n, q in enumerate(qids)
    }
    metrics = evaluate_run(data.qrels, run, ["ndcg@10"]).mean
    Path(out).write_text(
        json.dumps({"seconds": seconds, "metrics": metrics, "processes": state.num_processes})
    )


def side(processes: int, threads: int, out: Path, script: str = __file__) -> dict:
    """Run ``script --worker out`` in ``processes`` processes of ``threads`` threads (accelerate launch for
    more than one); returns the JSON the main process wrote to ``out``."""
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    script = [str(Path(script).resolve()), "--worker", str(out)]
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        accelerate = str(Path(sys.executable).parent / "accelerate")
        cmd = [
            accelerate,
            "launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "0",
            *script,
        ]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def scaling_main(script: str, worker: Callable[[str], None], what: str, agree=None) -> None:
    """The command line both scaling benchmarks share: run each side ``--repeats`` times, alternating, keep
    the best; print every run, whether the outputs agree (nDCG@10 to 1e-6, and ``agree(one, many)`` ->
    (message, agreed)), the load average, and the headline ratio last; exit 1 when the outputs disagree."""
    ap = argparse.ArgumentParser(description=(sys.modules["__main__"].__doc__ or "").split("\n")[0])
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
                res = side(n, args.threads, Path(tmp) / f"{n}-{r}.json", script=script)
                print(
                    f"{n} process(es) x {args.threads} thread(s): {what} {res['seconds']:.2f} s, "
                    f"nDCG@10 {res['metrics']['ndcg@10']:.6f}",
                    flush=True,
                )
                if n not in best or res["seconds"] < best[n]["seconds"]:
                    best[n] = res
    one, many = best[1], best[args.processes]
    same = abs(one["metrics"]["ndcg@10"] - many["metrics"]["ndcg@10"]) < 1e-6
    agreed = agree(one, many) if agree else None  # (message, whether they agree)
    print("; ".join([f"identical metrics: {same}", *([agreed[0]] if agreed else [])]), flush=True)
    one_min, five_min, _ = os.getloadavg()
    print(f"machine load average {one_min:.1f} (1 min) / {five_min:.1f} (5 min) on {os.cpu_count()} CPUs")
    print(
        f"{what} {args.processes} processes x {args.threads} thread(s) vs 1 process x {args.threads} "
        f"thread(s): {one['seconds'] / many['seconds']:.2f}x"
    )
    if not same or (agreed and not agreed[1]):
        sys.exit("the two sides disagree: the ratio above compares different work")


if __name__ == "__main__":
    scaling_main(__file__, worker, "evaluation encode")
