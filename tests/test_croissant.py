"""croissant.json: Croissant 1.0 with the responsible-AI fields from the build, validated by mlcroissant; the
card metadata carries the Hub tags, task categories and size category."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from scripted_llm import scripted

from hardneg.build import BuildConfig, build
from hardneg.config import ConfigError
from hardneg.croissant import CROISSANT_FILE, rai_fields
from hardneg.hub import validate_dataset_folder
from hardneg.publish import release_files

mlc = pytest.importorskip("mlcroissant")  # the optional extra hardneg[croissant]; make install installs it


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    config = BuildConfig(
        output_dir=str(tmp_path_factory.mktemp("croissant") / "run"),
        num_passages=8,
        methods={"llm_hn": {"max_new_tokens": 16}, "bm25_hn": {"range_max": 4}},
        false_negative_scorer=None,
        query_max_new_tokens=8,
    )
    cfg, gen = scripted()
    return build(config, cfg, generator=gen)


def test_croissant_has_the_builds_rai_fields_and_validates(folder):
    meta = json.loads((folder / CROISSANT_FILE).read_text())
    assert meta["conformsTo"] == "http://mlcommons.org/croissant/1.0" and "rai" in meta["@context"]
    stats = json.loads((folder / "build_stats.json").read_text())
    assert "scripted" in meta["rai:dataCollection"] and "embedded:cranfield" in meta["rai:dataCollection"]
    assert any(stats["prompts"]["llm_hn"]["sha256"] in p for p in meta["rai:dataAnnotationProtocol"])
    assert "generator: scripted" in meta["rai:machineAnnotationTools"]
    assert any("empty text dropped" in p for p in meta["rai:dataPreprocessingProtocol"])
    assert {rs["name"] for rs in meta["recordSet"]} == {"queries", "llm_hn", "bm25_hn"}
    fields = {f["name"] for rs in meta["recordSet"] if rs["name"] == "llm_hn" for f in rs["field"]}
    assert {"anchor", "positive", "negative", "negative_id"} <= fields
    dataset = mlc.Dataset(jsonld=str(folder / CROISSANT_FILE))  # mlcroissant's own check
    assert dataset.metadata.data_collection == meta["rai:dataCollection"]
    assert "api_key" not in json.dumps(meta).lower()  # no generator secrets or URLs


def test_false_negative_rates_and_rejects_reach_the_rai_fields():
    stats = {
        "configs": {
            "bm25_hn": {"rows": 10, "suspected_false_negative_rate": 0.125, "false_negative_scorer": "ce-x"},
            "ce_hn": {
                "suspected_false_negative_rate": 0.0,
                "false_negative_scorer": "ce-x",
                "false_negative_same_as_guard": True,
            },
            "llm_hn": {
                "rejects": {"copied_passage": 3},
                "independent_false_negative_rate": 0.05,
                "independent_false_negative_scorer": "judge-y",
                "suspected_false_negative_rate": 0.2,
            },
        },
        "build": {"ce_scorer": "ce-x", "embedder": "unused-embedder"},
        "generator": {
            "model": "org/llm",
            "revision": "abc123",
            "settings": {"urls": ["http://u:secret@h"], "temperature": 0.7},
        },
    }
    rai = rai_fields(stats)
    assert "bm25_hn: suspected false-negative rate 12.5% (scorer ce-x)" in rai["data_biases"]
    assert any(
        b.startswith("ce_hn: suspected false-negative rate 0.0% (scorer ce-x) - 0% by construction")
        for b in rai["data_biases"]
    )
    assert "llm_hn: suspected false-negative rate 5.0% (scorer judge-y)" in rai["data_biases"]
    assert "llm_hn: rejected generator outputs copied_passage = 3" in rai["data_preprocessing_protocol"]
    assert "org/llm (revision abc123)" in rai["data_collection"] and "secret" not in json.dumps(rai)
    assert rai["machine_annotation_tools"] == ["generator: org/llm (revision abc123)", "ce_scorer: ce-x"]


def test_card_metadata_has_the_hub_tags(folder):
    front = (folder / "README.md").read_text().split("---")[1]
    meta = yaml.safe_load(front)
    assert {"sentence-transformers", "synthetic"} <= set(meta["tags"])
    assert {"sentence-similarity", "text-retrieval"} <= set(meta["task_categories"])
    assert meta["size_categories"] == ["n<1K"]


def test_invalid_croissant_is_one_line_naming_the_field(folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    meta = json.loads((broken / CROISSANT_FILE).read_text())
    meta["recordSet"][1]["field"][0]["dataType"] = "sc:Nope"
    (broken / CROISSANT_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as err:
        validate_dataset_folder(broken)
    message = str(err.value)
    assert message.startswith(f"{broken / CROISSANT_FILE} is not valid Croissant: [Metadata(")
    assert "Field(" in message and "dataType" in message and "; fix:" in message and "\n" not in message


def test_release_croissant_names_the_repo_and_version(folder):
    files, _ = release_files(validate_dataset_folder(folder), "org/hn-cranfield", "1.2.0")
    meta = json.loads(files[CROISSANT_FILE])
    assert meta["url"] == "https://huggingface.co/datasets/org/hn-cranfield" and meta["version"] == "1.2.0"
    assert "croissant.json" in {p.name for p in validate_dataset_folder(folder).files}
