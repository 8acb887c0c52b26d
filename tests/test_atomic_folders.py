"""Folders a user keeps are published atomically (issue 23): the dataset folder is written beside the old
one, checked, then swapped in; the previous good version survives any failure, disk full included (a real
20 MB tmpfs where the machine allows mounting one); no temporary file is ever matched by a data-file pattern
(``<config>/train-*``)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset
from test_hub_fixtures import make_build_stats, make_configs

import hardneg.dataset_folder as dataset_folder
from hardneg import files
from hardneg.dataset_folder import save_dataset_folder, validate_dataset_folder
from hardneg.files import recover_folder, replace_folder, write_atomic


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


def _tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``mount`` (root only); the test is skipped with the reason otherwise."""
    mount.mkdir(parents=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a tmpfs cannot be mounted here")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs: a disk that fills up."""
    yield from _tmpfs(tmp_path / "disk", "20m")


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


@pytest.fixture
def mount_point(tmp_path):
    """A 1 MB tmpfs mounted on ``tmp_path/run/dataset``: a folder that cannot be renamed."""
    yield from _tmpfs(tmp_path / "run" / "dataset", "1m")


def test_a_mount_point_is_refused_before_any_work(mount_point):
    from hardneg.build import BuildConfig
    from hardneg.config import ConfigError

    (mount_point / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="mount point.*fix: "):
        BuildConfig(output_dir=str(mount_point.parent)).preflight()  # the build's <output_dir>/dataset
    worked = []
    with (
        pytest.raises(ValueError, match="mount point.*fix: "),
        replace_folder(mount_point, what="the model folder"),
    ):
        worked.append(True)  # never reached: the refusal comes before the work
    assert not worked and (mount_point / "keep.txt").read_text() == "mine"


def test_the_current_directory_is_refused(tmp_path, monkeypatch):
    from hardneg.config import ConfigError, check_replaceable

    monkeypatch.chdir(tmp_path)
    for folder in (".", str(tmp_path), ".."):
        with pytest.raises(ConfigError, match="current directory.*fix: "):
            check_replaceable(folder)
    check_replaceable("model")  # a subfolder is fine


def test_a_failed_swap_keeps_the_complete_new_folder(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()

    def busy(new, old):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(files, "_swap_in", busy)
    with pytest.raises(ValueError, match="could not be put in place.*complete at .*fix: ") as err:
        with replace_folder(folder, what="model folder") as staging:
            (staging / "model.safetensors").write_text("weights")
    assert str(staging) in str(err.value) and (staging / "model.safetensors").read_text() == "weights"


def test_a_symlinked_folder_is_replaced_in_its_target(tmp_path):
    real = tmp_path / "disk" / "dataset"
    real.mkdir(parents=True)
    (real / "old.txt").write_text("old")
    link = tmp_path / "dataset"
    link.symlink_to(real)
    with replace_folder(link) as staging:
        (staging / "new.txt").write_text("new")
    assert link.is_symlink() and (real / "new.txt").read_text() == "new"


def test_new_files_and_folders_get_the_usual_modes(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    write_atomic(tmp_path / "run.json", "{}")
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o666 & ~umask
    with replace_folder(tmp_path / "model") as staging:
        (staging / "a.txt").write_text("a")
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o777 & ~umask


def test_recovery_takes_the_newest_backup_by_its_name_not_its_mtime(tmp_path):
    folder = tmp_path / "dataset"
    older, newer = (tmp_path / f".dataset.old-{ns:020d}-1" for ns in (1, 2))
    for path in (newer, older):  # the older backup touched last (a half-failed removal)
        path.mkdir()
        (path / "which.txt").write_text(path.name)
    os.utime(newer, (1, 1))
    recover_folder(folder)
    assert (folder / "which.txt").read_text() == newer.name


def test_ctrl_c_between_the_two_renames_puts_the_old_folder_back(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "v.txt").write_text("1")
    real_rename = os.rename
    calls = []

    def interrupted(src, dst):
        calls.append(src)
        if len(calls) == 2:  # folder -> .old-* done, Ctrl-C before the new one is renamed in
            raise KeyboardInterrupt
        real_rename(src, dst)

    with pytest.raises(KeyboardInterrupt), replace_folder(folder) as staging:
        (staging / "v.txt").write_text("2")
        monkeypatch.setattr(os, "rename", interrupted)
    monkeypatch.undo()
    assert (folder / "v.txt").read_text() == "1"


def test_publish_puts_back_a_folder_left_aside_by_a_killed_save(tmp_path, cranfield_dir):
    from hardneg.publish import publish_dataset

    folder = save_dataset_folder(tmp_path / "dataset", make_configs(cranfield_dir), make_build_stats())
    os.rename(folder, folder.parent / f".dataset.old-{1:020d}-1")
    publish_dataset(folder, "org/name", "1.0.0")  # dry run: validates the folder, contacts nothing
    assert folder.is_dir()


@pytest.mark.parametrize("fault", ["short", "unreadable"])
def test_a_bad_write_is_one_line_with_a_fix_and_keeps_the_previous_folder(
    tmp_path, cranfield_dir, monkeypatch, fault
):
    configs = make_configs(cranfield_dir)
    folder = save_dataset_folder(tmp_path / "dataset", configs, make_build_stats())
    before = _rows(folder)
    real = dataset_folder._write_parquet_shards

    def faulty(ds, target_dir, split):
        if fault == "unreadable":
            raise PermissionError(errno.EACCES, "Permission denied", str(target_dir))
        result = real(ds, target_dir, split)
        for path in target_dir.glob(f"{split}-*.parquet"):  # a file lost on the way: fewer rows read back
            path.unlink()
        return result

    monkeypatch.setattr(dataset_folder, "_write_parquet_shards", faulty)
    with pytest.raises(ValueError, match="previous .*unchanged; fix: ") as err:
        save_dataset_folder(folder, configs, make_build_stats())
    assert len(str(err.value).splitlines()) == 1
    assert _rows(folder) == before
    _no_temporaries(folder)
