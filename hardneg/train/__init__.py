"""Fine-tune a retriever on one config of a published hard-negative dataset.

Files, one job each: ``config`` (``TrainConfig``: sentence-transformers' training arguments + hardneg's
fields), ``data`` (triplets), ``model`` (base model, loss, fingerprints), ``callbacks`` (what a run
records), ``record`` (the reuse key and its checks), ``save`` (model folder, card, summary, release) and
``loop`` (``train``, ``train_seeds``, ``training_arguments``).

``train(config)`` is the whole stage: load (anchor, positive, negative) triplets from a Hub id or a
local folder in Hub layout, load the base model, check everything *before* training starts, then run
sentence-transformers' ``SentenceTransformerTrainer`` (single process, DDP, DeepSpeed or FSDP, as
``accelerate launch`` sets up) and save a sentence-transformers folder with a hardneg model card.

Pieces, each usable on its own:

- ``load_triplets`` (``data``): the three training columns of one config, with one-line errors.
- ``load_model`` (``model``): base model + prompts (E5 needs ``query: `` / ``passage: ``) + max sequence length.
- ``build_loss`` (``model``): MultipleNegativesRankingLoss (default), CachedMultipleNegativesRankingLoss (GradCache)
  or GISTEmbedLoss; in-batch negatives gathered across processes in multi-process runs.
- ``hardneg.samplers.LengthGroupedNoDuplicatesBatchSampler``: no duplicate text inside a batch (in-batch
  negatives stay true negatives), batches made of similar-length rows so less compute is spent on padding.
- resume: a rerun of the same command continues from the last complete checkpoint in
  ``<output_dir>/checkpoints``; ``training_summary.json`` then covers the whole run (every segment's
  steps, loss and time), carried across segments in the checkpoint's ``trainer_state.json``.
- seeds: ``train_seeds`` trains once per seed in ``seeds`` into ``<output_dir>/seed<S>/`` with the same
  budget in optimizer steps (``max_steps``, required then, so methods whose configs differ in size are
  compared at equal compute); a rerun skips finished seeds and resumes an interrupted one.
- reuse is keyed on what was trained, never on the folder name: ``training_summary.json`` records
  ``trained_on`` (``training_record``: dataset, config, split, revision, the commit and a fingerprint of the
  rows loaded, every option that changes the model, the seed); a finished seed is skipped only when that
  record equals the one of the command, and otherwise refused with one line that names what differs.
- what you can follow: ``report_to`` (tensorboard when installed, trackio, wandb, none) and ``run_name``
  as in transformers; the final folder keeps ``trainer_state.json`` (log history) after the checkpoints
  are removed, and sentence-transformers' own model card with hardneg's section added.
"""

from __future__ import annotations

from hardneg.train.config import (
    LOSS_CLASS_NAMES,
    REPORT_TO,
    LossName,
    TrainConfig,
    for_seed,
    resolve_report_to,
    seed_dir,
)
from hardneg.train.data import (
    COLUMN_ALIASES,
    check_dataset_ref,
    data_fingerprint,
    load_triplets,
    map_columns,
    parse_column_map,
    split_eval,
)
from hardneg.train.loop import LOGS_DIR, RANKS_DIR, run_name, train, train_seeds, training_arguments
from hardneg.train.model import (
    build_loss,
    describe_hardware,
    freeze_unused_parameters,
    load_model,
    weights_fingerprint,
)
from hardneg.train.record import (
    CHECKPOINTS_DIR,
    SUMMARY_FILE,
    TRAINED_ON_FILE,
    check_checkpoints,
    check_finished,
    last_checkpoint,
    training_record,
)
from hardneg.train.save import push_model

__all__ = [
    "CHECKPOINTS_DIR",
    "COLUMN_ALIASES",
    "LOGS_DIR",
    "LOSS_CLASS_NAMES",
    "RANKS_DIR",
    "REPORT_TO",
    "SUMMARY_FILE",
    "TRAINED_ON_FILE",
    "LossName",
    "TrainConfig",
    "build_loss",
    "check_checkpoints",
    "check_dataset_ref",
    "check_finished",
    "data_fingerprint",
    "describe_hardware",
    "for_seed",
    "freeze_unused_parameters",
    "last_checkpoint",
    "load_model",
    "load_triplets",
    "map_columns",
    "parse_column_map",
    "push_model",
    "resolve_report_to",
    "run_name",
    "seed_dir",
    "split_eval",
    "train",
    "train_seeds",
    "training_arguments",
    "training_record",
    "weights_fingerprint",
]
