"""``croissant.json``: the dataset folder described in Croissant 1.0 (MLCommons), with the responsible-AI
(RAI) fields filled from what the build recorded.

The Hub generates Croissant metadata for every dataset but leaves the RAI fields empty. hardneg knows them:
how the data was made (``rai:dataCollection``: corpus, passage sample, generator model and revision,
sampling), by which prompts (``rai:dataAnnotationProtocol``: name, version, sha256), which tools
(``rai:machineAnnotationTools``: generator, scorers, embedder), what was filtered
(``rai:dataPreprocessingProtocol``: empty passages, decontamination, pairing, rejected outputs per
config) and what is known to be wrong (``rai:dataBiases`` / ``rai:dataLimitations``: suspected
false-negative rates per config, with the scorer that measured them).

``croissant_metadata`` builds it with mlcroissant's own classes (one ``FileSet`` of parquet files and one
``RecordSet`` per config, a field per column); ``validate_croissant`` checks a file with mlcroissant, and a
failure is one line naming the field. mlcroissant is the optional extra ``hardneg[croissant]``
(``make install`` installs it); without it, ``write_croissant`` writes nothing and says so.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from datasets import Features, Value

from hardneg.cards import PAPER_BIBTEX, DatasetCardData, hub_license
from hardneg.config import ConfigError
from hardneg.errors import first_line
from hardneg.files import write_atomic
from hardneg.records import BuildStats

logger = logging.getLogger(__name__)

CROISSANT_FILE = "croissant.json"
REPO_PLACEHOLDER = "ORG/NAME"
# datasets' value types -> Croissant data types (schema.org)
_DATA_TYPES = {
    "string": "TEXT",
    "large_string": "TEXT",
    "bool": "BOOL",
    "float16": "FLOAT",
    "float32": "FLOAT",
    "float64": "FLOAT",
    "int8": "INTEGER",
    "int16": "INTEGER",
    "int32": "INTEGER",
    "int64": "INTEGER",
}


def available() -> bool:
    try:
        import mlcroissant  # noqa: F401
    except ImportError:
        return False
    return True


def _pct(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "not measured"


def rai_fields(build_stats: dict[str, Any] | BuildStats) -> dict[str, Any]:
    """The RAI fields (mlcroissant ``Metadata`` keyword names) from ``build_stats.json`` (``BuildStats``)."""
    stats = build_stats if isinstance(build_stats, BuildStats) else BuildStats.from_dict(build_stats or {})
    generator = stats.generator or {}
    revision = generator.get("revision")
    model = f"{generator.get('model', 'unknown')}" + (f" (revision {revision})" if revision else "")
    source = (stats.corpus or {}).get("source", "the corpus")
    return {
        "data_collection": _collection(stats, model),
        "data_collection_type": ["Machine-generated (LLM queries and negatives)", "Mined from the corpus"],
        "data_annotation_protocol": [
            f"{p.get('name', key)} v{p.get('version', '?')} (sha256 {p.get('sha256', '?')})"
            for key, p in (stats.prompts or {}).items()
            if isinstance(p, dict)
        ]
        or None,
        "machine_annotation_tools": _tools(stats, model),
        "data_preprocessing_protocol": _preprocessing(stats) or None,
        "data_biases": _biases(stats),
        "data_limitations": [
            "A hard negative may in fact answer its query (a false negative): see the rates in dataBiases.",
            "Synthetic queries are not real user queries; evaluate on human-judged sets.",
        ],
        "data_use_cases": [
            "Training and comparing dense retrievers (anchor, positive, negative triplets for contrastive "
            "losses). Not an evaluation set: its labels are synthetic."
        ],
        "personal_sensitive_information": [
            f"hardneg adds none; texts come from {source} and an LLM, and inherit whatever the corpus holds."
        ],
    }


def _or(value: Any, default: str = "?") -> Any:
    return default if value is None else value


def _collection(stats: BuildStats, model: str) -> str:
    """How the data was collected: the sampled corpus, the generator and its sampling, the configs."""
    corpus, generator = stats.corpus or {}, stats.generator or {}
    settings = generator.get("settings") or {}
    sampling = {k: settings[k] for k in ("temperature", "top_p", "seed", "max_new_tokens") if k in settings}
    return (
        f"{corpus.get('passages_sampled', '?')} passages sampled (seed {corpus.get('seed', '?')}) from "
        f"{corpus.get('source', 'an unnamed corpus')}"
        + (f" at revision {corpus['revision']}" if corpus.get("revision") else "")
        + f" ({corpus.get('passages_total', '?')} passages). The LLM {model} via the "
        f"{generator.get('backend', '?')} backend, sampling {json.dumps(sampling, sort_keys=True)}, wrote one "
        "query per passage (the passage is the positive); each config adds hard negatives by its method: "
        + ", ".join(f"{name} ({_or(c.rows)} rows)" for name, c in stats.configs.items())
        + f". Built {_or(stats.created)} with hardneg {_or(stats.hardneg_version)}."
    )


def _tools(stats: BuildStats, model: str) -> list[str]:
    """The generator and every scorer or judge the published configs used."""
    build = stats.build or {}
    if isinstance(build.get("methods"), dict):  # each method's own options (builds since issue 21)
        options = build["methods"]
        build = {
            **build,
            "ce_scorer": (options.get("ce_hn") or {}).get("ce_scorer"),
            "embedder": (options.get("dense_hn") or {}).get("embedder"),
        }
    used = {  # a recipe names every tool; only those a published config used are listed
        "ce_scorer": "ce_hn" in stats.configs,
        "embedder": "dense_hn" in stats.configs,
        "false_negative_scorer": True,
        "false_negative_judge": True,
        "repair_judge_model": build.get("false_negative_repair", "none") != "none",
    }
    return [f"generator: {model}"] + [
        f"{key}: {build[key]}" for key, on in used.items() if on and build.get(key)
    ]


def _preprocessing(stats: BuildStats) -> list[str]:
    """Empty passages dropped, decontamination, pairing, and each config's rejected generator outputs."""
    corpus, out = stats.corpus or {}, []
    if corpus.get("empty_passages_dropped"):
        out.append(f"{corpus['empty_passages_dropped']} corpus passages with an empty text dropped")
    if stats.decontamination:
        out.append(
            "decontamination against evaluation sets: "
            + ", ".join(
                f"{k} = {json.dumps(v)}"
                for k, v in stats.decontamination.items()
                if not isinstance(v, (list, dict))
            )
        )
    if (stats.paired or {}).get("enabled"):
        out.append("paired: every method config keeps only the query ids present in all of them")
    for name, c in stats.configs.items():
        rejects = c.get("rejects") or {}
        if rejects:
            out.append(
                f"{name}: rejected generator outputs " + ", ".join(f"{k} = {v}" for k, v in rejects.items())
            )
    return out


def _biases(stats: BuildStats) -> list[str]:
    """Each config's suspected false-negative rate (an independent judge's when there is one), and the
    generator's and retrievers' own biases."""
    biases = []
    for name, c in stats.configs.items():
        if c.suspected_false_negative_rate is None and c.independent_false_negative_rate is None:
            continue
        independent = c.independent_false_negative_rate
        rate = independent if independent is not None else c.suspected_false_negative_rate
        scorer = c.independent_false_negative_scorer or c.false_negative_scorer
        same = bool(c.false_negative_same_as_guard) and independent is None  # older builds: from_dict decides
        biases.append(
            f"{name}: suspected false-negative rate {_pct(rate)} (scorer {scorer})"
            + (" - 0% by construction: the method filtered with this scorer" if same else "")
        )
    return biases + [
        "Queries and LLM-written negatives carry the generator's style and knowledge; mined negatives carry "
        "the retriever's (BM25 favours lexical overlap, cross-encoders their training domain)."
    ]


def croissant_metadata(
    features: dict[str, Features],
    build_stats: dict[str, Any],
    card: DatasetCardData,
) -> dict[str, Any]:
    """The Croissant JSON-LD of a dataset folder: its configs (``features``: config -> features) as record
    sets read from the parquet files, and the RAI fields of ``build_stats``."""
    import mlcroissant as mlc

    repo = card.repo_id or REPO_PLACEHOLDER
    url = f"https://huggingface.co/datasets/{repo}"
    distribution: list[Any] = [
        mlc.FileObject(
            id="repo",
            name="repo",
            description="The Hugging Face git repository.",
            content_url=url + (f"/tree/v{card.version}" if card.version else ""),
            encoding_formats=["git+https"],
            sha256="https://github.com/mlcommons/croissant/issues/80",
        )
    ]
    record_sets = []
    for config, feats in features.items():
        distribution.append(
            mlc.FileSet(
                id=f"parquet-files-for-config-{config}",
                name=f"parquet-files-for-config-{config}",
                contained_in=["repo"],
                encoding_formats=["application/x-parquet"],
                includes=[f"{config}/*.parquet"],
            )
        )
        fields = []
        for column, feature in feats.items():
            dtype = _DATA_TYPES.get(feature.dtype if isinstance(feature, Value) else "string", "TEXT")
            fields.append(
                mlc.Field(
                    id=f"{config}/{column}",
                    name=column,
                    data_types=[getattr(mlc.DataType, dtype)],
                    source=mlc.Source(
                        file_set=f"parquet-files-for-config-{config}", extract=mlc.Extract(column=column)
                    ),
                )
            )
        record_sets.append(mlc.RecordSet(id=config, name=config, fields=fields))
    license = hub_license(card.license, card.license_name, card.license_link)
    metadata = mlc.Metadata(
        name=card.pretty_name,
        description=card.summary
        or "Synthetic training data for dense retrievers: LLM-written queries and hard negatives, one config "
        "per method (built with hardneg).",
        url=url,
        version=card.version or "0.0.0",
        license=[license.get("license_link") or license["license"]],
        cite_as=card.citation or PAPER_BIBTEX,
        date_published=str(build_stats.get("created") or "")[:10] or None,
        keywords=list(card.tags),
        in_language=list(card.language),
        distribution=distribution,
        record_sets=record_sets,
        **rai_fields(build_stats),
    )
    return metadata.to_json()


def validate_croissant(path: str | Path, name: str | None = None) -> None:
    """Check a ``croissant.json`` with mlcroissant; the first problem is one line naming the field."""
    import mlcroissant as mlc

    try:
        mlc.Dataset(jsonld=str(path))
    except mlc.ValidationError as err:
        issues = [line.strip(" -") for line in str(err).splitlines() if line.lstrip().startswith("-")]
        raise ConfigError(
            f"{name or path} is not valid Croissant: {issues[0] if issues else first_line(err)}; fix: correct that field (or rebuild the folder "
            "so hardneg rewrites it)"
        ) from None


def croissant_json(features: dict[str, Features], build_stats: dict[str, Any], card: DatasetCardData) -> str:
    """The validated text of ``croissant.json`` (mlcroissant required)."""
    text = json.dumps(croissant_metadata(features, build_stats, card), indent=1, default=str) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CROISSANT_FILE
        path.write_text(text, encoding="utf-8")
        validate_croissant(path, name=CROISSANT_FILE)
    return text


def write_croissant(
    folder: str | Path, features: dict[str, Features], build_stats: dict[str, Any], card: DatasetCardData
) -> Path | None:
    """Write ``<folder>/croissant.json`` (validated); None (with a log line) without mlcroissant."""
    if not available():
        logger.info("mlcroissant is not installed: no croissant.json (pip install 'hardneg[croissant]')")
        return None
    path = Path(folder) / CROISSANT_FILE
    return write_atomic(path, croissant_json(features, build_stats, card))
