"""GPU: cross-encoder scoring throughput, ours (bf16, tokenise once, length-sorted, big batches) vs CrossEncoder.predict.

    python benchmarks/gpu/mining.py                      # one CUDA GPU; no downloads, no datasets package needed
    python benchmarks/gpu/mining.py --pairs 50000 --seq 256 --batch_size 1024

The model is a MiniLM-L6-shaped BertForSequenceClassification with RANDOM weights, built from a config with a
generated word-level vocabulary (speed only: its scores mean nothing, never mine with it). Both sides get the
same pairs (random pseudo-word texts of about --seq tokens per pair) and the same bf16 model; the baseline is
``CrossEncoder.predict`` with its default batch size (32) on the pairs in their original order. The scores are
checked to agree (bf16 tolerance). The last line is ``ce scoring bf16 (ours) vs CrossEncoder.predict: N.NNx``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def build_model(folder: Path, vocab_size: int, device: str, seed: int = 0):
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = sorted({"".join(rng.choice(letters, size=rng.integers(4, 9))) for _ in range(vocab_size)})
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = special + words[: vocab_size - len(special)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return CrossEncoder(str(folder), num_labels=1, max_length=512, device=device), vocab[len(special) :]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=20000)
    p.add_argument("--seq", type=int, default=256, help="approximate tokens per (query, passage) pair")
    p.add_argument(
        "--batch_size", type=int, default=1024, help="our batch size (the baseline keeps predict's 32)"
    )
    p.add_argument("--vocab", type=int, default=30000)
    p.add_argument("--device", default="cuda", help="cuda; 'cpu' only to smoke-test the script")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(
            "error: this benchmark needs a CUDA GPU; fix: run it on a GPU machine (CPU: benchmarks/mining.py)"
        )

    from hardneg.scorers import CrossEncoderScorer

    with tempfile.TemporaryDirectory() as tmp:
        ce, words = build_model(Path(tmp), args.vocab, args.device)
    ce.model.to(torch.bfloat16)
    rng = np.random.default_rng(1)
    words = np.array(words)
    q_len = rng.integers(6, 16, size=args.pairs)
    p_len = np.clip(rng.normal(args.seq - 14, args.seq / 6, size=args.pairs).astype(int), 16, args.seq * 2)
    queries = [" ".join(rng.choice(words, size=n)) for n in q_len]
    passages = [" ".join(rng.choice(words, size=n)) for n in p_len]
    pairs = list(zip(queries, passages, strict=True))
    scorer = CrossEncoderScorer("random-minilm-shaped", model=ce, show_progress=False)
    scorer.memo_limit = 0  # the warm-up pairs must be scored again in the timed run

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    ce.predict(pairs[:256], show_progress_bar=False)  # warm-up (kernels, allocator)
    scorer.score(queries[:2048], passages[:2048], batch_size=args.batch_size)
    sync()
    t = time.perf_counter()
    base = ce.predict(pairs, show_progress_bar=False)
    sync()
    t_base = time.perf_counter() - t
    t = time.perf_counter()
    ours = scorer.score(queries, passages, batch_size=args.batch_size)
    sync()
    t_ours = time.perf_counter() - t
    diff = float(np.abs(np.asarray(base, dtype=np.float32) - ours).max())
    print(
        f"{torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}: {args.pairs} pairs, ~{args.seq} tokens each, bf16"
    )
    print(f"CrossEncoder.predict (batch 32): {args.pairs / t_base:,.0f} pairs/s")
    print(f"ours (batch {args.batch_size}): {args.pairs / t_ours:,.0f} pairs/s; max |score diff| {diff:.3g}")
    if diff > 5e-2:
        sys.exit("error: scores disagree beyond bf16 tolerance")
    print(f"ce scoring bf16 (ours) vs CrossEncoder.predict: {t_base / t_ours:.2f}x")


if __name__ == "__main__":
    main()
