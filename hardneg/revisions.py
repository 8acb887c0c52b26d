"""Pinned Hub revisions are enforced: a tag or branch is resolved to a commit, and the commit actually
loaded must be that commit.

``datasets`` falls back to "the latest cached version" when the Hub is unreachable, whatever revision was
asked for: with v1.0.0 and v1.1.0 cached, ``load_dataset(..., revision="v1.0.0")`` returned v1.1.0's rows.
So every Hub load site does:

1. ``resolve_revision(repo_id, revision)`` before loading: the commit sha of the pin (a 40-hex pin is
   its own commit; otherwise the Hub's answer, remembered in the Hugging Face cache's ``refs/`` folder as
   huggingface_hub does, so a later offline run can still check it). A revision the repo lacks says so.
   Offline with a tag that no earlier run resolved: refused (pin the commit sha to load offline).
2. ``check_loaded(ds, ...)`` after loading: the commit of the copy ``datasets`` loaded (the last folder of
   its Arrow cache path is the commit sha) must equal the pin's, else one line refuses it.
3. ``loaded_commit(ds)`` is recorded in cards and result files.

``HUB_ID_RE`` / ``is_hub_id`` are the one definition of a Hub repo id (``org/name``) for the whole project.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

RepoType = Literal["dataset", "model"]
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# A Hub repo id: ``org/name``, each part starting with a letter or digit (huggingface_hub's
# ``validate_repo_id`` adds the Hub's finer rules: no '--' or '..', length).
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_hub_id(source: Any) -> bool:
    """``org/name`` that is not a local path (a folder ``org/name`` next to the run is local)."""
    text = str(source or "")
    return bool(HUB_ID_RE.match(text)) and not Path(text).exists()


def offline_variable() -> str | None:
    """The environment variable that switches the Hub off (named as set, so messages name the right one)."""
    # huggingface_hub reads the first two (TRANSFORMERS_OFFLINE too), datasets the third.
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return name
    return None


def _refs_file(repo_id: str, revision: str, repo_type: RepoType) -> Path:
    from huggingface_hub import constants

    folder = f"{repo_type}s--" + repo_id.replace("/", "--")
    return Path(constants.HF_HUB_CACHE) / folder / "refs" / revision


def _remember(repo_id: str, revision: str, sha: str, repo_type: RepoType) -> None:
    path = _refs_file(repo_id, revision, repo_type)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(sha)
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the offline check later
        pass


def _exists(api, repo_id: str, repo_type: RepoType) -> bool:
    try:
        (api.dataset_info if repo_type == "dataset" else api.model_info)(repo_id, revision="main")
        return True
    except Exception:  # noqa: BLE001 - any failure means we cannot tell; report the repo as missing
        return False


def resolve_revision(repo_id: str, revision: str | None, repo_type: RepoType = "dataset") -> str | None:
    """The commit sha that ``revision`` of ``repo_id`` names (None when no revision is pinned)."""
    if not revision:
        return None
    if _SHA_RE.match(revision):
        return revision
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi()
    try:
        info = (api.dataset_info if repo_type == "dataset" else api.model_info)(repo_id, revision=revision)
    except RevisionNotFoundError:
        raise ValueError(
            f"revision '{revision}' does not exist in {repo_type} {repo_id}; fix: pass one of its tags, branches "
            "or commits (see the repo's 'Files and versions' page)"
        ) from None
    except RepositoryNotFoundError:
        if _exists(api, repo_id, repo_type):  # some servers (olah) answer 404 for a missing revision
            raise ValueError(
                f"revision '{revision}' does not exist in {repo_type} {repo_id}; fix: pass one of its tags, "
                "branches or commits (see the repo's 'Files and versions' page)"
            ) from None
        raise ValueError(
            f"{repo_type} {repo_id} does not exist on the Hub at {api.endpoint} (or is private); fix: check the id, "
            "or log in with `hf auth login` for a private repo"
        ) from None
    except Exception:  # offline mode or network failure: fall back to what an earlier run resolved
        ref = _refs_file(repo_id, revision, repo_type)
        sha = ref.read_text().strip() if ref.is_file() else ""
        if _SHA_RE.match(sha):
            return sha
        why = (
            f"{offline_variable()} is set"
            if offline_variable()
            else f"the Hub at {api.endpoint} is unreachable"
        )
        raise ValueError(
            f"cannot check that the cached {repo_type} {repo_id} is revision '{revision}': {why} and no earlier run "
            "resolved that revision; fix: connect to the Hub once, or pin the commit sha instead of the tag"
        ) from None
    _remember(repo_id, revision, info.sha, repo_type)
    return info.sha


def loaded_commit(ds) -> str | None:
    """The Hub commit a ``datasets`` Dataset was built from (its cache folder's name), or None (local data)."""
    for entry in getattr(ds, "cache_files", None) or []:
        folder = Path(entry.get("filename", "")).parent.name
        if _SHA_RE.match(folder):
            return folder
    return None


def model_commit(model) -> str | None:
    """The Hub commit a loaded SentenceTransformer / CrossEncoder's weights came from (transformers records it
    on the config as ``_commit_hash``), or None for a local folder."""
    for module in model if hasattr(model, "__iter__") else [model]:
        auto = getattr(module, "auto_model", None) or getattr(module, "model", None)
        commit = getattr(getattr(auto, "config", None), "_commit_hash", None)
        if commit and _SHA_RE.match(commit):
            return commit
    return None


def check_model_loaded(model, repo_id: str, revision: str | None, pinned: str | None = None) -> str | None:
    """Refuse a model whose loaded commit is not the pinned ``revision`` (a cached copy of another revision);
    returns the commit loaded (None for a local folder). ``pinned``: the commit ``revision`` names when the
    caller resolved it already (``hardneg.assets.ModelRef.commit``), else it is resolved here."""
    loaded = model_commit(model)
    if revision and loaded:
        pinned = pinned or resolve_revision(repo_id, revision, "model")
        if pinned and loaded != pinned:
            raise ValueError(
                f"model {repo_id}@{revision} is commit {pinned[:12]} but the copy loaded is commit {loaded[:12]}; "
                "fix: connect to the Hub so the pinned revision can be downloaded, or pin the revision that is cached"
            )
    return loaded


def check_loaded(ds, repo_id: str, revision: str | None, pinned: str | None) -> str | None:
    """Refuse ``ds`` when it is not the pinned commit; returns the commit loaded (None if unknown)."""
    loaded = loaded_commit(ds)
    if pinned and loaded and loaded != pinned:
        raise ValueError(
            f"{repo_id}@{revision} is commit {pinned[:12]} but the copy loaded is commit {loaded[:12]} (datasets "
            "fell back to another cached revision, the Hub being unreachable); fix: connect to the Hub so the "
            "pinned revision can be downloaded, or pin the revision that is cached"
        )
    return loaded
