"""Items/s of the HTTP backend against a real local OpenAI-compatible server: concurrency 8 vs 1.

    python benchmarks/generation_http.py                        # transformers serve + embedded SmolLM2, 8 prompts
    python benchmarks/generation_http.py --n 32 --continuous_batching
    python benchmarks/generation_http.py --url http://gpu1:8000 --model Qwen/Qwen2.5-0.5B-Instruct   # your own server

Without ``--url`` the script starts ``transformers serve`` on 127.0.0.1 with the dequantised embedded
model and stops it at the end. The same prompts are sent greedily at concurrency 1 and then 8
(``hardneg.llm.http_backend``: AsyncInferenceClient, retries, round-robin); the outputs are compared.
A server that handles one request at a time gains little from concurrency; one that batches
(``--continuous_batching``, vLLM, TGI) gains with it. The last line is
``items/s concurrency 8 vs concurrency 1: N.NNx``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["HF_HUB_OFFLINE"] = "0"  # huggingface_hub's offline mode blocks requests to local servers too

import argparse  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

from hardneg.llm import GeneratorConfig, load_generator  # noqa: E402


def start_server(folder: Path, continuous_batching: bool) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    cmd = [exe, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    if continuous_batching:
        cmd.append("--continuous-batching")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("error: transformers serve did not start; fix: pip install 'transformers[serving]'")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max_new_tokens", type=int, default=16)
    ap.add_argument("--url", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--continuous_batching", action="store_true")
    args = ap.parse_args()
    proc = None
    if args.url is None:
        from hardneg.assets import resolve_llm
        from hardneg.llm.transformers_backend import dequantised_gguf_folder

        ref = resolve_llm("embedded:smollm2")
        folder = dequantised_gguf_folder(ref.name_or_path, ref.gguf_file)
        proc, url, model = *start_server(folder, args.continuous_batching), str(folder)
    else:
        url, model = args.url, args.model
    try:
        prompts = [
            f"Write one short search query about aerodynamics topic number {i}." for i in range(args.n)
        ]
        warm = load_generator(GeneratorConfig(backend="http", model=model, urls=[url], timeout=300))
        warm.generate(prompts[:1], max_new_tokens=2)  # the server loads the model on its first request
        rates, outs = {}, {}
        for c in (1, 8):
            gen = load_generator(
                GeneratorConfig(backend="http", model=model, urls=[url], concurrency=c, timeout=300)
            )
            t = time.perf_counter()
            outs[c] = [o.text for o in gen.generate(prompts, max_new_tokens=args.max_new_tokens)]
            rates[c] = args.n / (time.perf_counter() - t)
            print(f"concurrency {c}: {rates[c]:.3f} items/s")
        same = sum(a == b for a, b in zip(outs[1], outs[8], strict=True))
        print(f"greedy outputs identical at concurrency 1 and 8: {same}/{args.n}")
        print(f"items/s concurrency 8 vs concurrency 1: {rates[8] / rates[1]:.2f}x")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
