"""Hub layout, validation and versioned publishing: the public names of two modules, in one place.

- ``hardneg.dataset_folder``: the offline folder (parquet per config, ``build_stats.json``,
  ``card_data.json``, the README's ``configs:``/``dataset_info:``), ``save_dataset_folder`` and
  ``validate_dataset_folder``;
- ``hardneg.publish``: ``publish_dataset``/``publish_model`` (dry run by default, one commit then an
  immutable tag ``v<version>``), ``write_git_mirror`` (a local git repo that olah serves) and the
  ``PublishConfig`` of ``builders/publish.py``.
"""

from __future__ import annotations

from hardneg.dataset_folder import (
    BUILD_STATS_FILE,
    CARD_DATA_FILE,
    QUERIES_COLUMNS,
    README_FILE,
    FolderReport,
    check_config_schema,
    dataset_card_metadata,
    load_card_data,
    save_dataset_folder,
    validate_dataset_folder,
)
from hardneg.publish import (
    PublishConfig,
    PublishResult,
    normalise_version,
    publish_dataset,
    publish_model,
    release_files,
    validate_model_folder,
    write_git_mirror,
)

__all__ = [
    "BUILD_STATS_FILE",
    "CARD_DATA_FILE",
    "QUERIES_COLUMNS",
    "README_FILE",
    "FolderReport",
    "PublishConfig",
    "PublishResult",
    "check_config_schema",
    "dataset_card_metadata",
    "load_card_data",
    "normalise_version",
    "publish_dataset",
    "publish_model",
    "release_files",
    "save_dataset_folder",
    "validate_dataset_folder",
    "validate_model_folder",
    "write_git_mirror",
]
