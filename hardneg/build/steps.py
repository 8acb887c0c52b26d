"""The build's steps on one process's passages: inputs, queries, methods (each a stage keyed by its own
options), pairing and the statistics record. ``hardneg.build.pipeline.build`` runs them in order."""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

import hardneg
from hardneg.build.config import BuildConfig
from hardneg.build.scoring import repair_stages, score_rows
from hardneg.build.stages import Resources, Stages, check_stage_result, step
from hardneg.cards import library_versions
from hardneg.corpus import load_corpus, local_corpus_file
from hardneg.decontaminate import decontaminate_corpus, decontaminate_queries, exclusions_from_beir
from hardneg.distributed import ONE_PROCESS, Shard
from hardneg.llm import GeneratorConfig
from hardneg.memory import release_freed_memory, remapped
from hardneg.methods import (
    QUERIES_CONFIG,
    Method,
    MethodContext,
    arrow_table,
    content_key,
    get_method,
    method_names,
)
from hardneg.negatives.mining import MINING_RULES_VERSION, mining_rules
from hardneg.prompts import load_prompt
from hardneg.queries import generate_queries
from hardneg.records import BuildStats, ConfigStats


@dataclass
class Inputs:
    corpus: Dataset
    pool: Dataset
    passages: Dataset
    eval_queries: list[str]
    decontamination: dict[str, Any]
    key: str  # what the pool and the passage sample depend on
    corpus_report: dict[str, Any] = field(default_factory=dict)  # load_corpus: empty passages dropped, commit
    removed_query_ids: list[str] = field(
        default_factory=list
    )  # make_queries: queries decontamination dropped


def sample_passages(corpus: Dataset, n: int, seed: int) -> Dataset:
    """Seeded sample of ``n`` passages (all when n == 0 or n >= len), in a stable order."""
    if n == 0 or n >= len(corpus):
        return corpus
    return corpus.shuffle(seed=seed).select(range(n))


CORPUS_STAGE = "input_corpus"  # the validated corpus of a local file, kept as a stage for reruns
CORPUS_STAGE_FORMAT = 1  # what the stage holds (part of its key)


def read_corpus(config: BuildConfig, stages: Stages | None = None) -> tuple[Dataset, dict[str, Any]]:
    """The validated corpus and its load report. A local file's is kept as the stage ``input_corpus``, keyed by
    the file's path, size and modification time and the load options, and read back memory-mapped: a rerun on
    the same file reads no JSON and checks nothing again (a changed file is read anew). Only ``stages`` given
    (the main process) saves it."""
    file = local_corpus_file(config.corpus)
    key = None
    shipped = config.corpus.startswith("embedded:")  # small, and shipped with hardneg: read as it is
    if file is not None and stages is not None and not shipped:
        info = file.stat()
        key = content_key(
            CORPUS_STAGE,
            str(file.resolve()),
            info.st_size,
            info.st_mtime_ns,
            config.corpus_text_column,
            config.corpus_title_column,
            config.empty_passages,
            CORPUS_STAGE_FORMAT,
        )
        done = stages.get(CORPUS_STAGE, key)
        if done is not None:
            return done
    report: dict[str, Any] = {}
    corpus = load_corpus(
        config.corpus,
        revision=config.corpus_revision,
        text_column=config.corpus_text_column,
        title_column=config.corpus_title_column,
        empty_passages=config.empty_passages,
        report=report,
    )
    if key is not None:
        corpus = stages.put(CORPUS_STAGE, key, corpus, report)  # read back memory-mapped:
        release_freed_memory()  # the reader's buffers go back to the system, not to Arrow's allocator
    return corpus, report


def load_inputs(config: BuildConfig, seed: int, stages: Stages | None = None) -> Inputs:
    """Step 1: corpus, mining pool (minus the evaluation set's judged documents if asked), passage sample;
    ``stages``: where the main process keeps the validated corpus of a local file (``read_corpus``)."""
    corpus, report = read_corpus(config, stages)
    decon: dict[str, Any] = {}
    eval_queries: list[str] = []
    pool = corpus
    if config.decontaminate:
        judged: set[str] = set()
        for source in config.decontaminate:
            ids, texts = exclusions_from_beir(source, split=config.decontaminate_split)
            judged |= ids
            eval_queries += texts
        if config.exclude_eval_docs:
            pool, decon["excluded_doc_ids"] = decontaminate_corpus(corpus, judged)
    passages = sample_passages(pool, config.num_passages, seed)
    key = content_key(
        config.corpus,
        config.corpus_revision,
        config.corpus_text_column,
        config.corpus_title_column,
        config.decontaminate,
        config.decontaminate_split,
        config.exclude_eval_docs,
        len(pool),
    )
    return Inputs(corpus, pool, passages, eval_queries, decon, key, report)


def make_queries(
    config: BuildConfig, inputs: Inputs, stages: Stages, res: Resources, cache_dir: Path, seed: int
) -> tuple[Dataset, dict, str]:
    """Step 2: one LLM query per sampled passage, minus the evaluation set's queries; returns its stage key."""
    key = content_key(
        "queries",
        inputs.key,
        inputs.passages["id"][:],  # every id (a Column alone is keyed by its repr: five ids)
        res.generator_config.output_settings(),
        config.query_prompt,
        load_prompt(config.query_prompt).sha256,
        config.query_max_new_tokens,
        config.reject_retries,
        seed,
    )
    done = stages.get(QUERIES_CONFIG, key)
    if done is None:
        with step(QUERIES_CONFIG):
            queries, stats = generate_queries(
                remapped(inputs.passages),  # the passage pages it reads leave with this map (hardneg.memory)
                res.get_generator(),
                prompt=config.query_prompt,
                cache_dir=cache_dir,
                seed=seed,
                max_new_tokens=config.query_max_new_tokens,
                max_retries=config.reject_retries,
            )
        check_stage_result(QUERIES_CONFIG, queries, stats, len(inputs.passages), cache_dir)
        queries = stages.put(QUERIES_CONFIG, key, queries, stats)
        release_freed_memory()
    else:
        queries, stats = done
    if inputs.eval_queries:
        before = queries["query_id"][:]
        queries, _ = decontaminate_queries(queries, exclude_queries=inputs.eval_queries)
        kept = set(queries["query_id"][:])
        inputs.removed_query_ids = [q for q in before if q not in kept]
        inputs.decontamination["removed_queries"] = len(inputs.removed_query_ids)
    return queries, stats, key


def method_stage_key(
    method: Method,
    options: dict[str, Any],
    queries_key: str,
    inputs: Inputs,
    gen_config,
    seed: int,
    deps: dict,
) -> str:
    """A method's stage key: the queries, its own options, and only what it declares it needs."""
    prompt = load_prompt(options[method.prompt_option]).sha256 if method.prompt_option else None
    return content_key(
        method.name,
        queries_key,
        method.stage_options(options),
        prompt,
        gen_config.output_settings() if "generator" in method.needs else None,
        (inputs.key, MINING_RULES_VERSION, mining_rules().follows) if "pool" in method.needs else None,
        deps,
        seed,
    )


def make_methods(
    config: BuildConfig,
    inputs: Inputs,
    queries: Dataset,
    queries_key: str,
    stages: Stages,
    res: Resources,
    cache_dir: Path,
    shared_cache_dir: Path,
    seed: int,
    shard: Shard = ONE_PROCESS,
) -> tuple[dict[str, Dataset], dict[str, dict], dict[str, str]]:
    """Step 3: every asked method (and the configs they read), each a stage of its own."""
    options = {n: config.options_of(n) for n in method_names()}
    order = method_order(list(config.methods), options)
    tables: dict[str, Dataset] = {}
    stats: dict[str, dict] = {}
    keys: dict[str, str] = {}
    for name in order:
        method = get_method(name)
        deps = method.input_configs(options[name])
        key = method_stage_key(
            method, options[name], queries_key, inputs, res.generator_config, seed, {d: keys[d] for d in deps}
        )
        keys[name] = key
        done = stages.get(name, key)
        if done is not None:
            tables[name], stats[name] = done
            continue
        ctx = MethodContext(
            name=name,
            queries=remapped(queries),  # the pages this method reads leave with its maps (hardneg.memory)
            pool=remapped(inputs.pool),
            options=options[name],
            seed=seed,
            cache_dir=cache_dir,
            inputs={d: tables[d] for d in deps},
            input_stats={d: stats[d] for d in deps},
            batch_size=config.score_batch_size,
            load_generator=res.get_generator if "generator" in method.needs else None,
            load_scorer=res.get_scorer if "scorer" in method.needs else None,
            shared_cache_dir=shared_cache_dir,
            shard=shard,
        )
        start = time.perf_counter()
        with step(name):
            table, mstats = method.run(ctx)
        mstats.setdefault("method", name)
        mstats.setdefault("wall_seconds", round(time.perf_counter() - start, 3))
        check_stage_result(name, table, mstats, len(queries), cache_dir)
        tables[name], stats[name] = stages.put(name, key, table, mstats), mstats
        discard_working_files(table, cache_dir)
        del ctx, table
        release_freed_memory()
    return tables, stats, keys


def discard_working_files(table: Dataset, cache_dir: Path) -> None:
    """A method's table written to a file in the build's cache (the mined rows, ``cache_file_name``) is a working
    copy once its stage holds the table: it goes, rather than stay beside the stage as a second copy."""
    for f in table.cache_files:
        path = Path(f["filename"])
        if path.resolve().is_relative_to(cache_dir.resolve()):
            path.unlink(missing_ok=True)


def method_order(names: list[str], options: dict[str, dict]) -> list[str]:
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"methods read each other in a loop {path + (name,)}; fix: break the loop")
        for dep in get_method(name).input_configs(options[name]):
            visit(dep, path + (name,))
        order.append(name)

    for name in names:
        visit(name, ())
    return order


def pair_configs(
    tables: dict[str, Dataset], names: list[str], paired: bool
) -> tuple[dict[str, Dataset], dict[str, np.ndarray], dict[str, Any]]:
    """Step 4: keep only query ids present in every config (when ``paired``); returns the kept row indices.
    Vectorised over the Arrow ``query_id`` columns (``pyarrow.compute.is_in``)."""
    ids = {n: arrow_table(tables[n], ["query_id"]).column(0) for n in names}
    unique = {n: pc.unique(v) for n, v in ids.items()}
    common = unique[names[0]] if names else pa.array([], pa.string())
    for n in names[1:]:
        common = pc.filter(common, pc.is_in(common, value_set=unique[n]))
    if paired and names and not len(common):
        sizes = {n: len(v) for n, v in unique.items()}
        raise ValueError(
            f"no query id is in every config (query ids per config: {sizes}); fix: build more passages, loosen "
            "the emptiest method's filters, or set paired: false"
        )
    kept: dict[str, np.ndarray] = {}
    out: dict[str, Dataset] = {}
    dropped: dict[str, dict[str, int]] = {}
    for n in names:
        if paired:
            inside = pc.is_in(ids[n], value_set=common).to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(inside)
        else:
            rows = np.arange(len(ids[n]))
        kept[n] = rows
        out[n] = tables[n] if len(rows) == len(ids[n]) else tables[n].select(rows)
        dropped[n] = {
            "dropped_rows": len(ids[n]) - len(rows),
            "dropped_queries": len(unique[n]) - len(common) if paired else 0,
        }
    summary = {"enabled": paired, "query_ids": len(common), "dropped": dropped}
    return out, kept, summary


def collect_stats(
    config: BuildConfig,
    gen_config: GeneratorConfig,
    inputs: Inputs,
    seed: int,
    stats: dict[str, dict],
    published: dict[str, Dataset],
    pairing: dict[str, Any],
    fn: dict[str, dict],
) -> BuildStats:
    """Step 6: build_stats.json as a typed record (the keys cards, hub validation and the report read)."""
    configs = {QUERIES_CONFIG: ConfigStats.from_dict(stats[QUERIES_CONFIG])}
    for name, table in published.items():
        record = ConfigStats.from_dict(stats[name] | fn.get(name, {}))
        record.rows = len(table)
        record.paired = pairing["dropped"][name] if pairing["enabled"] else None
        configs[name] = record
    prompts = {
        s["prompt"].get("name", name): s["prompt"]
        for name, s in stats.items()
        if (name == QUERIES_CONFIG or name in published) and isinstance(s.get("prompt"), dict)
    }
    if config.false_negative_repair != "none":
        judge = load_prompt(config.repair_judge_prompt).provenance()
        prompts[judge["name"]] = judge
    return BuildStats(
        hardneg_version=hardneg.__version__,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        corpus={
            "source": config.corpus,
            "revision": config.corpus_revision,
            "commit": inputs.corpus_report.get("commit"),
            "passages_total": len(inputs.corpus),
            "empty_passages_dropped": inputs.corpus_report.get("empty_dropped", 0),
            "empty_passage_ids": inputs.corpus_report.get("empty_ids", []),
            "passages_sampled": len(inputs.passages),
            "seed": seed,
        },
        generator={
            "model": gen_config.model,
            "backend": gen_config.backend,
            "settings": gen_config.recorded(),
        },
        prompts=prompts,
        build={k: v for k, v in asdict(config).items() if k != "output_dir"},
        configs=configs,
        decontamination=inputs.decontamination,
        paired={"enabled": pairing["enabled"], "query_ids": pairing["query_ids"]},
        versions=library_versions(),
    )


def make_configs(
    config: BuildConfig,
    inputs: Inputs,
    stages: Stages,
    res: Resources,
    cache_dir: Path,
    shared_cache_dir: Path,
    seed: int,
    shard: Shard = ONE_PROCESS,
) -> tuple[Dataset, dict, dict[str, Dataset], dict[str, dict], dict[str, str], dict[str, str]]:
    """Steps 2-3c on one process's passages: queries, methods, repair, the rows' false-negative scores.

    Returns (queries, their stats, tables, stats, the stage each published config ends in, each stage's key)."""
    queries, qstats, qkey = make_queries(config, inputs, stages, res, cache_dir, seed)
    tables, stats, keys = make_methods(
        config, inputs, queries, qkey, stages, res, cache_dir, shared_cache_dir, seed, shard
    )
    sources = {name: (tables[name], stats[name]) for name in config.methods}
    stage_of = repair_stages(config, tables, stats, keys, stages, res, cache_dir, seed)
    score_rows(config, tables, stats, stage_of, stages, res, sources)
    return queries, qstats, tables, stats, stage_of, {QUERIES_CONFIG: qkey, **keys}
