"""False negatives in the build: the LLM-judge repair (a stage of its own per repaired config), every row's
score by the false-negative scorer and judge (saved with its stage), and the rates ``build_stats`` reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from hardneg.build.config import BuildConfig
from hardneg.build.stages import Resources, Stages
from hardneg.methods import content_key, fn_scores_file, get_method
from hardneg.negatives import false_negative_scores, false_negative_summary
from hardneg.negatives.repair import repair_false_negatives
from hardneg.prompts import load_prompt
from hardneg.records import FalseNegativeScores, write_false_negative_scores


def repair_stages(
    config: BuildConfig,
    tables: dict[str, Dataset],
    stats: dict[str, dict],
    keys: dict[str, str],
    stages: Stages,
    res: Resources,
    cache_dir: Path,
    seed: int,
) -> dict[str, str]:
    """Step 3b: an LLM judge drops or relabels suspected false negatives (RLHN); returns each config's stage.

    A repaired config is a stage of its own (``<config>.repaired``), keyed by the method's stage, the repair
    settings, the judge's output settings and prompt hash, and the scorer that picks the suspects; its key is
    added to ``keys``.
    """
    stage_of = {name: name for name in config.methods}
    if config.false_negative_repair == "none":
        return stage_of
    scorer_name = config._fn_scorer_name() if config.repair_scope == "suspected" else None
    prompt = load_prompt(config.repair_judge_prompt)
    for name in config.repair_configs or config.methods:
        stage = f"{name}.repaired"
        key = content_key(
            "repair",
            keys[name],
            config.false_negative_repair,
            config.repair_scope,
            scorer_name,
            prompt.sha256,
            res.judge_config().output_settings(),
            config.repair_max_new_tokens,
            seed,
        )
        done = stages.get(stage, key)
        if done is None:
            if scorer_name:
                pos, neg, _, _ = row_scores(
                    config, name, name, tables[name], stats[name], scorer_name, res, stages
                )
                suspected = neg >= pos
            else:
                suspected = np.ones(len(tables[name]), dtype=bool)
            table, repair = repair_false_negatives(
                tables[name],
                suspected,
                res.get_judge(),
                mode=config.false_negative_repair,
                prompt=config.repair_judge_prompt,
                cache_dir=cache_dir,
                seed=seed,
                max_new_tokens=config.repair_max_new_tokens,
                config=name,
            )
            repair["suspects_from"] = scorer_name or "all rows"
            done = table, {**stats[name], "repair": repair}
            done = stages.put(stage, key, *done), done[1]
        tables[name], stats[name] = done
        stage_of[name] = stage
        keys[stage] = key
    return stage_of


def _scores_at_hand(
    stage: str, table: Dataset, stats: dict, known: str | None, reuse_columns: bool, stages: Stages
) -> tuple[np.ndarray, np.ndarray, str, str | None] | None:
    """A stage's row scores that need no scoring: ce_hn's own columns (mined with this very scorer) or the
    file saved by an earlier call; None when neither is there."""
    if reuse_columns and "repair" not in stats and stats.get("false_negative_scorer"):
        pos = np.asarray(table["positive_score"][:], float)
        neg = np.asarray(table["negative_score"][:], float)
        return pos, neg, stats["false_negative_scorer"], stats.get("score_name")
    saved = stages.get_extra(stage, fn_scores_file(known)) if known else None
    if saved is None or len(saved["positive"]) != len(table):
        return None
    pos, neg = np.asarray(saved["positive"], float), np.asarray(saved["negative"], float)
    return pos, neg, saved.get("name", known), saved.get("score_name")  # files of older builds lack names


def _row_key(table: Dataset) -> list[tuple[str, str, str]]:
    return list(zip(table["anchor"][:], table["positive"][:], table["negative"][:], strict=True))


def row_scores(
    config: BuildConfig,
    name: str,
    stage: str,
    table: Dataset,
    stats: dict,
    scorer_name: str,
    res: Resources,
    stages: Stages,
    source: tuple[str, Dataset, dict] | None = None,
) -> tuple[np.ndarray, np.ndarray, str, str | None]:
    """Every row's (positive, negative) score by a scorer, computed once per stage and scorer (the scorer is
    loaded only when they are not saved yet); returns (positive, negative, scorer name, score name).
    ``name``: the config, ``stage``: where its table is saved (``<config>.repaired`` after a repair).

    ``source``: the (stage, table, stats) a repaired stage came from; its rows' scores, when at hand, are
    reused for the rows the repair kept as they were, so only relabelled rows are scored."""
    reuse_columns = _guarded_by(config, name, scorer_name)
    known = res.scorer_label(scorer_name)
    have = _scores_at_hand(stage, table, stats, known, reuse_columns, stages)
    if have is not None:
        return have
    pos, neg = np.full(len(table), np.nan), np.full(len(table), np.nan)
    name, score_name = None, None
    prev = _scores_at_hand(*source, known, reuse_columns, stages) if source else None
    if prev is not None:
        scores = dict(zip(_row_key(source[1]), zip(prev[0], prev[1], strict=True), strict=True))
        for i, key in enumerate(_row_key(table)):
            pos[i], neg[i] = scores.get(key, (np.nan, np.nan))
        name, score_name = prev[2], prev[3]
    todo = np.flatnonzero(np.isnan(pos) | np.isnan(neg))
    if len(todo) or name is None:
        scorer = res.get_scorer(scorer_name)
        pos[todo], neg[todo] = false_negative_scores(
            table.select(todo), scorer, batch_size=config.score_batch_size
        )
        name, score_name = scorer.name, scorer.score_name
    saved = {"positive": pos.tolist(), "negative": neg.tolist(), "name": name, "score_name": score_name}
    stages.put_extra(stage, fn_scores_file(name), saved)
    res.remember({res.label_key(scorer_name): name})  # found again without loading the scorer
    return pos, neg, name, score_name


def _guarded_by(config: BuildConfig, name: str, scorer_name: str) -> bool:
    """Whether the method filtered its rows with this very scorer (ce_hn with its guard on): 0% by construction."""
    method = get_method(name)
    options = config.options_of(name)
    guard = method.guard_scorer(options) if method.guard_scorer else None
    return guard == scorer_name and options.get("scorer_dtype", config.scorer_dtype) == config.scorer_dtype


def fn_scorers(config: BuildConfig) -> list[tuple[str, str]]:
    """(role, scorer id) of the false-negative scorer and the independent judge, those that are set."""
    named = (("main", config._fn_scorer_name()), ("judge", config.false_negative_judge))
    return [(role, name) for role, name in named if name and str(name).lower() != "none"]


def score_rows(
    config: BuildConfig,
    tables: dict[str, Dataset],
    stats: dict[str, dict],
    stage_of: dict[str, str],
    stages: Stages,
    res: Resources,
    sources: dict[str, tuple[Dataset, dict]],
) -> None:
    """Step 3c: every row of each published config scored by the false-negative scorer and judge, saved with
    its stage (``row_scores``), so a sharded build scores each shard in its own process. ``sources``: each
    config's (table, stats) before repair, whose scores a repaired config reuses."""
    for name in config.methods:
        source = (name, *sources[name]) if stage_of[name] != name else None
        for _, scorer_name in fn_scorers(config):
            row_scores(
                config, name, stage_of[name], tables[name], stats[name], scorer_name, res, stages, source
            )


def false_negative_stats(
    config: BuildConfig,
    full: dict[str, Dataset],
    kept: dict[str, list[int]],
    stats: dict[str, dict],
    stage_of: dict[str, str],
    stages: Stages,
    res: Resources,
) -> dict[str, dict]:
    """Step 5: the suspected-false-negative rate of each published config by one scorer (+ optional judge),
    from the scores ``score_rows`` saved."""
    out: dict[str, dict] = {}
    published = (
        FalseNegativeScores()
    )  # the published rows' scores, beside the dataset folder (the explorer's)
    for name, rows in kept.items():
        record: dict[str, Any] = {}
        for role, scorer_name in fn_scorers(config):
            guarded = _guarded_by(config, name, scorer_name)
            pos, neg, scorer, score_name = row_scores(
                config, name, stage_of[name], full[name], stats[name], scorer_name, res, stages
            )
            rate, detail = false_negative_summary(pos[rows], neg[rows], scorer, score_name)
            detail["stage"] = stage_of[name]  # the stage folder holding its fn_scores_file
            if role == "main":
                published.add(name, scorer, score_name, pos[rows], neg[rows])
                record.update(
                    false_negative_scorer=scorer,
                    suspected_false_negative_rate=rate,
                    false_negative_same_as_guard=guarded,
                    false_negative_detail=detail,
                )
            else:
                record.update(independent_false_negative_scorer=scorer, independent_false_negative_rate=rate)
        out[name] = record
    write_false_negative_scores(stages.root.parent, published)
    return out
