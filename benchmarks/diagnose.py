"""Diagnostics cost: ``make diagnose`` (every measure, cold caches) vs encoding the same texts once.

    python benchmarks/diagnose.py                     # 1k and 10k triplets
    python benchmarks/diagnose.py --sizes 1000

The dataset folder is synthetic but real text: Cranfield passages cut into 40-word windows. Half of the
triplets are an ``llm_hn`` config (``negative_id`` None: LLM-written) and half a ``bm25_hn`` config (negatives
drawn from the windows), one negative per query, distinct queries. Baseline: in a fresh process, load the
target encoder (``embedded:minilm``, 128 tokens) and encode every distinct text the diagnosis needs once
(``hardneg.encode.encode_batches``, no cache). Diagnose: in a fresh process, ``hardneg.diagnose.run.diagnose``
with an empty run folder (so it encodes everything itself), all rows (``sample_size`` 0). Each process reports
its own peak RSS. The last line is the ratio at the largest size (lower is better; the goal is <= 1.3x).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "embedded:minilm"
MAX_LEN = 128


def windows(words: int = 40, stride: int = 12) -> list[str]:
    from hardneg.beir import load_eval_dataset

    out = []
    for d in load_eval_dataset("embedded:cranfield").corpus.values():
        w = d["text"].split()
        if len(w) < 20:  # too short to make a query from
            continue
        out += [" ".join(w[i : i + words]) for i in range(0, max(1, len(w) - words + 1), stride)]
    return list(dict.fromkeys(out))


def synthetic_folder(root: Path, n: int, seed: int = 0) -> Path:
    from datasets import Dataset

    from hardneg.dataset_folder import save_dataset_folder

    rng = random.Random(seed)
    pool = windows()
    half = n // 2
    qids = [f"q{i}" for i in range(half)]
    positives = [pool[rng.randrange(len(pool))] for _ in range(half)]
    queries = [" ".join(rng.sample(p.split(), 8)) + f" ({i})" for i, p in enumerate(positives)]
    base = {
        "anchor": queries,
        "positive": positives,
        "query_id": qids,
        "positive_id": [f"d{i}" for i in range(half)],
    }
    llm = Dataset.from_dict(
        {
            **base,
            "negative": [
                f"A study unlike this one ({i}): " + pool[rng.randrange(len(pool))] for i in range(half)
            ],
            "negative_id": [None] * half,
        }
    )
    mined_rows = [rng.randrange(len(pool)) for _ in range(half)]
    bm25 = Dataset.from_dict(
        {**base, "negative": [pool[r] for r in mined_rows], "negative_id": [f"w{r}" for r in mined_rows]}
    )

    def order(ds):
        return ds.select_columns(["anchor", "positive", "negative", "query_id", "positive_id", "negative_id"])

    configs = {
        "queries": Dataset.from_dict(
            {"query_id": qids, "query": queries, "positive_id": base["positive_id"], "positive": positives}
        ),
        "llm_hn": order(llm),
        "bm25_hn": order(bm25),
    }
    stats = {
        "hardneg_version": "bench",
        "created": "2026-12-06",
        "configs": {k: {"rows": len(v)} for k, v in configs.items()},
    }
    return save_dataset_folder(root / "dataset", configs, stats)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_baseline(folder: str) -> dict:
    from datasets import load_dataset

    from hardneg.encode import encode_batches
    from hardneg.train import load_model

    texts: dict[str, None] = {}
    for name in ("llm_hn", "bm25_hn"):
        ds = load_dataset(folder, name, split="train")
        for col in ("anchor", "positive", "negative"):
            texts.update(dict.fromkeys(ds[col]))
    t0 = time.perf_counter()
    model = load_model(MODEL, max_seq_length=MAX_LEN)
    encode_batches(model, list(texts), batch_size=32)
    return {"seconds": time.perf_counter() - t0, "texts": len(texts), "peak_mb": _peak_mb()}


def phase_diagnose(folder: str, run_dir: str) -> dict:
    from hardneg.diagnose.run import DiagnoseConfig, diagnose

    config = DiagnoseConfig(
        dataset=folder,
        run_dir=run_dir,
        train_recipe="",
        target_encoder=MODEL,
        max_seq_length=MAX_LEN,
        sample_size=0,
    )
    t0 = time.perf_counter()
    diag = diagnose(config)
    return {
        "seconds": time.perf_counter() - t0,
        "encoded": diag.cost["encoded"],
        "encode_s": diag.cost["encode_seconds"],
        "peak_mb": _peak_mb(),
    }


def run_phase(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"phase {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="triplets (two configs)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        kind, *rest = args.phase
        result = phase_baseline(*rest) if kind == "baseline" else phase_diagnose(*rest)
        print(json.dumps(result))
        return
    ratio = None
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = synthetic_folder(Path(tmp), n)
            base = run_phase("baseline", str(folder))
            diag = run_phase("diagnose", str(folder), str(Path(tmp) / "run"))
            ratio = diag["seconds"] / base["seconds"]
            print(
                f"{n:>7} triplets, {base['texts']} distinct texts: encode once {base['seconds']:.1f} s "
                f"(peak RSS {base['peak_mb']:.0f} MB) | diagnose {diag['seconds']:.1f} s, of which encoding "
                f"{diag['encode_s']:.1f} s (peak RSS {diag['peak_mb']:.0f} MB) | ratio {ratio:.2f}x",
                flush=True,
            )
    print(f"diagnose time over encoding the texts once: {ratio:.2f}x")


if __name__ == "__main__":
    main()
