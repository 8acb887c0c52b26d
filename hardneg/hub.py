"""Hub layout, validation and versioned publishing of datasets and trained models.

One dataset repo holds every method as a config (``queries``, ``llm_hn``, ``bm25_hn`` ...):

    <folder>/README.md              card: YAML (``configs:`` + ``dataset_info:`` written by ``datasets``) + body
    <folder>/build_stats.json       the build's statistics (rendered on the card)
    <folder>/card_data.json         the publisher's card fields (license, summary, changelog ...)
    <folder>/<config>/<split>-00000-of-00001.parquet

so ``load_dataset(folder_or_repo_id, "llm_hn")`` works locally and on the Hub. Publishing is a dry run
by default; ``confirm=True`` uploads every file in ONE ``HfApi.create_commit`` and then tags it
``v<version>`` with ``HfApi.create_tag``. An existing tag is never moved or overwritten, so a failure
before the tag leaves every earlier release intact. The token comes from ``HF_TOKEN`` or
``hf auth login`` (``huggingface_hub.get_token``) and is never printed, logged or written.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, DatasetDict, Features, Value, load_dataset
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard, HfApi, get_token
from huggingface_hub import DatasetCardData as HubDatasetCardData
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)

from hardneg.cards import DatasetCardData, ModelCardData, render_dataset_card, render_model_card
from hardneg.config import ConfigError

TRIPLET_COLUMNS = ("anchor", "positive", "negative")
QUERIES_COLUMNS = ("query", "positive")
QUERIES_CONFIG = "queries"
BUILD_STATS_FILE = "build_stats.json"
CARD_DATA_FILE = "card_data.json"
README_FILE = "README.md"
MAX_SHARD_BYTES = 500 * 1024 * 1024  # the shard size datasets' push_to_hub uses
_CONFIG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")
_SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Column types from docs/design.md: a column that is all None (LLM-written negatives have no id, rank or
# score) would otherwise be typed `null`, and configs of the same table would disagree on their schema.
DESIGN_TYPES = {
    "query_id": "string",
    "positive_id": "string",
    "negative_id": "string",
    "negative_rank": "int64",
    "positive_score": "float64",
    "negative_score": "float64",
    "method": "string",
    "model": "string",
    "backend": "string",
    "prompt_name": "string",
    "prompt_version": "string",
    "prompt_hash": "string",
    "sampling": "string",
    "seed": "int64",
    "prompt_tokens": "int64",
    "completion_tokens": "int64",
    "latency_s": "float64",
}
_MODEL_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


# ---------------------------------------------------------------------------------------------------------
# writing the folder


def _typed_nulls(ds: Dataset) -> Dataset:
    """Give all-None columns their design.md type instead of ``null``."""
    features = ds.features.copy()
    changed = False
    for name, feature in features.items():
        if isinstance(feature, Value) and feature.dtype == "null" and name in DESIGN_TYPES:
            features[name] = Value(DESIGN_TYPES[name])
            changed = True
    return ds.cast(features) if changed else ds


def _as_dataset_dict(name: str, data: Dataset | DatasetDict) -> DatasetDict:
    if isinstance(data, Dataset):
        return DatasetDict({"train": _typed_nulls(data)})
    if isinstance(data, DatasetDict):
        return DatasetDict({split: _typed_nulls(ds) for split, ds in data.items()})
    raise ValueError(
        f"config '{name}' is a {type(data).__name__}; fix: pass a datasets.Dataset or DatasetDict"
    )


def check_config_schema(name: str, columns: list[str], rows: dict[str, int]) -> None:
    """Refuse what must not be published: bad names, empty configs, triplets not led by anchor/positive/negative."""
    if not _CONFIG_NAME_RE.match(name) or name == "default":
        raise ValueError(
            f"config name '{name}' is not usable on the Hub; fix: use letters, digits and _ (e.g. llm_hn)"
        )
    if not rows:
        raise ValueError(f"config '{name}' has no splits; fix: give it at least a 'train' split")
    for split, n in rows.items():
        if not _SPLIT_RE.match(split):
            raise ValueError(
                f"config '{name}' has split name '{split}'; fix: use letters, digits and _ (train, validation)"
            )
        if n == 0:
            raise ValueError(
                f"config '{name}' split '{split}' is empty; fix: rebuild it or leave the config out"
            )
    if name == QUERIES_CONFIG:
        missing = [c for c in QUERIES_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
                f"config 'queries' lacks column(s) {missing}; fix: follow docs/design.md (query, positive ...)"
            )
    elif tuple(columns[:3]) != TRIPLET_COLUMNS:
        raise ValueError(
            f"triplet config '{name}' starts with columns {columns[:3]}; fix: put anchor, positive, negative first "
            "(sentence-transformers losses read them in that order)"
        )


def _write_parquet_shards(ds: Dataset, target_dir: Path, split: str) -> list[Path]:
    """Write one split as <split>-00000-of-0000N.parquet (same naming and shard size as push_to_hub)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for old in target_dir.glob(f"{split}-*.parquet"):
        old.unlink()
    num_shards = max(1, math.ceil((ds._estimate_nbytes() or 0) / MAX_SHARD_BYTES))
    paths = []
    for index in range(num_shards):
        path = target_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        ds.shard(num_shards=num_shards, index=index, contiguous=True).to_parquet(str(tmp))
        os.replace(tmp, path)
        paths.append(path)
    return paths


def dataset_card_metadata(
    configs: dict[str, DatasetDict], *, default_config: str | None, sizes: dict[str, int] | None = None
) -> dict[str, Any]:
    """The ``configs:`` and ``dataset_info:`` YAML, written by ``datasets`` exactly as ``push_to_hub`` does."""
    card_data = HubDatasetCardData()
    infos = {}
    metadata = {}
    for name, dd in configs.items():
        entry: dict[str, Any] = {
            "data_files": [{"split": split, "path": f"{name}/{split}-*"} for split in dd]
        }
        if name == default_config:
            entry["default"] = True
        metadata[name] = entry
        splits = SplitDict()
        dataset_size = 0
        for split, ds in dd.items():
            nbytes = ds._estimate_nbytes() or 0
            splits.add(SplitInfo(name=split, num_bytes=nbytes, num_examples=len(ds)))
            dataset_size += nbytes
        features = next(iter(dd.values())).features
        download_size = (sizes or {}).get(name, 0)
        infos[name] = DatasetInfo(
            config_name=name,
            features=features,
            splits=splits,
            download_size=download_size,
            dataset_size=dataset_size,
            size_in_bytes=download_size + dataset_size,
        )
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs(metadata).to_dataset_card_data(card_data)
    return card_data.to_dict()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save_card_data(folder: Path, card_data: DatasetCardData) -> None:
    _write_text_atomic(folder / CARD_DATA_FILE, json.dumps(asdict(card_data), indent=2) + "\n")


def load_card_data(folder: str | Path) -> DatasetCardData:
    """The publisher's card fields saved next to the data (defaults when the folder has none)."""
    path = Path(folder) / CARD_DATA_FILE
    if not path.is_file():
        return DatasetCardData()
    data = json.loads(path.read_text(encoding="utf-8"))
    known = set(DatasetCardData.__dataclass_fields__)
    return DatasetCardData(**{k: v for k, v in data.items() if k in known})


def save_dataset_folder(
    folder: str | Path,
    configs: dict[str, Dataset | DatasetDict],
    build_stats: dict,
    *,
    default_config: str | None = QUERIES_CONFIG,
    card_data: DatasetCardData | None = None,
) -> Path:
    """Write a Hub-ready dataset folder: one parquet folder per config, ``build_stats.json`` and the card.

    Args:
        folder: target folder (e.g. ``runs/demo/dataset``); created if needed. Parquet files of the configs
            written here are replaced; other configs already in the folder are kept out of the card.
        configs: config name -> Dataset (split ``train``) or DatasetDict (``train``, ``validation`` ...).
            ``queries`` needs ``query`` and ``positive`` columns; every other config is a triplet config whose
            first columns must be ``anchor``, ``positive``, ``negative``.
        build_stats: the build's statistics (docs/design.md); written to ``build_stats.json`` and rendered on
            the card. Any key may be missing.
        default_config: config ``load_dataset(folder)`` returns without a config name (``None``: no default).
        card_data: license, summary, changelog ... for the card (default: the folder's card_data.json from an
            earlier save, else ``hardneg.cards.DatasetCardData()``).

    Returns:
        The folder. ``datasets.load_dataset(str(folder), "llm_hn")`` loads each config.
    """
    folder = Path(folder)
    if not configs:
        raise ValueError("no configs to save; fix: pass at least the 'queries' config and one method")
    dicts = {name: _as_dataset_dict(name, data) for name, data in configs.items()}
    for name, dd in dicts.items():
        check_config_schema(
            name, next(iter(dd.values())).column_names if dd else [], {s: len(d) for s, d in dd.items()}
        )
        schemas = {split: ds.features for split, ds in dd.items()}
        if len({json.dumps(f.to_dict(), sort_keys=True) for f in schemas.values()}) > 1:
            raise ValueError(
                f"config '{name}' has splits with different columns; fix: give every split the same features"
            )
    if default_config is not None and default_config not in dicts:
        raise ValueError(
            f"default config '{default_config}' is not among {sorted(dicts)}; fix: pick one of them"
        )
    try:
        json.dumps(build_stats)
    except TypeError as err:
        raise ValueError(
            f"build_stats is not JSON-serialisable ({err}); fix: use plain numbers, strings, lists, dicts"
        ) from None

    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, dd in dicts.items():
        paths = [p for split, ds in dd.items() for p in _write_parquet_shards(ds, folder / name, split)]
        sizes[name] = sum(p.stat().st_size for p in paths)
    _write_text_atomic(folder / BUILD_STATS_FILE, json.dumps(build_stats, indent=2, sort_keys=False) + "\n")
    card_data = card_data or load_card_data(folder)  # keep the fields of an earlier save
    _save_card_data(folder, card_data)
    metadata = dataset_card_metadata(dicts, default_config=default_config, sizes=sizes)
    splits = {name: {split: len(ds) for split, ds in dd.items()} for name, dd in dicts.items()}
    card = render_dataset_card(
        card_data, build_stats, card_metadata=metadata, splits=splits, default_config=default_config
    )
    _write_text_atomic(folder / README_FILE, card)
    return folder


# ---------------------------------------------------------------------------------------------------------
# validating a folder


@dataclass
class FolderReport:
    """What ``validate_dataset_folder`` found: configs, rows, schemas, the files to upload and the card."""

    folder: Path
    configs: dict[str, dict[str, int]]
    features: dict[str, Features]
    default_config: str | None
    card_metadata: dict[str, Any]
    files: list[Path]
    card: str = ""

    @property
    def total_rows(self) -> int:
        return sum(sum(s.values()) for s in self.configs.values())


def _read_card_metadata(readme: Path) -> tuple[MetadataConfigs, DatasetInfosDict, dict]:
    card = DatasetCard.load(readme)
    return (
        MetadataConfigs.from_dataset_card_data(card.data),
        DatasetInfosDict.from_dataset_card_data(card.data),
        {k: v for k, v in card.data.to_dict().items() if k in ("configs", "dataset_info")},
    )


def _data_file_patterns(config_meta: dict) -> dict[str, list[str]]:
    files = config_meta.get("data_files") or []
    if isinstance(files, str):
        return {"train": [files]}
    out: dict[str, list[str]] = {}
    for item in files:
        if isinstance(item, str):
            out.setdefault("train", []).append(item)
        else:
            paths = item["path"] if isinstance(item["path"], list) else [item["path"]]
            out.setdefault(item["split"], []).extend(paths)
    return out


def _load_every_config(
    folder: Path, metadata_configs: MetadataConfigs, infos: DatasetInfosDict
) -> tuple[dict[str, dict[str, int]], dict[str, Features], list[Path]]:
    """load_dataset(folder, config) for every config; check files, rows and features against the README."""
    configs: dict[str, dict[str, int]] = {}
    features: dict[str, Features] = {}
    files: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hardneg-validate-") as cache_dir:
        for name, meta in metadata_configs.items():
            for split, split_patterns in _data_file_patterns(meta).items():
                matched = sorted(
                    {p for pattern in split_patterns for p in folder.glob(pattern) if p.is_file()}
                )
                if not matched:
                    raise ValueError(
                        f"config '{name}' split '{split}' has no data files ({split_patterns}); fix: rebuild the "
                        "folder, an empty config cannot be published"
                    )
                files.extend(matched)
            try:
                dd = load_dataset(str(folder), name, cache_dir=cache_dir)
            except Exception as err:  # datasets raises many types; the user needs the first line
                raise ValueError(
                    f"config '{name}' does not load: {str(err).splitlines()[0]}; fix: rebuild the folder"
                ) from None
            rows = {split: len(ds) for split, ds in dd.items()}
            first = dd[next(iter(dd))]
            check_config_schema(name, first.column_names, rows)
            info = infos.get(name)
            if info is not None and info.features is not None and info.features != first.features:
                raise ValueError(
                    f"config '{name}': parquet columns differ from the README's dataset_info; fix: rebuild the folder"
                )
            if info is not None and info.splits:
                declared = {split: info.splits[split].num_examples for split in info.splits}
                if declared != rows:
                    raise ValueError(
                        f"config '{name}' has rows {rows} but the README says {declared}; fix: rebuild the folder"
                    )
            configs[name] = rows
            features[name] = first.features
    return configs, features, files


def validate_dataset_folder(folder: str | Path) -> FolderReport:
    """Check a dataset folder before it is published; raise one clear error on the first problem.

    Every config in the README's ``configs:`` loads with ``datasets.load_dataset(folder, config)``; its
    features and row counts equal the ``dataset_info:`` YAML; no split is empty; triplet configs start with
    anchor, positive, negative and agree on those columns' types; the card re-renders from
    ``build_stats.json``. Returns a ``FolderReport`` with the exact files to upload.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset folder '{folder}' not found; fix: run `make build` or pass --folder RUN/dataset"
        )
    readme = folder / README_FILE
    if not readme.is_file():
        raise FileNotFoundError(
            f"'{folder}' has no README.md; fix: write the folder with hardneg.hub.save_dataset_folder"
        )
    stats_path = folder / BUILD_STATS_FILE
    if not stats_path.is_file():
        raise FileNotFoundError(
            f"'{folder}' has no {BUILD_STATS_FILE}; fix: write the folder with save_dataset_folder"
        )
    try:
        build_stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{stats_path} is not valid JSON ({err.msg}); fix: rebuild the dataset folder"
        ) from None
    metadata_configs, infos, card_metadata = _read_card_metadata(readme)
    if not metadata_configs:
        raise ValueError(f"{readme} declares no configs; fix: write the folder with save_dataset_folder")

    quiet = not are_progress_bars_disabled()  # a few "Generating split" bars per config add nothing here
    if quiet:
        disable_progress_bars()
    try:
        configs, features, files = _load_every_config(folder, metadata_configs, infos)
    finally:
        if quiet:
            enable_progress_bars()
    triplet_types = {
        name: {c: str(f[c]) for c in TRIPLET_COLUMNS}
        for name, f in features.items()
        if name != QUERIES_CONFIG
    }
    if len({json.dumps(t, sort_keys=True) for t in triplet_types.values()}) > 1:
        raise ValueError(
            f"triplet configs disagree on anchor/positive/negative types {triplet_types}; fix: use strings"
        )
    default = metadata_configs.get_default_config_name()
    card_data = load_card_data(folder)
    card = render_dataset_card(
        card_data, build_stats, card_metadata=card_metadata, splits=configs, default_config=default
    )
    for path in (readme, stats_path, folder / CARD_DATA_FILE):
        if path.is_file():
            files.append(path)
    return FolderReport(folder, configs, features, default, card_metadata, sorted(set(files)), card)


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
    version = (version or "").strip()
    version = version[1:] if version.startswith("v") else version
    if not _SEMVER_RE.match(version):
        raise ValueError(
            f"version '{version}' is not a semantic version; fix: use MAJOR.MINOR.PATCH, e.g. 1.0.0"
        )
    return version


def _check_repo_id(repo_id: str) -> None:
    if not repo_id or not _REPO_ID_RE.match(repo_id):
        raise ValueError(f"repo id '{repo_id}' is not ORG/NAME; fix: pass --repo_id my-org/my-dataset")


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
            "HF_HUB_OFFLINE is set, so nothing can be uploaded; fix: unset HF_HUB_OFFLINE"
        ) from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status == 401:
            raise RuntimeError(
                "the Hugging Face token was rejected (401); fix: `hf auth login` with a write token"
            ) from None
        raise RuntimeError(
            f"the Hub refused the token check: {secret.scrub(str(err).splitlines()[0])}"
        ) from None
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


def _remote_text(
    api: HfApi, repo_id: str, repo_type: str, filename: str, remote: _Remote, token: str
) -> str | None:
    if not remote.exists or filename not in remote.files:
        return None
    try:
        path = api.hf_hub_download(repo_id, filename, repo_type=repo_type, revision=remote.head, token=token)
    except EntryNotFoundError:
        return None
    return Path(path).read_text(encoding="utf-8")


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


def _upload(
    api: HfApi,
    secret: _Secret,
    *,
    repo_id: str,
    repo_type: Literal["dataset", "model"],
    tag: str,
    private: bool,
    operations: list,
    remote: _Remote,
    message: str,
) -> tuple[str, str | None]:
    """create_repo (if needed) -> ONE create_commit -> create_tag. Returns (commit oid, commit url)."""
    token = secret.token
    try:
        if not remote.exists:
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, token=token)
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            repo_type=repo_type,
            token=token,
            parent_commit=remote.head,
        )
    except Exception as err:
        raise RuntimeError(
            f"upload to {repo_id} failed before tagging ({secret.scrub(str(err).splitlines()[0] if str(err) else type(err).__name__)}); "
            "earlier releases are untouched; fix: rerun the same command"
        ) from None
    try:
        api.create_tag(
            repo_id, tag=tag, revision=info.oid, repo_type=repo_type, token=token, tag_message=message
        )
    except Exception as err:
        raise RuntimeError(
            f"commit {info.oid} reached {repo_id} but tag {tag} could not be created "
            f"({secret.scrub(str(err).splitlines()[0] if str(err) else type(err).__name__)}); earlier tags are untouched; "
            f"fix: `hf repo tag create {repo_id} {tag} --revision {info.oid} --repo-type {repo_type}`"
        ) from None
    return info.oid, getattr(info, "commit_url", None)


def _prepare_remote(
    confirm: bool, api: HfApi | None, token: str | None, repo_id: str, repo_type: str, tag: str
) -> tuple[HfApi | None, _Secret, _Remote, list[str]]:
    """Token + network + existing-tag checks (confirm only; a dry run stays offline)."""
    if not confirm:
        return (
            api,
            _Secret(None),
            _Remote(exists=False),
            [
                "dry run: the token, the network, existing tags and the remote schema are checked with --confirm"
            ],
        )
    api, secret = _connect(api, token)
    try:
        remote = _remote_state(api, repo_id, repo_type, secret.token)
    except Exception as err:
        raise RuntimeError(
            f"cannot read {repo_id} on the Hub: {secret.scrub(str(err).splitlines()[0])}"
        ) from None
    if tag in remote.tags:
        raise ValueError(
            f"{repo_type} {repo_id} already has tag {tag}; releases are immutable; fix: pass a higher --version"
        )
    return api, secret, remote, []


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
    card_data = load_card_data(report.folder)
    updates = {k: v for k, v in (card_updates or {}).items() if v is not None}
    unknown = sorted(set(updates) - set(DatasetCardData.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown card field(s) {unknown}; fix: use fields of hardneg.cards.DatasetCardData")
    card_data = dataclasses.replace(card_data, **updates)
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
    )
    files: dict[str, Path | bytes] = {
        p.relative_to(report.folder).as_posix(): p
        for p in report.files
        if p.name not in (README_FILE, CARD_DATA_FILE)
    }
    files[README_FILE] = card.encode("utf-8")
    files[CARD_DATA_FILE] = (json.dumps(asdict(card_data), indent=2) + "\n").encode("utf-8")
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
    _check_repo_id(repo_id)
    version = normalise_version(version)
    tag = f"v{version}"
    report = validate_dataset_folder(folder)
    api, secret, remote, result_notes = _prepare_remote(confirm, api, token, repo_id, "dataset", tag)

    remote_card_json = None
    if confirm:
        remote_readme = _remote_text(api, repo_id, "dataset", README_FILE, remote, secret.token)
        if not allow_schema_change:
            _check_remote_schema(remote_readme, report, repo_id)
        remote_card_json = _remote_text(api, repo_id, "dataset", CARD_DATA_FILE, remote, secret.token)
    files, card = release_files(
        report, repo_id, version, notes=notes, previous_card_json=remote_card_json, card_updates=card_updates
    )
    if private and remote.exists:
        result_notes.append(f"{repo_id} exists: --private does not change its visibility")
    operations, described = _operations(files, remote)
    result = PublishResult(repo_id, "dataset", version, tag, not confirm, described, card, notes=result_notes)
    if not confirm:
        return result
    result.commit_oid, result.commit_url = _upload(
        api,
        secret,
        repo_id=repo_id,
        repo_type="dataset",
        tag=tag,
        private=private,
        operations=operations,
        remote=remote,
        message=f"Release {tag}: "
        + ", ".join(f"{n} ({sum(r.values()):,} rows)" for n, r in report.configs.items()),
    )
    return result


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
    trained on a local folder that was published since. Dry run by default; with
    ``confirm=True``: one commit, then tag ``v<version>`` (an existing tag is refused).
    """
    _check_repo_id(repo_id)
    version = normalise_version(version)
    tag = f"v{version}"
    folder = Path(folder)
    files: dict[str, Path | bytes] = dict(validate_model_folder(folder))
    if card_data is None:
        if not (folder / CARD_DATA_FILE).is_file():
            raise FileNotFoundError(
                f"'{folder}' has no {CARD_DATA_FILE}; fix: pass card_data (hardneg.cards.ModelCardData) or save it "
                "with ModelCardData.save(folder / 'card_data.json') after training"
            )
        card_data = ModelCardData.load(folder / CARD_DATA_FILE)
    updates = {k: v for k, v in (card_updates or {}).items() if v is not None}
    unknown = sorted(set(updates) - set(ModelCardData.__dataclass_fields__))
    if unknown:
        raise ValueError(
            f"unknown model card field(s) {unknown}; fix: use fields of hardneg.cards.ModelCardData"
        )
    card_data = dataclasses.replace(card_data, **updates, repo_id=repo_id)
    local_notes = []
    if Path(card_data.dataset_id).exists() or not _REPO_ID_RE.match(card_data.dataset_id):
        local_notes.append(
            f"the card names the local dataset '{card_data.dataset_id}'; pass --dataset_id ORG/NAME "
            "--dataset_revision vX.Y.Z (its published release) so others can reload the training data"
        )
    card = render_model_card(card_data)
    files[README_FILE] = card.encode("utf-8")
    files[CARD_DATA_FILE] = (json.dumps(card_data.to_dict(), indent=2, default=str) + "\n").encode("utf-8")
    api, secret, remote, result_notes = _prepare_remote(confirm, api, token, repo_id, "model", tag)
    result_notes += local_notes
    if private and remote.exists:
        result_notes.append(f"{repo_id} exists: --private does not change its visibility")
    operations, described = _operations(files, remote)
    result = PublishResult(repo_id, "model", version, tag, not confirm, described, card, notes=result_notes)
    if not confirm:
        return result
    message = f"Release {tag}: trained on {card_data.dataset_id} ({card_data.dataset_config}"
    message += f"@{card_data.dataset_revision})" if card_data.dataset_revision else ")"
    if notes:
        message += f". {notes}"
    result.commit_oid, result.commit_url = _upload(
        api,
        secret,
        repo_id=repo_id,
        repo_type="model",
        tag=tag,
        private=private,
        operations=operations,
        remote=remote,
        message=message,
    )
    return result


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
    import shutil
    import subprocess

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
