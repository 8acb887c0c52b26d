"""Dataset and model cards: what the user gives (dataclasses) + what is filled in (stats, versions).

Rendered from the Jinja templates in ``cards/`` with ``huggingface_hub``'s
``DatasetCard.from_template`` / ``ModelCard.from_template`` (pattern: sentence-transformers
``model_card.py`` + ``model_card_template.md``). The YAML front matter is a
``huggingface_hub.DatasetCardData`` / ``ModelCardData``; the ``configs:`` / ``dataset_info:`` part of a
dataset card is written by ``datasets`` (see ``hardneg.hub.save_dataset_folder``) and passed in as
``card_metadata``.

Every statistic is optional: a card renders whatever ``build_stats.json`` holds and never fails on a
missing key.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, ModelCard
from huggingface_hub import DatasetCardData as HubDatasetCardData
from huggingface_hub import ModelCardData as HubModelCardData

import hardneg
from hardneg.methods import QUERIES_CONFIG, config_description


def _cards_dir() -> Path:
    """The card templates: $HARDNEG_CARDS_DIR, else the copy a wheel ships as hardneg/cards/, else the
    repository's top-level cards/ folder (source checkout, editable install)."""
    if os.environ.get("HARDNEG_CARDS_DIR"):
        return Path(os.environ["HARDNEG_CARDS_DIR"])
    packaged = Path(__file__).resolve().parent / "cards"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "cards"


CARDS_DIR = _cards_dir()
DATASET_TEMPLATE = CARDS_DIR / "dataset_card.md"
MODEL_TEMPLATE = CARDS_DIR / "model_card.md"
REPO_PLACEHOLDER = "ORG/NAME"

PAPER_BIBTEX = """@article{sinha2025dontretrieve,
  title         = {Don't Retrieve, Generate: Prompting LLMs for Synthetic Training Data in Dense Retrieval},
  author        = {Sinha, Aarush},
  journal       = {arXiv preprint arXiv:2504.21015},
  year          = {2025},
  eprint        = {2504.21015},
  archivePrefix = {arXiv},
  primaryClass  = {cs.IR},
  url           = {https://arxiv.org/abs/2504.21015}
}"""

TOOLKIT_BIBTEX = """@software{{hardneg,
  title   = {{hardneg: building, publishing, training on and evaluating synthetic hard negatives for dense retrievers}},
  author  = {{hardneg developers}},
  year    = {{2026}},
  version = {{{version}}},
  note    = {{Python package `hardneg`; reproduces arXiv:2504.21015 as a comparison harness}}
}}"""

# Hugging Face size buckets (the `size_categories` YAML field).
_SIZE_BUCKETS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def _template(path: str | Path | None, default: Path) -> str:
    path = Path(path or default)
    if not path.is_file():
        raise FileNotFoundError(
            f"card template '{path}' not found; fix: reinstall hardneg (its wheel ships the templates) or set "
            "HARDNEG_CARDS_DIR to a folder holding dataset_card.md and model_card.md"
        )
    return str(path)


def size_category(rows: int) -> str:
    """The Hub's size bucket for a number of rows (``n<1K``, ``1K<n<10K`` ...)."""
    for limit, name in _SIZE_BUCKETS:
        if rows < limit:
            return name
    return "n>1T" if rows >= 1_000_000_000_000 else "1B<n<10B"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Versions recorded on every card (filled in automatically)."""
    return {
        "hardneg": hardneg.__version__,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "sentence-transformers": _version("sentence-transformers"),
        "datasets": _version("datasets"),
        "huggingface_hub": _version("huggingface_hub"),
    }


@dataclass
class DatasetCardData:
    """What the publisher says about a dataset; everything else on the card comes from ``build_stats.json``."""

    repo_id: str | None = field(
        default=None, metadata={"help": "Hub id ORG/NAME; the card's examples use it."}
    )
    version: str | None = field(
        default=None, metadata={"help": "Semantic version of this release, e.g. 1.0.0."}
    )
    pretty_name: str = field(
        default="hardneg synthetic hard negatives", metadata={"help": "Human-readable dataset name."}
    )
    license: str = field(
        default="other",
        metadata={"help": "Hub license id; the data derives from the corpus, so follow the corpus' license."},
    )
    language: list[str] = field(default_factory=lambda: ["en"], metadata={"help": "ISO 639-1 codes."})
    task_categories: list[str] = field(
        default_factory=lambda: ["sentence-similarity", "text-retrieval"],
        metadata={"help": "Hub task categories."},
    )
    task_ids: list[str] = field(
        default_factory=lambda: ["document-retrieval"], metadata={"help": "Hub task ids."}
    )
    tags: list[str] = field(
        default_factory=lambda: [
            "hard-negatives",
            "synthetic",
            "retrieval",
            "sentence-transformers",
            "hardneg",
        ],
        metadata={"help": "Hub tags."},
    )
    source_datasets: list[str] | None = field(
        default=None, metadata={"help": "Source dataset ids; default: the corpus in build_stats.json."}
    )
    summary: str | None = field(default=None, metadata={"help": "One paragraph that opens the card."})
    train_recipe: str = field(
        default="recipes/demo/train.yaml", metadata={"help": "Training recipe shown in the card's command."}
    )
    changelog: list[dict[str, str]] = field(
        default_factory=list,
        metadata={"help": "Release history, newest last: [{version, date, notes}]; publish appends to it."},
    )
    citation: str | None = field(
        default=None, metadata={"help": "Extra BibTeX (e.g. the corpus') for the card."}
    )


@dataclass
class ModelCardData:
    """What the trainer records about a fine-tuned retriever; versions are filled in automatically."""

    base_model: str = field(
        metadata={"help": "Model the retriever was fine-tuned from (Hub id or embedded:...)."}
    )
    dataset_id: str = field(metadata={"help": "Training dataset: Hub id ORG/NAME or local folder."})
    dataset_config: str = field(metadata={"help": "Config of the dataset, e.g. llm_hn."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Dataset revision, e.g. v1.0.0."})
    loss: str = field(
        default="MultipleNegativesRankingLoss", metadata={"help": "sentence-transformers loss."}
    )
    hyperparameters: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Training arguments used."}
    )
    hardware: str = field(default="", metadata={"help": "Where it trained, e.g. '1x H100' or '2 CPU cores'."})
    prompts: dict[str, str] = field(
        default_factory=dict, metadata={"help": "Encoder prompts, e.g. {'query': ...}."}
    )
    train_samples: int = field(default=0, metadata={"help": "Number of training triplets."})
    train_seconds: float = field(default=0.0, metadata={"help": "Wall time of training."})
    metrics: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "Evaluation rows like results.json: {dataset, metric: value ...}."},
    )
    model_name: str | None = field(
        default=None, metadata={"help": "Display name; default: derived from ids."}
    )
    repo_id: str | None = field(default=None, metadata={"help": "Hub id the model is published under."})
    license: str = field(default="apache-2.0", metadata={"help": "Hub license id of the model."})
    language: list[str] = field(default_factory=lambda: ["en"], metadata={"help": "ISO 639-1 codes."})
    versions: dict[str, str | None] = field(
        default_factory=library_versions, metadata={"help": "Filled in automatically: library versions."}
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write as JSON (``card_data.json`` next to the model), so the card can be re-rendered at publish time."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelCardData:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---------------------------------------------------------------------------------------------------------
# helpers that turn optional stats into display values


def _fmt(value: Any, digits: int = 4) -> str:
    """A stat for a table cell: numbers rounded, missing values as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value == int(value) and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return str(value)


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _config_view(name: str, stats: dict, splits: dict[str, int], prompts: dict[str, dict]) -> dict[str, Any]:
    """Everything the template shows about one config, with missing values made explicit."""
    stats = _as_dict(stats)
    score_stats = {
        side: {k: _fmt(v) for k, v in _as_dict(values).items()}
        for side, values in _as_dict(stats.get("score_stats")).items()
    }
    rows = stats.get("rows")
    if rows is None and splits:
        rows = sum(splits.values())
    fn_rate = stats.get("suspected_false_negative_rate")
    return {
        "name": name,
        "is_triplet": name != QUERIES_CONFIG,
        "description": config_description(name),
        "splits": splits,
        "rows": _fmt(rows),
        "rejects": {k: _fmt(v) for k, v in _as_dict(stats.get("rejects")).items()},
        "skipped": {k: _fmt(v) for k, v in _as_dict(stats.get("skipped")).items()},
        "short": _fmt(stats.get("queries_short_of_negatives")),
        "candidates": _fmt(stats.get("candidates_considered")),
        "fn_rate": f"{fn_rate:.1%}" if isinstance(fn_rate, (int, float)) else "—",
        "score_name": stats.get("score_name"),
        "score_stats": score_stats,
        "params": {
            k: json.dumps(v) if not isinstance(v, str) else v
            for k, v in _as_dict(stats.get("params")).items()
        },
        "prompt_tokens": _fmt(stats.get("prompt_tokens")),
        "completion_tokens": _fmt(stats.get("completion_tokens")),
        "wall_seconds": _fmt(stats.get("wall_seconds"), 5),
        "items_per_second": _fmt(stats.get("items_per_second"), 4),
        "prompts": (
            list(_prompt_views({name: stats["prompt"]}).values())
            if isinstance(stats.get("prompt"), dict)
            else [p for key, p in prompts.items() if _prompt_used_by(key, name)]
        ),
        "fn_scorer": stats.get("false_negative_scorer"),
        "other": _other_stats(stats),
    }


# Stats shown in their own place on the card; anything else small is listed under "other statistics".
_SHOWN_STATS = {
    "rows",
    "wall_seconds",
    "items_per_second",
    "prompt_tokens",
    "completion_tokens",
    "rejects",
    "skipped",
    "candidates_considered",
    "queries_short_of_negatives",
    "score_stats",
    "suspected_false_negative_rate",
    "params",
    "score_name",
    "prompt",
    "false_negative_scorer",
    "method",
}


def _other_stats(stats: dict) -> dict[str, str]:
    out = {}
    for key, value in stats.items():
        if key in _SHOWN_STATS:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        if len(text) <= 200:  # long details (per-query lists) stay in build_stats.json
            out[key] = _fmt(value) if isinstance(value, (int, float)) else text
    return out


def _prompt_used_by(prompt_key: str, config: str) -> bool:
    """Prompts are keyed by config (``llm_hn``) or by stage (``query_*`` belongs to ``queries``)."""
    if config == "queries":
        return prompt_key.startswith("query")
    return prompt_key == config or prompt_key.startswith(f"{config}_") or prompt_key.startswith(f"{config}:")


def _prompt_views(prompts: dict) -> dict[str, dict]:
    views = {}
    for key, prompt in _as_dict(prompts).items():
        prompt = prompt if isinstance(prompt, dict) else {"text": str(prompt)}
        views[key] = {
            "key": key,
            "name": prompt.get("name", key),
            "version": prompt.get("version", "—"),
            "sha256": prompt.get("sha256", "—"),
            "text": prompt.get("text", "(prompt text not recorded)"),
        }
    return views


def _all_prompts(prompts: dict[str, dict], configs: list[dict]) -> list[dict]:
    """Every prompt once: the build's prompt table plus prompts recorded only in a config's stats."""
    seen = {(p["name"], p["sha256"]) for p in prompts.values()}
    out = list(prompts.values())
    for config in configs:
        for p in config["prompts"]:
            if (p["name"], p["sha256"]) not in seen:
                seen.add((p["name"], p["sha256"]))
                out.append(p)
    return out


def dataset_card_context(
    data: DatasetCardData,
    build_stats: dict,
    *,
    splits: dict[str, dict[str, int]] | None = None,
    default_config: str | None = None,
) -> dict[str, Any]:
    """The template variables of a dataset card (exposed for tests and for other renderers)."""
    build_stats = _as_dict(build_stats)
    stats_by_config = _as_dict(build_stats.get("configs"))
    splits = splits or {}
    names = list(splits) or list(stats_by_config)
    # queries first, then the methods in a stable order
    names = sorted(names, key=lambda n: (n != "queries", n))
    prompts = _prompt_views(build_stats.get("prompts"))
    configs = [_config_view(n, stats_by_config.get(n, {}), splits.get(n, {}), prompts) for n in names]
    generator = _as_dict(build_stats.get("generator"))
    sampling = generator.get("sampling", generator.get("settings"))
    corpus = _as_dict(build_stats.get("corpus"))
    triplets = [c for c in configs if c["is_triplet"]]
    example_config = (
        "llm_hn"
        if any(c["name"] == "llm_hn" for c in triplets)
        else (triplets or configs or [{}])[0].get("name", "queries")
    )
    repo_id = data.repo_id or REPO_PLACEHOLDER
    revision = f"v{data.version}" if data.version else None
    return {
        "hn": data,
        "repo_id": repo_id,
        "revision": revision,
        "configs": configs,
        "default_config": default_config,
        "example_config": example_config,
        "generator": {
            "model": generator.get("model", "—"),
            "backend": generator.get("backend", "—"),
            "sampling": json.dumps(sampling, sort_keys=True, default=str) if sampling is not None else "—",
            "seed": generator.get("seed", corpus.get("seed", "—")),
        },
        "corpus": {
            "source": corpus.get("source", "—"),
            "revision": corpus.get("revision") or "—",
            "passages_total": _fmt(corpus.get("passages_total")),
            "passages_sampled": _fmt(corpus.get("passages_sampled")),
            "seed": corpus.get("seed", "—"),
        },
        "prompts": _all_prompts(prompts, configs),
        "decontamination": {k: _fmt(v) for k, v in _as_dict(build_stats.get("decontamination")).items()},
        "build": {
            k: v if isinstance(v, str) else json.dumps(v, default=str)
            for k, v in _as_dict(build_stats.get("build")).items()
        },
        "created": build_stats.get("created", "—"),
        "built_with": build_stats.get("hardneg_version", "—"),
        "versions": library_versions(),
        "changelog": list(data.changelog),
        "paper_bibtex": PAPER_BIBTEX,
        "toolkit_bibtex": TOOLKIT_BIBTEX.format(version=hardneg.__version__),
        "extra_citation": data.citation,
        "train_recipe": data.train_recipe,
    }


def render_dataset_card(
    data: DatasetCardData,
    build_stats: dict,
    *,
    card_metadata: dict[str, Any] | None = None,
    splits: dict[str, dict[str, int]] | None = None,
    default_config: str | None = None,
    template_path: str | Path | None = None,
) -> str:
    """Render the full README.md (YAML front matter + body) of a dataset repo.

    ``card_metadata`` holds the ``configs:`` / ``dataset_info:`` YAML written by ``datasets``;
    ``splits`` maps config -> {split: rows}.
    """
    splits = splits or {}
    total_rows = sum(sum(s.values()) for s in splits.values()) or sum(
        int(_as_dict(s).get("rows") or 0) for s in _as_dict(_as_dict(build_stats).get("configs")).values()
    )
    corpus_source = _as_dict(_as_dict(build_stats).get("corpus")).get("source")
    source_datasets = data.source_datasets or ([str(corpus_source)] if corpus_source else None)
    hub_data = HubDatasetCardData(
        pretty_name=data.pretty_name,
        license=data.license,
        language=data.language,
        task_categories=data.task_categories,
        task_ids=data.task_ids,
        size_categories=[size_category(total_rows)],
        source_datasets=source_datasets,
        tags=data.tags,
        **(card_metadata or {}),
    )
    context = dataset_card_context(data, build_stats, splits=splits, default_config=default_config)
    card = DatasetCard.from_template(
        hub_data, template_path=_template(template_path, DATASET_TEMPLATE), **context
    )
    return str(card)


def _hub_model_id(model_id: str) -> str | None:
    """The Hub id for the YAML ``base_model``: embedded models map to the Hub id of the same weights."""
    if model_id.startswith("embedded:"):
        from hardneg.assets import resolve_embedder

        try:
            return resolve_embedder(model_id).display_name
        except (ValueError, RuntimeError):
            return None
    return None if Path(model_id).exists() else model_id


def render_model_card(data: ModelCardData, *, template_path: str | Path | None = None) -> str:
    """Render the full README.md of a fine-tuned retriever (sentence-transformers model folder)."""
    dataset_link = data.dataset_id if not Path(data.dataset_id).exists() else None
    name = (
        data.model_name
        or f"{data.base_model.split('/')[-1]} fine-tuned on {data.dataset_id} ({data.dataset_config})"
    )
    hub_data = HubModelCardData(
        library_name="sentence-transformers",
        base_model=_hub_model_id(data.base_model),
        datasets=[dataset_link] if dataset_link else None,
        language=data.language,
        license=data.license,
        pipeline_tag="sentence-similarity",
        tags=[
            "sentence-transformers",
            "sentence-similarity",
            "feature-extraction",
            "dense-retrieval",
            "hardneg",
            f"hardneg-{data.dataset_config}",
        ],
        model_name=name,
    )
    # rows like results.json: flat {metric: value} or with a nested "metrics" dict
    rows = [
        {**{k: v for k, v in r.items() if k != "metrics"}, **_as_dict(r.get("metrics"))} for r in data.metrics
    ]
    metric_names = sorted(
        {k for row in rows for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    )
    revision_arg = f', revision="{data.dataset_revision}"' if data.dataset_revision else ""
    card = ModelCard.from_template(
        hub_data,
        template_path=_template(template_path, MODEL_TEMPLATE),
        hn=data,
        title=name,
        repo_id=data.repo_id or REPO_PLACEHOLDER,
        revision_arg=revision_arg,
        hyperparameters={
            k: json.dumps(v) if not isinstance(v, str) else v for k, v in data.hyperparameters.items()
        },
        metric_names=metric_names,
        metric_rows=[
            {
                "label": " / ".join(str(row[k]) for k in ("model", "dataset", "split") if k in row) or "—",
                "values": [_fmt(row.get(m)) for m in metric_names],
            }
            for row in rows
        ],
        train_seconds=_fmt(float(data.train_seconds), 4),
        paper_bibtex=PAPER_BIBTEX,
        toolkit_bibtex=TOOLKIT_BIBTEX.format(version=hardneg.__version__),
    )
    return str(card)
