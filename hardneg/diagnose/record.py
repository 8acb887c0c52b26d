"""``diagnostics.json``: one typed record, written and read by the same class (like mteb's ``TaskResult``).

``Diagnostics`` holds the whole run (which dataset, which target encoder, the parameters) and one
``ConfigDiagnostics`` per triplet config. ``to_disk`` / ``from_disk`` are the only way the file is written
and read: the report, the dataset card and the explorer load it through ``Diagnostics.from_disk``.
``FORMAT`` is stored in the file; ``_upgrade`` (called by ``from_disk``) is where a converter for an older
format goes, as in the other records of ``hardneg.records``.

Where the file lives: ``diagnostics_path(run_dir)`` (``<run_dir>/diagnostics.json``); a copy without the
per-row arrays goes into a local dataset folder (``<dataset>/diagnostics.json``) so the card shows it and
``make publish`` ships it.

This module imports nothing heavy, so every reader can import it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hardneg.files import write_atomic

FORMAT = 1
DIAGNOSTICS_FILE = "diagnostics.json"
NO_LLM_NEGATIVES = "no LLM-written negatives"


def diagnostics_path(run_dir: str | Path) -> Path:
    """Where ``make diagnose`` writes the record of a run."""
    return Path(run_dir) / DIAGNOSTICS_FILE


@dataclass
class ConfigDiagnostics:
    """One config's diagnostics (see docs/diagnostics.md for every key).

    ``hardness``: the target encoder's ``s(q, negative) - s(q, positive)`` (``margin`` summary, the share
    ``at_or_above`` 0 with its bootstrap interval); ``fn_scorer``: the same under the build's false-negative
    scorer (its saved scores, never recomputed), or ``{"note": ...}``; ``by_source``: ``hardness`` per source of a
    ``hybrid_hn`` row; ``eci`` / ``eci_sem``: ``hardneg.diagnose.measures.eci`` / ``eci_sem``; ``surface``: text
    statistics; ``diversity``: duplicates and near-duplicates across queries; ``probe``: source detectability
    (ROC AUC with its interval) or ``{"note": ...}``; ``rows``: per diagnosed row (``index`` into the config, the
    target-encoder ``margin``, the probe's out-of-fold ``probe`` score) for the explorer.
    """

    name: str
    rows: int
    sampled: int
    llm_rows: int
    hardness: dict[str, Any] = field(default_factory=dict)
    fn_scorer: dict[str, Any] = field(default_factory=dict)
    by_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    eci: dict[str, Any] = field(default_factory=dict)
    eci_sem: dict[str, Any] = field(default_factory=dict)
    surface: dict[str, Any] = field(default_factory=dict)
    diversity: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    probe_query: dict[str, Any] = field(default_factory=dict)
    per_row: dict[str, list] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The headline numbers of one config (the tables of the report, the card and the README)."""
        probe = self.probe.get("auc")
        return {
            "config": self.name,
            "rows": self.rows,
            "margin_mean": self.hardness.get("margin", {}).get("mean"),
            "at_or_above": self.hardness.get("at_or_above"),
            "fn_at_or_above": self.fn_scorer.get("at_or_above"),
            "eci": self.eci.get("eci"),
            "eci_sem": self.eci_sem.get("eci_sem"),
            "probe_auc": probe,
            "probe_low": self.probe.get("low"),
            "probe_high": self.probe.get("high"),
            "near_duplicates": self.diversity.get("near_duplicate_share"),
            "diversity": self.diversity.get("diversity"),
        }


@dataclass
class Diagnostics:
    """The whole ``diagnostics.json``."""

    dataset: str
    revision: str | None
    target_encoder: str
    max_seq_length: int | None
    query_prompt: str
    passage_prompt: str
    fn_scorer: str | None
    created: str
    hardneg_version: str
    params: dict[str, Any]
    configs: dict[str, ConfigDiagnostics]
    probe_note: str | None = None
    against_results: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    def to_dict(self, *, per_row: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not per_row:
            for c in out["configs"].values():
                c["per_row"] = {}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnostics:
        if data.get("format", FORMAT) > FORMAT:
            raise ValueError(
                f"diagnostics format {data.get('format')} is newer than this hardneg reads ({FORMAT}); "
                "fix: upgrade hardneg or rerun `make diagnose`"
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        config_keys = {f.name for f in fields(ConfigDiagnostics)}
        kwargs["configs"] = {
            name: ConfigDiagnostics(**{k: v for k, v in c.items() if k in config_keys})
            for name, c in data.get("configs", {}).items()
        }
        return cls(**kwargs)

    def to_disk(self, path: str | Path, *, per_row: bool = True) -> Path:
        """Write atomically (a crash never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, json.dumps(self.to_dict(per_row=per_row), indent=1, allow_nan=False) + "\n")

    @classmethod
    def from_disk(cls, path: str | Path) -> Diagnostics:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err.msg}); fix: rerun `make diagnose`") from None
        return cls.from_dict(cls._upgrade(data))

    @staticmethod
    def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """The one converter for older files (as in every ``hardneg.records`` type): format 1 is the only
        format so far, so there is nothing to convert yet; a newer format is refused by ``from_dict``."""
        return data

    @classmethod
    def find(cls, *folders: str | Path | None) -> Diagnostics | None:
        """The record in the first of ``folders`` that holds one (None when none does)."""
        for folder in folders:
            if folder is not None and (Path(folder) / DIAGNOSTICS_FILE).is_file():
                return cls.from_disk(Path(folder) / DIAGNOSTICS_FILE)
        return None

    def table(self) -> list[dict[str, Any]]:
        return [c.summary() for c in self.configs.values()]

    def markdown(self, against: list[dict[str, Any]] | None = None, level: int = 2) -> str:
        """The "Diagnostics" section of results.md / the terminal (``against``: default the stored one)."""
        return markdown(self, self.against_results if against is None else against, level)


def _f(x: Any, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _ci(d: dict[str, Any], key: str, ci_key: str, digits: int = 3) -> str:
    lo, hi = (d.get(ci_key) or [None, None])[:2]
    if d.get(key) is None:
        return "—"
    return (
        f"{d[key]:.{digits}f} [{_f(lo, digits)}, {_f(hi, digits)}]"
        if lo is not None
        else f"{d[key]:.{digits}f}"
    )


def table_rows(diag: Diagnostics) -> list[list[str]]:
    """The headline table, one row per config (and per source of a hybrid config)."""
    rows = []
    for c in diag.configs.values():
        rows.append(
            [
                f"`{c.name}`",
                f"{c.sampled}/{c.rows}",
                _f(c.hardness.get("margin", {}).get("mean")),
                _ci(c.hardness, "at_or_above", "at_or_above_ci"),
                _ci(c.fn_scorer, "at_or_above", "at_or_above_ci")
                + (" (its own filter: 0 by construction)" if c.fn_scorer.get("same_as_guard") else ""),
                _f(c.eci.get("eci")),
                _f(c.eci_sem.get("eci_sem")),
                _ci({"auc": c.probe.get("auc"), "ci": [c.probe.get("low"), c.probe.get("high")]}, "auc", "ci")
                if c.probe.get("auc") is not None
                else c.probe.get("note", "—"),
                _f(c.probe_query.get("auc")),
                _f(c.diversity.get("near_duplicate_share")),
                _f(c.diversity.get("diversity")),
            ]
        )
        for source, h in c.by_source.items():
            rows.append(
                [
                    f"↳ from `{source}`",
                    str(h.get("n", "—")),
                    _f(h.get("margin", {}).get("mean")),
                    _ci(h, "at_or_above", "at_or_above_ci"),
                ]
                + [""] * 7
            )
    return rows


TABLE_HEADER = [
    "config",
    "rows diagnosed",
    "mean s(q,n)−s(q,p)",
    "neg ≥ pos, encoder [95% CI]",
    "neg ≥ pos, FN scorer",
    "ECI",
    "ECI_sem",
    "probe AUC [95% CI]",
    "probe AUC given query",
    "near-dup. share",
    "diversity",
]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(diag: Diagnostics, against: list[dict[str, Any]], level: int = 2) -> str:
    h = "#" * level
    prompts = f"query prompt {diag.query_prompt!r}, passage prompt {diag.passage_prompt!r}"
    lines = [
        f"{h} Diagnostics (before training)",
        "",
        f"Frozen target encoder `{diag.target_encoder}` (max length {diag.max_seq_length}, {prompts}); cosine "
        f"similarities. False-negative scorer: `{diag.fn_scorer or '—'}` (the build's saved scores, not recomputed). "
        "Intervals: bootstrap over the diagnosed rows (probe AUC: DeLong). ECI and ECI_sem are hardneg's reading of arXiv 2603.20990: "
        "the papers' exact formulas were not available (docs/diagnostics.md says which parts are published). "
        "Probe: cross-validated logistic regression on frozen embeddings, LLM-written negatives vs corpus "
        "passages (0.5 = the encoder cannot tell them apart).",
        "",
        markdown_table(TABLE_HEADER, table_rows(diag)),
        "",
    ]
    if diag.probe_note:
        lines += [f"Source probe: {diag.probe_note}.", ""]
    for block in against:
        lines += [
            f"{h}# Diagnostics against the trained results ({block['dataset']}, {block['metric']})",
            "",
            f"**{block['statement']}**",
            "",
        ]
        if block["correlations"]:
            rows = [
                [
                    c["diagnostic"],
                    _f(c["rho"], 2),
                    f"[{_f(c['low'], 2)}, {_f(c['high'], 2)}]",
                    _f(c["p"], 3),
                    _f(c["rho_seeds"], 2),
                ]
                for c in block["correlations"]
            ]
            lines += [
                "Spearman's rho across methods (seed means); interval: bootstrap over each method's training "
                "seeds; p: exact permutation test; rho over seeds: every (method, seed) point, not independent.",
                "",
                markdown_table(["diagnostic", "rho", "95% CI", "p", "rho over seeds"], rows),
                "",
            ]
    return "\n".join(lines)
