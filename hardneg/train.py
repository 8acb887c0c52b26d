"""Fine-tune a retriever on one config of a published hard-negative dataset.

``train(config)`` is the whole stage: load (anchor, positive, negative) triplets from a Hub id or a
local folder in Hub layout, load the base model, check everything *before* training starts, then run
sentence-transformers' ``SentenceTransformerTrainer`` (single process, DDP, DeepSpeed or FSDP, as
``accelerate launch`` sets up) and save a sentence-transformers folder with a hardneg model card.

Pieces, each usable on its own:

- ``load_triplets``: the three training columns of one config, with one-line errors.
- ``load_model``: base model + prompts (E5 needs ``query: `` / ``passage: ``) + max sequence length.
- ``build_loss``: MultipleNegativesRankingLoss (default), CachedMultipleNegativesRankingLoss (GradCache)
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

import contextlib
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from datasets import Dataset, load_dataset
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from hardneg.assets import best_device, resolve_embedder
from hardneg.cards import ModelCardData, render_model_card
from hardneg.config import ConfigError, check_replaceable
from hardneg.curves import TRAINER_STATE_FILE
from hardneg.errors import first_line
from hardneg.files import recover_folder, replace_folder, write_atomic
from hardneg.hub import publish_model
from hardneg.id_layout import is_id_config, resolve_id_config
from hardneg.methods import TRAINING_COLUMNS
from hardneg.mteb_results import training_provenance, write_trained_model_meta
from hardneg.options import check_fields
from hardneg.revisions import check_loaded, check_model_loaded, loaded_commit, model_commit, resolve_revision
from hardneg.samplers import SamplerName, batch_sampler

logger = logging.getLogger(__name__)

TRIPLET_COLUMNS = TRAINING_COLUMNS
# Column names other published pair/triplet sets use for each role, recognised when no mapping is given.
COLUMN_ALIASES = {
    "anchor": ("anchor", "query", "question", "sentence1", "text1"),
    "positive": ("positive", "pos", "document", "passage", "answer", "sentence2", "text2"),
    "negative": ("negative", "neg", "hard_negative", "negative_passage"),
}
CHECKPOINTS_DIR = "checkpoints"
SUMMARY_FILE = "training_summary.json"
TRAINED_ON_FILE = "trained_on.json"  # in <output_dir>/checkpoints: what its checkpoints were trained on
LOGS_DIR = "logs"
REPORT_TO = ("tensorboard", "trackio", "wandb", "none")
RANKS_DIR = "ranks"
LossName = Literal["mnrl", "cached_mnrl", "gist"]
LOSS_CLASS_NAMES = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cached_mnrl": "CachedMultipleNegativesRankingLoss",
    "gist": "GISTEmbedLoss",
}


@dataclass
class TrainConfig:
    """One training run: which data, which base model, how long, and where the model goes."""

    OUTPUT_KIND: ClassVar[str] = "model"  # hardneg.config.check_outputs
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("dataset", "model", "guide_model")

    dataset: str = field(
        default="runs/demo/dataset",
        metadata={"help": "Training data: Hub dataset id ORG/NAME or a local folder in Hub layout."},
    )
    dataset_config: str = field(
        default="llm_hn",
        metadata={"help": "Config (method) to train on: llm_hn, llm_pos_hn, bm25_hn, ce_hn ..."},
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub revision (tag, branch or commit) of the dataset; Hub ids only."}
    )
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    columns: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Datasets in other layouts: COLUMN=ROLE pairs, e.g. --columns query=anchor pos=positive "
            "neg=negative (a list in a recipe; a dict through the Python API); roles anchor, positive and optional negative (pairs). Default: "
            "anchor/positive/negative or a recognised alias (query, pos, neg ...)."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N triplets (after the eval hold-out); None: all."}
    )
    model: str = field(
        default="embedded:minilm",
        metadata={"help": "Base model: Hub id (intfloat/e5-base-v2 ...), local folder or embedded:minilm."},
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the base model."})
    output_dir: str = field(
        default="runs/demo/models/llm_hn",
        metadata={"help": "Where the trained model goes; checkpoints go to <output_dir>/checkpoints."},
    )
    query_prompt: str = field(
        default="",
        metadata={"help": "Text put before every query (anchor), e.g. 'query: ' for E5; '' for none."},
    )
    passage_prompt: str = field(
        default="",
        metadata={"help": "Text put before every passage (positive, negative), e.g. 'passage: ' for E5."},
    )
    max_seq_length: int = field(
        default=256, metadata={"bounds": (1, None), "help": "Longer inputs are truncated (tokens)."}
    )
    loss: LossName = field(
        default="mnrl",
        metadata={
            "help": "mnrl: MultipleNegativesRankingLoss with the hard negative; cached_mnrl: its GradCache "
            "version (large effective batches in little memory); gist: GISTEmbedLoss with guide_model."
        },
    )
    mini_batch_size: int = field(
        default=32, metadata={"bounds": (1, None), "help": "cached_mnrl: texts encoded per forward pass."}
    )
    guide_model: str | None = field(
        default=None, metadata={"help": "gist: the guide model (Hub id, folder or embedded:minilm)."}
    )
    scale: float = field(
        default=20.0,
        metadata={"bounds": (0, None), "help": "mnrl/cached_mnrl: similarity scale (1/temperature)."},
    )
    gather_across_devices: bool = field(
        default=True,
        metadata={
            "help": "Multi-process runs: in-batch negatives from every process, not just the local batch."
        },
    )
    batch_sampler: SamplerName = field(
        default="length_grouped_no_duplicates",
        metadata={
            "help": "length_grouped_no_duplicates: no repeated text in a batch + similar lengths (less padding); "
            "no_duplicates: sentence-transformers' NoDuplicatesBatchSampler; batch_sampler: plain shuffling."
        },
    )
    length_group_size: int = field(
        default=16,
        metadata={
            "bounds": (1, None),
            "help": "length_grouped_no_duplicates: rows are sorted by length within groups of this many batches.",
        },
    )
    per_device_train_batch_size: int = field(
        default=32, metadata={"bounds": (1, None), "help": "Triplets per batch per process."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"bounds": (1, None), "help": "Batches per optimizer step."}
    )
    num_train_epochs: float = field(
        default=1.0, metadata={"bounds": (0, None), "help": "Passes over the data (ignored if max_steps>0)."}
    )
    max_steps: int = field(
        default=-1,
        metadata={
            "help": "Stop after this many optimizer steps (>= 1); -1: use epochs.",
            "bounds": (-1, None),
        },
    )
    learning_rate: float = field(
        default=2e-5, metadata={"bounds": (0, None), "help": "Peak learning rate (AdamW, linear decay)."}
    )
    warmup_ratio: float = field(
        default=0.1, metadata={"bounds": (0, 1), "help": "Fraction of the steps with linear warmup."}
    )
    weight_decay: float = field(default=0.01, metadata={"bounds": (0, None), "help": "AdamW weight decay."})
    optim: str = field(
        default="adamw_torch", metadata={"help": "transformers optimizer name, e.g. adamw_torch_fused."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for model init, shuffling and dropout."})
    seeds: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Training seeds: one run per seed into <output_dir>/seed<S>/, each max_steps optimizer "
            "steps (required); a rerun skips finished seeds. Empty: one run with `seed` into output_dir."
        },
    )
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (Ampere+ GPUs)."})
    fp16: bool = field(default=False, metadata={"help": "float16 mixed precision (older GPUs)."})
    tf32: bool | None = field(default=None, metadata={"help": "Allow TF32 matmuls on Ampere+ GPUs."})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model (GPU speed-up)."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Worker processes for batching."})
    save_steps: int = field(
        default=500,
        metadata={"bounds": (1, None), "help": "Write a checkpoint every N steps (and at the end)."},
    )
    save_total_limit: int | None = field(
        default=2, metadata={"bounds": (1, None), "help": "Keep at most this many checkpoints."}
    )
    keep_checkpoints: bool = field(
        default=False, metadata={"help": "Keep <output_dir>/checkpoints after the final model is saved."}
    )
    resume: bool = field(
        default=True,
        metadata={"help": "Continue from the last complete checkpoint in <output_dir>/checkpoints."},
    )
    logging_steps: int = field(
        default=10, metadata={"bounds": (1, None), "help": "Log the training loss every N steps."}
    )
    eval_size: int = field(
        default=0,
        metadata={
            "help": "Hold out N triplets for a small evaluation (loss + triplet accuracy) during training; 0: off."
        },
    )
    eval_steps: int | None = field(
        default=None, metadata={"bounds": (1, None), "help": "Evaluate every N steps; None: at the end only."}
    )
    report_to: str = field(
        default="auto",
        metadata={
            "help": "Where training logs go, as in transformers: tensorboard (<output_dir>/logs), trackio, wandb, "
            "none, or a comma-separated list; auto = tensorboard when installed, else none."
        },
    )
    run_name: str | None = field(
        default=None,
        metadata={
            "help": "Run name for the trackers (default: <dataset_config>-seed<seed>; a name you set gets "
            "-seed<S> appended for each seed of seeds)."
        },
    )
    push_to_hub: bool = field(
        default=False,
        metadata={
            "help": "Publish the final model folder as a tagged release (same path as make publish-model)."
        },
    )
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub id ORG/NAME for push_to_hub."})
    hub_model_version: str | None = field(
        default=None, metadata={"help": "Release version for push_to_hub, e.g. 1.0.0 (tagged v1.0.0)."}
    )
    hub_private: bool = field(default=True, metadata={"help": "Create the Hub repo as private."})

    def preflight(self) -> None:
        """Checks before any process starts work (``run_main``; ``make train`` runs them before accelerate)."""
        check_dataset_ref(self.dataset, self.dataset_revision)
        for folder in [seed_dir(self.output_dir, seed) for seed in self.seeds] or [self.output_dir]:
            check_replaceable(folder)  # the model folder is swapped in after training

    def __post_init__(self) -> None:
        if self.bf16 and self.fp16:
            raise ConfigError("bf16 and fp16 are both set; fix: choose one mixed-precision mode")
        parse_column_map(self.columns)  # a malformed --columns fails now, not after the dataset download
        if self.run_name and (Path(self.run_name).name != self.run_name or self.run_name in (".", "..")):
            raise ConfigError(
                f"run_name '{self.run_name}' must be a plain name (it names a logs folder); fix: drop '/' and '..'"
            )
        if self.loss == "gist" and not self.guide_model:
            raise ConfigError("loss=gist needs a guide model; fix: set --guide_model (e.g. embedded:minilm)")
        if self.loss not in LOSS_CLASS_NAMES:
            raise ConfigError(f"unknown loss '{self.loss}'; fix: use one of {sorted(LOSS_CLASS_NAMES)}")
        if self.max_steps == 0:
            raise ConfigError(
                "max_steps 0 would train nothing (transformers then trains by epochs); fix: set --max_steps to a "
                "number of optimizer steps >= 1, or -1 to train for num_train_epochs"
            )
        if self.num_train_epochs <= 0 and self.max_steps < 0:
            raise ConfigError(
                f"num_train_epochs {self.num_train_epochs} would train nothing; fix: set --num_train_epochs > 0 or "
                "--max_steps >= 1"
            )
        if self.seeds and self.max_steps <= 0:
            raise ConfigError(
                f"seeds {self.seeds} need a budget in optimizer steps; fix: set --max_steps (the same for "
                "every method) so configs of different sizes train for the same number of steps"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds {self.seeds} repeat a seed; fix: list each seed once")
        if self.push_to_hub and not self.hub_model_id:
            raise ConfigError(
                "push_to_hub is set but hub_model_id is empty; fix: set --hub_model_id ORG/NAME"
            )
        if self.push_to_hub and len(self.seeds) > 1:
            raise ConfigError(
                f"push_to_hub with seeds {self.seeds} would publish one version per seed; fix: train one seed with "
                "push_to_hub, or publish each seed folder with make publish-model"
            )
        if self.push_to_hub and not self.hub_model_version:
            raise ConfigError(
                "push_to_hub is set but hub_model_version is empty; fix: set --hub_model_version 1.0.0 "
                "(releases are tagged, as with make publish-model)"
            )
        self.report_to = ",".join(resolve_report_to(self.report_to))
        for name in (
            "per_device_train_batch_size",
            "max_seq_length",
            "save_steps",
            "gradient_accumulation_steps",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{name} must be >= 1 (got {getattr(self, name)}); fix: pass a positive number"
                )
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)

    @property
    def prompts(self) -> dict[str, str]:
        """The model's prompts as sentence-transformers stores them (``encode_query``/``encode_document``)."""
        return {"query": self.query_prompt, "document": self.passage_prompt}


def resolve_report_to(report_to: str | list[str]) -> list[str]:
    """transformers' ``report_to`` list: ``auto`` is tensorboard when installed, else nothing; a tracker that
    is not installed is an error that names the package (transformers would fail later, mid-setup)."""
    import importlib.util

    names = report_to if isinstance(report_to, list) else [n.strip() for n in str(report_to).split(",")]
    names = [n for n in names if n]
    if names in ([], ["none"]):
        return ["none"]
    if names == ["auto"]:
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else ["none"]
    unknown = [n for n in names if n not in REPORT_TO]
    if unknown:
        raise ConfigError(f"unknown report_to {unknown}; fix: use auto or any of {', '.join(REPORT_TO)}")
    missing = [n for n in names if n != "none" and importlib.util.find_spec(n) is None]
    if missing:
        raise ConfigError(f"report_to {missing} is not installed; fix: pip install {' '.join(missing)}")
    return [n for n in names if n != "none"] or ["none"]


# ---------------------------------------------------------------------------------------------------------
# data


def check_dataset_ref(dataset: str, revision: str | None) -> None:
    """The checks on ``--dataset`` that need no loading (run up front by ``TrainConfig.preflight`` too)."""
    local = Path(dataset)
    if local.exists():
        if not local.is_dir():
            raise ConfigError(
                f"dataset '{dataset}' is a file; fix: pass the dataset folder (with README.md) or a Hub id"
            )
        if revision:
            raise ConfigError(
                f"dataset_revision '{revision}' was given for the local folder '{dataset}'; "
                "fix: drop --dataset_revision, or pass the Hub id to train on a published revision"
            )
    elif dataset.startswith((".", "/", "~")) or dataset.count("/") > 1:
        raise FileNotFoundError(
            f"dataset folder '{dataset}' does not exist; fix: run `make build` or check the path"
        )


def load_triplets(
    dataset: str,
    *,
    config: str,
    revision: str | None = None,
    split: str = "train",
    refresh: bool = True,
    columns: list[str] | dict[str, str] | None = None,
) -> Dataset:
    """Load one config's split and keep only ``anchor``, ``positive``, ``negative`` (in that order; datasets in
    other layouts through ``columns``, see ``map_columns``).

    ``dataset`` is a Hub id or a local folder in Hub layout (README ``configs:`` + parquet files), as
    written by the build stage. Every failure (missing folder, unknown config, bad revision, no network,
    missing columns, empty or null texts) is one line that names the fix.

    ``refresh`` (local folders): rebuild datasets' Arrow cache from the parquet files. datasets keys that
    cache by the folder's *name* and config, so a rebuilt ``runs/demo/dataset`` (or any other folder
    called ``dataset``) would otherwise be read from a stale cache, or fail its split-size check. In multi-process runs only the first
    process of each machine refreshes; the others wait and read its fresh cache.
    """
    local = Path(dataset)
    check_dataset_ref(dataset, revision)
    pinned = None if local.exists() else resolve_revision(dataset, revision)  # a missing revision says so
    try:
        fresh = {}
        if refresh and local.exists():
            # rebuild the cache and do not check split sizes against the stale cached dataset_info
            fresh = {"download_mode": "force_redownload", "verification_mode": "no_checks"}
        ds = load_dataset(dataset, config, revision=revision, split=split, **fresh)
    except Exception as err:  # datasets raises many types; the user needs one line and a fix
        message = first_line(err)
        if "offline" in message.lower() or isinstance(err, ConnectionError):
            fix = "connect to the network (unset HF_HUB_OFFLINE) or pass a local dataset folder"
        elif "config" in message.lower() or "BuilderConfig" in message:
            fix = "pass one of the dataset's configs with --dataset_config"
        elif "revision" in message.lower():
            fix = "pass an existing tag, branch or commit with --dataset_revision"
        elif "split" in message.lower():
            fix = "pass an existing split with --dataset_split"
        else:
            fix = "check --dataset, --dataset_config and --dataset_revision"
        where = f"{dataset}" + (f"@{revision}" if revision else "")
        raise RuntimeError(
            f"cannot load dataset '{where}' config '{config}' split '{split}': {message}; fix: {fix}"
        ) from None
    check_loaded(ds, dataset, revision, pinned)  # never a cached copy of another revision
    if is_id_config(ds.column_names) and not columns:  # the id layout: texts from its queries and corpus
        ds = resolve_id_config(
            ds,
            lambda name: load_dataset(dataset, name, revision=revision, split="train", **fresh),
            f"dataset '{dataset}' config '{config}'",
        )
    ds = map_columns(ds, columns, f"dataset '{dataset}' config '{config}'")
    if len(ds) == 0:
        raise ConfigError(
            f"dataset '{dataset}' config '{config}' split '{split}' is empty; fix: rebuild the dataset"
        )
    for column in ds.column_names:
        values = ds[column]
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()), None)
        if bad is not None:
            raise ConfigError(
                f"dataset '{dataset}' config '{config}' row {bad} has an empty '{column}'; fix: rebuild or filter the dataset"
            )
    return ds


def parse_column_map(columns: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``["query=anchor", "pos=positive"]`` (command line) or ``{query: anchor, ...}`` (recipe) -> a dict from
    the dataset's column to its role (anchor, positive, negative)."""
    if not columns:
        return {}
    pairs = list(columns.items()) if isinstance(columns, dict) else [c.partition("=")[::2] for c in columns]
    mapping = {str(src).strip(): str(dst).strip() for src, dst in pairs}
    bad = [f"{s}={d}" for s, d in mapping.items() if not s or d not in TRIPLET_COLUMNS]
    if bad or len(set(mapping.values())) != len(mapping):
        raise ConfigError(
            f"column mapping {bad or sorted(mapping.items())} is not COLUMN=ROLE with distinct roles; fix: pass "
            "e.g. --columns query=anchor pos=positive neg=negative (roles: anchor, positive, negative)"
        )
    return mapping


def map_columns(ds: Dataset, columns: list[str] | dict[str, str] | None, where: str) -> Dataset:
    """Keep (anchor, positive[, negative]) from a dataset in any layout: an explicit ``COLUMN=ROLE`` mapping,
    else the columns named like a role (``COLUMN_ALIASES``: query/question -> anchor, pos -> positive ...).
    Pair datasets (no negative; explicit mapping only) are kept as (anchor, positive). A list-valued column (several positives or
    negatives per row) contributes its first element. A missing or ambiguous column is one error naming
    the columns found."""
    found = list(ds.column_names)
    mapping = parse_column_map(columns)
    if mapping:
        missing = [s for s in mapping if s not in found]
        if missing:
            raise ConfigError(
                f"{where} has no column(s) {missing} named in the column mapping (has {found}); fix: map "
                "the columns it has, e.g. --columns COLUMN=anchor COLUMN=positive [COLUMN=negative]"
            )
        chosen = {role: src for src, role in mapping.items()}
    else:
        chosen = {}
        for role, aliases in COLUMN_ALIASES.items():
            hits = [c for c in found if c.lower() in aliases]
            if len(hits) > 1:
                raise ConfigError(
                    f"{where}: columns {hits} could each be the {role} (has {found}); fix: choose with "
                    f"--columns {hits[0]}={role} (or `columns: [{hits[0]}={role}, ...]` in the recipe)"
                )
            if hits:
                chosen[role] = hits[0]
        if len(chosen) < len(
            TRIPLET_COLUMNS
        ):  # pairs only by an explicit mapping (no silent loss of negatives)
            raise ConfigError(
                f"{where} lacks column(s) {[c for c in TRIPLET_COLUMNS if c not in found]} (has {found}); fix: train "
                "on a triplet config (llm_hn, bm25_hn, ce_hn ...), not 'queries', or map its columns: --columns "
                "COLUMN=anchor COLUMN=positive [COLUMN=negative] (without a negative: pairs)"
            )
    if "anchor" not in chosen or "positive" not in chosen:
        raise ConfigError(
            f"column mapping {sorted(mapping.items())} names no anchor or no positive (has {found}); fix: map "
            "both, e.g. --columns question=anchor answer=positive"
        )
    roles = [r for r in TRIPLET_COLUMNS if r in chosen]
    ds = ds.select_columns([chosen[r] for r in roles])
    listed = [
        chosen[r] for r in roles if type(ds.features[chosen[r]]).__name__ in ("List", "Sequence", "list")
    ]
    if listed or any(chosen[r] != r for r in roles):
        ds = ds.map(
            lambda row: {r: row[chosen[r]][0] if chosen[r] in listed and row[chosen[r]] else row[chosen[r]] for r in roles},
            remove_columns=[chosen[r] for r in roles],
        )  # fmt: skip
    return ds.select_columns(roles)


def _negatives_or_next_positive(ds: Dataset) -> list[str]:
    if "negative" in ds.column_names:
        return list(ds["negative"])
    positives = list(ds["positive"])
    return positives[1:] + positives[:1]


def split_eval(ds: Dataset, *, eval_size: int, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out ``eval_size`` triplets (seeded) for the small evaluation during training."""
    if eval_size <= 0:
        return ds, None
    if eval_size >= len(ds):
        raise ConfigError(
            f"eval_size {eval_size} leaves no training data ({len(ds)} rows); fix: lower --eval_size"
        )
    parts = ds.train_test_split(test_size=eval_size, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


# ---------------------------------------------------------------------------------------------------------
# model and loss


def load_model(
    model_id: str,
    *,
    revision: str | None = None,
    max_seq_length: int = 256,
    prompts: dict[str, str] | None = None,
    seed: int = 42,
):
    """Load the base model (any Hub id, folder or ``embedded:minilm``) and set prompts + max length.

    A plain transformers checkpoint (``distilbert-base-uncased``) gets mean pooling, as
    sentence-transformers does. ``prompts`` (``{"query": ..., "document": ...}``) are stored in the saved
    model's ``config_sentence_transformers.json``, so ``encode_query``/``encode_document`` at
    evaluation use the same text as training.
    """
    from sentence_transformers import SentenceTransformer
    from transformers import set_seed

    ref = resolve_embedder(model_id)
    set_seed(seed)  # heads that a plain checkpoint lacks are initialised from the seed
    try:
        # A local folder must never become a Hub lookup (the model card guesses Hub ids from its path).
        local = Path(ref.name_or_path).is_dir()
        model = SentenceTransformer(ref.name_or_path, revision=revision, local_files_only=local)
    except Exception as err:  # OSError, HTTP errors, offline errors...
        message = first_line(err)
        raise RuntimeError(
            f"cannot load model '{model_id}': {message}; fix: check the model id / revision, your network "
            "(HF_HUB_OFFLINE) or use embedded:minilm"
        ) from None
    if not local:
        check_model_loaded(model, ref.name_or_path, revision)  # never a cached copy of another revision
    model.max_seq_length = max_seq_length
    model.prompts = {k: v for k, v in (prompts or {}).items() if v}
    model.default_prompt_name = None
    return model


def freeze_unused_parameters(model) -> list[str]:
    """Freeze parameters that never reach the embedding (e.g. BERT's pooler under mean pooling).

    One forward/backward pass on a probe text finds them (RNG state untouched). They would get no
    gradient anyway, so training is unchanged; but DDP with ``find_unused_parameters=False`` (the fast
    setting) fails on such parameters, and ``True`` costs a graph traversal every step.
    """
    with torch.random.fork_rng(devices=[]):
        features = {
            k: v.to(model.device) if isinstance(v, torch.Tensor) else v
            for k, v in model.preprocess(["probe"]).items()
        }
        model(features)["sentence_embedding"].float().sum().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, param in model.named_parameters():
        param.grad = None
        if name in unused:
            param.requires_grad_(False)
    return unused


def build_loss(
    model,
    *,
    loss: LossName = "mnrl",
    scale: float = 20.0,
    mini_batch_size: int = 32,
    guide=None,
    gather_across_devices: bool = True,
):
    """The contrastive loss over (anchor, positive, negative): each anchor against its positive, its
    hard negative and every other row's positive and negative in the (gathered) batch."""
    from sentence_transformers.sentence_transformer import losses

    if loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(
            model, scale=scale, gather_across_devices=gather_across_devices
        )
    if loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(
            model, scale=scale, mini_batch_size=mini_batch_size, gather_across_devices=gather_across_devices
        )
    if loss == "gist":
        if guide is None:
            raise ConfigError("loss=gist needs a guide model; fix: set --guide_model")
        return losses.GISTEmbedLoss(model, guide=guide, gather_across_devices=gather_across_devices)
    raise ConfigError(f"unknown loss '{loss}'; fix: use one of {sorted(LOSS_CLASS_NAMES)}")


# ---------------------------------------------------------------------------------------------------------
# checkpoints, fingerprints, hardware


def last_checkpoint(folder: str | Path) -> Path | None:
    """The newest *complete* checkpoint (``trainer_state.json`` is written last) in ``folder``, if any."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    done = [
        p
        for p in folder.glob("checkpoint-*")
        if (p / "trainer_state.json").is_file() and p.name[11:].isdigit()
    ]
    return max(done, key=lambda p: int(p.name[11:]), default=None)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every parameter's name and values: equal fingerprints mean identical weights."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def describe_hardware(world_size: int) -> str:
    """Where training ran, e.g. '2 x NVIDIA H100 80GB HBM3 (cuda)' or '2 processes on CPU (x86_64, 16 cores)'."""
    if torch.cuda.is_available():
        return f"{world_size} x {torch.cuda.get_device_name(0)} (cuda, torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    procs = f"{world_size} process{'es' if world_size > 1 else ''}"
    return f"{procs} on CPU ({cpu}, {os.cpu_count()} cores, torch {torch.__version__})"


class _RecordingCollator:
    """Wraps the trainer's collator to count the rows this process trained on and hash their anchors."""

    def __init__(self, inner):
        self.inner = inner
        self.rows = 0
        self.digest = hashlib.sha256()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __call__(self, features):
        self.rows += len(features)
        for row in features:
            self.digest.update(str(row.get("anchor", "")).encode())
        return self.inner(features)


class _RankRecordCallback(TrainerCallback):
    """At the end of training every process writes ``<output_dir>/ranks/rank<N>.json``: its weights
    fingerprint, steps and the rows it saw. Equal fingerprints across ranks that saw different rows
    prove that gradients were synchronised."""

    def __init__(self, folder: Path, collator: _RecordingCollator, initial: str):
        self.folder, self.collator, self.initial = folder, collator, initial

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": args.process_index,
            "world_size": args.world_size,
            "pid": os.getpid(),
            "global_step": state.global_step,
            "rows_seen": self.collator.rows,
            "anchors_sha256": self.collator.digest.hexdigest(),
            "initial_fingerprint": self.initial,
            "final_fingerprint": weights_fingerprint(model),
        }
        (self.folder / f"rank{args.process_index}.json").write_text(json.dumps(record, indent=2) + "\n")


class _RunTotals(TrainerCallback, ExportableState):
    """Whole-run totals over resumed segments: optimizer steps, summed loss and training seconds.

    Each checkpoint's ``trainer_state.json`` stores the totals up to that checkpoint (``stateful_callbacks``);
    a resumed segment starts from the checkpoint's totals (``from_checkpoint``), so the final summary reports
    the whole run's mean loss and time, not only the last segment's. Time spent after the last checkpoint of
    an interrupted segment is lost work and is not counted.
    """

    def __init__(self, steps: int = 0, loss_sum: float = 0.0, seconds: float | None = 0.0, segments: int = 0):
        self.steps, self.loss_sum, self.seconds, self.segments = steps, loss_sum, seconds, segments
        self.trainer = None
        self.start = time.perf_counter()

    @classmethod
    def from_checkpoint(cls, checkpoint: Path | None) -> _RunTotals:
        if checkpoint is None:
            return cls()
        state = json.loads((checkpoint / TRAINER_STATE_FILE).read_text())
        saved = (state.get("stateful_callbacks") or {}).get(cls.__name__)
        if isinstance(saved, list):
            saved = saved[-1] if saved else None
        if saved:
            return cls(**saved["attributes"])
        # a checkpoint written before the totals existed: the logged losses, time unknown
        logged = [(h["step"], h["loss"]) for h in state.get("log_history", []) if "loss" in h]
        prev, loss_sum = 0, 0.0
        for step, loss in logged:
            loss_sum, prev = loss_sum + loss * (step - prev), step
        return cls(steps=prev, loss_sum=loss_sum, seconds=None, segments=1)

    def _segment(self) -> tuple[int, float]:
        trainer = self.trainer
        steps = trainer.state.global_step - getattr(trainer, "_initial_global_step", 0)
        pending = getattr(trainer, "_tr_loss", 0.0)
        pending = float(pending.item()) if hasattr(pending, "item") else float(pending or 0.0)
        return steps, float(getattr(trainer, "_total_loss_scalar", 0.0)) + pending

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()
        # a checkpoint written before these totals existed has no entry, and transformers would fail at save
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())

    def state(self) -> dict:
        """Totals up to now (called when a checkpoint is written)."""
        steps, loss_sum = self._segment() if self.trainer is not None else (0, 0.0)
        seconds = None if self.seconds is None else self.seconds + time.perf_counter() - self.start
        return {
            "args": {},
            "attributes": {
                "steps": self.steps + steps,
                "loss_sum": self.loss_sum + loss_sum,
                "seconds": seconds,
                "segments": self.segments + 1,
            },
        }

    def finish(self, train_metrics: dict, train_seconds: float) -> dict[str, Any]:
        """Whole-run statistics after the last segment (its loss and time from the trainer's own metrics)."""
        steps = self.trainer.state.global_step - getattr(self.trainer, "_initial_global_step", 0)
        loss = train_metrics.get("train_loss")
        total_steps = self.steps + steps
        loss_sum = self.loss_sum + (loss or 0.0) * steps
        return {
            "train_loss": loss_sum / total_steps if total_steps and loss is not None else loss,
            "train_seconds": None if self.seconds is None else self.seconds + train_seconds,
            "segments": self.segments + 1,
            "last_segment": {
                "steps": steps,
                "train_loss": loss,
                "train_seconds": train_seconds,
                "train_samples_per_second": train_metrics.get("train_samples_per_second"),
            },
        }


# ---------------------------------------------------------------------------------------------------------
# the stage


def training_arguments(config: TrainConfig, *, has_eval: bool):
    """sentence-transformers training arguments for ``config`` (exposed so benchmarks reuse them)."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    prompts = {
        "anchor": config.query_prompt,
        "positive": config.passage_prompt,
        "negative": config.passage_prompt,
    }
    prompts = {k: v for k, v in prompts.items() if v}
    evaluating = has_eval and config.eval_steps
    return SentenceTransformerTrainingArguments(
        output_dir=str(Path(config.output_dir) / CHECKPOINTS_DIR),
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        weight_decay=config.weight_decay,
        optim=config.optim,
        seed=config.seed,
        bf16=config.bf16,
        fp16=config.fp16,
        tf32=config.tf32,
        torch_compile=config.torch_compile,
        dataloader_num_workers=config.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without an accelerator, several launched processes must be told they are CPU processes: only
        # then does accelerate set up MULTI_CPU (gloo) instead of N independent single-process runs.
        use_cpu=best_device() == "cpu",
        prompts=prompts or None,
        batch_sampler=batch_sampler(config.batch_sampler, config.length_group_size),
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.eval_steps if evaluating else None,
        report_to=resolve_report_to(config.report_to),
        run_name=run_name(config),
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
    )


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


def seed_dir(output_dir: str | Path, seed: int) -> Path:
    """Where the model of one training seed goes: ``<output_dir>/seed<S>``."""
    return Path(output_dir) / f"seed{seed}"


# Options that do not change the model: left out of ``training_record`` (a rerun may change them freely).
RUN_ONLY_OPTIONS = (
    "output_dir",
    "seeds",
    "resume",
    "keep_checkpoints",
    "report_to",
    "run_name",
    "push_to_hub",
    "hub_model_id",
    "hub_model_version",
    "hub_private",
    "save_steps",
    "save_total_limit",
    "logging_steps",
    "dataloader_num_workers",
)


def data_fingerprint(ds: Dataset, batch_size: int = 10_000) -> str:
    """SHA-256 of the rows (column names and values, in order): a rebuilt dataset folder with other rows has
    another fingerprint, whatever its name."""
    digest = hashlib.sha256(json.dumps(ds.column_names).encode())
    for batch in ds.iter(batch_size=batch_size):
        digest.update(json.dumps(batch, ensure_ascii=False, sort_keys=True).encode())
    return digest.hexdigest()


def training_record(config: TrainConfig, data: Dataset, fingerprint: str | None = None) -> dict[str, Any]:
    """What a model is trained on and how: the reuse key of a finished seed (see the module docstring).
    ``fingerprint``: ``data_fingerprint(data)`` when the caller has it (one scan of the rows for every seed)."""
    options = {k: v for k, v in asdict(config).items() if k not in RUN_ONLY_OPTIONS}
    return {
        "dataset_commit": loaded_commit(data),
        "data_fingerprint": fingerprint or data_fingerprint(data),
        **options,
    }


def _differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    first = [
        "max_steps",
        "dataset",
        "dataset_config",
        "dataset_split",
        "dataset_revision",
        "columns",
        "model",
    ]
    keys = first + sorted(set(saved) | set(wanted))  # what names the run first, the fingerprint after
    return [
        f"trained with {k} {saved.get(k)}, but the config asks for {wanted.get(k)}"
        if k != "data_fingerprint"
        else f"trained on rows with fingerprint {str(saved.get(k))[:12]}, but the dataset now has {str(wanted.get(k))[:12]}"
        for k in dict.fromkeys(keys)
        if saved.get(k) != wanted.get(k)
    ]


def _check_same(folder: Path, what: str, saved: dict[str, Any] | None, record: dict[str, Any]) -> None:
    """Refuse work in ``folder`` (a finished seed, checkpoints) that was trained on anything but ``record``."""
    fix = f"fix: delete {folder} to train it again, or choose another --output_dir"
    if saved is None:
        raise ConfigError(
            f"{folder} holds {what} that does not record what it was trained on (an older hardneg); {fix}"
        )
    diff = _differences(saved, json.loads(json.dumps(record, default=str)))
    if diff:
        more = f" (and {len(diff) - 1} more difference(s))" if len(diff) > 1 else ""
        raise ConfigError(
            f"{folder} holds {what} {diff[0]}{more}: its results would not be comparable; {fix}"
        )


def check_finished(folder: Path, record: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a finished model trained as ``record`` says (then it is reused); a finished
    model trained on anything else is refused with one line, never reused under the new name."""
    summary = folder / SUMMARY_FILE
    if not summary.is_file():
        return False
    done = json.loads(summary.read_text())
    _check_same(folder, "a finished seed", done.get("trained_on"), record)
    print(f"{folder}: already trained ({done.get('global_step')} steps), skipped", flush=True)
    return True


def check_checkpoints(folder: Path, record: dict[str, Any]) -> None:
    """Checkpoints are resumed only for the training they belong to (``TRAINED_ON_FILE`` beside them)."""
    marker = folder / TRAINED_ON_FILE
    if last_checkpoint(folder) is not None:
        _check_same(
            folder, "checkpoints", json.loads(marker.read_text()) if marker.is_file() else None, record
        )


def write_trained_on(folder: Path, record: dict[str, Any]) -> None:
    """Record what the checkpoints in ``folder`` are trained on (main process, before the first one)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / TRAINED_ON_FILE, json.dumps(record, default=str))


def train_seeds(config: TrainConfig, *, callbacks: list[TrainerCallback] | None = None) -> list[Path]:
    """Train once per seed of ``config.seeds`` into ``seed_dir(output_dir, seed)`` (or once, as ``train``,
    when ``seeds`` is empty). A seed whose folder already holds a model trained on the same data with the same
    options (``check_finished``) is skipped; an interrupted one resumes from its checkpoints. Returns the
    model folders."""
    if not config.seeds:
        return [train(config, callbacks=callbacks)]
    args = training_arguments(config, has_eval=False)  # sets up the processes as train() does
    with args.main_process_first(local=True, desc="load the dataset"):
        data = _load(config, refresh=args.local_process_index == 0)
    folders = []
    fingerprint = data_fingerprint(data)  # the same rows for every seed: scanned once
    for seed in config.seeds:
        folder = seed_dir(config.output_dir, seed)
        one = replace(config, seed=seed, seeds=[], output_dir=str(folder))
        if not check_finished(folder, training_record(one, data, fingerprint)):
            train(one, callbacks=callbacks, data=data, fingerprint=fingerprint)
        folders.append(folder)
    return folders


def _load(config: TrainConfig, *, refresh: bool) -> Dataset:
    return load_triplets(
        config.dataset,
        config=config.dataset_config,
        revision=config.dataset_revision,
        split=config.dataset_split,
        refresh=refresh,
        columns=config.columns,
    )


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
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.evaluation import TripletEvaluator

    output_dir = Path(config.output_dir)
    recover_folder(output_dir)  # a save killed mid-swap: put the previous model back before anything reads it
    args = training_arguments(config, has_eval=config.eval_size > 0)
    if data is None:
        with args.main_process_first(local=True, desc="load the dataset"):
            data = _load(config, refresh=args.local_process_index == 0)
    record = training_record(config, data, fingerprint)
    train_ds, eval_ds = split_eval(data, eval_size=config.eval_size, seed=config.seed)
    if config.max_train_samples:
        train_ds = train_ds.select(range(min(config.max_train_samples, len(train_ds))))
    _check_batch(len(train_ds), config.per_device_train_batch_size, args.world_size)
    model = load_model(
        config.model,
        revision=config.model_revision,
        max_seq_length=config.max_seq_length,
        prompts=config.prompts,
        seed=config.seed,
    )
    frozen = freeze_unused_parameters(model)
    if frozen and args.process_index == 0:
        logger.info("frozen (no gradient reaches them): %s", frozen)
    guide = None
    if config.loss == "gist":
        guide = load_model(config.guide_model, max_seq_length=config.max_seq_length, prompts=config.prompts)
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
            negatives=list(_negatives_or_next_positive(eval_ds)),
            name="heldout",
        )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, loss=loss, evaluator=evaluator
    )
    collator = _RecordingCollator(trainer.data_collator)
    trainer.data_collator = collator
    trainer.add_callback(_RankRecordCallback(output_dir / RANKS_DIR, collator, weights_fingerprint(model)))
    for callback in callbacks or []:
        trainer.add_callback(callback)

    if config.resume:  # a checkpoint of other data or options is refused, never resumed under this name
        check_checkpoints(Path(args.output_dir), record)
    if trainer.is_world_process_zero():
        write_trained_on(Path(args.output_dir), record)
    resume_from = last_checkpoint(args.output_dir) if config.resume else None
    if resume_from is not None and trainer.is_world_process_zero():
        state = json.loads((resume_from / "trainer_state.json").read_text())
        logger.warning("resuming from checkpoint %s (global step %s)", resume_from, state.get("global_step"))
        print(f"resuming from checkpoint {resume_from} (global step {state.get('global_step')})", flush=True)
    totals = _RunTotals.from_checkpoint(resume_from)
    totals.trainer = trainer
    trainer.add_callback(totals)
    start = time.perf_counter()
    with _tensorboard_dir(args, output_dir / LOGS_DIR / args.run_name):
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - start

    metrics: list[dict[str, Any]] = []
    if evaluator is not None:
        scores = evaluator(model)
        metrics.append(
            {
                "model": output_dir.name,
                "dataset": f"{config.dataset_config} held-out",
                "split": "eval",
                **{k: float(v) for k, v in scores.items()},
            }
        )
    release: tuple[ModelCardData, str] | None = None
    if trainer.is_world_process_zero():
        release = _save(
            trainer,
            config,
            output_dir,
            totals.finish(result.metrics, train_seconds),
            len(train_ds),
            metrics,
            args.world_size,
            dataset_commit=loaded_commit(data),
            base_model_commit=model_commit(model),
            trained_on=record,
        )
    trainer.accelerator.wait_for_everyone()
    if config.push_to_hub and release is not None:  # the main process, once every rank has finished
        card_data, card = release
        push_model(
            output_dir,
            repo_id=config.hub_model_id,
            version=config.hub_model_version,
            private=config.hub_private,
            card_data=card_data,
            rendered_card=card,
        )
    return output_dir


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


def _save(trainer, config: TrainConfig, output_dir: Path, *args, **kwargs) -> tuple[ModelCardData, str]:
    """``_save_into`` a folder beside ``output_dir``, swapped in when it is complete
    (``hardneg.files.replace_folder``): a failure, a full disk included, leaves the previous model folder; its
    checkpoints and logs are carried over (checkpoints only with ``keep_checkpoints``)."""
    dropped = set() if config.keep_checkpoints else {CHECKPOINTS_DIR}
    with replace_folder(output_dir, rewritten=dropped, what="the model folder") as staging:
        return _save_into(trainer, config, staging, *args, **kwargs)


def _save_into(
    trainer,
    config: TrainConfig,
    output_dir: Path,
    run: dict[str, Any],
    train_samples: int,
    metrics: list[dict[str, Any]],
    world_size: int,
    dataset_commit: str | None = None,
    base_model_commit: str | None = None,
    trained_on: dict[str, Any] | None = None,
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
    train_seconds = (
        run["train_seconds"] if run["train_seconds"] is not None else run["last_segment"]["train_seconds"]
    )
    hyperparameters = {
        k: v
        for k, v in asdict(config).items()
        if k
        not in (
            "dataset",
            "dataset_config",
            "dataset_revision",
            "model",
            "output_dir",
            "push_to_hub",
            "hub_model_id",
            "hub_model_version",
            "hub_private",
            "report_to",
            "run_name",
            "resume",
            "keep_checkpoints",
            "seeds",
        )
    }
    hyperparameters["world_size"] = world_size
    card = ModelCardData(
        base_model=config.model,
        dataset_id=config.dataset,
        dataset_config=config.dataset_config,
        dataset_revision=config.dataset_revision,
        dataset_commit=dataset_commit,
        base_model_commit=base_model_commit,
        loss=LOSS_CLASS_NAMES[config.loss],
        hyperparameters=hyperparameters,
        hardware=describe_hardware(world_size),
        prompts={k: v for k, v in config.prompts.items() if v},
        train_samples=train_samples,
        train_seconds=round(train_seconds, 3),
        metrics=metrics,
        repo_id=config.hub_model_id,
    )
    card.training_corpora, card.not_zero_shot_on = training_provenance(
        config.dataset, config.dataset_revision
    )
    write_trained_model_meta(output_dir, trainer.model, card)  # MTEB's ModelMeta: the training datasets
    card.save(output_dir / "card_data.json")
    readme = output_dir / "README.md"
    base_card = readme.read_text(encoding="utf-8") if readme.is_file() else None
    rendered = render_model_card(card, base_card=base_card)
    readme.write_text(rendered, encoding="utf-8")
    summary = {
        "global_step": trainer.state.global_step,
        # the budget in effect: max_steps when set, else the steps the epochs came to
        "max_steps": config.max_steps if config.max_steps > 0 else trainer.state.max_steps,
        "seed": config.seed,
        "epochs_done": trainer.state.epoch,
        "train_samples": train_samples,
        # the whole run, over every resumed segment (None when an old checkpoint did not record its time)
        "train_seconds": run["train_seconds"],
        "train_loss": run["train_loss"],
        "segments": run["segments"],
        "last_segment": run["last_segment"],
        "world_size": world_size,
        "hardware": card.hardware,
        "metrics": metrics,
        "final_fingerprint": weights_fingerprint(trainer.model),
        "base_model_commit": base_model_commit,
        "dataset_commit": dataset_commit,
        "trained_on": trained_on,  # the reuse key (check_finished)
    }
    (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return card, rendered


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
    as ``make publish-model`` (``hardneg.hub.publish_model``: one commit, then the tag; an existing tag is
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
