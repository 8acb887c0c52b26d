"""The offline dataset folder: Hub layout, card metadata and validation (no network).

One dataset folder holds every method as a config (``queries``, ``llm_hn``, ``bm25_hn`` ...):

    <folder>/README.md              card: YAML (``configs:`` + ``dataset_info:`` written by ``datasets``) + body
    <folder>/build_stats.json       the build's statistics (rendered on the card)
    <folder>/card_data.json         the publisher's card fields (license, summary, changelog ...)
    <folder>/<config>/<split>-00000-of-00001.parquet

so ``load_dataset(folder_or_repo_id, "llm_hn")`` works locally and, once published with
``hardneg.publish``, on the Hub. ``save_dataset_folder`` writes it; ``validate_dataset_folder`` checks it
and lists the exact files a release uploads.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from datasets import Dataset, DatasetDict, Features, Value, get_dataset_config_names, load_dataset
from datasets.arrow_writer import ParquetWriter, get_writer_batch_size_from_data_size
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.table import table_cast
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard
from huggingface_hub import DatasetCardData as HubDatasetCardData

from hardneg.cards import (
    RECIPES_DIR,
    DatasetCardData,
    dataset_card_extras,
    render_dataset_card,
    write_build_recipe,
)
from hardneg.config import read_json, yaml_error_where
from hardneg.croissant import CROISSANT_FILE, validate_croissant, write_croissant
from hardneg.croissant import available as croissant_available
from hardneg.diagnose.record import DIAGNOSTICS_FILE
from hardneg.errors import first_line
from hardneg.files import replace_folder, write_atomic
from hardneg.id_layout import CORPUS_CONFIG, check_id_layout_schema, is_id_config
from hardneg.methods import COLUMN_TYPES, QUERIES_CONFIG, TRAINING_COLUMNS, table_blocks
from hardneg.references import DatasetRef, resolve_build_ref
from hardneg.revisions import check_loaded

QUERIES_COLUMNS = ("query", "positive")
BUILD_STATS_FILE = "build_stats.json"
CARD_DATA_FILE = "card_data.json"
README_FILE = "README.md"
MAX_SHARD_BYTES = 500 * 1024 * 1024  # the shard size datasets' push_to_hub uses
_CONFIG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")


# ---------------------------------------------------------------------------------------------------------
# writing the folder


def _typed_nulls(ds: Dataset) -> Dataset:
    """Give all-None columns their registry type (``hardneg.methods.COLUMN_TYPES``) instead of ``null``.

    A column that is all None (LLM-written negatives have no id, rank or score) would otherwise be typed
    ``null``, and configs of the same table would disagree on their schema.
    """
    features = ds.features.copy()
    changed = False
    for name, feature in features.items():
        if isinstance(feature, Value) and feature.dtype == "null" and name in COLUMN_TYPES:
            features[name] = Value(COLUMN_TYPES[name])
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
    elif name == CORPUS_CONFIG or is_id_config(columns):  # the id layout (hardneg.id_layout)
        check_id_layout_schema(name, columns)
    elif tuple(columns[:3]) != TRAINING_COLUMNS:
        raise ValueError(
            f"triplet config '{name}' starts with columns {columns[:3]}; fix: put anchor, positive, negative first "
            "(sentence-transformers losses read them in that order)"
        )


def parquet_layout(ds: Dataset) -> tuple[int, int]:
    """(shards, rows per row group) of one split: shards of at most ``MAX_SHARD_BYTES`` (500 MB, as
    ``push_to_hub``) and row groups of about ``datasets.config.MAX_ROW_GROUP_SIZE`` (100 MB of Arrow data):
    the size ``push_to_hub`` writes, that the Hub's dataset viewer pages through one row group at a time and
    that streaming reads one at a time (docs/publishing.md)."""
    nbytes = ds._estimate_nbytes() or 0
    shards = max(1, math.ceil(nbytes / MAX_SHARD_BYTES))
    return shards, get_writer_batch_size_from_data_size(len(ds), nbytes) if len(ds) else 1


def _write_parquet_shards(ds: Dataset, target_dir: Path, split: str) -> list[Path]:
    """Write one split as <split>-0000i-of-0000N.parquet (push_to_hub's naming, shard and row-group sizes)
    with ``datasets``' parquet writer, streaming ``table_blocks`` (no Python object per row, one block resident)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    num_shards, rows_per_group = parquet_layout(ds)
    bounds = [len(ds) * i // num_shards for i in range(num_shards + 1)]
    paths = []
    for index in range(num_shards):
        path = target_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        part = ds.select(range(bounds[index], bounds[index + 1])) if num_shards > 1 else ds
        with ParquetWriter(path=str(path), features=ds.features, writer_batch_size=rows_per_group) as writer:
            for table in table_blocks(part, rows_per_group):
                writer.write_table(table_cast(table, ds.features.arrow_schema), rows_per_group)
            writer.finalize()
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


def card_data_json(card_data: DatasetCardData) -> str:
    """``card_data.json`` as saved in the folder and uploaded with each release."""
    return json.dumps(asdict(card_data), indent=2) + "\n"


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

    card_data = card_data or load_card_data(folder)  # keep the fields of an earlier save
    # diagnostics of an earlier build describe other rows: not carried over until `make diagnose` reruns
    rewritten = set(dicts) | {DIAGNOSTICS_FILE}
    with replace_folder(folder, rewritten=rewritten, what="the dataset folder") as staging:
        sizes = {}
        for name, dd in dicts.items():
            paths = [p for split, ds in dd.items() for p in _write_parquet_shards(ds, staging / name, split)]
            sizes[name] = sum(p.stat().st_size for p in paths)
        write_atomic(staging / BUILD_STATS_FILE, json.dumps(build_stats, indent=2, sort_keys=False) + "\n")
        write_build_recipe(staging, build_stats)  # recipes/build.yaml: the card's one-line rebuild uses it
        write_atomic(staging / CARD_DATA_FILE, card_data_json(card_data))
        metadata = dataset_card_metadata(dicts, default_config=default_config, sizes=sizes)
        splits = {name: {split: len(ds) for split, ds in dd.items()} for name, dd in dicts.items()}
        card = render_dataset_card(
            card_data,
            build_stats,
            card_metadata=metadata,
            splits=splits,
            default_config=default_config,
            **dataset_card_extras(staging),
        )
        write_atomic(staging / README_FILE, card)
        write_croissant(
            staging, {n: next(iter(dd.values())).features for n, dd in dicts.items()}, build_stats, card_data
        )
        _check_written(staging, splits)
    return folder


def _check_written(folder: Path, splits: dict[str, dict[str, int]]) -> None:
    """Before the swap: every split's parquet files read back (footers) with the rows that were written."""
    for name, rows in splits.items():
        for split, n in rows.items():
            files = sorted((folder / name).glob(f"{split}-*.parquet"))
            found = sum(pq.read_metadata(f).num_rows for f in files)
            if found != n:
                raise ValueError(
                    f"config '{name}' split '{split}' read back {found} rows, not the {n} written; the previous "
                    "folder is unchanged; fix: check the disk (df, dmesg) and rerun the same command"
                )
    if not (folder / README_FILE).is_file():
        raise ValueError(
            f"the card {folder / README_FILE} was not written; the previous folder is unchanged; fix: check the "
            "disk (df, dmesg) and rerun the same command"
        )


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
    try:
        card = DatasetCard.load(readme)
    except yaml.YAMLError as err:  # the front matter is hand-editable: name the file and line
        raise ValueError(
            f"{yaml_error_where(err, readme, first_line=2)} (the card's front matter); fix: correct the YAML "
            "there, or rebuild the folder"
        ) from None
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


# Columns holding text a model reads: none may be empty or whitespace-only in a published config.
TEXT_COLUMNS = tuple(dict.fromkeys(TRAINING_COLUMNS + QUERIES_COLUMNS))


def check_texts(name: str, split: str, ds: Dataset) -> None:
    """Refuse empty, whitespace-only or null texts in any text column (``TEXT_COLUMNS``)."""
    for column in (c for c in TEXT_COLUMNS if c in ds.column_names):
        bad = [i for i, t in enumerate(ds[column]) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(
                f"config '{name}' split '{split}' has {len(bad)} empty '{column}' text(s), first at row {bad[0]}; "
                "fix: rebuild with the corpus validated (empty passages are dropped on load) or drop those rows"
            )


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
                    f"config '{name}' does not load: {first_line(err)}; fix: rebuild the folder"
                ) from None
            rows = {split: len(ds) for split, ds in dd.items()}
            first = dd[next(iter(dd))]
            check_config_schema(name, first.column_names, rows)
            for split, ds in dd.items():
                check_texts(name, split, ds)
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


def _render_card(
    folder: Path,
    build_stats: dict,
    card_metadata: dict,
    configs: dict[str, dict[str, int]],
    default: str | None,
) -> str:
    return render_dataset_card(
        load_card_data(folder),
        build_stats,
        card_metadata=card_metadata,
        splits=configs,
        default_config=default,
        **dataset_card_extras(folder),
    )


def render_folder_card(folder: str | Path) -> str:
    """The card of a folder ``save_dataset_folder`` wrote, rendered again from its files (``build_stats.json``,
    the card data, the README's configs and row counts, and what lies beside them: diagnostics, croissant),
    without loading any config: for a folder that was valid and gained a file, e.g. ``diagnostics.json``."""
    folder = Path(folder)
    build_stats = read_json(folder / BUILD_STATS_FILE, "rebuild the dataset folder (make build)")
    metadata_configs, infos, card_metadata = _read_card_metadata(folder / README_FILE)
    configs = {
        name: {split: info.splits[split].num_examples for split in info.splits}
        for name in metadata_configs
        if (info := infos.get(name)) is not None and info.splits
    }
    if set(configs) != set(metadata_configs):  # a README without row counts: count them by loading
        return validate_dataset_folder(folder).card
    return _render_card(
        folder, build_stats, card_metadata, configs, metadata_configs.get_default_config_name()
    )


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
            f"'{folder}' has no README.md; fix: write the folder with hardneg.dataset_folder.save_dataset_folder"
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
        name: {c: str(f[c]) for c in TRAINING_COLUMNS}
        for name, f in features.items()
        if name != QUERIES_CONFIG and set(TRAINING_COLUMNS) <= set(f)  # not the id layout's configs
    }
    if len({json.dumps(t, sort_keys=True) for t in triplet_types.values()}) > 1:
        raise ValueError(
            f"triplet configs disagree on anchor/positive/negative types {triplet_types}; fix: use strings"
        )
    default = metadata_configs.get_default_config_name()
    card = _render_card(folder, build_stats, card_metadata, configs, default)
    if (folder / CROISSANT_FILE).is_file() and croissant_available():
        validate_croissant(folder / CROISSANT_FILE)
    for path in (
        readme,
        stats_path,
        folder / CARD_DATA_FILE,
        folder / CROISSANT_FILE,
        folder / DIAGNOSTICS_FILE,
        *sorted((folder / RECIPES_DIR).glob("*.yaml")),
    ):
        if path.is_file():
            files.append(path)
    return FolderReport(folder, configs, features, default, card_metadata, sorted(set(files)), card)


def load_build_tables(
    dataset: str | DatasetRef, revision: str | None = None
) -> tuple[dict[str, Dataset], dict, Path | None]:
    """Every text config's train split (``datasets.Dataset``: queries and triplets; the id layout's ``corpus`` and
    id configs hold no texts to show and are not loaded), the build statistics, and the local folder (if any) of
    a build's dataset folder or Hub id: a ``DatasetRef`` (``hardneg.references.resolve_build_ref``), or a name
    and revision resolved here. A Hub copy must be the commit the revision names."""
    ref = dataset if isinstance(dataset, DatasetRef) else resolve_build_ref(dataset, revision)
    source, revision = ref.location, ref.revision
    if ref.kind == "folder":
        stats_path = Path(source) / BUILD_STATS_FILE
        if not stats_path.is_file():
            raise ValueError(
                f"'{source}' has no build_stats.json; fix: point --dataset at a build's dataset folder "
                "(e.g. runs/demo/dataset)"
            )
        build_stats = read_json(stats_path, "rebuild the dataset folder (make build)")
    else:
        from huggingface_hub import hf_hub_download

        build_stats = json.loads(
            Path(
                hf_hub_download(source, BUILD_STATS_FILE, repo_type="dataset", revision=revision)
            ).read_text()
        )
    names = [n for n in get_dataset_config_names(source, revision=revision) if n != CORPUS_CONFIG]
    tables = {name: load_dataset(source, name, split="train", revision=revision) for name in names}
    for table in tables.values():
        check_loaded(table, source, revision, ref.pinned_commit)
    tables = {name: t for name, t in tables.items() if not is_id_config(t.column_names)}
    return tables, build_stats, Path(source) if ref.kind == "folder" else None
