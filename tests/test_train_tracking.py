"""Training you can follow: trackers, the log history kept in the model folder, sentence-transformers' card
with hardneg's block, whole-run statistics after a resume, and the training-loss plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from test_train import cranfield_triplets, dataset_dir, tiny_config  # noqa: F401  (fixtures)
from transformers import TrainerCallback

from hardneg.config import ConfigError
from hardneg.train import TrainConfig, last_checkpoint, resolve_report_to, train


def test_report_to_choices(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "tensorboard" else real(n, *a)
    )
    assert resolve_report_to("auto") == ["none"]
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: object() if n == "tensorboard" else real(n, *a)
    )
    assert resolve_report_to("auto") == ["tensorboard"]
    assert resolve_report_to("none") == ["none"]
    assert resolve_report_to("tensorboard,none") == ["tensorboard"]
    with pytest.raises(ConfigError, match="unknown report_to .*'mlflowx'.*fix:"):
        resolve_report_to("mlflowx")
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    with pytest.raises(ConfigError, match=r"report_to \['wandb'\] is not installed; fix: pip install wandb"):
        TrainConfig(report_to="wandb")
    with pytest.raises(ConfigError, match="hub_model_version"):
        TrainConfig(push_to_hub=True, hub_model_id="org/name")


@pytest.fixture(scope="module")
def followed(tmp_path_factory, dataset_dir) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("follow") / "models" / "bm25_hn" / "seed0"
    config = tiny_config(dataset_dir, out, eval_size=4, seed=0, run_name="bm25-demo", report_to="none")
    return train(config)


def test_final_folder_keeps_log_history(followed: Path):
    assert not (followed / "checkpoints").exists()
    state = json.loads((followed / "trainer_state.json").read_text())
    losses = [h for h in state["log_history"] if "loss" in h]
    assert [h["step"] for h in losses] == [1, 2] and state["global_step"] == 2


def test_card_is_sentence_transformers_card_plus_hardneg_block(followed: Path):
    text = (followed / "README.md").read_text()
    card = ModelCard(text)
    meta = card.data.to_dict()
    # sentence-transformers' own sections stay: training logs, dataset statistics, the loss citation
    assert "### Training Logs" in text and "### Training Dataset" in text
    assert "MultipleNegativesRankingLoss" in text and "@inproceedings" in text
    # hardneg's block: dataset id + config, method, seed, the held-out evaluation as model-index
    assert text.count("<!-- hardneg:start") == 1 and "## Trained with hardneg" in text
    assert "method `bm25_hn`, seed 0" in text
    assert (
        "hardneg" in meta["tags"]
        and "hardneg-bm25_hn" in meta["tags"]
        and "sentence-transformers" in meta["tags"]
    )
    names = {r["name"] for m in meta["model-index"] for r in m["results"] for r in [r["dataset"]]}
    assert names == {"heldout"}  # sentence-transformers' entry for the held-out triplets, not a second copy
    assert meta["model-index"][0]["name"] == "minilm fine-tuned on bm25_hn (hardneg, seed 0)"
    # re-rendering (e.g. at publish time) replaces the block instead of adding a second one
    from hardneg.cards import ModelCardData, render_model_card

    again = render_model_card(ModelCardData.load(followed / "card_data.json"), base_card=text)
    assert again.count("<!-- hardneg:start") == 1 and "### Training Logs" in again
    # tracking and publishing settings are not hyperparameters of the model
    hyperparameters = ModelCardData.load(followed / "card_data.json").hyperparameters
    assert "learning_rate" in hyperparameters
    assert not {"run_name", "report_to", "hub_model_version", "push_to_hub"} & set(hyperparameters)


class _StopAfterFirstSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt("simulated kill after the first checkpoint")


def test_resumed_training_reports_the_whole_run(dataset_dir, tmp_path):  # noqa: F811
    out = tmp_path / "model"
    config = tiny_config(
        dataset_dir, out, max_train_samples=16, max_steps=4, save_steps=2, report_to="none", warmup_ratio=0.0
    )
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[_StopAfterFirstSave()])
    assert last_checkpoint(out / "checkpoints").name == "checkpoint-2"
    train(config)
    summary = json.loads((out / "training_summary.json").read_text())
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    per_step = {h["step"]: h["loss"] for h in history if "loss" in h}
    assert sorted(per_step) == [1, 2, 3, 4]
    whole = sum(per_step.values()) / 4
    last = (per_step[3] + per_step[4]) / 2
    assert summary["segments"] == 2 and summary["last_segment"]["steps"] == 2
    assert summary["train_loss"] == pytest.approx(whole, rel=1e-3)
    assert summary["last_segment"]["train_loss"] == pytest.approx(last, rel=1e-3)
    assert summary["train_seconds"] > summary["last_segment"]["train_seconds"] > 0


def test_push_to_hub_goes_through_the_tagged_publish(monkeypatch, tmp_path):
    import hardneg.train.save
    from hardneg.train import push_model

    calls = []

    class _Result:
        commit_url = "https://hub.example/commit/abc"

    monkeypatch.setattr(
        hardneg.train.save, "publish_model", lambda *a, **k: calls.append((a, k)) or _Result()
    )
    assert push_model(tmp_path, repo_id="org/retriever", version="1.2.0", private=False) == _Result.commit_url
    assert calls == [
        (
            (tmp_path, "org/retriever", "1.2.0"),
            {"card_data": None, "rendered_card": None, "private": False, "confirm": True},
        )
    ]


def test_push_after_the_final_barrier_renders_the_card_once(dataset_dir, tmp_path, monkeypatch):  # noqa: F811
    """The upload waits for the final barrier (the other ranks would wait at it for the whole upload), and
    uploads the card ``_save`` rendered and wrote, without rendering it again."""
    import accelerate

    import hardneg.cards
    import hardneg.train.loop
    import hardneg.train.save

    events: list[str] = []
    barrier = accelerate.Accelerator.wait_for_everyone
    monkeypatch.setattr(
        accelerate.Accelerator, "wait_for_everyone", lambda self: events.append("barrier") or barrier(self)
    )
    render = hardneg.cards.render_model_card
    monkeypatch.setattr(
        hardneg.train.save, "render_model_card", lambda *a, **k: events.append("render") or render(*a, **k)
    )
    pushed: list[dict] = []
    monkeypatch.setattr(
        hardneg.train.loop,
        "push_model",
        lambda folder, **kw: events.append("push") or pushed.append(kw | {"folder": folder}),
    )
    out = tmp_path / "model"
    config = tiny_config(
        dataset_dir, out, max_steps=1, push_to_hub=True, hub_model_id="org/m", hub_model_version="1.0.0"
    )
    train(config)
    assert events.count("render") == 1 and events[-2:] == ["barrier", "push"]
    (kw,) = pushed
    assert kw["folder"] == out and kw["repo_id"] == "org/m" and kw["version"] == "1.0.0"
    assert kw["rendered_card"] == (out / "README.md").read_text(encoding="utf-8")
    assert kw["card_data"].repo_id == "org/m"


def test_publish_dry_run_keeps_the_sentence_transformers_card(followed: Path):
    from hardneg.hub import publish_model

    result = publish_model(followed, "org/minilm-bm25-hn", "1.0.0")  # dry run: nothing is uploaded
    assert (
        result.dry_run and "### Training Logs" in result.card and result.card.count("<!-- hardneg:start") == 1
    )
    assert 'SentenceTransformer("org/minilm-bm25-hn")' in result.card


def test_push_to_hub_with_several_seeds_is_refused_up_front():
    """Every seed would publish the same hub_model_id + version: the second tag was refused after training."""
    with pytest.raises(
        ConfigError, match=r"push_to_hub with seeds \[0, 1\] would publish one version per seed; fix:"
    ):
        TrainConfig(
            push_to_hub=True, hub_model_id="org/name", hub_model_version="1.0.0", seeds=[0, 1], max_steps=2
        )
    TrainConfig(push_to_hub=True, hub_model_id="org/name", hub_model_version="1.0.0", seeds=[3], max_steps=2)


def test_user_run_name_is_suffixed_per_seed(tmp_path):
    from hardneg.train import run_name, seed_dir, training_arguments

    one = TrainConfig(run_name="exp", seed=3, output_dir=str(seed_dir(tmp_path, 3)), report_to="none")
    assert run_name(one) == "exp-seed3" and training_arguments(one, has_eval=False).run_name == "exp-seed3"
    assert (
        run_name(TrainConfig(run_name="exp", seed=3, output_dir=str(tmp_path / "m"), report_to="none"))
        == "exp"
    )
    default = TrainConfig(dataset_config="bm25_hn", seed=2, output_dir=str(tmp_path), report_to="none")
    assert run_name(default) == "bm25_hn-seed2"
