"""Every GPU benchmark in one go, within 8 minutes on one GPU, with the numbers to beat next to ours.

    python3 benchmarks/gpu/run_all.py                       # writes gpu_results.json ($OUT/ when set)
    python3 benchmarks/gpu/run_all.py --budget_s 480 --out runs/gpu_results.json

Models are random-initialised from configs (no downloads). Packages the GPU image lacks (``datasets`` and
what it needs: dill, multiprocess, and pyarrow when the image's is older than datasets accepts) are installed
with ``pip --no-index --no-deps --target`` from the wheels in ``.whl/`` at the repository root (fetch them with
``pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl datasets==5.2.0 dill==0.4.0
multiprocess==0.70.18 pyarrow==26.0.0``; see docs/scaling.md). Each benchmark runs as its own process with a
share of the time budget; its last line (``<what> vs <baseline>: N.NNx``) is printed with our absolute figure
and the figure measured on an H200 with plain libraries (issue 15). The last line is the count of benchmarks
whose absolute figure beats that number.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SITE = Path("/tmp/hardneg-gpu-site")

# name, script arguments, seconds, regex of our absolute figure, unit, the plain-library figure to beat (H200)
BENCHMARKS = [
    (
        "training",
        ["training.py", "--steps", "30", "--warmup_steps", "8"],
        170,
        r"^hardneg\s+([\d,.]+) samples/s",
        "samples/s",
        612.0,
        "sentence-transformers MNRL, BERT-base, seq 256, batch 128 (21% of bf16 peak)",
    ),
    (
        "encoding",
        ["evaluation.py", "--num_docs", "20000"],
        110,
        r"hardneg encode_corpus batch \d+: ([\d,.]+) docs/s",
        "docs/s",
        3225.0,
        "SentenceTransformer.encode, BERT-base, seq 256, bf16",
    ),
    (
        "cross_encoder",
        ["mining.py", "--pairs", "20000"],
        90,
        r"ours \(batch \d+\): ([\d,.]+) pairs/s",
        "pairs/s",
        2953.0,
        "CrossEncoder.predict, MiniLM-L6, seq 256, bf16",
    ),
    (
        "generation",
        ["generation.py", "--batches", "1", "64", "--new_tokens", "128", "--bandwidth_gbs", "4800"],
        90,
        r"batch\s+64:\s+([\d,.]+) new tokens/s",
        "tokens/s",
        3616.0,
        "HF generate, Qwen2-0.5B shape, bf16, batch 64",
    ),
]


def install_missing_wheels() -> dict[str, str]:
    """Install what the image lacks from .whl/ into a private folder; returns the environment for children."""
    env = dict(os.environ)
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    need = []
    if importlib.util.find_spec("datasets") is None:
        need += [w for w in wheels if w.name.split("-")[0] in ("datasets", "dill", "multiprocess", "xxhash")]
        try:
            import pyarrow

            old_arrow = int(pyarrow.__version__.split(".")[0]) < 24
        except ImportError:
            old_arrow = True
        if old_arrow:
            need += [w for w in wheels if w.name.startswith("pyarrow-")]
    if need:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--no-cache-dir",
            "--upgrade",
            "--target",
            str(SITE),
            *map(str, need),
        ]
        subprocess.run(cmd, check=True)
        print(f"installed from .whl/: {', '.join(w.name for w in need)}", flush=True)
    paths = [str(SITE)] if need else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--budget_s", type=float, default=480.0, help="all benchmarks together (default 8 minutes)"
    )
    ap.add_argument("--only", nargs="*", default=None, help="names to run (training, encoding, ...)")
    ap.add_argument(
        "--out", default=None, help="JSON path (default: $OUT/gpu_results.json or gpu_results.json)"
    )
    args = ap.parse_args()
    start = time.monotonic()
    env = install_missing_wheels()
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only]
    planned = sum(b[2] for b in chosen)
    results: dict[str, dict] = {}
    for name, argv, seconds, pattern, unit, to_beat, baseline in chosen:
        left = args.budget_s - (time.monotonic() - start)
        limit = min(seconds * args.budget_s / max(planned, args.budget_s), left)
        if limit < 20:
            results[name] = {"status": "skipped: out of time budget"}
            print(f"{name}: skipped (time budget spent)", flush=True)
            continue
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, str(HERE / argv[0]), *argv[1:]],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=limit,
            )
            out, status = (
                proc.stdout + proc.stderr,
                ("ok" if proc.returncode == 0 else f"exit {proc.returncode}"),
            )
        except subprocess.TimeoutExpired as err:
            out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            status = f"timed out after {limit:.0f} s"
        lines = [ln for ln in out.splitlines() if ln.strip()]
        ratio = next((ln for ln in reversed(lines) if re.search(r" vs .*: [\d.]+x$", ln)), None)
        found = next((m for ln in lines if (m := re.search(pattern, ln.strip()))), None)
        ours = float(found.group(1).replace(",", "")) if found else None
        results[name] = {
            "status": status,
            "seconds": round(time.monotonic() - t0, 1),
            "ratio_line": ratio,
            "ours": ours,
            "unit": unit,
            "to_beat": to_beat,
            "baseline": baseline,
            "ours_vs_to_beat": round(ours / to_beat, 3) if ours else None,
            "tail": lines[-12:],
        }
        print(f"[{name}] {status}, {results[name]['seconds']} s", flush=True)
        print(f"  {ratio or 'no ratio line (see tail in the JSON)'}", flush=True)
        if ours is not None:
            print(
                f"  ours {ours:,.0f} {unit} vs {baseline} {to_beat:,.0f} {unit}: {ours / to_beat:.2f}x",
                flush=True,
            )
        elif status != "ok":
            print("  " + "\n  ".join(lines[-6:]), flush=True)
    path = Path(args.out or Path(os.environ.get("OUT", ".")) / "gpu_results.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"total_seconds": round(time.monotonic() - start, 1), "results": results}, indent=2)
    )
    beaten = sum(1 for r in results.values() if (r.get("ours_vs_to_beat") or 0) > 1)
    print(f"results -> {path}", flush=True)
    print(f"GPU benchmarks beating the plain-library figures: {beaten}/{len(chosen)}", flush=True)


if __name__ == "__main__":
    main()
