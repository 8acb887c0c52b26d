"""GPU corpus-encoding throughput: hardneg.encode.encode_corpus vs plain SentenceTransformer.encode.

A BERT-base-shaped model (12 layers, hidden 768), randomly initialised from a config, in bf16, inputs
truncated at 256 tokens, built offline (synthetic word-piece vocabulary and texts: no downloads).
Both sides encode the same texts with the same model in one run; embeddings must agree (cosine).

    python benchmarks/gpu/evaluation.py                                  # one CUDA GPU
    python benchmarks/gpu/evaluation.py --num_docs 100000 --batch_size 512
    python benchmarks/gpu/evaluation.py --device cpu --dtype float32 --num_docs 64 --layers 2   # smoke test

Last line: ``corpus encoding docs/s vs SentenceTransformer.encode: N.NNx`` (higher is better).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_model(folder: str, layers: int, max_seq_length: int, seed: int):
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(30517)]
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=os.path.join(folder, "vocab.txt"), do_lower_case=True).save_pretrained(
        folder
    )
    import torch

    torch.manual_seed(seed)
    BertModel(BertConfig(num_hidden_layers=layers, max_position_embeddings=512)).save_pretrained(folder)
    model = SentenceTransformer(folder)  # no modules.json: Transformer + mean pooling
    model.max_seq_length = max_seq_length
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_docs", type=int, default=50_000)
    parser.add_argument("--batch_size", type=int, default=512, help="hardneg batch size.")
    parser.add_argument("--baseline_batch_size", type=int, default=32, help="encode()'s default is 32.")
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    import torch

    from hardneg.encode import encode_corpus

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device; fix: run on a GPU machine or pass --device cpu for a smoke test")
    rng = random.Random(args.seed)
    # lengths spread like real passages: 32..400 words, most truncated near 256 tokens
    texts = [
        " ".join(f"w{rng.randrange(30517)}" for _ in range(rng.randint(32, 400)))
        for _ in range(args.num_docs)
    ]
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(folder, args.layers, args.max_seq_length, args.seed)
        model.to(device=args.device, dtype=getattr(torch, args.dtype))
        model.eval()
        print(
            f"device {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}, "
            f"{args.dtype}, {args.layers} layers, seq {args.max_seq_length}, {len(texts)} docs"
        )

        def timed(fn):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            return time.perf_counter() - t0, out

        warm = texts[: min(len(texts), 2048)]
        model.encode(warm, batch_size=args.baseline_batch_size, show_progress_bar=False)
        encode_corpus(model, warm, batch_size=args.batch_size, show_progress=False)

        t_base, base = timed(
            lambda: model.encode(texts, batch_size=args.baseline_batch_size, show_progress_bar=False)
        )
        t_big, _ = timed(lambda: model.encode(texts, batch_size=args.batch_size, show_progress_bar=False))
        t_ours, ours = timed(
            lambda: encode_corpus(
                model,
                texts,
                batch_size=args.batch_size,
                part_size=max(args.batch_size, 16384),
                show_progress=False,
            )
        )
    cos = np.sum(base * ours, 1) / (np.linalg.norm(base, axis=1) * np.linalg.norm(ours, axis=1))
    print(f"embedding agreement: min cosine {cos.min():.5f}, mean {cos.mean():.5f}")
    if cos.min() < 0.99:
        raise SystemExit("embeddings disagree: the comparison is not like for like")
    n = len(texts)
    print(f"SentenceTransformer.encode batch {args.baseline_batch_size}: {n / t_base:,.0f} docs/s")
    print(f"SentenceTransformer.encode batch {args.batch_size}: {n / t_big:,.0f} docs/s")
    print(f"hardneg encode_corpus batch {args.batch_size}: {n / t_ours:,.0f} docs/s")
    print(f"vs encode with the same batch size: {t_big / t_ours:.2f}x")
    print(f"corpus encoding docs/s vs SentenceTransformer.encode: {t_base / t_ours:.2f}x")


if __name__ == "__main__":
    main()
