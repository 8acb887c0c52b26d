"""``build()``: the whole build, one process or sharded; writes the dataset folder (see ``hardneg.build``)."""

from __future__ import annotations

import logging
from pathlib import Path

from hardneg.build.config import BuildConfig
from hardneg.build.scoring import false_negative_stats
from hardneg.build.shards import make_shard
from hardneg.build.stages import (
    FOLDER_FORMAT,
    FOLDER_RECORD,
    LABELS_FILE,
    Resources,
    Stages,
    folder_unchanged,
    remember_folder,
    step,
)
from hardneg.build.steps import collect_stats, load_inputs, make_configs, pair_configs
from hardneg.dataset_folder import save_dataset_folder
from hardneg.distributed import current_shard
from hardneg.files import recover_folder
from hardneg.id_layout import layout_configs
from hardneg.llm import Generator, GeneratorConfig
from hardneg.methods import QUERIES_CONFIG, content_key

logger = logging.getLogger(__name__)


def build(
    config: BuildConfig, generator_config: GeneratorConfig, *, generator: Generator | None = None
) -> Path:
    """Run the whole build; returns the dataset folder (Hub layout, loads with ``load_dataset``).

    ``generator``: an already loaded generator to use instead of loading ``generator_config`` (tests,
    notebooks); its config must be ``generator_config``.
    """
    seed = generator_config.seed  # one seed for the whole build: sampling, generation, random negatives
    out = Path(config.output_dir)
    stages, cache_dir = Stages(out / "stages"), out / "cache"
    res = Resources(
        generator_config,
        config.scorer_dtype,
        generator,
        judge_model=config.repair_judge_model,
        labels_file=stages.root / LABELS_FILE,
    )

    shard = current_shard()
    with step("load_inputs"):  # a bad corpus leaves nothing behind: the stage is saved once it is read
        inputs = load_inputs(config, seed, stages if shard.is_main else None)
    out.mkdir(parents=True, exist_ok=True)
    if (
        shard.world > 1
    ):  # accelerate launch / torchrun: steps 2-3 on this process's shard (hardneg.distributed)
        gathered = make_shard(config, generator_config, inputs, res, out, seed, shard)
        if gathered is None:  # not the main process: its shard is done, the main process writes the folder
            return out / "dataset"
        queries, qstats, tables, stats, stage_of, keys = gathered
    else:
        queries, qstats, tables, stats, stage_of, keys = make_configs(
            config, inputs, stages, res, cache_dir, cache_dir, seed
        )
    with step("pair_configs"):
        published, kept, pairing = pair_configs(tables, list(config.methods), config.paired)
    fn = false_negative_stats(config, tables, kept, stats, stage_of, stages, res)
    stats[QUERIES_CONFIG] = qstats
    build_stats = collect_stats(config, generator_config, inputs, seed, stats, published, pairing, fn)
    record = build_stats.to_dict()
    folder = out / "dataset"
    recover_folder(folder)  # a save killed mid-swap: the previous folder back before it is compared
    folder_key = content_key(
        FOLDER_FORMAT,
        {name: keys[stage] for name, stage in {QUERIES_CONFIG: QUERIES_CONFIG, **stage_of}.items()},
        {k: v for k, v in record.items() if k != "created"},
        sorted(inputs.removed_query_ids),  # which queries and documents decontamination removed, not only
        sorted(inputs.decontamination.get("excluded_doc_ids", [])),  # how many (the stats hold counts)
    )
    if folder_unchanged(folder, stages.root / FOLDER_RECORD, folder_key):
        logger.info("dataset folder %s is up to date (same stages and statistics): left untouched", folder)
        return folder
    with step("save_dataset_folder"):
        configs = layout_configs({QUERIES_CONFIG: queries, **published}, config.layout)
        save_dataset_folder(folder, configs, record, default_config="queries")
    remember_folder(folder, stages.root / FOLDER_RECORD, folder_key)
    return folder


# What the folder record's key covers (bump when save_dataset_folder writes a folder differently).
