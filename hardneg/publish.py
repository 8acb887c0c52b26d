"""Versioned publishing of dataset folders and trained models: to the Hub, or to a local git mirror.

Publishing is a dry run by default; ``confirm=True`` uploads every file in ONE ``HfApi.create_commit`` and
then tags it ``v<version>`` with ``HfApi.create_tag``. An existing tag is never moved or overwritten, so a
failure before the tag leaves every earlier release intact. The token comes from ``HF_TOKEN`` or
``hf auth login`` (``huggingface_hub.get_token``) and is never printed, logged or written.
``write_git_mirror`` commits and tags the same release files into a local git repo that olah serves as a
Hub repo. The dataset folder itself (layout, card metadata, validation) is ``hardneg.dataset_folder``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from datasets.info import DatasetInfosDict
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard, HfApi, get_token
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from hardneg.cards import ModelCardData, dataset_card_extras, render_dataset_card, render_model_card
from hardneg.config import ConfigError
from hardneg.croissant import CROISSANT_FILE, croissant_json
from hardneg.croissant import available as croissant_available
from hardneg.dataset_folder import (
    BUILD_STATS_FILE,
    CARD_DATA_FILE,
    README_FILE,
    FolderReport,
    card_data_json,
    load_card_data,
    validate_dataset_folder,
)
from hardneg.errors import first_line
from hardneg.files import recover_folder
from hardneg.options import check_fields
from hardneg.revisions import HUB_ID_RE, is_hub_id, offline_variable

_SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_MODEL_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


# ---------------------------------------------------------------------------------------------------------
# publishing


@dataclass
class PublishResult:
    """What a publish did (or, in a dry run, would do)."""

    repo_id: str
    repo_type: Literal["dataset", "model"]
    version: str
    tag: str
    dry_run: bool
    operations: list[str]
    card: str
    commit_oid: str | None = None
    commit_url: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = "DRY RUN (nothing uploaded; pass --confirm to upload)" if self.dry_run else "PUBLISHED"
        lines = [f"{head}: {self.repo_type} {self.repo_id} version {self.version} -> tag {self.tag}"]
        lines += [f"  {op}" for op in self.operations]
        if self.commit_oid:
            lines.append(f"commit {self.commit_oid} tagged {self.tag}: {self.commit_url or ''}".rstrip())
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Remote:
    exists: bool
    head: str | None = None
    tags: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def normalise_version(version: str) -> str:
    """'1.0.0' or 'v1.0.0' -> '1.0.0'; anything that is not semantic versioning is refused."""
    given = (version or "").strip()
    version = given[1:] if given.startswith("v") else given
    if not _SEMVER_RE.match(version):
        raise ValueError(
            f"version '{given}' is not a semantic version; fix: use MAJOR.MINOR.PATCH, e.g. 1.0.0"
        )
    return version


def _check_repo_id(repo_id: str) -> None:
    if not repo_id or not HUB_ID_RE.match(repo_id):
        raise ValueError(f"repo id '{repo_id}' is not ORG/NAME; fix: pass --repo_id my-org/my-dataset")
    try:  # the Hub's own rules (no '--' or '..', length, ...): a dry run must refuse what an upload would
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(
            f"repo id '{repo_id}' is refused by the Hub ({first_line(err)}); fix: pass a valid ORG/NAME"
        ) from None


class _Secret:
    """Keeps a token out of every message this module raises."""

    def __init__(self, token: str | None):
        self.token = token

    def scrub(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text


def _connect(api: HfApi | None, token: str | None) -> tuple[HfApi, _Secret]:
    """Find the token (argument, HF_TOKEN or `hf auth login`) and check it against the Hub."""
    token = token or getattr(api, "token", None) or get_token()
    if not token:
        raise RuntimeError(
            "no Hugging Face token found; fix: run `hf auth login` or set HF_TOKEN to a write token"
        )
    secret = _Secret(token)
    api = api or HfApi()
    try:
        api.whoami(token=token)
    except OfflineModeIsEnabled:
        raise RuntimeError(
            f"{offline_variable() or 'offline mode'} is set, so nothing can be uploaded; "
            f"fix: unset {offline_variable() or 'HF_HUB_OFFLINE'}"
        ) from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status == 401:
            raise RuntimeError(
                "the Hugging Face token was rejected (401); fix: `hf auth login` with a write token"
            ) from None
        raise RuntimeError(f"the Hub refused the token check: {secret.scrub(first_line(err))}") from None
    except Exception as err:  # network errors come from httpx/requests/socket
        raise RuntimeError(
            f"cannot reach the Hub at {api.endpoint} ({type(err).__name__}); fix: check the network, HF_ENDPOINT, "
            "or publish later (nothing was uploaded)"
        ) from None
    return api, secret


def _remote_state(api: HfApi, repo_id: str, repo_type: str, token: str) -> _Remote:
    try:
        refs = api.list_repo_refs(repo_id, repo_type=repo_type, token=token)
    except RepositoryNotFoundError:
        return _Remote(exists=False)
    head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
    files = api.list_repo_files(repo_id, repo_type=repo_type, revision=head, token=token) if head else []
    return _Remote(exists=True, head=head, tags=[t.name for t in refs.tags], files=list(files))


def _check_remote_schema(remote_readme: str | None, local: FolderReport, repo_id: str) -> None:
    """Refuse to put configs whose columns differ from the same configs already on the repo."""
    if not remote_readme:
        return
    remote_infos = DatasetInfosDict.from_dataset_card_data(DatasetCard(remote_readme).data)
    for name, features in local.features.items():
        info = remote_infos.get(name)
        if info is not None and info.features is not None and info.features != features:
            raise ValueError(
                f"{repo_id} already holds config '{name}' with a different schema (remote columns "
                f"{list(info.features)}, local {list(features)}); fix: publish to a new repo, or pass "
                "--allow_schema_change and bump the major version"
            )


def _operations(files: dict[str, Path | bytes], remote: _Remote) -> tuple[list, list[str]]:
    ops: list = []
    described: list[str] = []
    for path_in_repo, source in sorted(files.items()):
        size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
        ops.append(CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=source))
        described.append(f"add {path_in_repo} ({size:,} bytes)")
    for stale in sorted(set(remote.files) - set(files) - {".gitattributes"}):
        ops.append(CommitOperationDelete(path_in_repo=stale))
        described.append(f"delete {stale} (not in this release)")
    return ops, described


@dataclass
class _Release:
    """One release on its way: where it goes and, once connected (``confirm``), what the repo holds."""

    repo_id: str
    repo_type: Literal["dataset", "model"]
    version: str
    confirm: bool
    api: HfApi | None = None
    secret: _Secret = field(default_factory=lambda: _Secret(None))
    remote: _Remote = field(default_factory=lambda: _Remote(exists=False))
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls, repo_id: str, repo_type: Literal["dataset", "model"], version: str, confirm: bool
    ) -> _Release:
        """Refuse a bad repo id or version before anything else happens."""
        _check_repo_id(repo_id)
        return cls(repo_id, repo_type, normalise_version(version), confirm)

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    def connect(self, api: HfApi | None, token: str | None) -> None:
        """Token + network + existing-tag checks (confirm only; a dry run stays offline)."""
        self.api = api
        if not self.confirm:
            self.notes.append(
                "dry run: the token, the network, existing tags and the remote schema are checked with --confirm"
            )
            return
        self.api, self.secret = _connect(api, token)
        try:
            self.remote = _remote_state(self.api, self.repo_id, self.repo_type, self.secret.token)
        except Exception as err:
            raise RuntimeError(
                f"cannot read {self.repo_id} on the Hub: {self.secret.scrub(first_line(err))}"
            ) from None
        if self.tag in self.remote.tags:
            raise ValueError(
                f"{self.repo_type} {self.repo_id} already has tag {self.tag}; releases are immutable; "
                "fix: pass a higher --version"
            )

    def remote_text(self, filename: str) -> str | None:
        """A text file of the repo's current main (None in a dry run or when it has none)."""
        if not self.remote.exists or filename not in self.remote.files:
            return None
        try:
            path = self.api.hf_hub_download(
                self.repo_id,
                filename,
                repo_type=self.repo_type,
                revision=self.remote.head,
                token=self.secret.token,
            )
        except EntryNotFoundError:
            return None
        return Path(path).read_text(encoding="utf-8")

    def finish(
        self, files: dict[str, Path | bytes], card: str, *, private: bool, message: str
    ) -> PublishResult:
        """The end every release shares: list the operations, then (``confirm``) one commit and the tag."""
        if private and self.remote.exists:
            self.notes.append(f"{self.repo_id} exists: --private does not change its visibility")
        operations, described = _operations(files, self.remote)
        result = PublishResult(
            self.repo_id,
            self.repo_type,
            self.version,
            self.tag,
            not self.confirm,
            described,
            card,
            notes=self.notes,
        )
        if self.confirm:
            result.commit_oid, result.commit_url = self._upload(operations, private, message)
        return result

    def _upload(self, operations: list, private: bool, message: str) -> tuple[str, str | None]:
        """create_repo (if needed) -> ONE create_commit -> create_tag. Returns (commit oid, commit url)."""
        api, token, repo_id, repo_type, tag = (
            self.api,
            self.secret.token,
            self.repo_id,
            self.repo_type,
            self.tag,
        )
        try:
            if not self.remote.exists:
                api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token)
            info = api.create_commit(
                repo_id,
                operations,
                commit_message=message,
                repo_type=repo_type,
                token=token,
                parent_commit=self.remote.head,
            )
        except Exception as err:
            raise RuntimeError(
                f"upload to {repo_id} failed before tagging ({self.secret.scrub(first_line(err))}); "
                "earlier releases are untouched; fix: rerun the same command"
            ) from None
        try:
            api.create_tag(
                repo_id, tag=tag, revision=info.oid, repo_type=repo_type, token=token, tag_message=message
            )
        except Exception as err:
            raise RuntimeError(
                f"commit {info.oid} reached {repo_id} but tag {tag} could not be created "
                f"({self.secret.scrub(first_line(err))}); earlier tags are untouched; "
                f"fix: `hf repo tag create {repo_id} {tag} --revision {info.oid} --repo-type {repo_type}`"
            ) from None
        return info.oid, getattr(info, "commit_url", None)


def _with_card_updates(card_data: Any, card_updates: dict[str, Any] | None, what: str) -> Any:
    """``card_data`` with the non-None ``card_updates`` applied; unknown field names are refused."""
    updates = {k: v for k, v in (card_updates or {}).items() if v is not None}
    unknown = sorted(set(updates) - set(type(card_data).__dataclass_fields__))
    if unknown:
        raise ValueError(
            f"unknown {what} field(s) {unknown}; fix: use fields of hardneg.cards.{type(card_data).__name__}"
        )
    return dataclasses.replace(card_data, **updates)


def release_files(
    report: FolderReport,
    repo_id: str,
    version: str,
    *,
    notes: str | None = None,
    previous_card_json: str | None = None,
    card_updates: dict[str, Any] | None = None,
) -> tuple[dict[str, Path | bytes], str]:
    """The files of a dataset release: data + build_stats as they are, README/card_data for this version.

    The card names the repo and ``revision="v<version>"``; its changelog is the previous release's
    (``previous_card_json``, the repo's current ``card_data.json``) + the folder's own + this release.
    """
    tag = f"v{version}"
    card_data = _with_card_updates(load_card_data(report.folder), card_updates, "card")
    history = json.loads(previous_card_json).get("changelog", []) if previous_card_json else []
    known = {e.get("version") for e in history}
    history += [
        e for e in card_data.changelog if e.get("version") not in known and e.get("version") != version
    ]
    history.append(
        {"version": version, "date": _dt.date.today().isoformat(), "notes": notes or f"Release {tag}."}
    )
    card_data.repo_id, card_data.version, card_data.changelog = repo_id, version, history
    build_stats = json.loads((report.folder / BUILD_STATS_FILE).read_text(encoding="utf-8"))
    card = render_dataset_card(
        card_data,
        build_stats,
        card_metadata=report.card_metadata,
        splits=report.configs,
        default_config=report.default_config,
        **dataset_card_extras(report.folder),
    )
    files: dict[str, Path | bytes] = {
        p.relative_to(report.folder).as_posix(): p
        for p in report.files
        if p.name not in (README_FILE, CARD_DATA_FILE, CROISSANT_FILE)
    }
    files[README_FILE] = card.encode("utf-8")
    files[CARD_DATA_FILE] = card_data_json(card_data).encode("utf-8")
    if croissant_available():  # names this release's repo and version, as the card does
        files[CROISSANT_FILE] = croissant_json(report.features, build_stats, card_data).encode("utf-8")
    return files, card


def publish_dataset(
    folder: str | Path,
    repo_id: str,
    version: str,
    *,
    private: bool = False,
    confirm: bool = False,
    notes: str | None = None,
    allow_schema_change: bool = False,
    card_updates: dict[str, Any] | None = None,
    token: str | None = None,
    api: HfApi | None = None,
) -> PublishResult:
    """Validate a dataset folder and publish it as version ``version`` of ``repo_id``.

    Args:
        folder: a folder written by ``save_dataset_folder`` (``RUN/dataset``).
        repo_id: ``ORG/NAME`` on the Hub; created (public unless ``private``) if it does not exist.
        version: semantic version (``1.0.0``); the release becomes git tag ``v1.0.0``. An existing tag is an
            error: releases are never moved or overwritten.
        confirm: ``False`` (default) is a dry run: validate, render the card, list the operations, upload
            nothing and contact nothing. ``True`` uploads all files in one commit, then creates the tag.
        notes: changelog line for this release (default: "Release v<version>.").
        allow_schema_change: let a config change its columns relative to the repo's current main.
        card_updates: card fields to set for this release, e.g. ``{"license": "cc-by-4.0"}``
            (``hardneg.cards.DatasetCardData`` field names; ``None`` values are ignored).
        token: a Hub token; default ``HF_TOKEN`` or the ``hf auth login`` token. Never printed.
        api: an ``HfApi`` (default: a new one on ``HF_ENDPOINT``).
    """
    release = _Release.start(repo_id, "dataset", version, confirm)
    recover_folder(folder)  # a save killed mid-swap: publish the previous folder, not nothing
    report = validate_dataset_folder(folder)
    release.connect(api, token)
    if confirm and not allow_schema_change:
        _check_remote_schema(release.remote_text(README_FILE), report, repo_id)
    files, card = release_files(
        report,
        repo_id,
        release.version,
        notes=notes,
        previous_card_json=release.remote_text(CARD_DATA_FILE),
        card_updates=card_updates,
    )
    message = f"Release {release.tag}: " + ", ".join(
        f"{n} ({sum(r.values()):,} rows)" for n, r in report.configs.items()
    )
    return release.finish(files, card, private=private, message=message)


def _model_files(folder: Path) -> dict[str, Path]:
    skip_dirs = {".git", ".cache", "__pycache__"}
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(p in skip_dirs or p.startswith("checkpoint-") for p in rel.parts[:-1]):
            continue
        files[rel.as_posix()] = path
    return files


def validate_model_folder(folder: str | Path) -> dict[str, Path]:
    """A sentence-transformers model folder: modules.json, weights; returns the files to upload."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"model folder '{folder}' not found; fix: train first (make train) or pass --folder"
        )
    files = _model_files(folder)
    if "modules.json" not in files:
        raise ValueError(
            f"'{folder}' has no modules.json; fix: save the model with SentenceTransformer.save_pretrained"
        )
    if not any(Path(f).name in _MODEL_WEIGHTS for f in files):
        raise ValueError(
            f"'{folder}' holds no model weights ({', '.join(_MODEL_WEIGHTS)}); fix: save the trained model"
        )
    return files


def publish_model(
    folder: str | Path,
    repo_id: str,
    version: str,
    *,
    card_data: ModelCardData | None = None,
    card_updates: dict[str, Any] | None = None,
    rendered_card: str | None = None,
    private: bool = False,
    confirm: bool = False,
    notes: str | None = None,
    token: str | None = None,
    api: HfApi | None = None,
) -> PublishResult:
    """Publish a trained sentence-transformers folder as version ``version`` of model repo ``repo_id``.

    The model card is rendered from ``card_data`` (or the folder's ``card_data.json`` written by training)
    with the repo id filled in; it records the dataset id, config and revision. ``card_updates`` overrides
    card fields, e.g. ``{"dataset_id": "my-org/cranfield-hn", "dataset_revision": "v1.0.0"}`` for a model
    trained on a local folder that was published since. ``rendered_card``: the card the caller has just
    rendered from ``card_data`` for this ``repo_id`` (training's ``push_to_hub``), uploaded as is. Dry run by
    default; with ``confirm=True``: one commit, then tag ``v<version>`` (an existing tag is refused).
    """
    if rendered_card is not None and (card_data is None or card_updates or card_data.repo_id != repo_id):
        raise ValueError(
            "rendered_card needs the card_data it was rendered from, with repo_id set to the repo published "
            "to and no card_updates; fix: pass both, or leave rendered_card out to render the card here"
        )
    release = _Release.start(repo_id, "model", version, confirm)
    folder = Path(folder)
    recover_folder(folder)
    files: dict[str, Path | bytes] = dict(validate_model_folder(folder))
    if card_data is None:
        if not (folder / CARD_DATA_FILE).is_file():
            raise FileNotFoundError(
                f"'{folder}' has no {CARD_DATA_FILE}; fix: pass card_data (hardneg.cards.ModelCardData) or save it "
                "with ModelCardData.save(folder / 'card_data.json') after training"
            )
        card_data = ModelCardData.load(folder / CARD_DATA_FILE)
    card_data = dataclasses.replace(
        _with_card_updates(card_data, card_updates, "model card"), repo_id=repo_id
    )
    local_note = None
    if not is_hub_id(card_data.dataset_id):
        local_note = (
            f"the card names the local dataset '{card_data.dataset_id}'; pass --dataset_id ORG/NAME "
            "--dataset_revision vX.Y.Z (its published release) so others can reload the training data"
        )
    card = rendered_card
    if card is None:  # sentence-transformers' card from training: hardneg's block is re-rendered in it
        readme = folder / README_FILE
        card = render_model_card(
            card_data, base_card=readme.read_text(encoding="utf-8") if readme.is_file() else None
        )
    files[README_FILE] = card.encode("utf-8")
    files[CARD_DATA_FILE] = (json.dumps(card_data.to_dict(), indent=2, default=str) + "\n").encode("utf-8")
    release.connect(api, token)
    if local_note:
        release.notes.append(local_note)
    message = f"Release {release.tag}: trained on {card_data.dataset_id} ({card_data.dataset_config}"
    message += f"@{card_data.dataset_revision})" if card_data.dataset_revision else ")"
    if notes:
        message += f". {notes}"
    return release.finish(files, card, private=private, message=message)


def write_git_mirror(
    folder: str | Path,
    mirrors_path: str | Path,
    repo_id: str,
    version: str,
    *,
    repo_type: Literal["dataset", "model"] = "dataset",
    notes: str | None = None,
) -> Path:
    """Commit ``folder`` as release ``v<version>`` of a local git mirror that olah serves as a Hub repo.

    The mirror lives at ``<mirrors_path>/<repo_type>s/<ORG>/<NAME>`` (olah's ``mirrors-path`` layout); each
    call replaces the tree with the folder's files, commits on ``main`` and adds tag ``v<version>``. An
    existing tag is refused, as on the Hub. Lets a lab without Hub access serve releases to
    ``load_dataset("ORG/NAME", config, revision="v1.0.0")`` with ``HF_ENDPOINT`` pointed at olah.
    """
    _check_repo_id(repo_id)
    tag = f"v{normalise_version(version)}"
    folder = Path(folder)
    repo = Path(mirrors_path) / f"{repo_type}s" / repo_id
    files: dict[str, Path | bytes]
    if repo_type == "dataset":
        previous = repo / CARD_DATA_FILE
        files, _ = release_files(
            validate_dataset_folder(folder),
            repo_id,
            tag[1:],
            notes=notes,
            previous_card_json=previous.read_text(encoding="utf-8") if previous.is_file() else None,
        )
    else:
        files = dict(validate_model_folder(folder))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "hardneg",
        "GIT_AUTHOR_EMAIL": "hardneg@localhost",
        "GIT_COMMITTER_NAME": "hardneg",
        "GIT_COMMITTER_EMAIL": "hardneg@localhost",
    }

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed in {repo}: {done.stderr.strip().splitlines()[-1:]}")
        return done.stdout

    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", "main")
    elif tag in git("tag", "--list").split():
        raise ValueError(
            f"mirror {repo} already has tag {tag}; releases are immutable; fix: pass a higher version"
        )
    for old in repo.iterdir():
        if old.name != ".git":
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for rel, src in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            (repo / rel).write_bytes(src)
        else:
            shutil.copy2(src, repo / rel)
    git("add", "-A")
    git("commit", "-q", "--allow-empty", "-m", f"Release {tag}")
    git("tag", tag)
    return repo


@dataclass
class PublishConfig:
    folder: str = field(
        metadata={"help": "Dataset folder (RUN/dataset) or trained model folder (RUN/models/<config>)."}
    )
    repo_id: str = field(default="", metadata={"help": "Hub repo ORG/NAME; created if it does not exist."})
    version: str = field(
        default="", metadata={"help": "Semantic version of this release (1.0.0 -> tag v1.0.0)."}
    )
    kind: Literal["dataset", "model"] = field(default="dataset", metadata={"help": "What the folder holds."})
    private: bool = field(
        default=False, metadata={"help": "Create the repo as private (only when it is new)."}
    )
    confirm: bool = field(default=False, metadata={"help": "Upload and tag; without it this is a dry run."})
    notes: str | None = field(default=None, metadata={"help": "Changelog line for this release."})
    allow_schema_change: bool = field(
        default=False,
        metadata={"help": "Dataset only: allow configs whose columns differ from the repo's main."},
    )
    show_card: bool = field(default=True, metadata={"help": "Print the rendered card in a dry run."})
    license: str | None = field(
        default=None, metadata={"help": "Dataset only: Hub license id for the card (default: the folder's)."}
    )
    pretty_name: str | None = field(default=None, metadata={"help": "Dataset only: card title."})
    summary: str | None = field(default=None, metadata={"help": "Dataset only: paragraph opening the card."})
    dataset_id: str | None = field(
        default=None,
        metadata={"help": "Model only: the training data's Hub id, if trained on a local folder."},
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Model only: the training data's release, e.g. v1.0.0."}
    )

    def __post_init__(self):
        if not self.repo_id:
            raise ConfigError(
                "--repo_id is required; fix: e.g. `make publish REPO=my-org/cranfield-hn VERSION=1.0.0`"
            )
        if not self.version:
            raise ConfigError(
                "--version is required; fix: e.g. `make publish REPO=my-org/name VERSION=1.0.0`"
            )
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)
