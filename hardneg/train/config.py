"""The training config: sentence-transformers' own training arguments plus hardneg's fields.

``TrainConfig`` builds on ``SentenceTransformerTrainingArguments`` as TRL's ``SFTConfig`` builds on
``TrainingArguments``: every transformers / sentence-transformers option (``lr_scheduler_type``,
``max_grad_norm``, ``adam_beta2``, ``gradient_checkpointing`` ...) is a field, settable from a recipe or as
``--name value``. hardneg adds its own fields (dataset reference, base model, prompts, loss, seeds, resume,
release) and redeclares the transformers fields whose default it changes (``learning_rate`` 2e-5,
``per_device_train_batch_size`` 32, ``num_train_epochs`` 1, ``warmup_ratio`` 0.1, ``weight_decay`` 0.01,
``optim`` adamw_torch, ``logging_steps`` 10, ``save_total_limit`` 2, ``report_to`` auto,
``ddp_find_unused_parameters`` False, ``disable_tqdm`` False); docs/training.md lists them and why.

Its ``output_dir`` is the model folder: the trainer gets ``training_arguments(config)``
(``hardneg.train.loop``), a plain ``SentenceTransformerTrainingArguments`` with the same values whose
``output_dir`` is ``<output_dir>/checkpoints``.

What is recorded (``training_record``, the model card's hyperparameters): the fields ``TrainConfig``
declares (in their order), then any other transformers field whose value the user changed from its
default; ``RUN_ONLY_OPTIONS`` and ``is_run_only`` name the fields that do not change the model. An
unchanged recipe therefore gives the same record as before the config built on transformers.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from sentence_transformers import SentenceTransformerTrainingArguments
from sentence_transformers.base.sampler import BatchSamplers

from hardneg.assets import best_device
from hardneg.config import check_replaceable
from hardneg.options import ConfigError, check_fields
from hardneg.samplers import SamplerName
from hardneg.train.data import check_dataset_ref, parse_column_map

REPORT_TO = ("tensorboard", "trackio", "wandb", "none")
LossName = Literal["mnrl", "cached_mnrl", "gist"]
LOSS_CLASS_NAMES = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cached_mnrl": "CachedMultipleNegativesRankingLoss",
    "gist": "GISTEmbedLoss",
}


@dataclass
class TrainConfig(SentenceTransformerTrainingArguments):
    """One training run: which data, which base model, how long, and where the model goes (plus every
    sentence-transformers training argument)."""

    OUTPUT_KIND: ClassVar[str] = "model"  # hardneg.config.check_outputs
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("dataset", "model", "guide_model")
    # old recipe keys: accepted with one deprecation line naming the new key (hardneg.config.parse)
    RENAMED: ClassVar[dict[str, str]] = {"hub_private": "hub_private_repo"}

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
    warmup_ratio: float | None = field(
        default=0.1,
        metadata={
            "bounds": (0, 1),
            "help": "Fraction of the steps with linear warmup (warmup_steps, when set, wins).",
        },
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
    hub_private_repo: bool = field(
        default=True, metadata={"help": "Create the Hub repo as private (formerly hub_private)."}
    )
    # transformers settings whose default hardneg changes (not recorded: they do not change the model)
    per_device_eval_batch_size: int | None = field(
        default=None,
        metadata={"help": "Rows per evaluation batch per process; None: per_device_train_batch_size."},
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "DDP's unused-parameter search; False (fast): parameters no gradient reaches are frozen "
            "before training (freeze_unused_parameters)."
        },
    )
    disable_tqdm: bool | None = field(default=False, metadata={"help": "Hide the progress bars."})

    def preflight(self) -> None:
        """Checks before any process starts work (``run_main``; ``make train`` runs them before accelerate)."""
        check_dataset_ref(self.dataset, self.dataset_revision)
        for folder in [seed_dir(self.output_dir, seed) for seed in self.seeds] or [self.output_dir]:
            check_replaceable(folder)  # the model folder is swapped in after training

    def __post_init__(self) -> None:
        self._changed = changed_foreign_options(self)  # before transformers normalises the values
        self._check_own()
        self.report_to = resolve_report_to(self.report_to)
        # Without an accelerator, several launched processes must be told they are CPU processes: only then
        # does accelerate set up MULTI_CPU (gloo) instead of N independent single-process runs.
        self.use_cpu = self.use_cpu or best_device() == "cpu"
        self.dataloader_pin_memory = self.dataloader_pin_memory and best_device() == "cuda"
        # sentence-transformers turns a sampler name into its own enum, which lacks hardneg's sampler, and a
        # warmup_ratio into warmup_steps with a deprecation warning: both are restored after its checks (the
        # trainer gets the ratio as transformers 5's fractional warmup_steps, ``training_arguments``)
        sampler, ratio = self.batch_sampler, self.warmup_ratio
        self.batch_sampler, self.warmup_ratio = BatchSamplers.BATCH_SAMPLER, None
        super().__post_init__()
        self.batch_sampler, self.warmup_ratio = sampler, ratio
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)

    def _check_own(self) -> None:
        """hardneg's cross-field checks, each with its own one-line message."""
        if self.prompts is not None:
            raise ConfigError(
                "prompts is set from query_prompt and passage_prompt; fix: set --query_prompt / --passage_prompt"
            )
        if self.resume_from_checkpoint is not None:
            raise ConfigError(
                "resume_from_checkpoint is chosen by hardneg (the last complete checkpoint in "
                "<output_dir>/checkpoints); fix: drop it, and use --resume false to start over"
            )
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

    @property
    def model_prompts(self) -> dict[str, str]:
        """The model's prompts as sentence-transformers stores them (``encode_query``/``encode_document``)."""
        return {"query": self.query_prompt, "document": self.passage_prompt}


def resolve_report_to(report_to: str | list[str]) -> list[str]:
    """transformers' ``report_to`` list: ``auto`` is tensorboard when installed, else nothing; a tracker that
    is not installed is an error that names the package (transformers would fail later, mid-setup)."""
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


def seed_dir(output_dir: str | Path, seed: int) -> Path:
    """Where the model of one training seed goes: ``<output_dir>/seed<S>``."""
    return Path(output_dir) / f"seed{seed}"


def for_seed(config: TrainConfig, seed: int) -> TrainConfig:
    """The config of one seed of ``config.seeds``: its own seed and folder (``seed_dir``). A copy with three
    fields changed, not a new config: the values were checked and normalised once."""
    one = copy.copy(config)
    one.seed, one.seeds, one.output_dir = seed, [], str(seed_dir(config.output_dir, seed))
    return one


# Fields that do not change the model: left out of ``training_record`` (a rerun may change them freely).
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
    "hub_private_repo",
    "save_steps",
    "save_total_limit",
    "logging_steps",
    "dataloader_num_workers",
    "per_device_eval_batch_size",
    "ddp_find_unused_parameters",
    "disable_tqdm",
    "use_cpu",
    "overwrite_output_dir",
    "skip_memory_metrics",
    "debug",
    "project",
    "ddp_timeout",
)
# transformers fields named so (logging, saving, evaluation, Hub, loaders, trackers) do not change the model
RUN_ONLY_PREFIXES = (
    "do_",
    "logging_",
    "log_",
    "save_",
    "eval_",
    "hub_",
    "push_to_hub",
    "dataloader_",
    "trackio_",
    "include_",
)
# Left out of the model card's hyperparameters (they are shown elsewhere on the card, or say nothing there)
CARD_LEFT_OUT = (
    "dataset",
    "dataset_config",
    "dataset_revision",
    "model",
    "output_dir",
    "push_to_hub",
    "hub_model_id",
    "hub_model_version",
    "hub_private_repo",
    "report_to",
    "run_name",
    "resume",
    "keep_checkpoints",
    "seeds",
    "per_device_eval_batch_size",
    "ddp_find_unused_parameters",
    "disable_tqdm",
)


def is_run_only(name: str) -> bool:
    """Whether a field does not change the model (hardneg's own fields only by ``RUN_ONLY_OPTIONS``)."""
    return name in RUN_ONLY_OPTIONS or (name not in own_fields() and name.startswith(RUN_ONLY_PREFIXES))


def own_fields() -> list[str]:
    """The fields ``TrainConfig`` declares itself, in their order (hardneg's and the redeclared ones)."""
    declared = {f.name for f in dataclasses.fields(TrainConfig)}
    return [name for name in TrainConfig.__annotations__ if name in declared]  # ClassVars left out


def changed_foreign_options(config: TrainConfig) -> dict[str, Any]:
    """The inherited transformers fields whose given value differs from their default, read before
    ``__post_init__`` normalises them. A copy made with ``dataclasses.replace`` passes normalised values
    (``accelerator_config`` an ``AcceleratorConfig``, ``debug`` a list): a value equal to the normalised default
    is not a change either. ``hub_token`` and the like are never kept."""
    own = set(own_fields())
    normalised = _normalised_defaults(config.use_cpu or best_device() == "cpu")
    changed = {}
    for f in dataclasses.fields(SentenceTransformerTrainingArguments):
        if not f.init or f.name in own or "token" in f.name:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = plain(getattr(config, f.name))
        if value != plain(default) and value != normalised[f.name]:
            changed[f.name] = value
    return changed


@functools.cache
def _normalised_defaults(use_cpu: bool) -> dict[str, Any]:
    """Every transformers field's default after transformers' ``__post_init__`` (on the same device kind)."""
    reference = SentenceTransformerTrainingArguments(output_dir="trainer_output", use_cpu=use_cpu)
    return {f.name: plain(getattr(reference, f.name)) for f in dataclasses.fields(reference) if f.init}


def plain(value: Any) -> Any:
    """A value as JSON and the card show it: an enum becomes its value."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def options(config: TrainConfig, left_out) -> dict[str, Any]:
    """The declared fields in order, then the changed transformers fields, less ``left_out(name)``."""
    values = {name: plain(getattr(config, name)) for name in own_fields()}
    values.update(getattr(config, "_changed", {}))
    return {k: v for k, v in values.items() if not left_out(k)}


def recorded_options(config: TrainConfig) -> dict[str, Any]:
    """The options that change the model (``training_record``)."""
    return options(config, is_run_only)


def card_hyperparameters(config: TrainConfig) -> dict[str, Any]:
    """The options the model card lists."""
    return options(
        config, lambda name: name in CARD_LEFT_OUT or (is_run_only(name) and name not in own_fields())
    )
