"""A sharded build (``accelerate launch`` / ``torchrun``): the pool's embeddings shared out, each process's steps
on its shard, and the main process gathering every shard's stages, scores and rejects in rank order."""

from __future__ import annotations

import shutil
from dataclasses import asdict, replace
from pathlib import Path

from datasets import Dataset

from hardneg.build.config import BuildConfig
from hardneg.build.stages import LABELS_FILE, Resources, Stages, read_labels
from hardneg.build.steps import Inputs, make_configs, method_order
from hardneg.distributed import (
    DONE_FILE,
    Shard,
    bind_local_device,
    concat_shards,
    merge_stats,
    shard_generator_config,
    shard_rows,
    wait_for_shards,
    write_done,
)
from hardneg.files import open_atomic
from hardneg.llm import GeneratorConfig
from hardneg.methods import FN_SCORES_GLOB, QUERIES_CONFIG, content_key, get_method, method_names
from hardneg.negatives import pool_cache, pool_passages
from hardneg.negatives.dense import encode_pool, load_embedder


def gather_extras(parts: list[Stages], main: Stages, stage: str, rows: list[int]) -> None:
    """The shards' false-negative scores of a stage, joined in rank order into the main stages folder (where
    ``false_negative_stats`` and the explorer read them); only files every shard wrote for all its rows."""
    first = parts[0].root / stage
    for file in sorted(p.name for p in first.glob(FN_SCORES_GLOB)):
        saved = [part.get_extra(stage, file) for part in parts]
        if any(v is None or len(v["positive"]) != n for v, n in zip(saved, rows, strict=True)):
            continue
        joined = {k: [x for v in saved for x in v[k]] for k in ("positive", "negative")}
        main.put_extra(stage, file, {**saved[0], **joined})


DONE_FORMAT = 2  # what a shard's done.json holds (2: stage_of, removed_query_ids); part of the run id


def share_pool(config: BuildConfig, pool: Dataset, shared_cache_dir: Path, shard: Shard) -> None:
    """Before the methods, in every process of a sharded build: the pool's embeddings under each embedder a
    dense method uses, a part per process (``hardneg.negatives.dense.encode_pool``). Every process makes this
    call on every run, also when its own dense stages are finished, so no process waits for a part that a
    process reusing its stage would never write; the methods then find the whole pool on disk."""
    options = {n: config.options_of(n) for n in method_names()}
    methods = [get_method(n) for n in method_order(list(config.methods), options)]
    embedders = {m.pool_embedder(options[m.name]) for m in methods if m.pool_embedder} - {None}
    if not embedders:
        return
    texts = pool_passages(pool).passages
    for embedder in sorted(embedders):
        encode_pool(
            texts,
            load_embedder(embedder),
            batch_size=config.score_batch_size,
            cache_folder=pool_cache(shared_cache_dir),
            model_id=embedder,
            shard=shard,
        )


def gather_rejects(folders: list[Path], out: Path) -> None:
    """The shards' rejected outputs (``<config>.jsonl`` per shard), joined in rank order into the run's
    ``cache/rejects/``, where a one-process build keeps them (the explorer reads them there)."""
    names = sorted({p.name for folder in folders for p in folder.glob("*.jsonl")})
    if names:
        out.mkdir(parents=True, exist_ok=True)
    for name in names:
        with open_atomic(out / name) as joined:  # streamed: a shard's rejects are never held in memory
            for part in (f / name for f in folders):
                if part.is_file():
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, joined)


def make_shard(
    config: BuildConfig,
    generator_config: GeneratorConfig,
    inputs: Inputs,
    res: Resources,
    out: Path,
    seed: int,
    shard: Shard,
) -> tuple[Dataset, dict, dict[str, Dataset], dict[str, dict], dict[str, str], dict[str, str]] | None:
    """Steps 2-3c on this process's contiguous shard of the passage sample, with the shard's own stages and
    cache (the dense pool embeddings are shared out, ``hardneg.negatives.dense.encode_pool``); the main
    process then gathers every shard's queries, published tables and false-negative scores in rank order (the
    one-process order) and adds up their stats. Returns None on the other processes."""
    run_id = content_key(
        DONE_FORMAT, inputs.key, asdict(config), generator_config.output_settings(), seed, shard.world
    )
    bind_local_device()
    res.generator_config = shard_generator_config(generator_config, shard)
    mine = replace(inputs, passages=shard_rows(inputs.passages, shard), decontamination={})
    if len(mine.passages) == 0:
        raise ValueError(
            f"{len(inputs.passages)} sampled passages leave process {shard.rank} of {shard.world} none; "
            "fix: sample more passages (num_passages) or start fewer processes"
        )
    stages = Stages(out / "stages" / shard.name)
    (stages.root / DONE_FILE).unlink(missing_ok=True)  # an earlier run's marker: this run may redo stages
    main_labels, res.labels_file = res.labels_file, stages.root / LABELS_FILE  # each process writes its own
    share_pool(config, inputs.pool, out / "cache", shard)
    queries, _, _, _, stage_of, keys = make_configs(
        config, mine, stages, res, out / "cache" / shard.name, out / "cache", seed, shard
    )
    wanted = [QUERIES_CONFIG, *dict.fromkeys(stage_of.values())]
    write_done(
        stages.root,
        run_id,
        {
            "keys": {stage: keys[stage] for stage in wanted},
            "stage_of": stage_of,
            "removed_query_ids": mine.removed_query_ids,
        },
    )
    if not shard.is_main:
        return None
    shards = [Shard(r, shard.world) for r in range(shard.world)]
    done = wait_for_shards(
        [out / "stages" / s.name for s in shards],
        run_id,
        ready=lambda folder, marker: all(Stages(folder).has(n, k) for n, k in marker["keys"].items()),
    )
    part_stages = [Stages(out / "stages" / s.name) for s in shards]
    parts = [
        {stage: p.get(stage, key) for stage, key in marker["keys"].items()}
        for p, marker in zip(part_stages, done, strict=True)
    ]
    joined = {stage: concat_shards([p[stage][0] for p in parts]) for stage in wanted}
    merged = {stage: merge_stats([p[stage][1] for p in parts]) for stage in wanted}
    labels: dict[str, str] = {}
    for p in part_stages:
        labels |= read_labels(p.root / LABELS_FILE)
    res.labels_file = main_labels
    res.remember(labels)
    main = Stages(out / "stages")
    keys = {stage: content_key([d["keys"][stage] for d in done]) for stage in wanted}
    for stage in wanted[1:]:  # the gathered table and its scores, where the explorer reads them
        joined[stage] = main.put(stage, keys[stage], joined[stage], merged[stage])
        gather_extras(part_stages, main, stage, [len(p[stage][0]) for p in parts])
    gather_rejects([out / "cache" / s.name / "rejects" for s in shards], out / "cache" / "rejects")
    queries = joined[QUERIES_CONFIG]  # the stages hold the queries before decontamination
    removed = {q for marker in done for q in marker["removed_query_ids"]}
    if removed:
        queries = queries.select([i for i, q in enumerate(queries["query_id"][:]) if q not in removed])
    inputs.removed_query_ids = sorted(removed)
    if inputs.eval_queries:
        inputs.decontamination["removed_queries"] = len(removed)
    tables = {name: joined[stage] for name, stage in stage_of.items()}
    stats = {name: merged[stage] for name, stage in stage_of.items()}
    return queries, merged[QUERIES_CONFIG], tables, stats, stage_of, keys
