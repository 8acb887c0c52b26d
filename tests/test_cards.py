"""Rendered dataset and model cards: content checked against the inputs, never crashing on missing stats."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard
from test_hub_fixtures import PROMPT_LLM_HN, PROMPT_QUERY, make_build_stats

from hardneg.cards import (
    DatasetCardData,
    ModelCardData,
    render_dataset_card,
    render_model_card,
    size_category,
)

SPLITS = {"queries": {"train": 12}, "llm_hn": {"train": 12}, "bm25_hn": {"train": 12}}


@pytest.fixture
def card_text():
    data = DatasetCardData(
        repo_id="my-org/cranfield-hn",
        version="1.2.0",
        license="cc-by-4.0",
        changelog=[
            {"version": "1.0.0", "date": "2026-11-01", "notes": "First release."},
            {"version": "1.2.0", "date": "2026-11-26", "notes": "Adds bm25_hn."},
        ],
    )
    return render_dataset_card(data, make_build_stats(), splits=SPLITS, default_config="queries")


def test_dataset_card_yaml_metadata(card_text):
    card = DatasetCard(card_text)
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-4.0"
    assert meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"]  # 36 rows
    assert meta["source_datasets"] == ["embedded:cranfield"]
    assert "text-retrieval" in meta["task_categories"]
    assert meta["pretty_name"] == "hardneg synthetic hard negatives"


def test_dataset_card_how_each_config_was_made(card_text):
    # full prompt texts, model id, backend, sampling, seed and mining parameters
    assert PROMPT_QUERY in card_text and PROMPT_LLM_HN in card_text
    assert "`HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)` via the `transformers` backend" in card_text
    assert '{"max_new_tokens": 32, "temperature": 0.0}' in card_text
    assert "sampled with seed 42" in card_text
    assert "- `sampling_strategy`: `top`" in card_text and "- `k1`: `1.5`" in card_text
    assert "### `bm25_hn`" in card_text and "### `llm_hn`" in card_text and "### `queries`" in card_text


def test_dataset_card_statistics_and_cost(card_text):
    assert "| `queries` | 12 | copied_passage: 2, empty: 1 | — | — | — | — |" in card_text
    assert "| `bm25_hn` | 12 | — | 0 | 25.0% | — | 17.2 |" in card_text
    assert "| `llm_hn` | 12 | too_short: 3 | — | 8.3% | 0.61 | 0.42 |" in card_text
    assert "| negative | 17.2 | 4.1 | 9.8 | 16.9 | 27.3 |" in card_text
    assert "Skipped by filter: positive = 12." in card_text
    assert "Other statistics: dropped = `1`." in card_text  # stats the template does not know are still shown
    assert "- `num_passages`: `12`" in card_text and '- `methods`: `["llm_hn", "bm25_hn"]`' in card_text
    # cost per method: tokens and wall time
    assert "| `queries` | 1,440 | 192 | 31.5 | 0.38 |" in card_text
    assert "| `llm_hn` | 480 | 288 | 22.25 | 0.54 |" in card_text


def test_dataset_card_use_train_cite_changelog(card_text):
    assert 'load_dataset("my-org/cranfield-hn", "llm_hn", revision="v1.2.0", split="train")' in card_text
    assert (
        "accelerate launch training/train.py --config recipes/demo/train.yaml \\\n"
        "  --dataset my-org/cranfield-hn --dataset_config llm_hn --dataset_revision v1.2.0"
    ) in card_text
    assert "false negatives" in card_text and "factually wrong" in card_text
    assert (
        "Don't Retrieve, Generate: Prompting LLMs for Synthetic Training Data in Dense Retrieval" in card_text
    )
    assert "arXiv:2504.21015" in card_text and "@software{hardneg," in card_text
    newest, oldest = card_text.index("**v1.2.0**"), card_text.index("**v1.0.0**")
    assert newest < oldest  # newest first
    assert "(2026-11-01): First release." in card_text


def test_dataset_card_never_crashes_on_missing_keys():
    full = make_build_stats()
    variants = [
        {},
        {"configs": {}},
        {"configs": {"llm_hn": {}}},
        {"corpus": None, "generator": "x", "prompts": []},
    ]
    for key in full:  # drop one top-level key at a time
        variants.append({k: v for k, v in full.items() if k != key})
    for name in full["configs"]:  # and every stat of every config, one at a time
        for stat in list(full["configs"][name]):
            partial = copy.deepcopy(full)
            del partial["configs"][name][stat]
            variants.append(partial)
    for stats in variants:
        text = render_dataset_card(DatasetCardData(), stats)
        assert text.startswith("---\n") and "## Statistics" in text and "## Citation" in text
    bare = render_dataset_card(DatasetCardData(), {})
    assert 'load_dataset("ORG/NAME"' in bare and "unreleased" in bare and "No prompts were recorded" in bare


def test_prompt_stored_with_the_config_stats():
    """The build may record a config's prompt inside its own stats (stats[config]['prompt'])."""
    stats = make_build_stats()
    stats["prompts"] = {}
    stats["configs"]["llm_hn"]["prompt"] = {
        "name": "llm_hn_v2",
        "version": "2",
        "sha256": "c" * 64,
        "text": "Only this prompt.",
    }
    text = render_dataset_card(DatasetCardData(), stats)
    assert "Prompt `llm_hn_v2` (version 2, sha256 `cccccccccccc`)" in text
    assert "#### `llm_hn`: llm_hn_v2 (version 2)" in text and "Only this prompt." in text


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (250_000, "100K<n<1M"), (12_000_000, "10M<n<100M")],
)
def test_size_category(rows, bucket):
    assert size_category(rows) == bucket


def test_model_card():
    data = ModelCardData(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_id="my-org/cranfield-hn",
        dataset_config="bm25_hn",
        dataset_revision="v1.0.0",
        loss="MultipleNegativesRankingLoss",
        hyperparameters={"learning_rate": 2e-5, "per_device_train_batch_size": 32, "seed": 42},
        hardware="2 CPU cores",
        prompts={"query": "query: ", "document": "passage: "},
        train_samples=150,
        train_seconds=42.5,
        metrics=[
            {"model": "ft-bm25_hn", "dataset": "cranfield", "ndcg@10": 0.31234, "p@10": 0.081, "r@100": 0.7}
        ],
        repo_id="my-org/minilm-bm25-hn",
    )
    text = render_model_card(data)
    meta = ModelCard(text).data.to_dict()
    assert meta["library_name"] == "sentence-transformers"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["my-org/cranfield-hn"]
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert "hardneg-bm25_hn" in meta["tags"]
    assert 'load_dataset("my-org/cranfield-hn", "bm25_hn", revision="v1.0.0")' in text
    assert 'SentenceTransformer("my-org/minilm-bm25-hn")' in text
    assert "- `learning_rate`: `2e-05`" in text and "- Training triplets: 150" in text
    assert (
        "| run | ndcg@10 | p@10 | r@100 |" in text
        and "| ft-bm25_hn / cranfield | 0.3123 | 0.081 | 0.7 |" in text
    )
    assert "- transformers: " in text and "- sentence-transformers: " in text
    assert "arXiv:2504.21015" in text


def test_model_card_minimal_and_json_round_trip(tmp_path):
    data = ModelCardData(base_model="embedded:minilm", dataset_id=str(tmp_path), dataset_config="llm_hn")
    text = render_model_card(data)
    meta = ModelCard(text).data.to_dict()
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # the embedded weights' Hub id
    assert "datasets" not in meta  # a local dataset folder is not a Hub link
    assert "Not evaluated yet." in text and "revision `unpinned`" in text
    data.save(tmp_path / "card_data.json")
    assert ModelCardData.load(tmp_path / "card_data.json") == data


def test_missing_template_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="card template .* not found; fix: .*HARDNEG_CARDS_DIR"):
        render_dataset_card(DatasetCardData(), {}, template_path=tmp_path / "none.md")


@pytest.mark.integration
def test_wheel_ships_the_card_templates(tmp_path):
    """A non-editable install (the built wheel, outside the repository) renders cards from its own copy."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(repo)],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("hardneg-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import hardneg.cards as c; from pathlib import Path; "
        "assert Path(c.CARDS_DIR).is_relative_to(Path.cwd()), c.CARDS_DIR; "
        "print(c.render_dataset_card(c.DatasetCardData(), {})[:3])"
    )
    env = {k: v for k, v in os.environ.items() if k != "HARDNEG_CARDS_DIR"} | {
        "PYTHONPATH": str(tmp_path / "site")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path / "site", env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("---")
