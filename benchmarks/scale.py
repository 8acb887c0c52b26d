"""A whole build on synthetic corpora of 10x steps: time per stage, peak RSS and rows/s, and the four goals
of issue 24 against bm25s alone, in one run.

    python benchmarks/scale.py --passages 100000 1000000     # the issue's sizes (1M: tens of minutes)
    python benchmarks/scale.py --passages 10000              # a quick look
    python benchmarks/scale.py --dense 100000                # dense_hn (MiniLM) vs encoding the pool alone
    python benchmarks/scale.py --dense 100000 --words 10 20  # the same with passages short enough for 2 cores
    python benchmarks/scale.py --passages 1000000 --kill_after_blocks 5  # kill and resume inside mining

For each size, a seeded synthetic corpus (Zipf vocabulary of 50k pseudo-words, 60-120 words per passage) is
written once as ``corpus.jsonl`` under ``--workdir``; an instant local OpenAI-compatible server
(``benchmarks/generation_http.py``'s, replying with words of each prompt, so every query differs) stands in
for the LLM, so hardneg's own cost is what is measured. Then, each in its own process (peak RSS from
``wait4``):

1. the build, ``builders/build.py --num_passages 0 --methods llm_hn bm25_hn --false_negative_scorer none``:
   every passage is sampled; per-stage times come from the build's own ``step ...`` log lines;
2. the same command again (nothing to do: the cached rerun);
3. bm25s alone indexing the pool (the same texts, stemmer and stop words as the build), then
   ``hardneg.bm25.BM25Index`` searching ``--search_queries`` queries with 1 thread and with 2 (same results
   required).

The last four lines, the issue's goals (printed last the first):
``cached rerun at 1M: N s`` (<= 60), ``BM25 search 2 threads vs 1: N.NNx`` (>= 1.7), ``build time per passage
outside retrieval, 1M vs 100k: N.NNx`` (<= 1.1), ``build peak RSS vs bm25s indexing the pool alone at 1M
passages: N.NNx`` (<= 1.15). With other sizes the lines name the largest and smallest size run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from generation_http import _free_port, load_note, wait_healthy  # noqa: E402

DEFAULT_WORDS = [60, 120]
STEP_RE = re.compile(r"step (\S+): ([0-9.]+) s")
BLOCK_SEARCH_RE = re.compile(r"BM25 search of \d+ queries")  # one line per mining block
BM25_RE = re.compile(r"BM25 (index|search) of (\d+) \S+: ([0-9.]+) s")


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def size_folder(n: int, words: list[int]) -> str:
    """``<workdir>/<size>`` for the default passage length, ``<size>-w<lo>-<hi>`` for another."""
    return human(n) if list(words) == DEFAULT_WORDS else f"{human(n)}-w{words[0]}-{words[1]}"


def write_corpus(
    path: Path, n: int, seed: int = 0, vocab: int = 50_000, length: tuple[int, int] = (60, 120)
) -> None:
    """``n`` passages of ``length`` (60-120) Zipf-distributed pseudo-words, as BEIR-style jsonl (seeded)."""
    if path.is_file():
        return
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = np.array(["".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(vocab)])
    p = 1.0 / np.arange(1, vocab + 1) ** 1.05
    p /= p.sum()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            lengths = rng.integers(length[0], length[1] + 1, size=m)
            flat = words[rng.choice(vocab, size=int(lengths.sum()), p=p)]
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            for i in range(m):
                text = " ".join(flat[bounds[i] : bounds[i + 1]])
                f.write(json.dumps({"_id": f"d{start + i}", "title": "", "text": text}) + "\n")
    tmp.rename(path)


def run_child(cmd: list[str], log: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB, output) of one child process. Its resident set is also sampled every
    0.5 s (``<log>.rss``: clock time, GB) so that ``peak_step`` can say which step reached the peak."""
    start = time.perf_counter()
    samples: list[tuple[float, float]] = []
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        status_file = Path(f"/proc/{proc.pid}/status")
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaped here, with its rusage
            if pid:
                break
            try:
                kb = next(
                    int(x.split()[1]) for x in status_file.read_text().splitlines() if x.startswith("VmRSS")
                )
                samples.append((time.time(), kb / 1e6))
            except (OSError, StopIteration, ValueError):  # the process is ending
                pass
            time.sleep(0.5)
    wall = time.perf_counter() - start
    text = log.read_text()
    Path(f"{log}.rss").write_text("".join(f"{t:.1f} {gb:.3f}\n" for t, gb in samples))
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {' '.join(cmd[:3])} failed (see {log}):\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1e6, text  # ru_maxrss is in KiB on Linux: /1e6 = GB (~)


LOG_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*?((?:step|BM25) .*)$", re.M)


def peak_step(log: Path) -> str:
    """The logged line that ended the step in which the sampled resident set peaked (``run_child``)."""
    samples = [tuple(map(float, x.split())) for x in Path(f"{log}.rss").read_text().splitlines()]
    if not samples:
        return "n/a"
    when, gb = max(samples, key=lambda x: x[1])
    for m in LOG_TIME_RE.finditer(log.read_text()):
        at = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
        if at >= when:
            return f"{gb:.2f} GB sampled, in the step that logged '{m[3]}'"
    return f"{gb:.2f} GB sampled, after the last logged step"


def build_command(
    corpus: Path,
    out: Path,
    url: str,
    concurrency: int,
    sample: int = 0,
    methods: tuple[str, ...] = ("llm_hn", "bm25_hn"),
) -> list[str]:
    return [
        sys.executable,
        "builders/build.py",
        "--corpus",
        str(corpus),
        "--num_passages",
        str(sample),
        "--methods",
        *methods,
        "--false_negative_scorer",
        "none",
        "--query_prompt",
        "query_zeroshot",
        "--backend",
        "http",
        "--model",
        "instant",
        "--urls",
        url,
        "--concurrency",
        str(concurrency),
        "--output_dir",
        str(out),
    ]


def bm25_child(corpus: str, n_queries: int) -> None:
    """bm25s alone indexing the pool (the build's tokenizer settings; peak RSS right after indexing); then
    hardneg's own ``hardneg.bm25.BM25Index`` (what the build mines with) over the same texts, searched by
    ``n_queries`` queries (5 words of a passage each) on 1 and on 2 threads (``search_indices(n_threads=...)``,
    query tokenisation included). Prints one JSON line."""
    import bm25s
    import Stemmer

    from hardneg.bm25 import BM25Index

    texts = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
    stemmer = Stemmer.Stemmer("english")
    start = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False, allow_empty=True)
    retriever = bm25s.BM25(backend="numba")
    retriever.index(tokens, show_progress=False)
    index_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    del tokens, retriever
    index = BM25Index(texts, [str(i) for i in range(len(texts))], show_progress=False)
    rng = np.random.default_rng(1)
    rows = rng.choice(len(texts), size=n_queries, replace=n_queries > len(texts))
    queries = [" ".join(rng.choice(texts[i].split(), size=5)) for i in rows]
    index.search_indices(queries[:1000], 20, n_threads=1)  # numba compiles here
    timing: dict[int, float] = {}
    results = {}
    for threads in (1, 2, 1, 2):  # alternating, best of two: the machine is shared
        start = time.perf_counter()
        results[threads] = index.search_indices(queries, 20, n_threads=threads)
        timing[threads] = min(timing.get(threads, 1e9), time.perf_counter() - start)
    same = bool(np.array_equal(results[1][0], results[2][0]) and np.array_equal(results[1][1], results[2][1]))
    print(
        json.dumps(
            {"index_s": index_s, "peak_gb": peak, "search": timing, "same": same, "queries": n_queries}
        )
    )


def dense_child(corpus: str) -> None:
    """The embedded all-MiniLM-L6-v2 encoding the pool alone, as ``dense_hn`` encodes it (title + text,
    ``encode_document``, normalised, the build's default batch size 32); prints one JSON line."""
    from hardneg.negatives.dense import load_embedder

    texts = []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
    model = load_embedder("embedded:minilm")
    start = time.perf_counter()
    emb = model.encode_document(
        texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    print(
        json.dumps(
            {
                "encode_s": time.perf_counter() - start,
                "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                "shape": list(emb.shape),
            }
        )
    )


def resume_size(n: int, args, url: str) -> None:
    """Kill and resume inside mining, on the finished run at ``n`` passages (run ``--passages n`` first): its
    ``bm25_hn`` stage and mining blocks go, the build runs again (the queries and ``llm_hn`` stages are reused)
    and is killed (SIGKILL) once ``--kill_after_blocks`` blocks are saved; a rerun finishes it. Prints what the
    kill lost, what the rerun searched again and whether the stage equals the uninterrupted run's, byte for
    byte."""
    work = Path(args.workdir) / size_folder(n, args.words)
    out = work / "run"
    stage, blocks = out / "stages" / "bm25_hn", out / "cache" / "mining" / "blocks"
    if not (stage / "data.arrow").is_file():
        raise SystemExit(f"error: no finished run at {out}; fix: run --passages {n} first")
    digest = hashlib.sha256((stage / "data.arrow").read_bytes()).hexdigest()
    shutil.rmtree(stage)
    shutil.rmtree(blocks, ignore_errors=True)
    cmd = build_command(work / "corpus.jsonl", out, url, args.concurrency, args.sample)
    start = time.perf_counter()
    with open(work / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        while proc.poll() is None and len(list(blocks.glob("*.npz"))) < args.kill_after_blocks:
            time.sleep(0.5)
        proc.kill()
        proc.wait()
    saved = len(list(blocks.glob("*.npz")))
    killed_at = time.perf_counter() - start
    print(f"[{human(n)}] killed after {killed_at:.0f} s with {saved} mining blocks saved", flush=True)
    wall, rss, text = run_child(cmd, work / "resumed.log")
    searched = len(BLOCK_SEARCH_RE.findall(text))
    same = hashlib.sha256((stage / "data.arrow").read_bytes()).hexdigest() == digest
    print(
        f"[{human(n)}] resumed: {wall:.1f} s, peak RSS {rss:.2f} GB; steps "
        f"{ {m[1]: float(m[2]) for m in STEP_RE.finditer(text)} }",
        flush=True,
    )
    total = len(BLOCK_SEARCH_RE.findall((work / "build.log").read_text()))  # the uninterrupted run's blocks
    print(
        f"mining blocks searched by the resumed run: {searched} of {total} ({saved} were saved before the kill)"
    )
    print(f"bm25_hn stage after kill and resume equals the uninterrupted run's: {same}")


def dense_size(n: int, args, url: str) -> None:
    """``dense_hn`` (queries + dense mining with the embedded MiniLM) at ``n`` passages against encoding the
    pool alone: peak RSS of each, and the issue's rule (<= 1.15x)."""
    work = Path(args.workdir) / size_folder(n, args.words)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.jsonl"
    write_corpus(corpus, n, length=tuple(args.words))
    out = work / "dense_run"
    shutil.rmtree(out, ignore_errors=True)
    cmd = build_command(corpus, out, url, args.concurrency, args.sample, methods=("dense_hn",))
    wall, rss, log = run_child(cmd, work / "dense_build.log")
    steps = {m[1]: float(m[2]) for m in STEP_RE.finditer(log)}
    print(f"[{human(n)}] dense_hn build: {wall:.1f} s, peak RSS {rss:.2f} GB; steps {steps}", flush=True)
    _, _, alone = run_child(
        [sys.executable, __file__, "--dense_child", str(corpus)], work / "dense_alone.log"
    )
    alone = json.loads(alone.strip().splitlines()[-1])
    print(
        f"[{human(n)}] MiniLM encoding the pool alone: {alone['encode_s']:.1f} s, peak RSS {alone['peak_gb']:.2f} GB",
        flush=True,
    )
    print(
        f"dense_hn build peak RSS vs encoding the pool alone at {human(n)} passages: {rss / alone['peak_gb']:.2f}x"
    )


def summarise(path: Path, top: int = 25) -> None:
    """Share of samples per function (inclusive: anywhere on the stack) and per leaf (exclusive)."""
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [
            f.split(" (")[0] + " (" + f.split("(")[-1].split(":")[0].split("/")[-1] + ")"
            for f in stack.split(";")
        ]
        n = int(count)
        total += n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
    print(f"{total} samples")
    for title, table in (("inclusive", inclusive), ("leaf", leaf)):
        print(f"-- {title}")
        for f, n in sorted(table.items(), key=lambda x: -x[1])[:top]:
            print(f"{100 * n / total:5.1f}%  {f}")


def one_size(n: int, args, url: str) -> dict:
    work = Path(args.workdir) / size_folder(n, args.words)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.jsonl"
    t = time.perf_counter()
    write_corpus(corpus, n, length=tuple(args.words))
    print(
        f"[{human(n)}] corpus {corpus} ({corpus.stat().st_size / 1e6:.0f} MB, {time.perf_counter() - t:.0f} s)",
        flush=True,
    )
    out = work / "run"
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    cmd = build_command(corpus, out, url, args.concurrency, args.sample)
    profiled = cmd
    if args.profile:  # py-spy samples the build (collapsed stacks; summarise with --summarise FILE)
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        profiled = [spy, "record", "-r", "20", "-f", "raw", "-o", str(work / "build.pyspy.txt"), "--", *cmd]
    wall, rss, log = run_child(profiled, work / "build.log")
    steps = {m[1]: float(m[2]) for m in STEP_RE.finditer(log)}
    bm25: dict[str, float] = {}
    for m in BM25_RE.finditer(log):  # mining searches its queries in blocks: one line per block
        bm25[m[1]] = bm25.get(m[1], 0.0) + float(m[3])
    rows = json.loads((out / "dataset" / "build_stats.json").read_text())["configs"]
    print(f"[{human(n)}] build: {wall:.1f} s, peak RSS {rss:.2f} GB; steps {steps}; bm25 {bm25}", flush=True)
    print(f"[{human(n)}] peak: {peak_step(work / 'build.log')}", flush=True)
    for name, s in rows.items():
        print(f"[{human(n)}]   {name}: {s.get('rows')} rows", flush=True)
    rerun_wall, rerun_rss, _ = run_child(cmd, work / "rerun.log")
    print(f"[{human(n)}] cached rerun: {rerun_wall:.1f} s, peak RSS {rerun_rss:.2f} GB", flush=True)
    _, alone_rss, alone = run_child(
        [sys.executable, __file__, "--bm25_child", str(corpus), str(min(args.search_queries, n))],
        work / "bm25.log",
    )
    alone = json.loads(alone.strip().splitlines()[-1])
    print(
        f"[{human(n)}] bm25s alone: index {alone['index_s']:.1f} s, peak RSS {alone['peak_gb']:.2f} GB; "
        f"BM25Index search of {alone['queries']} queries: 1 thread {alone['search']['1']:.1f} s, 2 threads "
        f"{alone['search']['2']:.1f} s, same results: {alone['same']}",
        flush=True,
    )
    retrieval = bm25.get("search", 0.0)
    return {
        "n": n,
        "wall": wall,
        "rss": rss,
        "steps": steps,
        "bm25": bm25,
        "rerun": rerun_wall,
        "rerun_rss": rerun_rss,
        "alone": alone,
        "outside_retrieval_per_passage": (wall - retrieval) / n,
        "sampled": args.sample or n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--workdir", default="/tmp/hardneg-scale")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight to the instant server")
    ap.add_argument(
        "--sample",
        type=int,
        default=0,
        help="passages sampled for queries (0 = every one, the issue's setting); the pool is always all",
    )
    ap.add_argument("--search_queries", type=int, default=100_000, help="queries of the thread comparison")
    ap.add_argument("--fresh", action="store_true", default=True, help="remove an earlier run folder first")
    ap.add_argument("--keep", dest="fresh", action="store_false", help="keep an earlier run folder")
    ap.add_argument(
        "--profile", action="store_true", help="sample the build with py-spy (<workdir>/<n>/build.pyspy.txt)"
    )
    ap.add_argument("--summarise", default=None, help="print the top functions of a py-spy raw file and exit")
    ap.add_argument(
        "--dense",
        type=int,
        default=None,
        metavar="N",
        help="instead: dense_hn (embedded MiniLM) at N passages vs encoding the pool alone (peak RSS)",
    )
    ap.add_argument(
        "--words",
        type=int,
        nargs=2,
        default=DEFAULT_WORDS,
        metavar=("LO", "HI"),
        help="words per passage (default 60 120; shorter passages make --dense's encoding affordable on a CPU)",
    )
    ap.add_argument(
        "--kill_after_blocks",
        type=int,
        default=0,
        metavar="K",
        help="instead: on the finished run of the largest --passages, kill bm25_hn's mining once K blocks are "
        "saved, resume it, and compare the stage with the uninterrupted one",
    )
    ap.add_argument("--bm25_child", nargs=2, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dense_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not 1 <= args.words[0] <= args.words[1]:
        ap.error(f"--words {args.words[0]} {args.words[1]}: give 1 <= LO <= HI words per passage")
    if args.kill_after_blocks < 0:
        ap.error(
            f"--kill_after_blocks {args.kill_after_blocks} is negative; give a number of blocks (0: no kill)"
        )
    if args.bm25_child:
        return bm25_child(args.bm25_child[0], int(args.bm25_child[1]))
    if args.dense_child:
        return dense_child(args.dense_child)
    if args.summarise:
        return summarise(Path(args.summarise))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "generation_http.py"), "--serve_instant", str(port), "--varied"]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, path="/")
        if args.dense:
            return dense_size(args.dense, args, url)
        if args.kill_after_blocks:
            return resume_size(max(args.passages), args, url)
        results = [one_size(n, args, url) for n in sorted(args.passages)]
    finally:
        server.kill()
        server.wait()
    print(load_note())
    print(
        "| passages | whole build | generation (queries) | BM25 index | BM25 search | save dataset folder | peak RSS | rows/s | cached rerun |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["steps"]
        print(
            f"| {human(r['n'])} | {r['wall']:.1f} s | {s.get('queries', 0):.1f} s | {r['bm25'].get('index', 0):.1f} s | "
            f"{r['bm25'].get('search', 0):.1f} s | {s.get('save_dataset_folder', 0):.1f} s | {r['rss']:.2f} GB | "
            f"{r['n'] / r['wall']:,.0f} | {r['rerun']:.1f} s ({r['rerun_rss']:.2f} GB) |"
        )
    big, small = results[-1], results[0]
    search = big["alone"]["search"]
    if args.sample:
        print(f"(every build sampled {args.sample} passages for queries; the pool is every passage)")
    print(f"cached rerun at {human(big['n'])}: {big['rerun']:.0f} s")
    print(f"BM25 search 2 threads vs 1: {search['1'] / search['2']:.2f}x")
    ratio = big["outside_retrieval_per_passage"] / small["outside_retrieval_per_passage"]
    print(
        f"build time per passage outside retrieval, {human(big['n'])} vs {human(small['n'])}: "
        + (f"{ratio:.2f}x" if big is not small else "n/a (one size run)")
    )
    print(
        f"build peak RSS vs bm25s indexing the pool alone at {human(big['n'])} passages: "
        f"{big['rss'] / big['alone']['peak_gb']:.2f}x"
    )


if __name__ == "__main__":
    main()
