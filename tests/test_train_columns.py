"""Training data in other layouts: a column mapping (``--columns query=anchor pos=positive neg=negative`` or a
recipe dict) or a recognised alias turns pair and triplet sets into (anchor, positive[, negative]); a missing or
ambiguous column is one line naming the columns found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from hardneg.config import ConfigError, parse
from hardneg.train import TrainConfig, load_triplets, train


def write_folder(folder: Path, ds: Dataset, config: str = "default") -> Path:
    """A local dataset in Hub layout (README ``configs:`` + parquet), as published sets are."""
    (folder / config).mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / config / "train-00000-of-00001.parquet"))
    (folder / "README.md").write_text(
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: train\n    path: {config}/train-*.parquet\n---\n"
    )
    return folder


@pytest.fixture
def foreign(tmp_path, cranfield_corpus) -> Path:
    """FlagEmbedding's layout: query, pos (list), neg (list), plus an id column; 24 rows of real passages."""
    rows = cranfield_corpus.select(range(72))
    return write_folder(
        tmp_path / "flag",
        Dataset.from_dict(
            {
                "qid": [str(i) for i in range(24)],
                "query": [f"question {i}: {rows[i]['title']}" for i in range(24)],
                "pos": [[rows[i]["text"], "a second positive"] for i in range(24)],
                "neg": [[rows[24 + i]["text"]] for i in range(24)],
            }
        ),
    )


def test_mapping_from_the_command_line_and_a_recipe(foreign, tmp_path):
    ds = load_triplets(
        str(foreign), config="default", columns=["query=anchor", "pos=positive", "neg=negative"]
    )
    assert ds.column_names == ["anchor", "positive", "negative"] and len(ds) == 24
    assert ds[0]["anchor"].startswith("question 0") and ds[0]["positive"] != "a second positive"
    recipe = tmp_path / "train.yaml"
    recipe.write_text(
        json.dumps(
            {
                "dataset": str(foreign),
                "dataset_config": "default",
                "columns": [
                    "query=anchor",
                    "pos=positive",
                    "neg=negative",
                ],  # a recipe list (the YAML type check takes lists)
            }
        )
    )
    (config,) = parse(TrainConfig, args=["--config", str(recipe)])
    assert load_triplets(str(foreign), config="default", columns=config.columns).to_list() == ds.to_list()
    (cli,) = parse(TrainConfig, args=["--columns", "query=anchor", "pos=positive", "neg=negative"])
    assert cli.columns == ["query=anchor", "pos=positive", "neg=negative"]


def test_aliases_without_a_mapping(foreign):
    ds = load_triplets(str(foreign), config="default")  # query/pos/neg are recognised role names
    assert ds.column_names == ["anchor", "positive", "negative"]


def test_pairs_by_mapping(foreign):
    ds = load_triplets(str(foreign), config="default", columns={"query": "anchor", "pos": "positive"})
    assert ds.column_names == ["anchor", "positive"] and len(ds) == 24


@pytest.mark.parametrize(
    ("columns", "extra", "expected"),
    [
        (
            ["qry=anchor", "pos=positive"],
            {},
            "no column(s) ['qry'] named in the column mapping (has ['qid', 'query', 'pos', 'neg'])",
        ),
        (
            None,
            {"question": "q"},
            "columns ['query', 'question'] could each be the anchor (has ['qid', 'query', 'pos', 'neg', 'question'])",
        ),
        (["query=anchor", "pos=anchor"], {}, "not COLUMN=ROLE with distinct roles"),
        (["query=anchor", "pos=postive"], {}, "not COLUMN=ROLE"),
        (["neg=negative"], {}, "names no anchor or no positive (has ['qid', 'query', 'pos', 'neg'])"),
    ],
)
def test_missing_or_ambiguous_column_is_one_line(foreign, tmp_path, columns, extra, expected):
    folder = foreign
    if extra:
        ds = Dataset.from_parquet(str(foreign / "default" / "train-00000-of-00001.parquet"))
        folder = write_folder(tmp_path / "extra", ds.add_column("question", [extra["question"]] * len(ds)))
    with pytest.raises(ConfigError) as info:
        load_triplets(str(folder), config="default", columns=columns)
    message = str(info.value)
    assert expected in message and "fix:" in message and "\n" not in message


def test_training_on_a_foreign_pair_layout(foreign, tmp_path):
    """A pair set trains through the same code, held-out evaluation included (next row's positive as negative)."""
    config = TrainConfig(
        dataset=str(foreign),
        dataset_config="default",
        columns=["query=anchor", "pos=positive"],
        model="embedded:minilm",
        output_dir=str(tmp_path / "model"),
        max_seq_length=16,
        per_device_train_batch_size=4,
        max_steps=1,
        eval_size=4,
        warmup_ratio=0.0,
    )
    out = train(config)
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["global_step"] == 1 and 0.0 <= summary["metrics"][0]["heldout_cosine_accuracy"] <= 1.0


def test_bad_columns_and_run_name_fail_before_any_loading():
    with pytest.raises(ConfigError, match="run_name 'a/../b' must be a plain name"):
        TrainConfig(dataset="org/name", dataset_config="llm_hn", run_name="a/../b")
    with pytest.raises(ConfigError):
        TrainConfig(dataset="org/name", dataset_config="llm_hn", columns=["query"])
