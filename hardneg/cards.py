"""Dataset and model cards: what the user gives (dataclasses) + what is filled in (stats, versions).

Rendered from the Jinja templates in ``cards/`` with ``huggingface_hub``'s
``DatasetCard.from_template`` / ``ModelCard.from_template`` (pattern: sentence-transformers
``model_card.py`` + ``model_card_template.md``). The YAML front matter is a
``huggingface_hub.DatasetCardData`` / ``ModelCardData``; the ``configs:`` / ``dataset_info:`` part of a
dataset card is written by ``datasets`` (see ``hardneg.dataset_folder.save_dataset_folder``) and passed in as
``card_metadata``.

Every statistic is optional: a card renders whatever ``build_stats.json`` holds and never fails on a
missing key.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, ModelCard
from huggingface_hub import DatasetCardData as HubDatasetCardData
from huggingface_hub import ModelCardData as HubModelCardData

import hardneg
from hardneg.card_stats import all_prompts, as_dict, config_view, fmt, prompt_views
from hardneg.diagnose.record import Diagnostics
from hardneg.environment import lock_provenance
from hardneg.id_layout import IDS_SUFFIX
from hardneg.records import BuildStats
from hardneg.redact import redact_url
from hardneg.revisions import is_hub_id


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
RECIPES_DIR = "recipes"  # in a dataset folder / repo: the effective recipe of the build
BUILD_RECIPE_FILE = "build.yaml"
EXAMPLE_ROWS = 2
EXAMPLE_CHARS = 160
# License ids the Hub knows (https://huggingface.co/docs/hub/repositories-licenses); anything else is
# published as `license: other` with `license_name`.
HUB_LICENSES = frozenset(
    "apache-2.0 mit openrail openrail++ bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 "
    "bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear "
    "c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 "
    "cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 "
    "cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 "
    "etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research "
    "intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openmdw-1.0 "
    "openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license "
    "fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other".split()
)

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
    """Versions recorded on every card (filled in automatically), with the digest of the lock that made the
    environment (``hardneg.environment.lock_provenance``: None outside a checkout, the drift when it differs)."""
    return {
        "hardneg": hardneg.__version__,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "sentence-transformers": _version("sentence-transformers"),
        "datasets": _version("datasets"),
        "huggingface_hub": _version("huggingface_hub"),
        "lock": lock_provenance(),
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
        metadata={
            "help": "Hub license id; the data derives from the corpus, so follow the corpus' license. A license "
            "the Hub does not know is published as license: other + license_name."
        },
    )
    license_name: str | None = field(
        default=None,
        metadata={"help": "Name of a non-standard license (with license: other), e.g. cranfield-terms."},
    )
    license_link: str | None = field(
        default=None, metadata={"help": "Where a non-standard license's text is (URL or a file in the repo)."}
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
        default=None,
        metadata={
            "help": "Source Hub dataset ids; default: the corpus in build_stats.json when it is a Hub id (local "
            "or embedded sources go to the card's provenance field instead)."
        },
    )
    toolkit_url: str | None = field(
        default=None,
        metadata={
            "help": "Link to the hardneg toolkit (default: the installed package's project URL, if any)."
        },
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
    dataset_commit: str | None = field(
        default=None, metadata={"help": "Hub commit sha of the dataset actually loaded (hardneg.revisions)."}
    )
    base_model_commit: str | None = field(
        default=None,
        metadata={"help": "Hub commit of the base model's weights actually loaded (None: local)."},
    )
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
    training_corpora: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Corpora whose passages generated the training queries (the build's corpus source)."
        },
    )
    not_zero_shot_on: list[str] = field(
        default_factory=list,
        metadata={
            "help": "MTEB tasks whose corpus generated the training queries: listed in model_meta.json's "
            "training_datasets, so MTEB marks the model not zero-shot on them."
        },
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


def toolkit_url() -> str | None:
    """The toolkit's project URL from the installed package's metadata (``[project.urls]``), if it has one."""
    try:
        meta = importlib.metadata.metadata("hardneg")
    except importlib.metadata.PackageNotFoundError:
        return None
    urls = [u.split(",", 1)[1].strip() for u in meta.get_all("Project-URL") or [] if "," in u]
    return next(iter(urls), None) or meta.get("Home-page")


def hub_license(license: str, name: str | None = None, link: str | None = None) -> dict[str, str]:
    """The card's license fields: a Hub id as is; anything else as ``other`` + ``license_name`` (+ link)."""
    license = (license or "other").strip()
    if license.lower() in HUB_LICENSES and license.lower() != "other":
        return {"license": license.lower()}
    slug = name or (license if license.lower() != "other" else "corpus-license")
    out = {"license": "other", "license_name": re.sub(r"[^a-z0-9.-]+", "-", slug.lower()).strip("-")}
    if link:
        out["license_link"] = link
    return out


def _cell(text: Any, limit: int = EXAMPLE_CHARS) -> str:
    text = " ".join(str(text if text is not None else "").split())
    text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|").replace("<", "&lt;")


def example_rows(folder: str | Path, n: int = EXAMPLE_ROWS) -> dict[str, list[dict[str, str]]]:
    """The first ``n`` rows of each config's train split in a dataset folder (texts cut for a table)."""
    import pyarrow.parquet as pq

    out: dict[str, list[dict[str, str]]] = {}
    for config_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        files = sorted(config_dir.glob("train-*.parquet")) or sorted(config_dir.glob("*.parquet"))
        if not files:
            continue
        names = pq.ParquetFile(files[0]).schema_arrow.names
        columns = [c for c in ("anchor", "query", "positive", "negative") if c in names]
        if not columns:
            continue
        table = pq.ParquetFile(files[0]).read_row_group(0, columns=columns).slice(0, n).to_pylist()
        out[config_dir.name] = [{c: _cell(row.get(c)) for c in columns} for row in table]
    return out


def build_recipe(build_stats: dict | BuildStats) -> str:
    """The effective recipe of a build (its settings after CLI overrides) as YAML for ``builders/build.py``."""
    import yaml

    stats = _build_stats(build_stats)
    build = dict(as_dict(stats.build))
    generator = dict(as_dict(as_dict(stats.generator).get("settings")))
    if "urls" in generator:
        generator["urls"] = [redact_url(str(u)) for u in generator.get("urls") or []]
    header = (
        f"# The effective recipe of this build (hardneg {stats.hardneg_version or '?'}, "
        f"{stats.created or '?'}): the build settings, then the generator's.\n"
        "# Rebuild: python builders/build.py --config recipes/build.yaml --output_dir runs/rebuild\n"
    )
    body = yaml.safe_dump(build, sort_keys=False) + "# generator (hardneg.llm.GeneratorConfig)\n"
    return header + body + yaml.safe_dump(generator, sort_keys=False)


def write_build_recipe(folder: str | Path, build_stats: dict | BuildStats) -> Path | None:
    """Write ``<folder>/recipes/build.yaml`` (uploaded with the dataset; the card's rebuild command uses it).
    Returns None when ``build_stats`` holds no build settings."""
    if not as_dict(_build_stats(build_stats).build):
        return None
    path = Path(folder) / RECIPES_DIR / BUILD_RECIPE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_recipe(build_stats), encoding="utf-8")
    return path


def dataset_card_extras(folder: str | Path) -> dict[str, Any]:
    """What a card renders from the dataset folder itself: example rows and whether the recipe is there."""
    folder = Path(folder)
    diag = Diagnostics.find(folder) if folder.is_dir() else None
    return {
        "examples": example_rows(folder) if folder.is_dir() else {},
        "has_recipe": (folder / RECIPES_DIR / BUILD_RECIPE_FILE).is_file(),
        "diagnostics": diag.markdown(level=2) if diag else None,
    }


def dataset_card_context(
    data: DatasetCardData,
    build_stats: dict | BuildStats,
    *,
    splits: dict[str, dict[str, int]] | None = None,
    default_config: str | None = None,
    examples: dict[str, list[dict[str, str]]] | None = None,
    has_recipe: bool | None = None,
    diagnostics: str | None = None,
) -> dict[str, Any]:
    """The template variables of a dataset card (exposed for tests and for other renderers).

    ``diagnostics``: the "Diagnostics" section (``hardneg.diagnose.Diagnostics.markdown``) when the folder holds
    ``diagnostics.json``."""
    stats = _build_stats(build_stats)
    splits = splits or {}
    # queries first, then the methods in a stable order
    names = sorted(list(splits) or list(stats.configs), key=lambda n: (n != "queries", n))
    prompts = prompt_views(stats.prompts)
    layout = str(as_dict(stats.build).get("layout") or "text")
    configs = [config_view(n, stats.config(n), splits.get(n, {}), prompts, layout) for n in names]
    triplets = [c for c in configs if c["is_triplet"]]
    example_config = (
        "llm_hn"
        if any(c["name"] == "llm_hn" for c in triplets)
        else (triplets or configs or [{}])[0].get("name", "queries")
    )
    revision = f"v{data.version}" if data.version else None
    return {
        "hn": data,
        "repo_id": data.repo_id or REPO_PLACEHOLDER,
        "revision": revision,
        "configs": configs,
        "default_config": default_config,
        "example_config": example_config,
        **_provenance_context(stats),
        "prompts": all_prompts(prompts, configs),
        "examples": examples or {},
        "has_recipe": bool(stats.build) if has_recipe is None else has_recipe,
        "recipe_path": f"{RECIPES_DIR}/{BUILD_RECIPE_FILE}",
        "toolkit_url": data.toolkit_url or toolkit_url(),
        "install": f'pip install "hardneg=={stats.hardneg_version}"'
        if stats.hardneg_version
        else "pip install hardneg",
        "revision_arg": f', revision="{revision}"' if revision else "",
        "changelog": list(data.changelog),
        "paper_bibtex": PAPER_BIBTEX,
        "toolkit_bibtex": TOOLKIT_BIBTEX.format(version=hardneg.__version__),
        "extra_citation": data.citation,
        "train_recipe": data.train_recipe,
        "layout": layout,
        "ids_suffix": IDS_SUFFIX if layout == "both" else "",
        "diagnostics": diagnostics,
    }


def _build_stats(build_stats: dict | BuildStats) -> BuildStats:
    """The record of a ``build_stats.json`` (older files converted by ``BuildStats.from_dict``)."""
    return build_stats if isinstance(build_stats, BuildStats) else BuildStats.from_dict(as_dict(build_stats))


def _provenance_context(stats: BuildStats) -> dict[str, Any]:
    """The card's generator, corpus, decontamination and build sections, and the versions the build ran with
    (recorded in build_stats, never the publishing machine's)."""
    generator, corpus = as_dict(stats.generator), as_dict(stats.corpus)
    sampling = generator.get("settings")
    return {
        "generator": {
            "model": generator.get("model", "—"),
            "backend": generator.get("backend", "—"),
            "sampling": json.dumps(sampling, sort_keys=True, default=str) if sampling is not None else "—",
            "seed": generator.get("seed", corpus.get("seed", "—")),
        },
        "corpus": {
            "source": corpus.get("source", "—"),
            "revision": corpus.get("revision") or "—",
            "passages_total": fmt(corpus.get("passages_total")),
            "passages_sampled": fmt(corpus.get("passages_sampled")),
            "seed": corpus.get("seed", "—"),
        },
        "decontamination": {k: fmt(v) for k, v in as_dict(stats.decontamination).items()},
        "build": {
            k: v if isinstance(v, str) else json.dumps(v, default=str)
            for k, v in as_dict(stats.build).items()
        },
        "created": stats.created if stats.created is not None else "—",
        "built_with": stats.hardneg_version if stats.hardneg_version is not None else "—",
        "versions": as_dict(stats.versions),
    }


def render_dataset_card(
    data: DatasetCardData,
    build_stats: dict,
    *,
    card_metadata: dict[str, Any] | None = None,
    splits: dict[str, dict[str, int]] | None = None,
    default_config: str | None = None,
    template_path: str | Path | None = None,
    examples: dict[str, list[dict[str, str]]] | None = None,
    has_recipe: bool | None = None,
    diagnostics: str | None = None,
) -> str:
    """Render the full README.md (YAML front matter + body) of a dataset repo.

    ``card_metadata`` holds the ``configs:`` / ``dataset_info:`` YAML written by ``datasets``;
    ``splits`` maps config -> {split: rows}; ``examples`` a few rows per config (``example_rows(folder)``);
    ``has_recipe``: the folder holds ``recipes/build.yaml`` (default: the build recorded its settings).
    """
    splits = splits or {}
    stats = _build_stats(build_stats)
    total_rows = sum(sum(s.values()) for s in splits.values()) or sum(
        int(c.rows or 0) for c in stats.configs.values()
    )
    corpus = as_dict(stats.corpus)
    sources = data.source_datasets or ([str(corpus["source"])] if corpus.get("source") else [])
    source_datasets = [s for s in sources if is_hub_id(s)] or None
    local = [s for s in sources if not is_hub_id(s)]
    provenance = (
        {"corpus": [{"source": s, "revision": corpus.get("revision")} for s in local]} if local else None
    )
    hub_data = HubDatasetCardData(
        pretty_name=data.pretty_name,
        **hub_license(data.license, data.license_name, data.license_link),
        language=data.language,
        task_categories=data.task_categories,
        task_ids=data.task_ids,
        size_categories=[size_category(total_rows)],
        source_datasets=source_datasets,
        tags=data.tags,
        **({"provenance": provenance} if provenance else {}),
        **(card_metadata or {}),
    )
    context = dataset_card_context(
        data,
        stats,
        splits=splits,
        default_config=default_config,
        examples=examples,
        has_recipe=has_recipe,
        diagnostics=diagnostics,
    )
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


HARDNEG_BLOCK_START = "<!-- hardneg:start"
HARDNEG_BLOCK_END = "<!-- hardneg:end -->"


def _eval_results(rows: list[dict]) -> list:
    """The card's retrieval results as Hub model-index entries (one per dataset x numeric metric). The
    held-out triplet check run at the end of training (split ``eval``) is left to sentence-transformers' card,
    which records it under its own evaluator's name."""
    from huggingface_hub import EvalResult

    out = []
    for row in rows:
        if row.get("split") == "eval":
            continue
        dataset = str(row.get("dataset") or "unknown")
        for metric, value in row.items():
            if metric in ("model", "dataset", "split") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)) and not math.isnan(float(value)):
                out.append(
                    EvalResult(
                        task_type="retrieval",
                        dataset_type=dataset,
                        dataset_name=dataset,
                        dataset_split=str(row.get("split") or "test"),
                        metric_type=metric.replace("@", "_at_"),
                        metric_name=metric,
                        metric_value=float(value),
                    )
                )
    return out


def merge_model_card(base_card: str, hardneg_card: str) -> str:
    """sentence-transformers' generated card with hardneg's block and metadata added.

    ``base_card`` keeps everything it has (training logs, dataset statistics, loss citation, base model
    revision); hardneg's block (between the ``hardneg:start``/``hardneg:end`` markers of ``hardneg_card``)
    replaces an earlier one or goes before the first ``##`` section; tags, datasets, base_model and the
    model-index entries of ``hardneg_card`` are added to the YAML (existing entries are kept).
    """
    base, ours = ModelCard(base_card), ModelCard(hardneg_card)
    if HARDNEG_BLOCK_START not in ours.text or HARDNEG_BLOCK_END not in ours.text:
        raise ValueError(
            "the model card template has no hardneg:start/hardneg:end block; fix: keep the markers of "
            "cards/model_card.md in a custom template"
        )
    block = ours.text[ours.text.index(HARDNEG_BLOCK_START) : ours.text.index(HARDNEG_BLOCK_END)]
    block += HARDNEG_BLOCK_END
    text = base.text
    if HARDNEG_BLOCK_START in text and HARDNEG_BLOCK_END in text:
        before, rest = text.split(HARDNEG_BLOCK_START, 1)
        text = before + block + rest.split(HARDNEG_BLOCK_END, 1)[1]
    else:
        at = text.find("\n## ")
        text = text + "\n" + block + "\n" if at < 0 else text[: at + 1] + block + "\n\n" + text[at + 1 :]
    meta = base.data
    new = ours.data
    meta.tags = list(dict.fromkeys([*(meta.tags or []), *(new.tags or [])]))
    if new.datasets:
        meta.datasets = list(dict.fromkeys([*(meta.datasets or []), *new.datasets]))
    meta.base_model = meta.base_model or new.base_model
    meta.model_name = meta.model_name or new.model_name
    if new.eval_results:
        keep = {(r.dataset_name, r.metric_type) for r in new.eval_results}
        old = [r for r in (meta.eval_results or []) if (r.dataset_name, r.metric_type) not in keep]
        meta.eval_results = old + list(new.eval_results)
    return str(ModelCard(f"---\n{meta.to_yaml()}\n---\n{text}"))


def render_model_card(
    data: ModelCardData, *, template_path: str | Path | None = None, base_card: str | None = None
) -> str:
    """Render the README.md of a fine-tuned retriever (sentence-transformers model folder).

    ``base_card``: the card sentence-transformers generated when the model was saved; hardneg's block and
    metadata are added to it (``merge_model_card``), so its training logs and statistics stay. Without it,
    the card is hardneg's template alone.
    """
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
        {**{k: v for k, v in r.items() if k != "metrics"}, **as_dict(r.get("metrics"))} for r in data.metrics
    ]
    metric_names = sorted(
        {k for row in rows for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    )
    hub_data.eval_results = _eval_results(rows) or None
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
                "values": [fmt(row.get(m)) for m in metric_names],
            }
            for row in rows
        ],
        train_seconds=fmt(float(data.train_seconds), 4),
        seed=data.hyperparameters.get("seed"),
        paper_bibtex=PAPER_BIBTEX,
        toolkit_bibtex=TOOLKIT_BIBTEX.format(version=hardneg.__version__),
    )
    return merge_model_card(base_card, str(card)) if base_card else str(card)
