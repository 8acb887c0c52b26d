"""Read path through a real Hub-API server on loopback.

olah (PyPI, MIT) serves git repos in its ``mirrors-path`` as Hub repos. Two releases of a dataset folder are
committed and tagged into a mirror with ``hardneg.publish.write_git_mirror``; a separate Python process with
``HF_ENDPOINT`` pointed at olah (and the test suite's offline switches removed) runs
``load_dataset("org/name", config, revision=...)``; the rows must equal the local folder's, per revision.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from datasets import load_dataset
from test_hub_fixtures import make_build_stats, make_configs

from hardneg.dataset_folder import save_dataset_folder
from hardneg.publish import write_git_mirror

pytestmark = pytest.mark.integration
REPO_ID = "hardneg-test/cranfield-hn"

LOADER = """
import json, sys
from datasets import load_dataset
repo_id, revision, out = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {c: load_dataset(repo_id, c, revision=revision, split="train").to_list() for c in ("queries", "llm_hn", "bm25_hn")}
default = load_dataset(repo_id, revision=revision, split="train")
rows["_default_columns"] = default.column_names
from huggingface_hub import hf_hub_download
rows["_readme"] = open(hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision)).read()
open(out, "w").write(json.dumps(rows))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _closed_port() -> int:
    """A loopback port nobody listens on (olah's unused upstream)."""
    return _free_port()


@pytest.fixture
def olah_server(tmp_path):
    """Start olah on a free loopback port in offline mode; yield (endpoint, mirrors path); always stop it."""
    pytest.importorskip("olah")
    port = _free_port()
    mirrors = tmp_path / "mirrors"
    mirrors.mkdir()
    upstream = f"127.0.0.1:{_closed_port()}"
    config = tmp_path / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'mirrors-path = ["{mirrors}"]\nrepos-path = "{tmp_path / "olah-repos"}"\n'
        f'hf-scheme = "http"\nhf-netloc = "{upstream}"\nhf-lfs-netloc = "{upstream}"\n'
        f'mirror-scheme = "http"\nmirror-netloc = "127.0.0.1:{port}"\nmirror-lfs-netloc = "127.0.0.1:{port}"\n'
        "[accessibility]\noffline = true\n"
    )
    log = open(tmp_path / "olah.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "olah.server", "-c", str(config)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"olah exited with {proc.returncode}: {(tmp_path / 'olah.log').read_text()[-2000:]}"
                )
            try:
                urllib.request.urlopen(f"{endpoint}/api/datasets/{REPO_ID}/revision/main", timeout=2)
                break
            except OSError as err:
                # HTTP errors (e.g. 404 before the mirror exists) mean the server is up
                if getattr(err, "code", None) is not None:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"olah did not start in 30 s: {(tmp_path / 'olah.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield endpoint, mirrors
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _load_through_hub(endpoint: str, revision: str, tmp_path: Path) -> dict:
    """load_dataset in a clean process: no offline switches, HF_ENDPOINT at olah, empty caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp_path / f"hf-home-{revision}"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
    )
    out = tmp_path / f"rows-{revision}.json"
    done = subprocess.run(
        [sys.executable, "-c", LOADER, REPO_ID, revision, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_load_dataset_by_revision_through_olah(olah_server, tmp_path, cranfield_dir):
    endpoint, mirrors = olah_server
    configs = make_configs(cranfield_dir)
    v1 = save_dataset_folder(tmp_path / "v1", configs, make_build_stats())
    write_git_mirror(v1, mirrors, REPO_ID, "1.0.0")
    v2 = save_dataset_folder(
        tmp_path / "v2", {k: v.select(range(4)) for k, v in configs.items()}, make_build_stats(4)
    )
    write_git_mirror(v2, mirrors, REPO_ID, "1.1.0")
    with pytest.raises(ValueError, match="already has tag v1.1.0"):
        write_git_mirror(v2, mirrors, REPO_ID, "1.1.0")

    for revision, folder, n in (("v1.0.0", v1, 12), ("v1.1.0", v2, 4), ("main", v2, 4)):
        remote = _load_through_hub(endpoint, revision, tmp_path)
        for config in ("queries", "llm_hn", "bm25_hn"):
            local = load_dataset(
                str(folder), config, split="train", cache_dir=str(tmp_path / "cache")
            ).to_list()
            assert len(remote[config]) == n
            assert remote[config] == local, (revision, config)
        assert remote["_default_columns"][:2] == ["query_id", "query"]  # the default config is `queries`
        if revision != "main":  # each release's card names its own revision
            assert (
                f'load_dataset("{REPO_ID}", "llm_hn", revision="{revision}", split="train")'
                in remote["_readme"]
            )
    changelog = remote["_readme"][remote["_readme"].index("## Changelog") :]
    assert "**v1.1.0**" in changelog and "**v1.0.0**" in changelog
