"""``diagnose(config)``: every training-free diagnostic of every triplet config of a build, in one pass.

Steps (each a function below): load the build (folder or Hub id) -> check its configs -> sample rows ->
embed the distinct texts once with the frozen target encoder (``hardneg.diagnose.embed``: from the build's
and evaluation's caches where they hold them) -> per config: hardness and safety, the false-negative
scorer's saved scores, ECI, ECI_sem, surface statistics, diversity -> the source probe over the whole folder
-> the trained results beside them (when the run has results) -> ``diagnostics.json`` + plots + the card.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

import hardneg
from hardneg.assets import dtype_name, resolve_dtype
from hardneg.dataset_folder import README_FILE, load_build_tables, render_folder_card
from hardneg.diagnose import measures
from hardneg.diagnose.against import against_results
from hardneg.diagnose.embed import EncodeCost, embed_texts
from hardneg.diagnose.plots import plot_diagnostics
from hardneg.diagnose.probe import held_out_scores, out_of_fold_scores, probe_result
from hardneg.diagnose.record import (
    NO_LLM_NEGATIVES,
    ConfigDiagnostics,
    Diagnostics,
    diagnostics_path,
)
from hardneg.encode import fingerprint_model
from hardneg.files import write_atomic
from hardneg.id_layout import CORPUS_CONFIG, is_id_config
from hardneg.methods import QUERIES_CONFIG, TRAINING_COLUMNS
from hardneg.metrics import parse_metric
from hardneg.options import check_fields
from hardneg.records import FALSE_NEGATIVE_SCORES_FILE, FalseNegativeScores
from hardneg.references import resolve_build_ref
from hardneg.report import load_results

logger = logging.getLogger(__name__)


@dataclass
class DiagnoseConfig:
    """What to diagnose, with which frozen encoder, and the parameters of each measure."""

    OUTPUT_FIELDS: ClassVar[tuple[str, ...]] = ("run_dir",)
    # hardneg.config.check_outputs: writes into the run folder, as evaluate does
    OUTPUT_KIND: ClassVar[str] = "run"
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("dataset",)

    dataset: str = field(
        default="runs/demo/dataset",
        metadata={"help": "The build's dataset folder, or its Hub id (org/name)."},
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset (Hub ids only)."})
    run_dir: str = field(
        default="runs/demo",
        metadata={
            "help": "Run folder: diagnostics.json and plots go here; its cache/ (build and evaluation embeddings) "
            "is reused and its results/ (if any) are set beside the diagnostics."
        },
    )
    configs: list[str] = field(
        default_factory=list,
        metadata={"help": "Triplet configs to diagnose (default: every one but queries)."},
    )
    train_recipe: str | None = field(
        default="recipes/demo/train.yaml",
        metadata={
            "help": "The training recipe whose base model is the target encoder (model, max_seq_length, "
            "query_prompt, passage_prompt); '' for none (then give --target_encoder)."
        },
    )
    target_encoder: str | None = field(
        default=None, metadata={"help": "Target encoder id/folder; default: the train recipe's model."}
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Default: the train recipe's, else 256."}
    )
    query_prompt: str | None = field(
        default=None, metadata={"help": "Default: the train recipe's (else '')."}
    )
    passage_prompt: str | None = field(
        default=None, metadata={"help": "Default: the train recipe's (else '')."}
    )
    sample_size: int | None = field(
        default=10_000,
        metadata={
            "help": "Rows per config to diagnose (drawn with --seed); 0 or None: all. The intervals in "
            "diagnostics.json are what this sample implies for the whole config."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the row sample, bootstraps and probe folds."})
    batch_size: int = field(default=32, metadata={"bounds": (1, None), "help": "Encoding batch size."})
    dtype: str = field(
        default="float32", metadata={"help": "Encoding precision (float32 reuses evaluation's cache)."}
    )
    eci_margin: float = field(
        default=0.1, metadata={"help": "ECI safety margin (hardneg's choice; docs/diagnostics.md)."}
    )
    eci_sem_temperature: float = field(
        default=0.05, metadata={"help": "ECI_sem target-consistency temperature (hardneg's choice)."}
    )
    eci_sem_sample: int = field(
        default=512,
        metadata={
            "bounds": (1, None),
            "help": "ECI_sem rows per config in its log-determinant (same for every config).",
        },
    )
    probe_folds: int = field(default=5, metadata={"help": "Cross-validation folds of the source probe."})
    probe_sample: int | None = field(
        default=2000,
        metadata={
            "help": "Texts per class (LLM-written / corpus) the probe is cross-validated on; the rest are scored "
            "by a fit on the sample. 0 or None: all. DeLong's interval reflects the sample."
        },
    )
    probe_c: float = field(
        default=1.0, metadata={"help": "Inverse L2 strength of the probe's logistic regression."}
    )
    n_resamples: int = field(default=1000, metadata={"help": "Bootstrap resamples of every interval."})
    near_duplicate_cosine: float = field(
        default=0.95,
        metadata={"bounds": (0, 1), "help": "Two negatives at or above this cosine are near-duplicates."},
    )
    near_duplicate_threshold: float = field(
        default=0.8,
        metadata={
            "bounds": (0, 1),
            "help": "Word Jaccard at or above which a negative near-duplicates its positive.",
        },
    )
    metric: str = field(
        default="ndcg@10", metadata={"help": "Trained metric the diagnostics are ranked against."}
    )

    def __post_init__(self) -> None:
        if self.sample_size is not None and self.sample_size < 0:
            raise ValueError(
                f"sample_size must be >= 0, got {self.sample_size}; fix: e.g. --sample_size 10000"
            )
        if self.eci_margin <= 0:
            raise ValueError(f"eci_margin must be > 0, got {self.eci_margin}; fix: e.g. --eci_margin 0.1")
        if self.probe_folds < 2:
            raise ValueError(f"probe_folds must be >= 2, got {self.probe_folds}; fix: e.g. --probe_folds 5")
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples {self.n_resamples} is too few; fix: use >= 1000")
        for name in ("eci_sem_temperature", "probe_c"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}; fix: e.g. the default")
        resolve_dtype(self.dtype, "cpu")  # an unknown name: one line now, not after loading the model
        parse_metric(self.metric)
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)

    def params(self) -> dict[str, Any]:
        keys = (
            "sample_size",
            "seed",
            "eci_margin",
            "eci_sem_temperature",
            "eci_sem_sample",
            "probe_folds",
            "probe_sample",
            "probe_c",
            "n_resamples",
            "near_duplicate_cosine",
            "near_duplicate_threshold",
            "metric",
            "dtype",
        )
        return {k: getattr(self, k) for k in keys}


@dataclass
class TargetEncoder:
    """The frozen encoder every embedding comes from, resolved once."""

    model_id: str
    max_seq_length: int
    query_prompt: str
    passage_prompt: str


def resolve_target(config: DiagnoseConfig) -> TargetEncoder:
    """The target encoder: the options given, else the train recipe's base model and settings."""
    recipe: dict[str, Any] = {}
    if config.train_recipe:
        path = Path(config.train_recipe)
        if not path.is_file():
            raise ValueError(
                f"train recipe '{path}' not found; fix: pass --train_recipe RECIPE or --target_encoder MODEL"
            )
        recipe = yaml.safe_load(path.read_text()) or {}
    model = config.target_encoder or recipe.get("model")
    if not model:
        raise ValueError(
            "no target encoder; fix: pass --target_encoder MODEL or a --train_recipe with `model:`"
        )
    return TargetEncoder(
        model_id=str(model),
        max_seq_length=int(config.max_seq_length or recipe.get("max_seq_length") or 256),
        query_prompt=config.query_prompt
        if config.query_prompt is not None
        else recipe.get("query_prompt") or "",
        passage_prompt=config.passage_prompt
        if config.passage_prompt is not None
        else recipe.get("passage_prompt") or "",
    )


def triplet_configs(configs: dict[str, Any], wanted: list[str]) -> list[str]:
    """The configs to diagnose (default: every one but ``queries`` and the id layout's ``corpus`` and id configs,
    which hold no texts); one clear error for a missing config or one without a negative column."""
    names = wanted or [
        n for n in configs if n not in (QUERIES_CONFIG, CORPUS_CONFIG) and not is_id_config(list(configs[n]))
    ]
    for name in names:
        if name not in configs:
            raise ValueError(f"config '{name}' is not in the dataset; fix: choose from {', '.join(configs)}")
        missing = [c for c in TRAINING_COLUMNS if c not in configs[name]]
        if missing:
            raise ValueError(
                f"config '{name}' has no {' / '.join(missing)} column, so it has no triplets to diagnose; "
                f"fix: leave it out with --configs {' '.join(n for n in names if n != name) or 'CONFIG'}"
            )
    if not names:
        raise ValueError(
            "the dataset has no triplet config with texts; fix: point --dataset at a hardneg build (made with "
            "layout: text or both)"
        )
    return names


def sample_rows(n: int, size: int | None, seed: int) -> np.ndarray:
    if not size or n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def llm_written(cols: dict[str, list], rows: np.ndarray) -> np.ndarray:
    """Per row: the negative was written by an LLM. The data contract: ``negative_id`` is None exactly for
    LLM-written negatives (docs/design.md); a config without that column counts as corpus passages."""
    if "negative_id" not in cols:
        return np.zeros(len(rows), dtype=bool)
    ids = cols["negative_id"]
    return np.array([ids[i] is None for i in rows], dtype=bool)


def fn_scorer_margins(
    name: str,
    cols: dict[str, list],
    rows: np.ndarray,
    total: int,
    stats: dict,
    published: FalseNegativeScores | None,
) -> tuple[np.ndarray | None, str]:
    """The build's false-negative scorer's ``neg - pos`` per sampled row (``rows``: their numbers in the config
    of ``total`` rows), never recomputed: the method's own score columns when it filtered with that scorer,
    else the scores the build published beside its dataset folder (``false_negative_scores.json``)."""
    scorer = stats.get("false_negative_scorer")
    if not scorer:
        return None, "the build ran no false-negative scorer"
    own = (stats.get("params") or {}).get("scorer")
    if own and own == scorer and "negative_score" in cols:
        pos, neg = cols["positive_score"], cols["negative_score"]
    else:
        scores = published.rows(name, scorer, total) if published else None
        if scores is None:
            return None, "the build published no false-negative scores for these rows; rate from build_stats"
        pos = [scores.positive[r] for r in rows.tolist()]
        neg = [scores.negative[r] for r in rows.tolist()]
    margin = [(n - p) if p is not None and n is not None else np.nan for p, n in zip(pos, neg, strict=True)]
    return np.asarray(margin, dtype=np.float64), ""


@dataclass
class _Texts:
    """Distinct texts and, per config, each sampled row's index into them."""

    queries: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)
    q_at: dict[str, int] = field(default_factory=dict)
    p_at: dict[str, int] = field(default_factory=dict)

    def add(self, text: str, passage: bool) -> int:
        at, seq = (self.p_at, self.passages) if passage else (self.q_at, self.queries)
        if text not in at:
            at[text] = len(seq)
            seq.append(text)
        return at[text]


def diagnose_config(
    name: str,
    cols: dict[str, list],
    rows: np.ndarray,
    total: int,
    q: np.ndarray,
    p: np.ndarray,
    n: np.ndarray,
    stats: dict,
    published: FalseNegativeScores | None,
    config: DiagnoseConfig,
) -> ConfigDiagnostics:
    """Every per-config measure (the probe is added afterwards, over the whole folder). ``cols``: the sampled
    rows' columns; ``rows``: their numbers in the config of ``total`` rows."""
    anchors, positives, negatives = cols["anchor"], cols["positive"], cols["negative"]
    qids = [str(x) for x in cols["query_id"]] if "query_id" in cols else anchors
    at = np.arange(len(rows))
    s_p, s_n = measures.rowwise_cosine(q, p), measures.rowwise_cosine(q, n)
    margin = s_n - s_p
    boot = {"n_resamples": config.n_resamples, "seed": config.seed}
    out = ConfigDiagnostics(
        name=name,
        rows=total,
        sampled=len(rows),
        llm_rows=int(llm_written(cols, at).sum()),
        hardness=measures.hardness(margin, **boot),
    )
    fn_margin, note = fn_scorer_margins(name, cols, rows, total, stats, published)
    if fn_margin is not None and np.isfinite(fn_margin).any():
        out.fn_scorer = {
            "scorer": stats.get("false_negative_scorer"),
            "score_name": (stats.get("false_negative_detail") or {}).get("score_name")
            or stats.get("score_name"),
            **measures.hardness(fn_margin[np.isfinite(fn_margin)], **boot),
            "same_as_guard": bool(stats.get("false_negative_same_as_guard")),
        }
    else:
        out.fn_scorer = {
            "scorer": stats.get("false_negative_scorer"),
            "at_or_above": stats.get("suspected_false_negative_rate"),
            "note": note,
        }
    if "source" in cols:
        sources = np.array([str(x) for x in cols["source"]])
        out.by_source = {s: measures.hardness(margin[sources == s], **boot) for s in sorted(set(sources))}
    out.eci = measures.eci(s_p, s_n, qids, margin=config.eci_margin)
    out.eci_sem = measures.eci_sem(
        q,
        p,
        n,
        positives,
        negatives,
        temperature=config.eci_sem_temperature,
        sample=config.eci_sem_sample,
        seed=config.seed,
    )
    out.surface = measures.surface(
        anchors, positives, negatives, near_duplicate_threshold=config.near_duplicate_threshold
    )
    out.diversity = measures.diversity(n, negatives, qids, near_duplicate_cosine=config.near_duplicate_cosine)
    out.per_row = {"index": rows.tolist(), "margin": [round(float(x), 4) for x in margin]}
    return out


def _cap(items: list, n: int | None, rng: np.random.Generator) -> list:
    """At most ``n`` of ``items`` (a seeded sample, in order); all of them when ``n`` is 0 / None."""
    if not n or len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def _query_probe(
    names: list[str],
    q_rows: dict[str, np.ndarray],
    n_rows: dict[str, np.ndarray],
    llm: dict[str, np.ndarray],
    q_emb: np.ndarray,
    p_emb: np.ndarray,
    rng: np.random.Generator,
    config: DiagnoseConfig,
) -> tuple[dict[tuple[int, int], float], list[tuple[int, int]]]:
    """The query-conditioned probe: every (query, negative) row once, ``probe_sample`` per class, folds grouped
    by query; returns (out-of-fold score per (query, negative), the corpus-class pairs)."""
    pairs = sorted(
        {
            (int(a), int(b), bool(c))
            for m in names
            for a, b, c in zip(q_rows[m], n_rows[m], llm[m], strict=True)
        }
    )
    pairs = _cap([x for x in pairs if x[2]], config.probe_sample, rng) + _cap(
        [x for x in pairs if not x[2]], config.probe_sample, rng
    )
    pq, pn, py = (np.asarray(x) for x in zip(*pairs, strict=True))
    xq = np.concatenate([p_emb[pn], q_emb[pq] * p_emb[pn]], axis=1)
    keys = list(zip(pq.tolist(), pn.tolist(), strict=True))
    try:
        qscore = out_of_fold_scores(
            xq, py.astype(np.int64), groups=pq, folds=config.probe_folds, c=config.probe_c, seed=config.seed
        )
        q_score_of = dict(zip(keys, qscore.tolist(), strict=True))
    except ValueError:
        q_score_of = {}
    return q_score_of, [k for k, c in zip(keys, py.tolist(), strict=True) if not c]


def _config_probe(
    result: ConfigDiagnostics,
    q_rows: np.ndarray,
    n_rows: np.ndarray,
    llm: np.ndarray,
    score_of: dict[int, float],
    corpus_scores: np.ndarray,
    corpus_from: str,
    q_score_of: dict[tuple[int, int], float],
    q_corpus: list[tuple[int, int]],
) -> None:
    """One config's text-probe and query-probe AUCs: its LLM-written negatives against the shared corpus class."""
    mine = sorted({int(t) for t in n_rows[llm]} & set(score_of))
    if not llm.any():
        result.probe = result.probe_query = {"note": NO_LLM_NEGATIVES + " in this config"}
        return
    if not mine:
        result.probe = {"note": "none of its LLM-written negatives fell in the probe sample"}
        return
    yy = np.r_[np.ones(len(mine)), np.zeros(len(corpus_scores))].astype(np.int64)
    ss = np.r_[[score_of[t] for t in mine], corpus_scores]
    result.probe = {**probe_result(yy, ss), "corpus_class": corpus_from}
    rows_llm = sorted(
        {(int(a), int(b)) for a, b, c in zip(q_rows, n_rows, llm, strict=True) if c} & set(q_score_of)
    )
    if rows_llm:
        yq = np.r_[np.ones(len(rows_llm)), np.zeros(len(q_corpus))].astype(np.int64)
        result.probe_query = probe_result(yq, np.asarray([q_score_of[k] for k in rows_llm + q_corpus]))


def probe_all(
    results: dict[str, ConfigDiagnostics],
    llm: dict[str, np.ndarray],
    q_rows: dict[str, np.ndarray],
    p_rows: dict[str, np.ndarray],
    n_rows: dict[str, np.ndarray],
    q_emb: np.ndarray,
    p_emb: np.ndarray,
    config: DiagnoseConfig,
) -> str | None:
    """The source probe over the whole folder, its per-config AUCs and per-row scores; returns the note when
    there is nothing to probe.

    Text probe: distinct LLM-written negatives (1) vs distinct corpus-passage negatives (0; the positives when no
    config has corpus negatives), at most ``probe_sample`` of each (seeded): out-of-fold scores on the sample give
    the AUCs, and one fit on the whole sample scores every other negative (held out from it) for the explorer.
    Query-conditioned probe: (query, negative) rows, the same cap per class, folds grouped by query."""
    names = list(results)
    rng = np.random.default_rng(config.seed)
    llm_all = sorted({int(t) for m in names for t in n_rows[m][llm[m]]})
    corpus_all = sorted({int(t) for m in names for t in n_rows[m][~llm[m]]} - set(llm_all))
    corpus_from = "mined negatives"
    if not llm_all:
        for m in names:
            results[m].probe = results[m].probe_query = {"note": NO_LLM_NEGATIVES}
        return NO_LLM_NEGATIVES
    if len(corpus_all) < 2:
        corpus_all = sorted({int(t) for m in names for t in p_rows[m]} - set(llm_all))
        corpus_from = "positives (no config has corpus-passage negatives)"
    llm_texts, corpus_texts = (
        _cap(llm_all, config.probe_sample, rng),
        _cap(corpus_all, config.probe_sample, rng),
    )
    texts = np.asarray(llm_texts + corpus_texts)
    y = np.r_[np.ones(len(llm_texts), dtype=np.int64), np.zeros(len(corpus_texts), dtype=np.int64)]
    try:  # the AUCs are per config, below
        score = out_of_fold_scores(
            p_emb[texts], y, folds=config.probe_folds, c=config.probe_c, seed=config.seed
        )
    except ValueError as err:
        for m in names:
            results[m].probe = results[m].probe_query = {"note": f"{err}; too few texts to probe"}
        return f"too few texts to probe ({len(llm_all)} LLM-written, {len(corpus_all)} corpus)"
    score_of = dict(zip(texts.tolist(), score.tolist(), strict=True))
    rest = sorted({int(t) for m in names for t in n_rows[m]} - set(score_of))
    held = held_out_scores(p_emb[texts], y, p_emb[rest], c=config.probe_c)
    shown = {**dict(zip(rest, held.tolist(), strict=True)), **score_of}
    corpus_scores = np.asarray([score_of[t] for t in corpus_texts])
    q_score_of, q_corpus = _query_probe(names, q_rows, n_rows, llm, q_emb, p_emb, rng, config)
    for m in names:
        _config_probe(
            results[m],
            q_rows[m],
            n_rows[m],
            llm[m],
            score_of,
            corpus_scores,
            corpus_from,
            q_score_of,
            q_corpus,
        )
        results[m].per_row["probe"] = [
            None if int(t) not in shown else round(shown[int(t)], 4) for t in n_rows[m]
        ]
    return None


@dataclass
class _Sample:
    """The sampled rows of every config: their numbers, columns, and each row's query / positive / negative as
    an index into the distinct ``texts``; ``llm``: the negative was written by an LLM."""

    texts: _Texts = field(default_factory=_Texts)
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    cols: dict[str, dict[str, list]] = field(default_factory=dict)
    q: dict[str, np.ndarray] = field(default_factory=dict)
    p: dict[str, np.ndarray] = field(default_factory=dict)
    n: dict[str, np.ndarray] = field(default_factory=dict)
    llm: dict[str, np.ndarray] = field(default_factory=dict)


def sample_configs(tables: dict, names: list[str], config: DiagnoseConfig, same_prompt: bool) -> _Sample:
    """Draw each config's rows (``sample_rows``) and collect their distinct texts (queries share the passages'
    list when both have the same prompt)."""
    out = _Sample()
    for name in names:
        # Only the sampled rows become Python lists: a config of millions stays an Arrow table on disk.
        rows = sample_rows(len(tables[name]), config.sample_size, config.seed)
        out.rows[name], cols = rows, tables[name].select(rows).to_dict()
        out.cols[name] = cols
        out.q[name] = np.asarray([out.texts.add(t, same_prompt) for t in cols["anchor"]], dtype=np.int64)
        out.p[name] = np.asarray([out.texts.add(t, True) for t in cols["positive"]], dtype=np.int64)
        out.n[name] = np.asarray([out.texts.add(t, True) for t in cols["negative"]], dtype=np.int64)
        out.llm[name] = llm_written(cols, np.arange(len(rows)))
    return out


def embed_sample(
    model, target: TargetEncoder, texts: _Texts, config: DiagnoseConfig, cost: EncodeCost
) -> tuple[np.ndarray, np.ndarray]:
    """(query embeddings, passage embeddings) of the distinct texts, from the run's caches where they hold
    them (``embed_texts``); the model's weights are fingerprinted once for both."""
    same_prompt = target.query_prompt == target.passage_prompt
    common = {
        "cache_root": Path(config.run_dir) / "cache",
        "model_id": target.model_id,
        "batch_size": config.batch_size,
        "dtype": dtype_name(config.dtype, str(model.device)),  # as evaluation keys its cache
        "cost": cost,
        "model_fingerprint": fingerprint_model(model),
    }
    p_emb = embed_texts(model, texts.passages, prompt=target.passage_prompt, **common)
    if same_prompt:
        return p_emb, p_emb
    return embed_texts(model, texts.queries, prompt=target.query_prompt, passages=False, **common), p_emb


def _cost_record(cost: EncodeCost, t_start: float) -> dict[str, Any]:
    return {
        "texts": cost.texts,
        "from_evaluation_cache": cost.from_evaluation_cache,
        "from_pool_cache": cost.from_pool_cache,
        "encoded": cost.encoded,
        "encode_seconds": round(cost.encode_seconds, 2),
        "total_seconds": round(time.perf_counter() - t_start, 2),
    }


def diagnose(config: DiagnoseConfig) -> Diagnostics:
    """Run every diagnostic (module docstring); write ``diagnostics.json``, the plots and the card section."""
    from hardneg.train import load_model  # heavy (the trainer stack): only when diagnosing

    t_start = time.perf_counter()
    # the dataset reference resolved once (folder, or Hub repo + the commit its revision names)
    tables, build_stats, folder = load_build_tables(resolve_build_ref(config.dataset, config.revision))
    # the build's published false-negative scores, read once for every config (none for a Hub copy)
    published = FalseNegativeScores.from_disk(folder.parent / FALSE_NEGATIVE_SCORES_FILE) if folder else None
    names = triplet_configs({n: t.column_names for n, t in tables.items()}, list(config.configs))
    target = resolve_target(config)
    model = load_model(
        target.model_id,
        max_seq_length=target.max_seq_length,
        prompts={"query": target.query_prompt, "document": target.passage_prompt},
    )
    sample = sample_configs(tables, names, config, target.query_prompt == target.passage_prompt)
    cost = EncodeCost()
    q_emb, p_emb = embed_sample(model, target, sample.texts, config, cost)
    stats = build_stats.get("configs") or {}
    results = {
        name: diagnose_config(
            name,
            sample.cols[name],
            sample.rows[name],
            len(tables[name]),
            q_emb[sample.q[name]],
            p_emb[sample.p[name]],
            p_emb[sample.n[name]],
            stats.get(name) or {},
            published,
            config,
        )
        for name in names
    }
    probe_note = probe_all(results, sample.llm, sample.q, sample.p, sample.n, q_emb, p_emb, config)
    diag = Diagnostics(
        dataset=str(config.dataset),
        revision=config.revision,
        target_encoder=target.model_id,
        max_seq_length=target.max_seq_length,
        query_prompt=target.query_prompt,
        passage_prompt=target.passage_prompt,
        fn_scorer=next(
            (s.get("false_negative_scorer") for s in stats.values() if s.get("false_negative_scorer")), None
        ),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        hardneg_version=hardneg.__version__,
        params=config.params(),
        configs=results,
        probe_note=probe_note,
    )
    run = Path(config.run_dir)
    if (run / "results").is_dir() and any((run / "results").glob("*.json")):
        diag.against_results = against_results(
            diag.table(), load_results(run), metric=config.metric, seed=config.seed
        )
    diag.cost = _cost_record(cost, t_start)
    diag.to_disk(diagnostics_path(run))
    plot_diagnostics(diag, run)
    if folder is not None:
        diag.to_disk(folder / "diagnostics.json", per_row=False)
        refresh_card(folder)
    return diag


def refresh_card(folder: Path) -> None:
    """Re-render the dataset card so it shows the diagnostics (from the folder's files; no config is read
    again: the folder was loaded by ``load_build_tables`` already)."""
    write_atomic(folder / README_FILE, render_folder_card(folder))
