"""The training stage: ``train`` (one run) and ``train_seeds`` (one run per seed, same budget), on
sentence-transformers' ``SentenceTransformerTrainer`` (single process, DDP, DeepSpeed or FSDP, as
``accelerate launch`` sets up); ``training_arguments`` gives the trainer its arguments from a ``TrainConfig``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets import Dataset
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.evaluation import TripletEvaluator
from transformers import TrainerCallback

from hardneg.files import recover_folder
from hardneg.options import ConfigError
from hardneg.revisions import loaded_commit, model_commit
from hardneg.samplers import batch_sampler
from hardneg.train.callbacks import RankRecordCallback, RecordingCollator, RunTotals
from hardneg.train.config import TrainConfig, for_seed, seed_dir
from hardneg.train.data import data_fingerprint, load_config_triplets, negatives_or_next_positive, split_eval
from hardneg.train.model import build_loss, freeze_unused_parameters, load_model, weights_fingerprint
from hardneg.train.record import (
    CHECKPOINTS_DIR,
    check_checkpoints,
    check_finished,
    last_checkpoint,
    training_record,
    write_trained_on,
)
from hardneg.train.save import RunOutcome, push_model, save_model

logger = logging.getLogger(__name__)

LOGS_DIR = "logs"
RANKS_DIR = "ranks"


def training_arguments(config: TrainConfig, *, has_eval: bool) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments: every sentence-transformers field of ``config`` as given, except what hardneg
    decides itself: checkpoints in ``<output_dir>/checkpoints``, the run name, the prompts (from
    query_prompt / passage_prompt), the batch sampler object, the warmup (``warmup_ratio`` as a fractional
    ``warmup_steps``), evaluation only with a held-out set (batch: the training batch unless set), and no Hub
    push by the trainer (``push_to_hub`` publishes the final folder as a tagged release)."""
    values = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(SentenceTransformerTrainingArguments)
        if f.init
    }
    prompts = {
        "anchor": config.query_prompt,
        "positive": config.passage_prompt,
        "negative": config.passage_prompt,
    }
    prompts = {k: v for k, v in prompts.items() if v}
    evaluating = has_eval and config.eval_steps
    values.update(
        output_dir=str(Path(config.output_dir) / CHECKPOINTS_DIR),
        run_name=run_name(config),
        prompts=prompts or None,
        batch_sampler=batch_sampler(config.batch_sampler, config.length_group_size),
        # transformers 5: a float < 1 is a ratio; warmup_steps, when set, wins (as in sentence-transformers)
        warmup_steps=config.warmup_steps or (config.warmup_ratio or 0.0),
        warmup_ratio=None,
        eval_strategy="steps" if evaluating else config.eval_strategy if has_eval else "no",
        eval_steps=config.eval_steps if evaluating else None,
        per_device_eval_batch_size=config.per_device_eval_batch_size or config.per_device_train_batch_size,
        push_to_hub=False,
        hub_model_id=None,
        hub_private_repo=None,
    )
    return SentenceTransformerTrainingArguments(**values)


def run_name(config: TrainConfig) -> str:
    """The trackers' run name: ``<dataset_config>-seed<S>`` by default. A user-set name gets ``-seed<S>``
    when the model goes to a seed folder (``train_seeds``), so the seeds of one run do not share a name."""
    if not config.run_name:
        return f"{config.dataset_config}-seed{config.seed}"
    if Path(config.output_dir).name == seed_dir("", config.seed).name:
        return f"{config.run_name}-seed{config.seed}"
    return config.run_name


def _check_batch(n_rows: int, batch_size: int, world_size: int) -> None:
    if n_rows < batch_size * world_size:
        raise ConfigError(
            f"batch of {batch_size} x {world_size} process(es) is larger than the {n_rows} training triplets; "
            "fix: lower --per_device_train_batch_size or train on more data"
        )


def train_seeds(config: TrainConfig, *, callbacks: list[TrainerCallback] | None = None) -> list[Path]:
    """Train once per seed of ``config.seeds`` into ``seed_dir(output_dir, seed)`` (or once, as ``train``,
    when ``seeds`` is empty). A seed whose folder already holds a model trained on the same data with the same
    options (``check_finished``) is skipped; an interrupted one resumes from its checkpoints. Returns the
    model folders."""
    if not config.seeds:
        return [train(config, callbacks=callbacks)]
    args = training_arguments(config, has_eval=False)  # sets up the processes as train() does
    data = _load_data(config, args)
    folders = []
    fingerprint = data_fingerprint(data)  # the same rows for every seed: scanned once
    for seed in config.seeds:
        one = for_seed(config, seed)
        folder = Path(one.output_dir)
        if not check_finished(folder, training_record(one, data, fingerprint)):
            train(one, callbacks=callbacks, data=data, fingerprint=fingerprint)
        folders.append(folder)
    return folders


def _load_data(config: TrainConfig, args) -> Dataset:
    with args.main_process_first(local=True, desc="load the dataset"):
        return load_config_triplets(config, refresh=args.local_process_index == 0)


def train(
    config: TrainConfig,
    *,
    callbacks: list[TrainerCallback] | None = None,
    data: Dataset | None = None,
    fingerprint: str | None = None,
) -> Path:
    """Train on ``config.dataset`` / ``config.dataset_config`` and save the model to ``config.output_dir``.

    Everything that can be wrong with the input is checked before the first step. A rerun of the same
    command resumes from the last complete checkpoint (``config.resume``). Returns the model folder,
    which holds the sentence-transformers model, ``README.md`` (hardneg model card), ``card_data.json``,
    ``training_summary.json`` and ``ranks/rank<N>.json``. ``callbacks`` are extra transformers
    ``TrainerCallback`` objects (timers, loggers); ``data``: the triplets, already loaded by ``train_seeds``
    (with their ``fingerprint``, ``data_fingerprint(data)``).
    """
    output_dir = Path(config.output_dir)
    recover_folder(output_dir)  # a save killed mid-swap: put the previous model back before anything reads it
    args = training_arguments(config, has_eval=config.eval_size > 0)
    if data is None:
        data = _load_data(config, args)
    record = training_record(config, data, fingerprint)
    train_ds, eval_ds = _training_rows(config, data, args.world_size)
    model = _base_model(config, args)
    trainer, evaluator = _trainer(config, args, model, train_ds, eval_ds)
    for callback in callbacks or []:
        trainer.add_callback(callback)
    resume_from = _resume_point(config, trainer, args, record)
    totals = RunTotals.from_checkpoint(resume_from)
    totals.trainer = trainer
    trainer.add_callback(totals)
    start = time.perf_counter()
    with _tensorboard_dir(args, output_dir / LOGS_DIR / args.run_name):
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - start
    metrics = _heldout_metrics(config, evaluator, model)
    release = None
    if trainer.is_world_process_zero():
        outcome = RunOutcome(
            run=totals.finish(result.metrics, train_seconds),
            train_samples=len(train_ds),
            metrics=metrics,
            world_size=args.world_size,
            dataset_commit=loaded_commit(data),
            base_model_commit=model_commit(model),
            trained_on=record,
        )
        release = save_model(trainer, config, output_dir, outcome)
    trainer.accelerator.wait_for_everyone()
    if config.push_to_hub and release is not None:  # the main process, once every rank has finished
        card_data, card = release
        push_model(
            output_dir,
            repo_id=config.hub_model_id,
            version=config.hub_model_version,
            private=config.hub_private_repo,
            card_data=card_data,
            rendered_card=card,
        )
    return output_dir


def _training_rows(config: TrainConfig, data: Dataset, world_size: int) -> tuple[Dataset, Dataset | None]:
    """The training rows (after the seeded eval hold-out and ``max_train_samples``) and the held-out rows."""
    train_ds, eval_ds = split_eval(data, eval_size=config.eval_size, seed=config.seed)
    if config.max_train_samples:
        train_ds = train_ds.select(range(min(config.max_train_samples, len(train_ds))))
    _check_batch(len(train_ds), config.per_device_train_batch_size, world_size)
    return train_ds, eval_ds


def _base_model(config: TrainConfig, args):
    """The base model with its prompts, parameters no gradient reaches frozen."""
    model = load_model(
        config.model,
        revision=config.model_revision,
        max_seq_length=config.max_seq_length,
        prompts=config.model_prompts,
        seed=config.seed,
    )
    frozen = freeze_unused_parameters(model)
    if frozen and args.process_index == 0:
        logger.info("frozen (no gradient reaches them): %s", frozen)
    return model


def _trainer(config: TrainConfig, args, model, train_ds: Dataset, eval_ds: Dataset | None):
    """sentence-transformers' trainer with hardneg's loss, held-out evaluator and per-rank record."""
    guide = None
    if config.loss == "gist":
        guide = load_model(
            config.guide_model, max_seq_length=config.max_seq_length, prompts=config.model_prompts
        )
    loss = build_loss(
        model,
        loss=config.loss,
        scale=config.scale,
        mini_batch_size=config.mini_batch_size,
        guide=guide,
        gather_across_devices=config.gather_across_devices and args.world_size > 1,
    )
    evaluator = None
    if eval_ds is not None:
        # TripletEvaluator embeds with encode_query / encode_document, which add the model's stored prompts
        evaluator = TripletEvaluator(
            anchors=list(eval_ds["anchor"]),
            positives=list(eval_ds["positive"]),
            # pairs: the next row's positive stands in for the missing hard negative
            negatives=list(negatives_or_next_positive(eval_ds)),
            name="heldout",
        )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, loss=loss, evaluator=evaluator
    )
    collator = RecordingCollator(trainer.data_collator)
    trainer.data_collator = collator
    ranks = Path(config.output_dir) / RANKS_DIR
    trainer.add_callback(RankRecordCallback(ranks, collator, weights_fingerprint(model)))
    return trainer, evaluator


def _resume_point(config: TrainConfig, trainer, args, record: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from (``config.resume``), after checking it belongs to this training; the
    checkpoints folder is marked with ``record`` (main process)."""
    if config.resume:  # a checkpoint of other data or options is refused, never resumed under this name
        check_checkpoints(Path(args.output_dir), record)
    if trainer.is_world_process_zero():
        write_trained_on(Path(args.output_dir), record)
    resume_from = last_checkpoint(args.output_dir) if config.resume else None
    if resume_from is not None and trainer.is_world_process_zero():
        state = json.loads((resume_from / "trainer_state.json").read_text())
        logger.warning("resuming from checkpoint %s (global step %s)", resume_from, state.get("global_step"))
        print(f"resuming from checkpoint {resume_from} (global step {state.get('global_step')})", flush=True)
    return resume_from


def _heldout_metrics(config: TrainConfig, evaluator, model) -> list[dict[str, Any]]:
    """The held-out evaluation of the final model (empty without ``eval_size``)."""
    if evaluator is None:
        return []
    scores = evaluator(model)
    return [
        {
            "model": Path(config.output_dir).name,
            "dataset": f"{config.dataset_config} held-out",
            "split": "eval",
            **{k: float(v) for k, v in scores.items()},
        }
    ]


@contextlib.contextmanager
def _tensorboard_dir(args, folder: Path) -> Iterator[None]:
    """TensorBoard logs go to ``<output_dir>/logs/<run_name>`` (transformers 5 reads TENSORBOARD_LOGGING_DIR;
    its default sits inside the checkpoints, which are removed). A directory the user set is kept."""
    if "tensorboard" not in args.report_to or os.environ.get("TENSORBOARD_LOGGING_DIR"):
        yield
        return
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(folder)
    try:
        yield
    finally:
        os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
