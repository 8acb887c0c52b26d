"""Training throughput: hardneg's training path vs a plain sentence-transformers trainer, one run.

    .venv/bin/python benchmarks/training.py [--triplets 64] [--batch_size 8] [--max_seq_length 384] [--rounds 1]

Same data (real Cranfield triplets written as a dataset folder in Hub layout), same model
(embedded all-MiniLM-L6-v2), same loss (MNRL with the hard negative), hyperparameters and seed:

- baseline: ``SentenceTransformerTrainer`` with ``BatchSamplers.NO_DUPLICATES``, data from ``load_dataset``;
- ours: ``hardneg.train.train`` with its default length-grouped no-duplicates sampler.

Check first, on a small slice: ours with the baseline's sampler must end with *identical* weights
(our path adds nothing that changes training). Then timed rounds alternate baseline and ours (the
machine may be shared; alternating spreads outside load over both) and the best of each is compared;
ours sees batches in another order, so its weights differ, but its loss must be finite and close.
Throughput is the trainer's own ``train_samples_per_second`` (same definition for both; model loading
excluded, the one end-of-training checkpoint included in both). The last line is the headline ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasets import Dataset, load_dataset  # noqa: E402

from hardneg.assets import (  # noqa: E402
    EMBEDDED_DATASET,
    resolve_dataset,
    resolve_embedder,  # noqa: E402
)
from hardneg.corpus import load_beir_folder, passage_text  # noqa: E402
from hardneg.samplers import LengthGroupedNoDuplicatesBatchSampler  # noqa: E402
from hardneg.train import (  # noqa: E402
    SUMMARY_FILE,
    TrainConfig,
    load_model,
    train,
    weights_fingerprint,
)


def cranfield_triplets(n: int) -> Dataset:
    """Up to ``n`` triplets (query, a judged-relevant passage, a passage judged for another query),
    every text used once, so both samplers keep every row."""
    beir = load_beir_folder(resolve_dataset(EMBEDDED_DATASET), "test")
    qids = [q for q in beir.queries if beir.qrels.get(q)]
    text = {d: passage_text(v["title"], v["text"]) for d, v in beir.corpus.items()}
    used: set[str] = set()
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for i, qid in enumerate(qids):
        pos = next((d for d in beir.qrels[qid] if text[d] not in used), None)
        neg = next(
            (
                d
                for o in qids[i + 1 :]
                for d in beir.qrels[o]
                if d not in beir.qrels[qid] and text[d] not in used and d != pos
            ),
            None,
        )
        if pos is None or neg is None or beir.queries[qid] in used or text[pos] == text[neg]:
            continue
        used.update((beir.queries[qid], text[pos], text[neg]))
        for column, value in zip(rows, (beir.queries[qid], text[pos], text[neg]), strict=True):
            rows[column].append(value)
        if len(rows["anchor"]) == n:
            break
    return Dataset.from_dict(rows)


def write_folder(ds: Dataset, folder: Path, config: str) -> None:
    (folder / config).mkdir(parents=True)
    ds.to_parquet(str(folder / config / "train-00000-of-00001.parquet"))
    (folder / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: train\n"
        f"    path: {config}/train-*.parquet\n---\n"
    )


def padded_tokens(data: Dataset, model_id: str, batch_size: int, max_seq_length: int) -> dict[str, int]:
    """Token slots one epoch computes (each batch padded to its longest text, per column) under each
    sampler, and the real tokens: a measure of the work saved that no other load on the machine affects."""
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_embedder(model_id).name_or_path)
    columns = ("anchor", "positive", "negative")
    lengths = {
        c: [min(len(ids), max_seq_length) for ids in tokenizer(list(data[c]))["input_ids"]] for c in columns
    }
    samplers = {
        "no_duplicates": NoDuplicatesBatchSampler(data, batch_size=batch_size, drop_last=False, seed=42),
        "length_grouped": LengthGroupedNoDuplicatesBatchSampler(
            data, batch_size=batch_size, drop_last=False, seed=42
        ),
    }
    slots = {
        name: sum(len(b) * max(lengths[c][i] for i in b) for b in sampler for c in columns)
        for name, sampler in samplers.items()
    }
    return {"real": sum(sum(v) for v in lengths.values()), **slots}


def plain_sentence_transformers(config: TrainConfig) -> dict:
    """The baseline: what a user writes from the sentence-transformers docs, same settings."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    data = load_dataset(
        config.dataset,
        config.dataset_config,
        split="train",
        download_mode="force_redownload",
        verification_mode="no_checks",
    )
    data = data.select_columns(["anchor", "positive", "negative"])
    if config.max_train_samples:
        data = data.select(range(min(config.max_train_samples, len(data))))
    model = load_model(config.model, max_seq_length=config.max_seq_length, seed=config.seed)
    args = SentenceTransformerTrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=config.per_device_train_batch_size,
        num_train_epochs=config.num_train_epochs,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        optim=config.optim,
        seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="steps",
        save_steps=config.save_steps,
        logging_steps=config.logging_steps,
        report_to="none",
        use_cpu=True,
        dataloader_pin_memory=False,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=MultipleNegativesRankingLoss(model)
    )
    metrics = trainer.train().metrics
    return {
        "samples_per_second": metrics["train_samples_per_second"],
        "loss": metrics["train_loss"],
        "fingerprint": weights_fingerprint(model),
        "steps": trainer.state.global_step,
    }


def ours(config: TrainConfig) -> dict:
    summary = json.loads((train(config) / SUMMARY_FILE).read_text())
    return {
        "samples_per_second": summary["train_samples_per_second"],
        "loss": summary["train_loss"],
        "fingerprint": summary["final_fingerprint"],
        "steps": summary["global_step"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triplets", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument(
        "--rounds", type=int, default=1, help="timed rounds (baseline, ours alternating); best of each"
    )
    parser.add_argument("--model", default="embedded:minilm")
    cli = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = cranfield_triplets(cli.triplets)
        write_folder(data, tmp / "dataset", "bench_hn")
        common = dict(
            dataset=str(tmp / "dataset"),
            dataset_config="bench_hn",
            model=cli.model,
            max_seq_length=cli.max_seq_length,
            per_device_train_batch_size=cli.batch_size,
            num_train_epochs=cli.epochs,
            learning_rate=5e-5,
            warmup_ratio=0.1,
            seed=42,
            save_steps=10_000,
            logging_steps=10_000,
        )
        print(
            f"{len(data)} triplets, batch {cli.batch_size}, max_seq_length {cli.max_seq_length}, {cli.model}"
        )

        # 1. outputs agree: with the same sampler our path must train exactly like the baseline
        #    (a small slice, so the check costs little)
        check = dict(common, max_train_samples=8, per_device_train_batch_size=4, max_seq_length=32)
        base_check = plain_sentence_transformers(TrainConfig(output_dir=str(tmp / "check_plain"), **check))
        same_check = ours(
            TrainConfig(output_dir=str(tmp / "check_ours"), batch_sampler="no_duplicates", **check)
        )
        if same_check["fingerprint"] != base_check["fingerprint"]:
            raise SystemExit("outputs disagree: same sampler, same settings, different final weights")
        print(
            "check: same sampler, same data -> identical final weights (fingerprint "
            f"{same_check['fingerprint'][:12]})"
        )

        # 2. timed rounds, alternating so that load from other processes hits both alike
        runs: dict[str, list[dict]] = {"plain": [], "hardneg": []}
        for r in range(cli.rounds):
            runs["plain"].append(
                plain_sentence_transformers(TrainConfig(output_dir=str(tmp / f"plain{r}"), **common))
            )
            runs["hardneg"].append(ours(TrainConfig(output_dir=str(tmp / f"ours{r}"), **common)))

    for name, results in runs.items():
        for run in results:
            print(
                f"{name:8s} {run['samples_per_second']:8.3f} samples/s  loss {run['loss']:.4f}  steps {run['steps']}"
            )
    base = max(runs["plain"], key=lambda run: run["samples_per_second"])
    best = max(runs["hardneg"], key=lambda run: run["samples_per_second"])
    # different batch order -> different weights; the loss must still be finite and close
    if not math.isfinite(best["loss"]) or abs(best["loss"] - base["loss"]) > 0.5 * base["loss"] + 0.1:
        raise SystemExit(f"length-grouped training loss {best['loss']:.4f} is far from {base['loss']:.4f}")
    print(f"check: length-grouped loss {best['loss']:.4f} vs baseline {base['loss']:.4f} (within tolerance)")
    pad = padded_tokens(data, cli.model, cli.batch_size, cli.max_seq_length)
    print(
        f"token slots per epoch (padding included): no_duplicates {pad['no_duplicates']}, length-grouped "
        f"{pad['length_grouped']} ({pad['length_grouped'] / pad['no_duplicates']:.2f}x); real tokens {pad['real']}"
    )
    ratio = best["samples_per_second"] / base["samples_per_second"]
    print(f"hardneg train (length-grouped) vs plain SentenceTransformerTrainer samples/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
