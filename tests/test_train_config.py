"""TrainConfig builds on sentence-transformers' training arguments: every TrainingArguments option is
settable from a recipe or the command line and reaches the trainer; hardneg's defaults are the subclass's;
an unchanged recipe records what it recorded before; a renamed key gives one deprecation line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentence_transformers import SentenceTransformerTrainingArguments

from hardneg.config import ConfigError, parse
from hardneg.train import TrainConfig, seed_dir, training_arguments
from hardneg.train.config import card_hyperparameters, for_seed, recorded_options

ROOT = Path(__file__).resolve().parent.parent

# The options an unchanged recipe recorded before TrainConfig built on transformers (training_summary.json
# "trained_on", with dataset_commit and data_fingerprint): finished seeds of older runs are still reused.
RECORDED_BEFORE = """dataset dataset_config dataset_revision dataset_split columns max_train_samples model
model_revision query_prompt passage_prompt max_seq_length loss mini_batch_size guide_model scale
gather_across_devices batch_sampler length_group_size per_device_train_batch_size gradient_accumulation_steps
num_train_epochs max_steps learning_rate warmup_ratio weight_decay optim seed bf16 fp16 tf32 torch_compile
eval_size eval_steps""".split()


def test_config_is_sentence_transformers_training_arguments():
    config = TrainConfig(report_to="none")
    assert isinstance(config, SentenceTransformerTrainingArguments)
    # hardneg's defaults where they differ from transformers'
    assert (config.learning_rate, config.per_device_train_batch_size, config.num_train_epochs) == (
        2e-5,
        32,
        1.0,
    )
    assert (config.weight_decay, config.save_total_limit, config.logging_steps) == (0.01, 2, 10)
    assert config.ddp_find_unused_parameters is False and config.disable_tqdm is False
    assert config.warmup_ratio == 0.1 and config.hub_private_repo is True


def test_recipe_and_command_line_set_any_training_argument(tmp_path):
    recipe = tmp_path / "train.yaml"
    recipe.write_text("lr_scheduler_type: cosine\nmax_grad_norm: 0.5\nadam_beta2: 0.98\nreport_to: none\n")
    (config,) = parse(
        TrainConfig, args=["--config", str(recipe), "--max_grad_norm", "0.25", "--data_seed", "7"]
    )
    assert config.lr_scheduler_type == "cosine" and config.max_grad_norm == 0.25 and config.adam_beta2 == 0.98
    args = training_arguments(config, has_eval=False)
    assert type(args) is SentenceTransformerTrainingArguments
    assert (args.lr_scheduler_type, args.max_grad_norm, args.adam_beta2, args.data_seed) == (
        "cosine",
        0.25,
        0.98,
        7,
    )
    # what hardneg decides itself
    assert args.output_dir == str(Path(config.output_dir) / "checkpoints") and args.push_to_hub is False
    assert args.warmup_steps == 0.1 and args.warmup_ratio is None


def test_unchanged_recipe_records_what_it_did_before():
    (config,) = parse(
        TrainConfig, args=["--config", str(ROOT / "recipes/demo/train.yaml"), "--report_to", "none"]
    )
    assert list(recorded_options(config)) == RECORDED_BEFORE
    assert recorded_options(config)["optim"] == "adamw_torch"  # a plain value, not transformers' enum
    assert "hub_private_repo" not in card_hyperparameters(config)


def test_changed_training_arguments_are_recorded_unless_they_leave_the_model_alone():
    config = TrainConfig(
        report_to="none", lr_scheduler_type="cosine", logging_first_step=True, hub_token="secret"
    )
    recorded = recorded_options(config)
    assert recorded["lr_scheduler_type"] == "cosine"
    assert "logging_first_step" not in recorded and "hub_token" not in recorded
    assert card_hyperparameters(config)["lr_scheduler_type"] == "cosine"
    one = for_seed(config, 3)  # a seed's copy keeps what was changed
    assert recorded_options(one)["lr_scheduler_type"] == "cosine" and one.output_dir == str(
        seed_dir(config.output_dir, 3)
    )


def test_renamed_key_gives_one_deprecation_line(tmp_path, capsys):
    recipe = tmp_path / "train.yaml"
    recipe.write_text("hub_private: false\nreport_to: none\n")
    (config,) = parse(TrainConfig, args=["--config", str(recipe)])
    assert config.hub_private_repo is False
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"warning: 'hub_private' in {recipe} is now 'hub_private_repo'; rename it (the old name is read for now)"
    ]
    (config,) = parse(TrainConfig, args=["--hub_private", "false", "--report_to", "none"])
    assert config.hub_private_repo is False and "'--hub_private_repo'" in capsys.readouterr().err
    recipe.write_text("hub_private: false\nhub_private_repo: true\n")
    with pytest.raises(ConfigError, match="keep 'hub_private_repo' only"):
        parse(TrainConfig, args=["--config", str(recipe)])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"prompts": "query: "}, "fix: set --query_prompt / --passage_prompt"),
        ({"resume_from_checkpoint": "x"}, "use --resume false"),
        ({"lr_scheduler_type": "nope"}, "nope"),
    ],
)
def test_options_hardneg_decides_or_transformers_refuses(values, expected):
    with pytest.raises((ConfigError, ValueError), match=expected):
        TrainConfig(report_to="none", **values)
