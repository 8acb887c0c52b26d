"""Hub folder layout: every config loads with load_dataset(folder, config) and round-trips; bad input is refused."""

from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard
from test_hub_fixtures import make_build_stats, make_configs

from hardneg.cards import DatasetCardData
from hardneg.dataset_folder import save_dataset_folder, validate_dataset_folder
from hardneg.publish import write_git_mirror


@pytest.fixture(scope="module")
def configs(cranfield_dir):
    return make_configs(cranfield_dir)


@pytest.fixture
def folder(tmp_path, configs):
    return save_dataset_folder(tmp_path / "dataset", configs, make_build_stats())


def test_every_config_loads_and_round_trips(folder, configs, tmp_path):
    for name, original in configs.items():
        loaded = load_dataset(str(folder), name, split="train", cache_dir=str(tmp_path / "cache"))
        assert loaded.column_names == original.column_names
        assert loaded.to_list() == original.to_list(), name
    # the default config is `queries`
    default = load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    assert default.column_names[:2] == ["query_id", "query"]


def test_layout_and_yaml_written_by_datasets(folder):
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "bm25_hn/train-00000-of-00001.parquet",
        "build_stats.json",
        "card_data.json",
        "croissant.json",  # Croissant with the build's RAI fields (hardneg.croissant)
        "llm_hn/train-00000-of-00001.parquet",
        "queries/train-00000-of-00001.parquet",
        "recipes/build.yaml",  # the build's effective recipe (issue 12): the card's rebuild command reads it
    ]
    card = DatasetCard.load(folder / "README.md")
    configs = {c["config_name"]: c for c in card.data.configs}
    assert configs["llm_hn"]["data_files"] == [{"split": "train", "path": "llm_hn/train-*"}]
    assert configs["queries"]["default"] is True and "default" not in configs["bm25_hn"]
    info = {i["config_name"]: i for i in card.data.dataset_info}
    assert info["bm25_hn"]["splits"] == [
        {"name": "train", "num_bytes": info["bm25_hn"]["dataset_size"], "num_examples": 12}
    ]
    assert [f["name"] for f in info["llm_hn"]["features"]][:3] == ["anchor", "positive", "negative"]
    assert json.loads((folder / "build_stats.json").read_text()) == make_build_stats()


def test_all_none_columns_get_design_types(folder):
    report = validate_dataset_folder(folder)
    llm, bm25 = report.features["llm_hn"], report.features["bm25_hn"]
    # LLM-written negatives have no id/rank/score: typed as in docs/design.md, not `null`
    for column in ("negative_id", "negative_rank", "positive_score", "negative_score"):
        assert llm[column] == bm25[column], column
    assert llm["negative_id"].dtype == "string" and llm["negative_rank"].dtype == "int64"


def test_validation_split_and_report(tmp_path, cranfield_dir):
    folder = save_dataset_folder(
        tmp_path / "ds", make_configs(cranfield_dir, n=6, validation=True), make_build_stats(6)
    )
    report = validate_dataset_folder(folder)
    assert report.configs == {
        name: {"train": 4, "validation": 2} for name in ("bm25_hn", "llm_hn", "queries")
    }
    assert report.default_config == "queries"
    assert report.total_rows == 18
    assert "validation (2)" in report.card
    val = load_dataset(str(folder), "bm25_hn", split="validation", cache_dir=str(tmp_path / "cache"))
    assert len(val) == 2


def test_resave_replaces_a_config(tmp_path, configs):
    folder = save_dataset_folder(tmp_path / "ds", configs, make_build_stats())
    smaller = {k: v.select(range(5)) for k, v in configs.items()}
    save_dataset_folder(folder, smaller, make_build_stats(5), card_data=DatasetCardData(license="cc-by-4.0"))
    report = validate_dataset_folder(folder)
    assert report.configs["llm_hn"] == {"train": 5}
    assert "license: cc-by-4.0" in (folder / "README.md").read_text()
    save_dataset_folder(folder, smaller, make_build_stats(5))  # no card_data: the earlier fields stay
    assert "license: cc-by-4.0" in (folder / "README.md").read_text()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: {**c, "llm_hn": c["llm_hn"].select([])}, "split 'train' is empty"),
        (
            lambda c: {**c, "bm25_hn": c["bm25_hn"].select_columns(["positive", "anchor", "negative"])},
            "put anchor, positive, negative first",
        ),
        (lambda c: {**c, "queries": c["queries"].remove_columns("query")}, "lacks column(s) ['query']"),
        (lambda c: {**c, "bad name!": c["llm_hn"]}, "not usable on the Hub"),
        (lambda c: {k: v for k, v in c.items() if k != "queries"}, "default config 'queries' is not among"),
        (lambda c: {}, "no configs to save"),
    ],
)
def test_save_refuses_bad_configs(tmp_path, configs, mutate, message):
    target = tmp_path / "ds"
    with pytest.raises(ValueError) as err:
        save_dataset_folder(target, mutate(dict(configs)), make_build_stats())
    assert message in str(err.value)
    assert not (target / "README.md").exists()  # nothing half-written


def test_validate_catches_tampering(folder):
    # a parquet file rewritten with other rows/columns no longer matches the README's dataset_info
    path = folder / "llm_hn" / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"anchor": ["a"], "positive": ["p"], "negative": ["n"]}), path)
    with pytest.raises(ValueError, match="config 'llm_hn' does not load"):
        validate_dataset_folder(folder)


def test_validate_catches_a_config_without_files(folder):
    for p in (folder / "bm25_hn").glob("*.parquet"):
        p.unlink()
    with pytest.raises(ValueError, match="config 'bm25_hn' split 'train' has no data files"):
        validate_dataset_folder(folder)


def test_validate_missing_folder_and_files(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="make build"):
        validate_dataset_folder(tmp_path / "nope")
    (folder / "build_stats.json").unlink()
    with pytest.raises(FileNotFoundError, match="build_stats.json"):
        validate_dataset_folder(folder)


@pytest.mark.integration
def test_git_mirror_releases_are_tagged_and_immutable(folder, tmp_path):
    repo = write_git_mirror(folder, tmp_path / "mirrors", "my-org/cranfield-hn", "1.0.0", notes="First.")
    assert repo == tmp_path / "mirrors" / "datasets" / "my-org" / "cranfield-hn"
    write_git_mirror(folder, tmp_path / "mirrors", "my-org/cranfield-hn", "v1.0.1")
    with pytest.raises(ValueError, match="already has tag v1.0.1"):
        write_git_mirror(folder, tmp_path / "mirrors", "my-org/cranfield-hn", "1.0.1")

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout

    assert git("tag", "--list").split() == ["v1.0.0", "v1.0.1"]
    readme_v1 = git("show", "v1.0.0:README.md")
    assert 'revision="v1.0.0"' in readme_v1 and "First." in readme_v1
    changelog = git("show", "v1.0.1:README.md").split("## Changelog")[1]
    assert "**v1.0.1**" in changelog and "**v1.0.0**" in changelog and "First." in changelog
    assert sorted(git("ls-tree", "-r", "--name-only", "v1.0.0").split()) == sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    )
