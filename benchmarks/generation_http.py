"""Does the build's HTTP client ever limit the server? Three measurements, one run each:

    python benchmarks/generation_http.py --mode overhead     # instant local server: client requests/s
    python benchmarks/generation_http.py --mode flood        # build vs a plain asyncio flood, transformers serve
    python benchmarks/generation_http.py --mode concurrency  # concurrency 8 vs 1 (greedy outputs compared)
    python benchmarks/generation_http.py --mode flood --url http://gpu1:8000 --model Qwen/Qwen3-4B  # your server

- ``overhead``: a minimal OpenAI-compatible server on 127.0.0.1 (its own process, pinned to another core
  when there is one) answers every chat request instantly with the same reply; the build's generation
  path (``hardneg.generation.run_generation``: HTTP client, SQLite cache, hygiene) sends ``--n`` requests
  from a process pinned to one core. Prints requests/s (wall) and requests per CPU-second of the client
  (what one free core sustains, independent of the machine's load), then
  ``build requests per client CPU-second (one free core) vs 1,000 requests/s goal: N.NNx``.
- ``flood``: ``transformers serve --continuous-batching`` with the embedded SmolLM2 (or ``--url``); the same
  chat requests are sent by a plain asyncio + aiohttp flood (a semaphore of ``--concurrency``, nothing else)
  and by the build (``run_generation``, same concurrency), alternating, best of ``--repeats``. Prints
  ``build vs plain asyncio flood (concurrency C): N.NNx`` (goal >= 0.9x).
- ``concurrency``: the same prompts at concurrency 1 and 8 against ``transformers serve``.

Every run bounds its request count and stops its servers at the end; the machine's load average is printed
with the numbers (timings on a shared machine are noisy).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

from hardneg.generation import run_generation  # noqa: E402
from hardneg.llm import GeneratorConfig, load_generator  # noqa: E402
from hardneg.prompts import load_prompt  # noqa: E402

REPLY = "wing flutter at supersonic speed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chat_reply(content: str) -> bytes:
    body = json.dumps(
        {
            "id": "instant",
            "object": "chat.completion",
            "created": 0,
            "model": "instant",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 64, "completion_tokens": 6, "total_tokens": 70},
        }
    ).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


_WORD = re.compile(rb"[a-z]{3,12}")


def varied_reply(request: bytes, words: int = 6) -> bytes:
    """A reply made of ``words`` lower-case words of the request body, picked by its CRC: every prompt gets its
    own deterministic answer (a rerun gets the same one), at the cost of a regex scan and no JSON parse."""
    found = _WORD.findall(request)
    if not found:
        return _chat_reply(REPLY)
    h = zlib.crc32(request)
    picked = [found[(h >> (5 * i) ^ h * (i + 7)) % len(found)].decode() for i in range(words)]
    return _chat_reply(" ".join(picked))


def serve_instant(port: int, varied: bool = False) -> None:
    """An OpenAI-compatible chat endpoint that answers at once (HTTP/1.1 keep-alive, asyncio protocol): the
    same reply to every request, or (``varied``) ``varied_reply`` of the request body."""
    reply = _chat_reply(REPLY)

    class Instant(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""

        def data_received(self, data):
            self.buf += data
            while (end := self.buf.find(b"\r\n\r\n")) >= 0:
                head = self.buf[:end].lower()
                at = head.find(b"content-length:")
                size = int(head[at + 15 :].split(b"\r\n")[0]) if at >= 0 else 0
                if len(self.buf) < end + 4 + size:
                    return
                body = self.buf[end + 4 : end + 4 + size]
                self.buf = self.buf[end + 4 + size :]
                self.transport.write(varied_reply(body) if varied else reply)

    async def run():
        server = await asyncio.get_running_loop().create_server(Instant, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


def wait_healthy(url: str, proc: subprocess.Popen, path: str = "/health", tries: int = 600) -> None:
    for _ in range(tries):
        if proc.poll() is not None:
            raise SystemExit(f"error: the server at {url} exited; fix: run it by hand to see why")
        try:
            with urllib.request.urlopen(url + path, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers HTTP
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"error: no server answered at {url}; fix: pip install 'transformers[serving]'")


def start_transformers_serve(continuous_batching: bool) -> tuple[subprocess.Popen, str, str]:
    from hardneg.assets import resolve_llm
    from hardneg.llm.transformers_backend import dequantised_gguf_folder

    ref = resolve_llm("embedded:smollm2")
    folder = dequantised_gguf_folder(ref.name_or_path, ref.gguf_file)
    port = _free_port()
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    cmd = [exe, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    if continuous_batching:
        cmd.append("--continuous-batching")
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    return proc, url, str(folder)


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"machine load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def build_run(model: str, url: str, n: int, concurrency: int, max_new_tokens: int, workdir: Path) -> float:
    """The build's generation path for ``n`` query prompts; returns requests/s (wall)."""
    gen = load_generator(
        GeneratorConfig(
            backend="http", model=model, urls=[url], concurrency=concurrency, timeout=600, max_retries=0
        )
    )
    items = [
        {"id": f"p{i}", "passage": f"Passage {i}: the flutter of thin wings at speed {i} m/s."}
        for i in range(n)
    ]
    cache = Path(tempfile.mkdtemp(dir=workdir))
    start = time.perf_counter()
    run_generation(
        items,
        generator=gen,
        prompt=load_prompt("query_zeroshot"),
        method="bench",
        cache_dir=cache,
        max_new_tokens=max_new_tokens,
        max_retries=0,
        progress=False,
    )
    return n / (time.perf_counter() - start)


def flood_run(model: str, url: str, n: int, concurrency: int, max_new_tokens: int) -> float:
    """The baseline: the same chat requests from a plain asyncio + aiohttp loop (a semaphore, nothing else)."""
    import aiohttp

    prompt = load_prompt("query_zeroshot")
    bodies = [
        {
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": prompt.render(
                        passage=f"Passage {i}: the flutter of thin wings at speed {i} m/s."
                    ),
                }
            ],
            "max_tokens": max_new_tokens,
            "temperature": 0.0,
            "stop": list(prompt.stop),
        }
        for i in range(n)
    ]

    async def run() -> float:
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def one(body):
                async with limit, session.post(url + "/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()

            start = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            return n / (time.perf_counter() - start)

    return asyncio.run(run())


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and core < os.cpu_count():
        os.sched_setaffinity(0, {core})


def overhead(args, workdir: Path) -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve_instant", str(port)])
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, path="/")
        if os.cpu_count() > 1:
            os.sched_setaffinity(server.pid, {1})
        pin(0)
        url = f"http://127.0.0.1:{port}"
        build_run("instant", url, min(200, args.n), args.concurrency, 16, workdir)  # warm-up
        best, best_cpu = 0.0, 0.0
        for _ in range(args.repeats):
            cpu = time.process_time()
            wall_rate = build_run("instant", url, args.n, args.concurrency, 16, workdir)
            cpu_rate = args.n / max(time.process_time() - cpu, 1e-9)
            best, best_cpu = max(best, wall_rate), max(best_cpu, cpu_rate)
            print(
                f"build, instant server, {args.n} requests at concurrency {args.concurrency}, client on one core: "
                f"{wall_rate:,.0f} requests/s wall, {cpu_rate:,.0f} requests per client CPU-second",
                flush=True,
            )
        print(load_note(), flush=True)
        # On a shared machine a pinned process gets a fraction of its core; requests per CPU-second of the
        # client is what one free core would sustain (the server's work is not counted: it runs elsewhere).
        print(
            f"best: {best:,.0f} requests/s wall; {best_cpu:,.0f} requests per client CPU-second", flush=True
        )
        print(
            f"build requests per client CPU-second (one free core) vs 1,000 requests/s goal: {best_cpu / 1000:.2f}x"
        )
    finally:
        server.kill()
        server.wait()


def flood(args, workdir: Path) -> None:
    proc = None
    if args.url is None:
        proc, url, model = start_transformers_serve(continuous_batching=True)
    else:
        url, model = args.url, args.model
    try:
        flood_run(model, url, 2, 2, 2)  # the server loads the model and warms up
        rates: dict[str, list[float]] = {"flood": [], "build": []}
        for _ in range(args.repeats):
            for name in ("flood", "build"):
                if name == "flood":
                    rate = flood_run(model, url, args.n, args.concurrency, args.max_new_tokens)
                else:
                    rate = build_run(model, url, args.n, args.concurrency, args.max_new_tokens, workdir)
                rates[name].append(rate)
                print(
                    f"{name}: {args.n} requests, concurrency {args.concurrency}, {args.max_new_tokens} new tokens: "
                    f"{rate:.3f} requests/s",
                    flush=True,
                )
        print(load_note(), flush=True)
        print(
            f"build vs plain asyncio flood (concurrency {args.concurrency}): "
            f"{max(rates['build']) / max(rates['flood']):.2f}x"
        )
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def concurrency(args) -> None:
    proc = None
    if args.url is None:
        proc, url, model = start_transformers_serve(args.continuous_batching)
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
            print(f"concurrency {c}: {rates[c]:.3f} items/s", flush=True)
        same = sum(a == b for a, b in zip(outs[1], outs[8], strict=True))
        print(f"greedy outputs identical at concurrency 1 and 8: {same}/{args.n}", flush=True)
        print(load_note(), flush=True)
        print(f"items/s concurrency 8 vs concurrency 1: {rates[8] / rates[1]:.2f}x", flush=True)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["overhead", "flood", "concurrency"], default="overhead")
    ap.add_argument(
        "--n", type=int, default=None, help="requests per run (overhead 3000, flood 24, concurrency 8)"
    )
    ap.add_argument("--concurrency", type=int, default=None, help="in flight (overhead 64, flood 8)")
    ap.add_argument("--max_new_tokens", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--url", default=None, help="your own server instead of transformers serve")
    ap.add_argument("--model", default=None)
    ap.add_argument("--continuous_batching", action="store_true", help="concurrency mode only")
    ap.add_argument("--serve_instant", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--varied", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_instant:
        return serve_instant(args.serve_instant, varied=args.varied)
    args.n = args.n or {"overhead": 3000, "flood": 24, "concurrency": 8}[args.mode]
    args.concurrency = args.concurrency or {"overhead": 64, "flood": 8}.get(args.mode, 8)
    with tempfile.TemporaryDirectory() as tmp:
        if args.mode == "overhead":
            overhead(args, Path(tmp))
        elif args.mode == "flood":
            flood(args, Path(tmp))
        else:
            concurrency(args)


if __name__ == "__main__":
    main()
