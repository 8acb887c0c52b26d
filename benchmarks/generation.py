"""Queries/s of the hardneg generation pipeline vs the naive loop, same embedded model, prompts, greedy decoding.

    python benchmarks/generation.py --repeats 3     # defaults: 32 passages (pipeline), 8 (naive), batch 32, 32 new tokens
    python benchmarks/generation.py --n 64 --n_naive 16 --dtype float32
    python benchmarks/generation.py --pipelines llamacpp   # only the llama.cpp pipeline vs the naive loop

Baseline (the naive loop): one passage at a time, ``model.generate`` on the full few-shot prompt, float32,
greedy, stopping at the newline that ends the query (same stop rule as the pipeline, so neither side
generates tokens the other does not).

Pipeline: ``hardneg.queries.generate_queries`` (cache, hygiene, provenance included) on the transformers
backend: batches sorted by length, left padding, the few-shot prefix's KV cache computed once, and the
CPU's native bf16 matmuls when it has them (avx512_bf16 / AMX; ``--dtype auto``). float32 output equals
the naive loop exactly; bf16 output is compared and its agreement printed (near-equality: same text or
high word overlap). Both are measured in this one run; the naive rate is per item over ``--n_naive``.

When llama-cpp-python is installed, the same pipeline also runs on the ``llamacpp`` backend (the GGUF's own
Q4_1 kernels, the few-shot prefix kept in llama.cpp's KV cache). Its greedy outputs are not bit-identical
with the dequantised float32 model's, so the benchmark prints how many are identical and the mean word-set
agreement, and the last line is ``queries/s pipeline (llamacpp) vs naive loop: N.NNx``. Without it, the last
line is ``queries/s pipeline (<dtype>) vs naive loop (fp32): N.NNx``.
"""

from __future__ import annotations

import os

# Passive OpenMP waiting: on a shared 2-core machine, spinning threads of other processes otherwise make
# batched matmuls 10x slower. Set before torch loads; it applies to both sides of the comparison.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from hardneg.corpus import load_corpus, passage_text  # noqa: E402
from hardneg.generation import clean_output  # noqa: E402
from hardneg.llm import GeneratorConfig, load_generator  # noqa: E402
from hardneg.prompts import load_prompt  # noqa: E402
from hardneg.queries import generate_queries, truncate_words  # noqa: E402
from hardneg.text import word_jaccard  # noqa: E402


def cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def naive_loop(generator, prompts: list[str], max_new_tokens: int) -> tuple[list[str], float]:
    tok, model = generator.tokenizer, generator.model
    stop_ids = sorted(generator._stop_tokens(["\n"])[0] | {tok.eos_token_id})
    outs = []
    start = time.perf_counter()
    for p in prompts:
        enc = tok(p, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=stop_ids,
                pad_token_id=tok.pad_token_id,
            )
        outs.append(tok.decode(ids[0, enc.input_ids.shape[1] :], skip_special_tokens=True).split("\n")[0])
    return outs, time.perf_counter() - start


def pipeline(generator, corpus, max_new_tokens: int) -> tuple[dict[str, str], float]:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        queries, _ = generate_queries(
            corpus, generator, cache_dir=cache, max_retries=0, max_new_tokens=max_new_tokens, progress=False
        )
        return dict(zip(queries["positive_id"], queries["query"], strict=True)), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="passages for the pipeline")
    ap.add_argument(
        "--n_naive", type=int, default=8, help="passages for the naive loop (first n_naive of the same)"
    )
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each side; the fastest counts")
    ap.add_argument("--max_new_tokens", type=int, default=32)
    ap.add_argument(
        "--dtype",
        default="auto",
        help="pipeline dtype: auto (bf16 if the CPU has native bf16), float32, bfloat16",
    )
    ap.add_argument(
        "--pipelines",
        default="all",
        help="comma list of pipelines to time: float32, <dtype>, llamacpp; all = every one available",
    )
    args = ap.parse_args()
    dtype = ("bfloat16" if cpu_has_bf16() else "float32") if args.dtype == "auto" else args.dtype
    has_llamacpp = importlib.util.find_spec("llama_cpp") is not None
    wanted = ["float32", dtype] + (["llamacpp"] if has_llamacpp else [])
    if args.pipelines != "all":
        wanted = args.pipelines.split(",")
    if unknown := set(wanted) - {"float32", dtype, "llamacpp"}:
        raise SystemExit(f"error: unknown pipeline(s) {sorted(unknown)}; fix: use float32, {dtype}, llamacpp")
    if "llamacpp" in wanted and not has_llamacpp:
        raise SystemExit("error: llama-cpp-python is not installed; fix: pip install 'hardneg[llamacpp]'")
    corpus = load_corpus("embedded:cranfield").select(range(args.n))
    template = load_prompt("query_fewshot")
    prompts = [
        template.render(passage=truncate_words(passage_text(r["title"], r["text"]), 128)) for r in corpus
    ]

    fp32 = load_generator(GeneratorConfig(dtype="float32", batch_size=args.batch_size))
    # Best of --repeats for each side: this machine's speed drifts by 10-20% between runs.
    naive_raw, naive_s = min(
        (naive_loop(fp32, prompts[: args.n_naive], args.max_new_tokens) for _ in range(args.repeats)),
        key=lambda r: r[1],
    )
    naive = {i: clean_output(t, p) for i, t, p in zip(corpus["id"], naive_raw, prompts, strict=False)}
    naive_rate = len(naive_raw) / naive_s
    print(
        f"naive loop (fp32, batch 1): {len(naive_raw)} queries in {naive_s:.1f} s = {naive_rate:.3f} queries/s"
    )

    configs = {
        "float32": GeneratorConfig(dtype="float32", batch_size=args.batch_size),
        dtype: GeneratorConfig(dtype=dtype, batch_size=args.batch_size),
        "llamacpp": GeneratorConfig(backend="llamacpp"),
    }
    rates = {}
    for name in dict.fromkeys(wanted):
        gen = fp32 if name == "float32" else load_generator(configs[name])
        out, secs = min(
            (pipeline(gen, corpus, args.max_new_tokens) for _ in range(args.repeats)), key=lambda r: r[1]
        )
        rates[name] = args.n / secs
        shared = [i for i in naive if i in out]
        exact = sum(out[i] == naive[i] for i in shared)
        near = sum(word_jaccard(out[i], naive[i]) for i in shared) / max(len(shared), 1)
        how = "one at a time, prefix in KV cache" if name == "llamacpp" else f"batch {args.batch_size}"
        print(
            f"pipeline ({name}, {how}): {args.n} passages in {secs:.1f} s = {rates[name]:.3f} queries/s; "
            f"vs naive on {len(shared)} shared: {exact} identical, mean word-set agreement {near:.2f}"
        )
        if name == "float32" and exact != len(shared):
            print("WARNING: float32 pipeline output differs from the naive loop")
    if "float32" in rates:
        print(f"queries/s pipeline fp32 vs naive loop: {rates['float32'] / naive_rate:.2f}x")
    if dtype in rates and dtype != "float32":
        print(f"queries/s pipeline ({dtype}) vs naive loop (fp32): {rates[dtype] / naive_rate:.2f}x")
    if "llamacpp" in rates:
        print(f"queries/s pipeline (llamacpp) vs naive loop: {rates['llamacpp'] / naive_rate:.2f}x")


if __name__ == "__main__":
    main()
