"""The finished model folder: sentence-transformers' model and card with hardneg's block, the log history,
the whole-run summary (``SUMMARY_FILE``), swapped in whole; and the tagged release (``push_model``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardneg.cards import ModelCardData, render_model_card
from hardneg.curves import TRAINER_STATE_FILE
from hardneg.errors import first_line
from hardneg.files import replace_folder
from hardneg.mteb_results import training_provenance, write_trained_model_meta
from hardneg.publish import publish_model
from hardneg.train.config import LOSS_CLASS_NAMES, TrainConfig, card_hyperparameters
from hardneg.train.model import describe_hardware, weights_fingerprint
from hardneg.train.record import CHECKPOINTS_DIR, SUMMARY_FILE


@dataclass
class RunOutcome:
    """What one training run produced, beside the trainer's own state (what the card and summary report)."""

    run: dict[str, Any]  # RunTotals.finish: the whole run over resumed segments
    train_samples: int
    metrics: list[dict[str, Any]]
    world_size: int
    dataset_commit: str | None = None
    base_model_commit: str | None = None
    trained_on: dict[str, Any] | None = None  # training_record: the reuse key (check_finished)


def save_model(
    trainer, config: TrainConfig, output_dir: Path, outcome: RunOutcome
) -> tuple[ModelCardData, str]:
    """``save_into`` a folder beside ``output_dir``, swapped in when it is complete
    (``hardneg.files.replace_folder``): a failure, a full disk included, leaves the previous model folder; its
    checkpoints and logs are carried over (checkpoints only with ``keep_checkpoints``)."""
    dropped = set() if config.keep_checkpoints else {CHECKPOINTS_DIR}
    with replace_folder(output_dir, rewritten=dropped, what="the model folder") as staging:
        return save_into(trainer, config, staging, outcome)


def save_into(
    trainer, config: TrainConfig, output_dir: Path, outcome: RunOutcome
) -> tuple[ModelCardData, str]:
    """Main process: the model with sentence-transformers' card + hardneg's block, the log history
    (``trainer_state.json``) and a whole-run summary. Returns the card data and the rendered card (what
    ``push_to_hub`` uploads once every rank has finished)."""
    base = config.model.split(":")[-1].split("/")[-1]
    trainer.model.model_card_data.model_name = (
        f"{base} fine-tuned on {config.dataset_config} (hardneg, seed {config.seed})"
    )
    trainer.model.save(str(output_dir))  # writes sentence-transformers' own README.md (logs, stats, citation)
    trainer.state.save_to_json(str(output_dir / TRAINER_STATE_FILE))
    card = card_data(config, outcome)
    write_trained_model_meta(output_dir, trainer.model, card)  # MTEB's ModelMeta: the training datasets
    card.save(output_dir / "card_data.json")
    readme = output_dir / "README.md"
    base_card = readme.read_text(encoding="utf-8") if readme.is_file() else None
    rendered = render_model_card(card, base_card=base_card)
    readme.write_text(rendered, encoding="utf-8")
    summary = run_summary(trainer, config, outcome, card.hardware)
    (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return card, rendered


def card_data(config: TrainConfig, outcome: RunOutcome) -> ModelCardData:
    """hardneg's model card data for one finished run."""
    run = outcome.run
    train_seconds = (
        run["train_seconds"] if run["train_seconds"] is not None else run["last_segment"]["train_seconds"]
    )
    hyperparameters = card_hyperparameters(config)
    hyperparameters["world_size"] = outcome.world_size
    card = ModelCardData(
        base_model=config.model,
        dataset_id=config.dataset,
        dataset_config=config.dataset_config,
        dataset_revision=config.dataset_revision,
        dataset_commit=outcome.dataset_commit,
        base_model_commit=outcome.base_model_commit,
        loss=LOSS_CLASS_NAMES[config.loss],
        hyperparameters=hyperparameters,
        hardware=describe_hardware(outcome.world_size),
        prompts={k: v for k, v in config.model_prompts.items() if v},
        train_samples=outcome.train_samples,
        train_seconds=round(train_seconds, 3),
        metrics=outcome.metrics,
        repo_id=config.hub_model_id,
    )
    card.training_corpora, card.not_zero_shot_on = training_provenance(
        config.dataset, config.dataset_revision
    )
    return card


def run_summary(trainer, config: TrainConfig, outcome: RunOutcome, hardware: str) -> dict[str, Any]:
    """``training_summary.json``: steps, budget, loss and time over the whole run, fingerprints, the record."""
    run = outcome.run
    return {
        "global_step": trainer.state.global_step,
        # the budget in effect: max_steps when set, else the steps the epochs came to
        "max_steps": config.max_steps if config.max_steps > 0 else trainer.state.max_steps,
        "seed": config.seed,
        "epochs_done": trainer.state.epoch,
        "train_samples": outcome.train_samples,
        # the whole run, over every resumed segment (None when an old checkpoint did not record its time)
        "train_seconds": run["train_seconds"],
        "train_loss": run["train_loss"],
        "segments": run["segments"],
        "last_segment": run["last_segment"],
        "world_size": outcome.world_size,
        "hardware": hardware,
        "metrics": outcome.metrics,
        "final_fingerprint": weights_fingerprint(trainer.model),
        "base_model_commit": outcome.base_model_commit,
        "dataset_commit": outcome.dataset_commit,
        "trained_on": outcome.trained_on,  # the reuse key (check_finished)
    }


def push_model(
    folder: str | Path,
    *,
    repo_id: str,
    version: str,
    private: bool = True,
    card_data: ModelCardData | None = None,
    rendered_card: str | None = None,
) -> str:
    """Publish a trained model folder as release ``v<version>`` through the same tagged publish function
    as ``make publish-model`` (``hardneg.publish.publish_model``: one commit, then the tag; an existing tag is
    refused); ``card_data`` + ``rendered_card``: the card training just wrote, uploaded without rendering it
    again. The token comes from ``HF_TOKEN`` / ``hf auth login`` and is never printed. Returns the commit URL."""
    try:
        result = publish_model(
            folder,
            repo_id,
            version,
            card_data=card_data,
            rendered_card=rendered_card,
            private=private,
            confirm=True,
        )
    except Exception as err:
        raise RuntimeError(
            f"cannot push '{folder}' to '{repo_id}': {first_line(err)}; fix: check the repo id, version, network "
            "and that HF_TOKEN has write access"
        ) from None
    return str(result.commit_url)
