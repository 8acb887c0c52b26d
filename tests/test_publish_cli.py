"""builders/publish.py (what `make publish` runs): dry run output, and one clear line for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_hub_fixtures import make_build_stats, make_configs

from hardneg.dataset_folder import save_dataset_folder

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "builders" / "publish.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory, cranfield_dir):
    return save_dataset_folder(
        tmp_path_factory.mktemp("cli") / "dataset", make_configs(cranfield_dir, n=5), make_build_stats(5)
    )


def test_dry_run_prints_operations_and_card(folder):
    secret = "hf_cli_secret_should_never_show_42"
    done = _run(
        "--folder",
        str(folder),
        "--repo_id",
        "my-org/cranfield-hn",
        "--version",
        "1.0.0",
        "--license",
        "cc-by-4.0",
        env_extra={"HF_TOKEN": secret},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("DRY RUN (nothing uploaded; pass --confirm to upload): dataset my-org/cranfield-hn")
    assert "add queries/train-00000-of-00001.parquet" in out
    assert "README.md (card)" in out and 'revision="v1.0.0"' in out and "## Statistics" in out
    assert "\nlicense: cc-by-4.0\n" in out
    assert secret not in out + done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--repo_id", "my-org/x", "--version", "1.0"],
            "error: version '1.0' is not a semantic version; fix:",
        ),
        (["--version", "1.0.0"], "error: --repo_id is required; fix:"),
        (["--repo_id", "my-org/x", "--version", "1.0.0", "--kind", "model"], "has no modules.json; fix:"),
    ],
)
def test_bad_input_is_one_line(folder, args, message):
    done = _run("--folder", str(folder), *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_confirm_offline_uploads_nothing(folder):
    done = _run(
        "--folder",
        str(folder),
        "--repo_id",
        "my-org/x",
        "--version",
        "1.0.0",
        "--confirm",
        env_extra={"HF_TOKEN": "hf_x", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2 and "error: HF_HUB_OFFLINE is set, so nothing can be uploaded" in done.stderr
