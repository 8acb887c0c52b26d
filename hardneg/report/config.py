"""What to render from a run folder (``ReportConfig``, the report's command-line options)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import ClassVar

from hardneg.options import ConfigError, check_fields
from hardneg.ranx_export import P_ADJUSTMENTS

TABLE_METRICS = ("ndcg@10", "p@10", "recall@100")
TESTS = ("welch", "bootstrap", "randomization", "t-test")


@dataclass
class ReportConfig:
    """What to render from a run folder."""

    OUTPUT_KIND: ClassVar[str] = "run"  # hardneg.config.check_outputs

    run_dir: str = field(default="runs/demo", metadata={"help": "Run folder holding results/*.json."})
    metrics: list[str] = field(
        default_factory=lambda: list(TABLE_METRICS), metadata={"help": "Metrics in the table and the tests."}
    )
    test: str = field(
        default="welch",
        metadata={
            "help": "pair test: welch (studentized Welch-Satterthwaite over the crossed seed and query "
            "variance; default), bootstrap (two-level: seeds and queries; over-covers the seed x query noise), "
            "or randomization / t-test over queries on seed-averaged scores (these ignore seed variance)."
        },
    )
    n_resamples: int = field(
        default=10_000,
        metadata={
            "bounds": (1, None),
            "help": "Bootstrap replicates (and sign flips of the randomisation test).",
        },
    )
    alpha: float = field(
        default=0.05, metadata={"bounds": (0, 1), "help": "Significance level after Holm correction."}
    )
    power: float = field(
        default=0.8, metadata={"bounds": (0, 1), "help": "Power for the minimum detectable effect."}
    )
    reference: str = field(
        default="zero-shot",
        metadata={"help": "Method the forest plot and the scatter compare against (default zero-shot)."},
    )
    compare: str = field(
        default="all",
        metadata={
            "help": "Pairs to test: all (every two methods) or same_model (methods of one base model)."
        },
    )
    scatter: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Two methods for the per-query scatter (default: the reference vs the best other method)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap's random numbers."})
    model_index: bool = field(
        default=False,
        metadata={"help": "Write each local model folder's results into its README model-index metadata."},
    )
    ranx: bool = field(
        default=False,
        metadata={
            "help": "Also write significance_ranx.json: each dataset's comparison as a ranx compare Report "
            "(ranx test names, max_p = alpha, its table); hardneg.ranx_export."
        },
    )
    ranx_p_adjustment: str = field(
        default="holm",
        metadata={
            "help": "p-values in the ranx export: holm (hardneg's verdicts) or none (raw, as ranx reports)."
        },
    )

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ValueError(f"unknown test '{self.test}'; fix: use one of {', '.join(TESTS)}")
        if self.scatter and len(self.scatter) != 2:
            raise ValueError(
                f"scatter needs exactly two methods, got {self.scatter}; fix: e.g. llm_hn zero-shot"
            )
        if self.compare not in ("same_model", "all"):
            raise ValueError(f"unknown compare '{self.compare}'; fix: use all or same_model")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}; fix: e.g. --alpha 0.05")
        if not 0 < self.power < 1:
            raise ValueError(f"power must be in (0, 1), got {self.power}; fix: e.g. --power 0.8")
        if self.ranx and importlib.util.find_spec("ranx") is None:  # before the report, not after it
            raise ConfigError(
                "--ranx needs ranx, which is not installed; fix: pip install ranx (in hardneg[dev])"
            )
        if self.ranx_p_adjustment not in P_ADJUSTMENTS:
            raise ValueError(
                f"ranx_p_adjustment '{self.ranx_p_adjustment}' is not holm or none; fix: use holm (default) or none"
            )
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples {self.n_resamples} is too few; fix: use >= 1000")
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)
