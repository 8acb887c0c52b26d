"""Training data: one config of a hard-negative dataset as (anchor, positive[, negative]) rows.

``load_triplets`` loads a Hub id or a local folder in Hub layout and keeps the training columns
(``hardneg.methods.TRAINING_COLUMNS``), mapping other layouts (``map_columns``); every failure is one line.
``split_eval`` holds out the small evaluation set; ``data_fingerprint`` names the rows (the reuse key).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset, load_dataset

from hardneg.errors import first_line
from hardneg.id_layout import is_id_config, resolve_id_config
from hardneg.methods import TRAINING_COLUMNS
from hardneg.options import ConfigError
from hardneg.revisions import check_loaded, resolve_revision

# Column names other published pair/triplet sets use for each role, recognised when no mapping is given.
COLUMN_ALIASES = {
    "anchor": ("anchor", "query", "question", "sentence1", "text1"),
    "positive": ("positive", "pos", "document", "passage", "answer", "sentence2", "text2"),
    "negative": ("negative", "neg", "hard_negative", "negative_passage"),
}


def check_dataset_ref(dataset: str, revision: str | None) -> None:
    """The checks on ``--dataset`` that need no loading (run up front by ``TrainConfig.preflight`` too)."""
    local = Path(dataset)
    if local.exists():
        if not local.is_dir():
            raise ConfigError(
                f"dataset '{dataset}' is a file; fix: pass the dataset folder (with README.md) or a Hub id"
            )
        if revision:
            raise ConfigError(
                f"dataset_revision '{revision}' was given for the local folder '{dataset}'; "
                "fix: drop --dataset_revision, or pass the Hub id to train on a published revision"
            )
    elif dataset.startswith((".", "/", "~")) or dataset.count("/") > 1:
        raise FileNotFoundError(
            f"dataset folder '{dataset}' does not exist; fix: run `make build` or check the path"
        )


def load_triplets(
    dataset: str,
    *,
    config: str,
    revision: str | None = None,
    split: str = "train",
    refresh: bool = True,
    columns: list[str] | dict[str, str] | None = None,
) -> Dataset:
    """Load one config's split and keep only ``anchor``, ``positive``, ``negative`` (in that order; datasets in
    other layouts through ``columns``, see ``map_columns``).

    ``dataset`` is a Hub id or a local folder in Hub layout (README ``configs:`` + parquet files), as
    written by the build stage. Every failure (missing folder, unknown config, bad revision, no network,
    missing columns, empty or null texts) is one line that names the fix.

    ``refresh`` (local folders): rebuild datasets' Arrow cache from the parquet files. datasets keys that
    cache by the folder's *name* and config, so a rebuilt ``runs/demo/dataset`` (or any other folder
    called ``dataset``) would otherwise be read from a stale cache, or fail its split-size check. In multi-process runs only the first
    process of each machine refreshes; the others wait and read its fresh cache.
    """
    local = Path(dataset)
    check_dataset_ref(dataset, revision)
    pinned = None if local.exists() else resolve_revision(dataset, revision)  # a missing revision says so
    try:
        fresh = {}
        if refresh and local.exists():
            # rebuild the cache and do not check split sizes against the stale cached dataset_info
            fresh = {"download_mode": "force_redownload", "verification_mode": "no_checks"}
        ds = load_dataset(dataset, config, revision=revision, split=split, **fresh)
    except Exception as err:  # datasets raises many types; the user needs one line and a fix
        message = first_line(err)
        if "offline" in message.lower() or isinstance(err, ConnectionError):
            fix = "connect to the network (unset HF_HUB_OFFLINE) or pass a local dataset folder"
        elif "config" in message.lower() or "BuilderConfig" in message:
            fix = "pass one of the dataset's configs with --dataset_config"
        elif "revision" in message.lower():
            fix = "pass an existing tag, branch or commit with --dataset_revision"
        elif "split" in message.lower():
            fix = "pass an existing split with --dataset_split"
        else:
            fix = "check --dataset, --dataset_config and --dataset_revision"
        where = f"{dataset}" + (f"@{revision}" if revision else "")
        raise RuntimeError(
            f"cannot load dataset '{where}' config '{config}' split '{split}': {message}; fix: {fix}"
        ) from None
    check_loaded(ds, dataset, revision, pinned)  # never a cached copy of another revision
    if is_id_config(ds.column_names) and not columns:  # the id layout: texts from its queries and corpus
        ds = resolve_id_config(
            ds,
            lambda name: load_dataset(dataset, name, revision=revision, split="train", **fresh),
            f"dataset '{dataset}' config '{config}'",
        )
    ds = map_columns(ds, columns, f"dataset '{dataset}' config '{config}'")
    if len(ds) == 0:
        raise ConfigError(
            f"dataset '{dataset}' config '{config}' split '{split}' is empty; fix: rebuild the dataset"
        )
    for column in ds.column_names:
        values = ds[column]
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()), None)
        if bad is not None:
            raise ConfigError(
                f"dataset '{dataset}' config '{config}' row {bad} has an empty '{column}'; fix: rebuild or filter the dataset"
            )
    return ds


def parse_column_map(columns: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``["query=anchor", "pos=positive"]`` (command line) or ``{query: anchor, ...}`` (recipe) -> a dict from
    the dataset's column to its role (anchor, positive, negative)."""
    if not columns:
        return {}
    pairs = list(columns.items()) if isinstance(columns, dict) else [c.partition("=")[::2] for c in columns]
    mapping = {str(src).strip(): str(dst).strip() for src, dst in pairs}
    bad = [f"{s}={d}" for s, d in mapping.items() if not s or d not in TRAINING_COLUMNS]
    if bad or len(set(mapping.values())) != len(mapping):
        raise ConfigError(
            f"column mapping {bad or sorted(mapping.items())} is not COLUMN=ROLE with distinct roles; fix: pass "
            "e.g. --columns query=anchor pos=positive neg=negative (roles: anchor, positive, negative)"
        )
    return mapping


def map_columns(ds: Dataset, columns: list[str] | dict[str, str] | None, where: str) -> Dataset:
    """Keep (anchor, positive[, negative]) from a dataset in any layout: an explicit ``COLUMN=ROLE`` mapping,
    else the columns named like a role (``COLUMN_ALIASES``: query/question -> anchor, pos -> positive ...).
    Pair datasets (no negative; explicit mapping only) are kept as (anchor, positive). A list-valued column (several positives or
    negatives per row) contributes its first element. A missing or ambiguous column is one error naming
    the columns found."""
    found = list(ds.column_names)
    mapping = parse_column_map(columns)
    if mapping:
        missing = [s for s in mapping if s not in found]
        if missing:
            raise ConfigError(
                f"{where} has no column(s) {missing} named in the column mapping (has {found}); fix: map "
                "the columns it has, e.g. --columns COLUMN=anchor COLUMN=positive [COLUMN=negative]"
            )
        chosen = {role: src for src, role in mapping.items()}
    else:
        chosen = {}
        for role, aliases in COLUMN_ALIASES.items():
            hits = [c for c in found if c.lower() in aliases]
            if len(hits) > 1:
                raise ConfigError(
                    f"{where}: columns {hits} could each be the {role} (has {found}); fix: choose with "
                    f"--columns {hits[0]}={role} (or `columns: [{hits[0]}={role}, ...]` in the recipe)"
                )
            if hits:
                chosen[role] = hits[0]
        if len(chosen) < len(
            TRAINING_COLUMNS
        ):  # pairs only by an explicit mapping (no silent loss of negatives)
            raise ConfigError(
                f"{where} lacks column(s) {[c for c in TRAINING_COLUMNS if c not in found]} (has {found}); fix: train "
                "on a triplet config (llm_hn, bm25_hn, ce_hn ...), not 'queries', or map its columns: --columns "
                "COLUMN=anchor COLUMN=positive [COLUMN=negative] (without a negative: pairs)"
            )
    if "anchor" not in chosen or "positive" not in chosen:
        raise ConfigError(
            f"column mapping {sorted(mapping.items())} names no anchor or no positive (has {found}); fix: map "
            "both, e.g. --columns question=anchor answer=positive"
        )
    roles = [r for r in TRAINING_COLUMNS if r in chosen]
    ds = ds.select_columns([chosen[r] for r in roles])
    listed = [
        chosen[r] for r in roles if type(ds.features[chosen[r]]).__name__ in ("List", "Sequence", "list")
    ]
    if listed or any(chosen[r] != r for r in roles):
        ds = ds.map(
            lambda row: {r: row[chosen[r]][0] if chosen[r] in listed and row[chosen[r]] else row[chosen[r]] for r in roles},
            remove_columns=[chosen[r] for r in roles],
        )  # fmt: skip
    return ds.select_columns(roles)


def negatives_or_next_positive(ds: Dataset) -> list[str]:
    if "negative" in ds.column_names:
        return list(ds["negative"])
    positives = list(ds["positive"])
    return positives[1:] + positives[:1]


def split_eval(ds: Dataset, *, eval_size: int, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out ``eval_size`` triplets (seeded) for the small evaluation during training."""
    if eval_size <= 0:
        return ds, None
    if eval_size >= len(ds):
        raise ConfigError(
            f"eval_size {eval_size} leaves no training data ({len(ds)} rows); fix: lower --eval_size"
        )
    parts = ds.train_test_split(test_size=eval_size, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def data_fingerprint(ds: Dataset, batch_size: int = 10_000) -> str:
    """SHA-256 of the rows (column names and values, in order): a rebuilt dataset folder with other rows has
    another fingerprint, whatever its name."""
    digest = hashlib.sha256(json.dumps(ds.column_names).encode())
    for batch in ds.iter(batch_size=batch_size):
        digest.update(json.dumps(batch, ensure_ascii=False, sort_keys=True).encode())
    return digest.hexdigest()


def load_config_triplets(config, *, refresh: bool) -> Dataset:
    """``load_triplets`` of a ``TrainConfig``'s dataset reference."""
    return load_triplets(
        config.dataset,
        config=config.dataset_config,
        revision=config.dataset_revision,
        split=config.dataset_split,
        refresh=refresh,
        columns=config.columns,
    )
