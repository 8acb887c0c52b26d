"""Folders a user keeps are published atomically (issue 23): the dataset folder is written beside the old
one, checked, then swapped in; the previous good version survives any failure, disk full included (a real
20 MB tmpfs where the machine allows mounting one); no temporary file is ever matched by a data-file pattern
(``<config>/train-*``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset
from test_hub_fixtures import make_build_stats, make_configs

import hardneg.dataset_folder as dataset_folder
from hardneg.dataset_folder import save_dataset_folder, validate_dataset_folder
from hardneg.files import recover_folder


def _rows(folder: Path) -> dict[str, int]:
    return {c: len(load_dataset(str(folder), c, split="train")) for c in ("queries", "llm_hn", "bm25_hn")}


def _no_temporaries(folder: Path) -> None:
    """Nothing beside or inside the folder that a later save, load_dataset or a glob would trip on."""
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]
    data_files = {p for p in folder.glob("*/train-*")}
    assert data_files == {p for p in folder.glob("*/train-*-of-*.parquet")}, data_files


def test_resave_keeps_other_configs_and_leaves_nothing_behind(tmp_path, cranfield_dir):
    configs = make_configs(cranfield_dir)
    folder = save_dataset_folder(tmp_path / "dataset", configs, make_build_stats())
    (folder / "notes.txt").write_text("mine")
    smaller = {name: table.select(range(3)) for name, table in configs.items() if name != "bm25_hn"}
    save_dataset_folder(folder, smaller, make_build_stats())
    assert (folder / "notes.txt").read_text() == "mine"  # a file the save does not write is kept
    assert (folder / "bm25_hn").is_dir()  # as before: other configs stay on disk, out of the card
    assert validate_dataset_folder(folder).configs == {"queries": {"train": 3}, "llm_hn": {"train": 3}}
    _no_temporaries(folder)


def test_failure_while_writing_keeps_the_previous_folder(tmp_path, cranfield_dir, monkeypatch):
    configs = make_configs(cranfield_dir)
    folder = save_dataset_folder(tmp_path / "dataset", configs, make_build_stats())
    before = _rows(folder)
    card = (folder / "README.md").read_text()
    real = dataset_folder._write_parquet_shards
    calls = []

    def dies_on_second_config(ds, target_dir, split):
        calls.append(target_dir.name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C, or a kill, half-way through the parquet files
        return real(ds, target_dir, split)

    monkeypatch.setattr(dataset_folder, "_write_parquet_shards", dies_on_second_config)
    bigger = {name: Dataset.from_list(table.to_list() * 2) for name, table in configs.items()}
    with pytest.raises(KeyboardInterrupt):
        save_dataset_folder(folder, bigger, make_build_stats())
    assert _rows(folder) == before and (folder / "README.md").read_text() == card
    _no_temporaries(folder)


def test_a_swap_stopped_between_its_renames_is_put_back(tmp_path, cranfield_dir):
    folder = save_dataset_folder(tmp_path / "dataset", make_configs(cranfield_dir), make_build_stats())
    before = _rows(folder)
    aside = folder.parent / f".dataset.old-{uuid.uuid4().hex[:8]}"
    os.rename(folder, aside)  # the state right after the first rename of a killed swap
    recover_folder(folder)
    assert _rows(folder) == before and not aside.exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (root only); skipped with the reason where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a small tmpfs cannot be made here")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_rebuild_leaves_the_previous_dataset_loadable(small_disk, cranfield_dir, capsys):
    configs = make_configs(cranfield_dir)
    folder = save_dataset_folder(small_disk / "dataset", configs, make_build_stats())
    before = _rows(folder)
    card = (folder / "README.md").read_text()
    # ~24 MB of text that does not compress: more than the disk holds beside the old folder
    noise = [os.urandom(6000).hex() for _ in range(2000)]
    huge = dict(configs)
    huge["queries"] = Dataset.from_dict(
        {
            "query_id": [f"q{i}" for i in range(len(noise))],
            "query": ["q"] * len(noise),
            "positive_id": [f"d{i}" for i in range(len(noise))],
            "positive": noise,
        }
    )
    with pytest.raises(ValueError, match="no space left on the device.*previous version is unchanged.*fix: "):
        save_dataset_folder(folder, huge, make_build_stats())
    assert _rows(folder) == before and (folder / "README.md").read_text() == card
    assert validate_dataset_folder(folder).configs["queries"] == {"train": before["queries"]}
    _no_temporaries(folder)
    # the disk has room again for a normal rebuild
    save_dataset_folder(folder, configs, make_build_stats())
    assert _rows(folder) == before
