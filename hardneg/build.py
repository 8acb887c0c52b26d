"""The build stage: corpus -> LLM queries -> hard negatives by each method -> Hub-ready dataset folder.

Every method works on the *same* generated queries, so the comparison is fair. Each finished stage
is checkpointed under ``<output_dir>/stages/<name>/`` keyed by a hash of everything that determines
it; a rerun of the same command reuses finished stages, and LLM generation resumes item by item
from its own cache, so a crash loses nothing already computed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, load_from_disk

import hardneg
from hardneg.assets import EMBEDDED_EMBEDDER, resolve_dataset
from hardneg.corpus import load_beir_folder, load_corpus

logger = logging.getLogger(__name__)

LLM_METHODS = {"llm_hn": "query", "llm_pos_hn": "query_positive"}
MINED_METHODS = {"bm25_hn": "bm25", "ce_hn": "ce", "dense_hn": "dense"}
METHODS = tuple(LLM_METHODS) + tuple(MINED_METHODS)


@dataclass
class BuildConfig:
    """What to build. Generator settings live in ``hardneg.llm.GeneratorConfig`` (same recipe file)."""

    output_dir: str = field(
        default="runs/demo", metadata={"help": "Run folder; the dataset goes to <output_dir>/dataset."}
    )
    corpus: str = field(
        default="embedded:cranfield",
        metadata={
            "help": "Passages: embedded:cranfield, a BEIR folder, a .jsonl/.parquet file or a Hub dataset id."
        },
    )
    corpus_revision: str | None = field(
        default=None, metadata={"help": "Hub revision (tag/commit) of the corpus."}
    )
    corpus_text_column: str = field(
        default="text", metadata={"help": "Column of the corpus holding the passage text."}
    )
    corpus_title_column: str | None = field(
        default="title", metadata={"help": "Column holding the passage title (none/missing = no titles)."}
    )
    empty_passages: str = field(
        default="drop",
        metadata={
            "help": "Corpus rows with an empty or missing text: drop (counted in the stats, first ids logged) or error."
        },
    )
    num_passages: int = field(
        default=150,
        metadata={
            "help": "Passages sampled (seeded) as positives; 0 = all. Mining always uses the whole corpus."
        },
    )
    methods: list[str] = field(
        default_factory=lambda: ["llm_hn", "bm25_hn", "ce_hn"],
        metadata={"help": f"Hard-negative configs to build, any of {', '.join(METHODS)}."},
    )
    query_prompt: str = field(
        default="query_fewshot",
        metadata={"help": "Query prompt: a packaged template name or a template file path."},
    )
    llm_hn_prompt: str = field(
        default="llm_hn", metadata={"help": "Prompt for llm_hn (negative from the query alone)."}
    )
    llm_pos_hn_prompt: str = field(
        default="llm_pos_hn", metadata={"help": "Prompt for llm_pos_hn (query + positive)."}
    )
    query_max_new_tokens: int = field(default=32, metadata={"help": "Token budget of a generated query."})
    negative_max_new_tokens: int = field(
        default=96, metadata={"help": "Token budget of a generated negative passage."}
    )
    reject_retries: int = field(
        default=2, metadata={"help": "Retries (new seed) for an LLM output rejected by the hygiene filters."}
    )
    range_min: int = field(
        default=0, metadata={"help": "Skip the first range_min candidates of the ranking (mined methods)."}
    )
    range_max: int = field(
        default=20, metadata={"help": "Consider only the top range_max candidates (mined methods)."}
    )
    num_negatives: int = field(default=1, metadata={"help": "Negatives per query (one triplet row each)."})
    sampling_strategy: str = field(
        default="top", metadata={"help": "top | random (seeded) among the kept candidates."}
    )
    absolute_margin: float | None = field(
        default=None, metadata={"help": "Keep negatives scoring < positive - margin."}
    )
    relative_margin: float | None = field(
        default=None,
        metadata={"help": "Keep negatives scoring < positive * (1 - margin) (NV-Retriever TopK-PercPos)."},
    )
    max_score: float | None = field(default=None, metadata={"help": "Drop candidates scoring above this."})
    min_score: float | None = field(default=None, metadata={"help": "Drop candidates scoring below this."})
    ce_scorer: str = field(
        default="embedded:ql",
        metadata={
            "help": "Scorer for ce_hn: a CrossEncoder id (cross-encoder/ms-marco-MiniLM-L-6-v2) or embedded:ql."
        },
    )
    ce_absolute_margin: float | None = field(
        default=0.0,
        metadata={
            "help": "False-negative guard of ce_hn: keep candidates the cross-encoder scores below positive - margin "
            "(overrides absolute_margin for ce_hn; none to disable)."
        },
    )
    scorer_dtype: str = field(
        default="auto",
        metadata={
            "help": "Precision of the ce / false-negative scorers: auto (bfloat16 on a CUDA GPU with bf16, else "
            "float32 = CrossEncoder.predict's scores), float32, bfloat16 (~1.8x faster on CPUs with avx512_bf16), float16."
        },
    )
    ce_candidates: str = field(
        default="bm25", metadata={"help": "Candidate generator for ce_hn: bm25 | dense."}
    )
    embedder: str = field(
        default=EMBEDDED_EMBEDDER, metadata={"help": "Bi-encoder for dense_hn / dense candidates."}
    )
    false_negative_scorer: str | None = field(
        default="same",
        metadata={
            "help": "Scorer for the suspected-false-negative rate of every config ('same' = ce_scorer; none to skip)."
        },
    )
    decontaminate: str | None = field(
        default=None,
        metadata={
            "help": "Evaluation set (BEIR folder or embedded:cranfield) whose query texts are removed from generated queries."
        },
    )
    decontaminate_split: str = field(default="test", metadata={"help": "Qrels split of the evaluation set."})
    exclude_eval_docs: bool = field(
        default=False,
        metadata={"help": "Also remove the evaluation set's judged documents from passages and mining pool."},
    )
    score_batch_size: int = field(
        default=32, metadata={"help": "Batch size for cross-encoder scoring and encoding."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            raise ValueError(
                f"methods is the string '{self.methods}', not a list; fix: write methods: [{self.methods}]"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; fix: choose from {', '.join(METHODS)}")
        if self.range_min >= self.range_max:
            raise ValueError(
                f"range_min ({self.range_min}) must be < range_max ({self.range_max}); fix: raise range_max"
            )
        if self.sampling_strategy not in ("top", "random"):
            raise ValueError(f"sampling_strategy '{self.sampling_strategy}' is not top or random")
        if self.num_passages < 0:
            raise ValueError("num_passages must be >= 0 (0 = all)")
        if self.num_negatives < 1 or self.range_max - self.range_min < self.num_negatives:
            raise ValueError(
                f"num_negatives ({self.num_negatives}) must be >= 1 and fit in the candidate window range_min..range_max "
                f"({self.range_min}..{self.range_max}); fix: raise range_max or lower num_negatives"
            )
        if self.empty_passages not in ("drop", "error"):
            raise ValueError(
                f"empty_passages '{self.empty_passages}' is not drop or error; fix: use drop or error"
            )


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Stages:
    """Finished stages on disk: ``stages/<name>/{data,stats.json}`` valid only for the same key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, name: str, key: str) -> tuple[Dataset, dict] | None:
        folder = self.root / name
        meta = folder / "stats.json"
        if not meta.is_file():
            return None
        saved = json.loads(meta.read_text())
        if saved.get("key") != key:
            return None
        logger.info("reusing finished stage %s", name)
        return load_from_disk(str(folder / "data")), saved["stats"]

    def update_stats(self, name: str, stats: dict) -> None:
        """Record statistics computed after the stage finished (e.g. the false-negative rate)."""
        meta = self.root / name / "stats.json"
        saved = json.loads(meta.read_text())
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": saved["key"], "stats": stats}, default=str))
        tmp.replace(meta)

    def put(self, name: str, key: str, data: Dataset, stats: dict) -> None:
        folder = self.root / name
        tmp = self.root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        data.save_to_disk(str(tmp / "data"))
        (tmp / "stats.json").write_text(json.dumps({"key": key, "stats": stats}, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # atomic: a stage is either complete or absent


def sample_passages(corpus: Dataset, n: int, seed: int) -> Dataset:
    """Seeded sample of ``n`` passages (all when n == 0 or n >= len), in a stable order."""
    if n == 0 or n >= len(corpus):
        return corpus
    return corpus.shuffle(seed=seed).select(range(n))


def build(config: BuildConfig, generator_config) -> Path:
    """Run the whole build; returns the dataset folder (Hub layout, loads with ``load_dataset``)."""
    from hardneg.hub import save_dataset_folder
    from hardneg.llm import load_generator
    from hardneg.negatives import mine_hard_negatives, suspected_false_negative_rate
    from hardneg.negatives.llm import generate_negatives
    from hardneg.queries import generate_queries

    seed = generator_config.seed  # one seed for the whole build: sampling, generation, random negatives
    out = Path(config.output_dir)
    stages = _Stages(out / "stages")
    cache_dir = out / "cache"
    corpus_report: dict[str, Any] = {}
    corpus = load_corpus(
        config.corpus,
        revision=config.corpus_revision,
        text_column=config.corpus_text_column,
        title_column=config.corpus_title_column,
        empty_passages=config.empty_passages,
        report=corpus_report,
    )
    out.mkdir(parents=True, exist_ok=True)  # after the inputs are read: a bad corpus leaves nothing behind
    decon: dict[str, Any] = {}
    eval_set = None
    if config.decontaminate:
        eval_set = load_beir_folder(resolve_dataset(config.decontaminate), split=config.decontaminate_split)
    pool = corpus
    if eval_set is not None and config.exclude_eval_docs:
        judged = {d for docs in eval_set.qrels.values() for d in docs}
        pool = corpus.filter(lambda r: r["id"] not in judged)
        decon["excluded_doc_ids"] = len(corpus) - len(pool)
    passages = sample_passages(pool, config.num_passages, seed)

    gen_info = generator_config.recorded()  # server URLs without credentials
    generator = None

    def get_generator():
        nonlocal generator
        if generator is None:
            generator = load_generator(generator_config)
        return generator

    configs: dict[str, Dataset] = {}
    stats: dict[str, dict] = {}

    qkey = _key(
        "queries",
        config.corpus,
        config.corpus_revision,
        passages["id"],
        gen_info,
        config.query_prompt,
        config.query_max_new_tokens,
        seed,
        config.reject_retries,
    )
    done = stages.get("queries", qkey)
    if done is None:
        queries, qstats = generate_queries(
            passages,
            get_generator(),
            prompt=config.query_prompt,
            cache_dir=cache_dir,
            seed=seed,
            max_new_tokens=config.query_max_new_tokens,
            max_retries=config.reject_retries,
        )
        stages.put("queries", qkey, queries, qstats)
    else:
        queries, qstats = done
    if eval_set is not None:
        from hardneg.decontaminate import remove_eval_queries

        before = len(queries)
        queries = remove_eval_queries(queries, list(eval_set.queries.values()))
        decon["removed_queries"] = before - len(queries)
    configs["queries"], stats["queries"] = queries, qstats

    scorers: dict[str, Any] = {}

    def get_scorer(name: str):
        from hardneg.scorers import load_scorer

        if name not in scorers:
            scorers[name] = load_scorer(name, dtype=config.scorer_dtype)
        return scorers[name]

    mining = {
        k: getattr(config, k)
        for k in (
            "range_min",
            "range_max",
            "num_negatives",
            "sampling_strategy",
            "absolute_margin",
            "relative_margin",
            "max_score",
            "min_score",
        )
    }
    for method in config.methods:
        guard = (
            {"absolute_margin": config.ce_absolute_margin}
            if method == "ce_hn" and config.ce_absolute_margin is not None
            else {}
        )
        key = _key(
            *([guard] if guard else []),
            method,
            qkey,
            len(queries),
            mining,
            config.ce_scorer,
            config.ce_candidates,
            config.embedder,
            getattr(config, f"{method}_prompt", None),
            config.negative_max_new_tokens,
            gen_info,
        )
        done = stages.get(method, key)
        if done is not None:
            configs[method], stats[method] = done
            continue
        start = time.perf_counter()
        if method in LLM_METHODS:
            triplets, mstats = generate_negatives(
                queries,
                get_generator(),
                variant=LLM_METHODS[method],
                prompt=getattr(config, f"{method}_prompt"),
                cache_dir=cache_dir,
                seed=seed,
                max_new_tokens=config.negative_max_new_tokens,
                max_retries=config.reject_retries,
            )
        else:
            triplets, mstats = mine_hard_negatives(
                queries,
                pool,
                method=MINED_METHODS[method],
                **(mining | guard),
                seed=seed,
                scorer=get_scorer(config.ce_scorer) if method == "ce_hn" else None,
                candidate_method=config.ce_candidates,
                embedder=config.embedder,
                batch_size=config.score_batch_size,
                cache_dir=cache_dir / "ce_scores" if method == "ce_hn" else None,
            )
        mstats.setdefault("wall_seconds", time.perf_counter() - start)
        stages.put(method, key, triplets, mstats)
        configs[method], stats[method] = triplets, mstats

    fn_name = config.ce_scorer if config.false_negative_scorer == "same" else config.false_negative_scorer
    if fn_name and fn_name.lower() != "none":
        fn_scorer = get_scorer(fn_name)
        for method in config.methods:
            if (
                stats[method].get("false_negative_scorer") != fn_scorer.name
                or "suspected_false_negative_rate" not in stats[method]
            ):
                rate, detail = suspected_false_negative_rate(configs[method], fn_scorer)
                stats[method]["suspected_false_negative_rate"] = rate
                stats[method]["false_negative_scorer"] = fn_scorer.name
                stats[method]["false_negative_detail"] = detail
                stages.update_stats(method, stats[method])

    build_stats = {
        "hardneg_version": hardneg.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "corpus": {
            "source": config.corpus,
            "revision": config.corpus_revision,
            "commit": corpus_report.get("commit"),
            "passages_total": len(corpus),
            "empty_passages_dropped": corpus_report.get("empty_dropped", 0),
            "empty_passage_ids": corpus_report.get("empty_ids", []),
            "passages_sampled": len(passages),
            "seed": seed,
        },
        "generator": {
            "model": generator_config.model,
            "backend": generator_config.backend,
            "settings": gen_info,
        },
        "prompts": {
            s.get("prompt", {}).get("name", name): s["prompt"] for name, s in stats.items() if s.get("prompt")
        },
        "build": {k: v for k, v in asdict(config).items() if k != "output_dir"},
        "configs": stats,
        "decontamination": decon,
    }
    return save_dataset_folder(out / "dataset", configs, build_stats, default_config="queries")
