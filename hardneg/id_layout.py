"""The id layout of a dataset folder (sentence-transformers v6 ``util.resolve_ids``).

The text layout (default) publishes every triplet config with its texts (``anchor``, ``positive``,
``negative``). The id layout publishes each text once and the triplets as ids, as lightonai/ms-marco-en-bge
and teraflop-ai/hard-negatives do:

- ``corpus``: ``id``, ``text``: every passage a triplet config uses, positives and mined negatives under
  their corpus ids, LLM-written negatives (they have no corpus id) under ``gen-<sha256 of the text, 16 hex>``;
- ``queries``: hardneg's queries config, which already holds ``query_id`` and ``query``;
- per method a config of ids: ``query_id``, ``positive_id``, ``negative_id`` (first, in that order), then the
  method's scores and ranks.

The build recipe's ``layout`` chooses: ``text``, ``ids`` (the method configs hold ids, under the method's
name) or ``both`` (text configs under the method's name, id configs as ``<method>_ids``). Training reads
either: an id config is resolved against the same dataset's ``queries`` and ``corpus`` configs with
``resolve_ids`` and gives the very rows the text config holds (``tests/test_id_layout.py``). An id that is
not in its lookup config is one error line naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pandas as pd
from datasets import Dataset

from hardneg.config import ConfigError
from hardneg.errors import first_line
from hardneg.methods import QUERIES_CONFIG, TRAINING_COLUMNS

LAYOUTS = ("text", "ids", "both")
CORPUS_CONFIG = "corpus"
CORPUS_COLUMNS = ("id", "text")
ID_COLUMNS = ("query_id", "positive_id", "negative_id")
IDS_SUFFIX = "_ids"
GENERATED_PREFIX = "gen-"
# kept beside the ids: what the method measured (no texts)
_KEPT = ("negative_rank", "positive_score", "negative_score", "method")


def generated_id(text: str) -> str:
    """The corpus id of a passage that has none (an LLM-written negative): a hash of its text."""
    return GENERATED_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def is_id_config(columns: list[str]) -> bool:
    """A config in the id layout: its first columns are ``query_id, positive_id, negative_id`` and it holds
    no training texts."""
    return tuple(columns[: len(ID_COLUMNS)]) == ID_COLUMNS and not set(TRAINING_COLUMNS) & set(columns)


def layout_description(name: str, layout: str) -> str | None:
    """The card text of a config the id layout adds (None for the others)."""
    if name == CORPUS_CONFIG and layout != "text":
        return (
            "Every passage the triplet configs use, once: `id`, `text` (LLM-written negatives under "
            "`gen-<hash>` ids). The lookup of the id configs."
        )
    method = name.removesuffix(IDS_SUFFIX) if layout == "both" and name.endswith(IDS_SUFFIX) else None
    if layout == "ids" and name != QUERIES_CONFIG:
        method = name
    if method is None:
        return None
    return (
        f"The `{method}` triplets as ids: `query_id` (in `queries`), `positive_id` and `negative_id` (in "
        "`corpus`), then ranks and scores; `resolve_ids` turns them into (anchor, positive, negative) texts."
    )


def check_id_layout_schema(name: str, columns: list[str]) -> None:
    """The corpus config holds ``id, text`` first."""
    if name == CORPUS_CONFIG and tuple(columns[:2]) != CORPUS_COLUMNS:
        raise ValueError(
            f"config 'corpus' starts with columns {columns[:2]}; fix: put id, text first (the id layout's passages)"
        )


def _frame(ds: Dataset, columns: list[str]) -> pd.DataFrame:
    return ds.select_columns(columns).to_pandas()


def id_tables(triplets: dict[str, Dataset], queries: Dataset) -> tuple[Dataset, dict[str, Dataset]]:
    """``(corpus, {config: id table})`` for the triplet configs; an id used for two different texts, or an
    anchor that is not its query's text in ``queries``, is an error (the two layouts must train alike)."""
    passages, tables = [], {}
    query_text = _frame(queries, ["query_id", "query"]).drop_duplicates()
    twice = query_text[query_text["query_id"].duplicated()]
    if len(twice):
        raise ValueError(
            f"query_id '{twice['query_id'].iloc[0]}' has two texts in the queries config; fix: build with layout: text"
        )
    query_text = query_text.set_index("query_id")["query"]
    for name, ds in triplets.items():
        df = _frame(ds, [*TRAINING_COLUMNS, *ID_COLUMNS, *[c for c in _KEPT if c in ds.column_names]])
        missing = df["negative_id"].isna()
        df.loc[missing, "negative_id"] = df.loc[missing, "negative"].map(generated_id)
        wrong = df[df["anchor"].to_numpy() != df["query_id"].map(query_text).to_numpy()]
        if len(wrong):
            raise ValueError(
                f"config '{name}' row {wrong.index[0]}: anchor is not the text of query_id "
                f"'{wrong['query_id'].iloc[0]}' in the queries config; fix: build with layout: text"
            )
        passages += [
            df[["positive_id", "positive"]].set_axis(CORPUS_COLUMNS, axis=1),
            df[["negative_id", "negative"]].set_axis(CORPUS_COLUMNS, axis=1),
        ]
        tables[name] = Dataset.from_pandas(df.drop(columns=list(TRAINING_COLUMNS)), preserve_index=False)
    corpus = pd.concat(passages, ignore_index=True).drop_duplicates()
    clash = corpus[corpus["id"].duplicated()]
    if len(clash):
        raise ValueError(
            f"passage id '{clash['id'].iloc[0]}' stands for two different texts; fix: build with layout: text"
        )
    return Dataset.from_pandas(corpus.sort_values("id"), preserve_index=False), tables


def layout_configs(configs: dict[str, Dataset], layout: str) -> dict[str, Dataset]:
    """The configs a build publishes under ``layout`` (``text``: ``configs`` as they are)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout '{layout}' is not one of {', '.join(LAYOUTS)}; fix: use text, ids or both")
    if layout == "text":
        return configs
    triplets = {k: v for k, v in configs.items() if k != QUERIES_CONFIG}
    corpus, tables = id_tables(triplets, configs[QUERIES_CONFIG])
    suffix = IDS_SUFFIX if layout == "both" else ""
    text = configs if layout == "both" else {QUERIES_CONFIG: configs[QUERIES_CONFIG]}
    return {**text, CORPUS_CONFIG: corpus, **{f"{k}{suffix}": v for k, v in tables.items()}}


def resolve_id_config(ds: Dataset, load: Callable[[str], Dataset], where: str) -> Dataset:
    """The (anchor, positive, negative) rows of an id config ``ds``: its ids resolved with
    sentence-transformers' ``resolve_ids`` against the ``queries`` and ``corpus`` configs that ``load(name)``
    returns (the same dataset and revision). An id missing from its lookup is one error line naming it."""
    from sentence_transformers.util import resolve_ids

    lookups = {}
    for config in (QUERIES_CONFIG, CORPUS_CONFIG):
        try:
            lookups[config] = load(config)
        except Exception as err:  # datasets raises many types; the user needs one line
            raise ConfigError(
                f"{where} holds ids but its '{config}' config does not load ({first_line(err)}); "
                "fix: publish the id layout whole (layout: ids or both writes queries and corpus)"
            ) from None
    transform = resolve_ids(
        {
            "query_id": (lookups[QUERIES_CONFIG], "query_id", "query"),
            "positive_id": (lookups[CORPUS_CONFIG], "id", "text"),
            "negative_id": (lookups[CORPUS_CONFIG], "id", "text"),
        },
        keep_columns=(),
    )
    try:
        resolved = ds.select_columns(list(ID_COLUMNS)).map(
            transform, batched=True, remove_columns=list(ID_COLUMNS), desc="resolve ids"
        )
    except KeyError as err:
        raise ConfigError(
            f"{where}: {str(err.args[0]).rstrip('.')}; fix: rebuild the dataset, or publish the 'queries' and 'corpus' configs of "
            "the same build"
        ) from None
    return resolved.rename_column("query", "anchor").select_columns(list(TRAINING_COLUMNS))
