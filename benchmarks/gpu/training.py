"""GPU training throughput: hardneg's training path vs plain sentence-transformers, one run, one GPU.

    python benchmarks/gpu/training.py [--steps 40] [--warmup_steps 10] [--batch_size 128] [--max_seq_length 256]

A BERT-base-shaped model with random weights (``BertConfig()``, 110M parameters, built here: no
download), a word-level tokenizer over a generated vocabulary, and synthetic triplets with realistic
length spread (queries 8-48 words, passages 60-400 words, truncated to ``max_seq_length``). Both runs:
bf16, batch 128, MNRL with one hard negative, the same data and seed.

- baseline: ``SentenceTransformerTrainer`` + ``BatchSamplers.NO_DUPLICATES``, default optimizer;
- hardneg: ``hardneg.train.train`` with the length-grouped no-duplicates sampler, fused AdamW, TF32
  (``--compile`` adds ``torch.compile``).

Throughput is timed from the end of step ``warmup_steps`` to the last step (CUDA synchronised), so
start-up, compilation and the final save are excluded from both. Model FLOPs per sample are counted
from the real (unpadded) token counts, 6 x non-embedding parameters per token plus attention
(12 x layers x length^2 x hidden per sequence), and divided by the bf16 matmul rate measured in the
same run, so "% of matmul rate" is model FLOPs utilisation against what this card really delivers.

Needs: torch with CUDA, transformers, sentence-transformers, accelerate, datasets (the GPU image has no
``datasets``: ``pip install --no-deps`` wheels of datasets, dill, multiprocess, xxhash carried along).
The last line is the headline ratio (higher is better).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402


class StepTimer(TrainerCallback):
    """Wall time from the end of step ``warmup`` to the end of training, CUDA-synchronised."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end, self.start_step, self.end_step = warmup, None, None, 0, 0

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step < self.warmup:
            return
        torch.cuda.synchronize()
        now = time.perf_counter()
        if state.global_step == self.warmup:
            self.start, self.start_step = now, state.global_step
        self.end, self.end_step = now, state.global_step

    def samples_per_second(self, batch_size: int) -> float:
        return (self.end_step - self.start_step) * batch_size / (self.end - self.start)


def matmul_tflops(n: int = 8192, iters: int = 50) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - start) / 1e12


def build_model_folder(folder: Path, vocab_size: int = 30522) -> None:
    """Random BERT-base + a word-level BERT tokenizer (vocab: special tokens + w0..wN), saved as ST."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    hf = folder / "hf"
    hf.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_size - 5)]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True).save_pretrained(hf)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=vocab_size)).save_pretrained(hf)
    transformer = Transformer(str(hf))
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling]).save(str(folder / "st"))


def synthetic_triplets(n: int, vocab_size: int, seed: int = 0):
    from datasets import Dataset

    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(f"w{rng.randrange(vocab_size - 5)}" for _ in range(rng.randint(lo, hi)))

    return Dataset.from_dict(
        {
            "anchor": [text(8, 48) for _ in range(n)],
            "positive": [text(60, 400) for _ in range(n)],
            "negative": [text(60, 400) for _ in range(n)],
        }
    )


def flops_per_sample(data, max_len: int, cfg) -> float:
    """Training FLOPs of one triplet from its real token counts (3 sequences)."""
    non_embedding = 12 * cfg.num_hidden_layers * cfg.hidden_size**2  # attention + MLP weights (4h^2 + 8h^2)
    total = 0.0
    for column in ("anchor", "positive", "negative"):
        for words in data[column]:
            length = min(len(words.split()) + 2, max_len)
            total += 6 * non_embedding * length + 12 * cfg.num_hidden_layers * length**2 * cfg.hidden_size
    return total / len(data)


def plain(model_dir: Path, data, out: Path, cli, timer: StepTimer) -> None:
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    model = SentenceTransformer(str(model_dir))
    model.max_seq_length = cli.max_seq_length
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cli.batch_size,
        max_steps=cli.steps,
        bf16=True,
        learning_rate=2e-5,
        warmup_steps=0.1,
        seed=42,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        logging_steps=10_000,
        report_to="none",
    )
    SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=data,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[timer],
    ).train()


def ours(model_dir: Path, dataset_dir: Path, out: Path, cli, timer: StepTimer) -> None:
    from hardneg.train import TrainConfig, train

    config = TrainConfig(
        dataset=str(dataset_dir),
        dataset_config="bench_hn",
        model=str(model_dir),
        output_dir=str(out),
        max_seq_length=cli.max_seq_length,
        per_device_train_batch_size=cli.batch_size,
        max_steps=cli.steps,
        bf16=True,
        tf32=True,
        optim="adamw_torch_fused",
        torch_compile=cli.compile,
        learning_rate=2e-5,
        warmup_ratio=0.1,
        seed=42,
        save_steps=10_000,
        logging_steps=10_000,
    )
    train(config, callbacks=[timer])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup_steps", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="torch.compile in the hardneg run")
    cli = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU; fix: run this benchmark on a GPU machine")
    from transformers import BertConfig

    peak = matmul_tflops()
    cfg = BertConfig()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_model_folder(tmp / "model", cfg.vocab_size)
        data = synthetic_triplets(cli.steps * cli.batch_size, cfg.vocab_size)
        (tmp / "dataset" / "bench_hn").mkdir(parents=True)
        data.to_parquet(str(tmp / "dataset" / "bench_hn" / "train-00000-of-00001.parquet"))
        (tmp / "dataset" / "README.md").write_text(
            "---\nconfigs:\n- config_name: bench_hn\n  data_files:\n  - split: train\n    path: bench_hn/train-*.parquet\n---\n"
        )
        per_sample = flops_per_sample(data, cli.max_seq_length, cfg)
        results = {}
        for name, run in (
            ("plain", lambda t: plain(tmp / "model" / "st", data, tmp / "plain", cli, t)),
            ("hardneg", lambda t: ours(tmp / "model" / "st", tmp / "dataset", tmp / "ours", cli, t)),
        ):
            timer = StepTimer(cli.warmup_steps)
            run(timer)
            sps = timer.samples_per_second(cli.batch_size)
            results[name] = {
                "samples_per_second": sps,
                "pct_of_matmul": 100 * sps * per_sample / (peak * 1e12),
            }
            torch.cuda.empty_cache()
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(0),
                "bf16_matmul_tflops": peak,
                "model_gflops_per_sample": per_sample / 1e9,
                **results,
            },
            indent=2,
        )
    )
    for name, r in results.items():
        print(
            f"{name:8s} {r['samples_per_second']:8.1f} samples/s  {r['pct_of_matmul']:5.1f}% of the measured bf16 matmul rate"
        )
    ratio = results["hardneg"]["samples_per_second"] / results["plain"]["samples_per_second"]
    print(f"hardneg train vs plain sentence-transformers samples/s (GPU): {ratio:.2f}x")


if __name__ == "__main__":
    main()
