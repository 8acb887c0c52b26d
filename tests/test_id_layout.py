"""The id layout (sentence-transformers v6 ``resolve_ids``): a build publishes ``corpus``, ``queries`` and per
method a config of ids; training reads them and gets exactly the rows of the text layout; a missing id is one
line naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from scripted_llm import scripted

from hardneg.build import BuildConfig, build
from hardneg.config import ConfigError
from hardneg.hub import validate_dataset_folder
from hardneg.id_layout import GENERATED_PREFIX, ID_COLUMNS, layout_configs
from hardneg.train import load_triplets

METHODS = ["llm_hn", "bm25_hn"]


def _build(tmp_path: Path, layout: str) -> Path:
    config = BuildConfig(
        output_dir=str(tmp_path / layout),
        num_passages=8,
        methods={"llm_hn": {"max_new_tokens": 16}, "bm25_hn": {"range_max": 4}},
        false_negative_scorer=None,
        query_max_new_tokens=8,
        layout=layout,
    )
    cfg, gen = scripted()
    return build(config, cfg, generator=gen)


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("layouts"), "both")


def test_both_layouts_give_the_same_training_rows(both):
    report = validate_dataset_folder(both)
    assert {"queries", "corpus", *METHODS, *(f"{m}_ids" for m in METHODS)} <= set(report.configs)
    corpus = load_dataset(str(both), "corpus", split="train")
    assert corpus.column_names[:2] == ["id", "text"] and len(set(corpus["id"])) == len(corpus)
    assert any(
        i.startswith(GENERATED_PREFIX) for i in corpus["id"]
    )  # LLM-written negatives have no corpus id
    for method in METHODS:
        ids = load_dataset(str(both), f"{method}_ids", split="train")
        assert ids.column_names[:3] == list(ID_COLUMNS) and "anchor" not in ids.column_names
        text_rows = load_triplets(str(both), config=method)
        id_rows = load_triplets(str(both), config=f"{method}_ids")
        assert id_rows.column_names == ["anchor", "positive", "negative"]
        assert id_rows.to_list() == text_rows.to_list() and len(id_rows) > 0
    card = (both / "README.md").read_text()
    assert "holds both layouts" in card and "resolve_ids" in card and '"llm_hn_ids"' in card


def test_ids_layout_trains_under_the_method_name(tmp_path, both):
    folder = _build(tmp_path, "ids")
    configs = validate_dataset_folder(folder).configs
    assert set(configs) == {"queries", "corpus", *METHODS}
    assert load_dataset(str(folder), "bm25_hn", split="train").column_names[:3] == list(ID_COLUMNS)
    assert (
        load_triplets(str(folder), config="bm25_hn").to_list()
        == load_triplets(str(both), config="bm25_hn").to_list()
    )
    card = (folder / "README.md").read_text()
    assert "uses the\n**id layout**" in card and "Triplets (anchor, positive, negative)" not in card


def test_missing_id_is_one_line_naming_it(tmp_path, both):
    folder = tmp_path / "broken"
    shutil.copytree(both, folder)
    ids = load_dataset(str(both), "bm25_hn_ids", split="train")
    missing = ids["negative_id"][0]
    (path,) = (folder / "corpus").glob("train-*.parquet")
    table = pq.read_table(path)
    pq.write_table(
        table.take([i for i, x in enumerate(table.column("id").to_pylist()) if x != missing]), path
    )
    with pytest.raises(ConfigError) as err:
        load_triplets(str(folder), config="bm25_hn_ids")
    message = str(err.value)
    assert f"ID '{missing}' from input column 'negative_id' was not found" in message and "; fix:" in message
    assert "\n" not in message


def test_bad_layout_is_refused():
    with pytest.raises(ValueError, match="layout 'compact' is not one of text, ids, both"):
        BuildConfig(layout="compact")
    with pytest.raises(ValueError, match="layout 'x'"):
        layout_configs({}, "x")
