"""Decode tokens/s of the transformers backend at batch 1 vs 64 on one CUDA GPU, against the memory-bandwidth limit.

    python benchmarks/gpu/generation.py                     # Qwen2-0.5B-shaped, random init, bf16, no downloads
    python benchmarks/gpu/generation.py --batches 1 8 64 --new_tokens 128 --bandwidth_gbs 4800   # H200

The model is random-initialised from a Qwen2-0.5B-shaped config (no weights or tokenizer needed), so
outputs are meaningless but the work per token is the real one. Generation is forced to run the full
``--new_tokens`` (``min_new_tokens``) with greedy decoding and the KV cache, exactly as the hardneg
transformers backend calls ``model.generate``. At batch 1 decoding reads every weight once per token,
so tokens/s <= bandwidth / weight bytes; the script prints that bound next to the measurement.

The last line is ``decode tokens/s batch <max> vs batch 1: N.NNx``.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--prompt_tokens", type=int, default=256)
    ap.add_argument("--new_tokens", type=int, default=128)
    ap.add_argument(
        "--bandwidth_gbs", type=float, default=3350.0, help="HBM bandwidth (H100 SXM 3350, H200 4800)"
    )
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: this benchmark needs a CUDA GPU; fix: run it on a GPU machine")
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).cuda().eval()
    n_params = sum(p.numel() for p in model.parameters())
    weight_bytes = n_params * 2
    bound = args.bandwidth_gbs * 1e9 / weight_bytes
    print(
        f"{torch.cuda.get_device_name()}: Qwen2-shaped model, {n_params / 1e6:.0f}M params, bf16, "
        f"{weight_bytes / 1e9:.2f} GB of weights; batch-1 bound ~{bound:.0f} tokens/s at {args.bandwidth_gbs:.0f} GB/s"
    )
    rates = {}
    for b in args.batches:
        ids = torch.randint(100, config.vocab_size - 100, (b, args.prompt_tokens), device="cuda")
        mask = torch.ones_like(ids)
        kw = dict(
            max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0
        )
        with torch.inference_mode():
            model.generate(
                input_ids=ids, attention_mask=mask, **(kw | {"max_new_tokens": 8, "min_new_tokens": 8})
            )
            torch.cuda.synchronize()
            t = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=mask, **kw)
            torch.cuda.synchronize()
            secs = time.perf_counter() - t
        rates[b] = b * args.new_tokens / secs
        print(
            f"batch {b:4d}: {rates[b]:10.0f} new tokens/s ({secs:.2f} s incl. prefill of {args.prompt_tokens} tokens); "
            f"batch-1 bandwidth bound x batch = {bound * b:.0f}"
        )
    lo, hi = min(args.batches), max(args.batches)
    print(f"decode tokens/s batch {hi} vs batch {lo}: {rates[hi] / rates[lo]:.2f}x")


if __name__ == "__main__":
    main()
