"""The build's settings: ``BuildConfig`` (pipeline settings, plus ``methods``: each method's own options).

A method's options are its own dataclass (``hardneg.methods``); ``methods`` maps each built method to its
overrides and holds, once built, every built method's resolved options (``options_of``). Keys of older recipes
that became method options get one line naming the new spelling (``renamed_key``, exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from hardneg.config import check_replaceable
from hardneg.corpus import EMPTY_PASSAGES
from hardneg.id_layout import LAYOUTS
from hardneg.methods import Method, get_method, load_plugins, method_names
from hardneg.negatives.repair import JUDGE_PROMPT, REPAIR_MODES, REPAIR_SCOPES
from hardneg.options import ConfigError, check_fields


@dataclass
class BuildConfig:
    """What to build. Generator settings live in ``hardneg.llm.GeneratorConfig`` (same recipe file)."""

    ONE_OR_LIST: ClassVar[tuple[str, ...]] = ("decontaminate", "plugins")  # one may be given as a string
    LIST_OR_MAPPING: ClassVar[tuple[str, ...]] = ("methods",)  # names, or names -> option overrides
    OUTPUT_KIND: ClassVar[str] = "run"  # hardneg.config.check_outputs
    INPUT_FIELDS: ClassVar[tuple[str, ...]] = ("corpus",)

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
            "help": "Corpus rows with an empty or missing text: drop (counted in build_stats, first ids logged) or error."
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
        metadata={
            "help": "Hard-negative configs to build: names registered in hardneg.methods, or (YAML, or JSON on the "
            "command line) a mapping from each name to its option overrides, e.g. {bm25_hn: {range_max: 10}}; "
            "only a method whose options change is rebuilt. Each method's options: docs/mining.md, "
            "docs/generation.md."
        },
    )
    plugins: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Method modules from outside hardneg, imported before the methods are read: an importable "
            "module name or a .py file; each registers its method(s) (docs/design.md, adding a method)."
        },
    )
    paired: bool = field(
        default=True,
        metadata={
            "help": "Keep only query ids present in every method's config (a paired comparison); drops are "
            "counted per config in build_stats."
        },
    )
    query_prompt: str = field(
        default="query_fewshot",
        metadata={"help": "Query prompt: a packaged template name or a template file path."},
    )
    query_max_new_tokens: int = field(
        default=32, metadata={"bounds": (1, None), "help": "Token budget of a generated query."}
    )
    reject_retries: int = field(
        default=2,
        metadata={
            "help": "Retries (new seed) for an LLM output rejected by the hygiene filters: the queries', and every "
            "LLM method's unless its own reject_retries is set."
        },
    )
    scorer_dtype: str = field(
        default="auto",
        metadata={
            "help": "Precision of the ce / false-negative scorers: auto (bfloat16 on a CUDA GPU with bf16, else "
            "float32 = CrossEncoder.predict's scores), float32, bfloat16 (~1.8x faster on CPUs with avx512_bf16), "
            "float16; a method's own scorer_dtype overrides it for that method."
        },
    )
    false_negative_scorer: str | None = field(
        default="same",
        metadata={
            "help": "Scorer for the suspected-false-negative rate of every config ('same' = the scorer a ranking "
            "method uses, ce_hn's ce_scorer; none to skip)."
        },
    )
    false_negative_judge: str | None = field(
        default=None,
        metadata={
            "help": "A second, independent scorer (e.g. a CrossEncoder id) whose rate is reported beside it as "
            "independent_false_negative_rate (none = skip)."
        },
    )
    false_negative_repair: str = field(
        default="none",
        metadata={
            "help": "none | drop | relabel: an LLM judge (the build's generator, or repair_judge_model) labels "
            "suspected false negatives, which are dropped or relabelled as extra positives (RLHN)."
        },
    )
    repair_configs: list[str] = field(
        default_factory=list, metadata={"help": "Configs to repair (default: every config in methods)."}
    )
    repair_scope: str = field(
        default="suspected",
        metadata={
            "help": "suspected (rows the false_negative_scorer rates at or above the positive) | all rows."
        },
    )
    repair_judge_prompt: str = field(
        default=JUDGE_PROMPT, metadata={"help": "Judge prompt (packaged, versioned) or a template file."}
    )
    repair_judge_model: str | None = field(
        default=None,
        metadata={"help": "Judge LM with the generator's backend settings (default: the generator itself)."},
    )
    repair_max_new_tokens: int = field(
        default=4, metadata={"bounds": (1, None), "help": "Token budget of a judge answer."}
    )
    decontaminate: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Evaluation sets (BEIR names, mteb/<name>[@sha], BEIR folders, embedded:cranfield) whose query "
            "texts are removed from generated queries; a list: every set the models are evaluated on."
        },
    )
    decontaminate_split: str = field(default="test", metadata={"help": "Qrels split of the evaluation set."})
    exclude_eval_docs: bool = field(
        default=False,
        metadata={"help": "Also remove the evaluation set's judged documents from passages and mining pool."},
    )
    score_batch_size: int = field(
        default=32,
        metadata={"bounds": (1, None), "help": "Batch size for cross-encoder scoring and encoding."},
    )
    layout: str = field(
        default="text",
        metadata={
            "help": "Published layout: text (triplets with their texts), ids (a corpus config + the queries "
            "config + per method a config of ids, sentence-transformers' resolve_ids layout) or both (text "
            "configs + corpus + <method>_ids); docs/publishing.md."
        },
    )

    def preflight(self) -> None:
        """Checks before any work (``run_main``): the dataset folder can be swapped in at the end."""
        check_replaceable(Path(self.output_dir) / "dataset")

    def __post_init__(self) -> None:
        if isinstance(self.decontaminate, str):  # one set, as recipes wrote it before lists
            self.decontaminate = [self.decontaminate]
        self.decontaminate = list(self.decontaminate or [])
        self.plugins = [self.plugins] if isinstance(self.plugins, str) else list(self.plugins or [])
        load_plugins(self.plugins)  # before the methods are read: a plugin registers its method
        self._check_choices()
        self.methods = self._resolved_methods(self.methods)
        for name in self.methods:
            get_method(name).input_configs(self.options_of(name))  # a derived method checks what it reads
        self._check_repair()
        self._check_judge()
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)

    def _check_choices(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"layout '{self.layout}' is not one of {', '.join(LAYOUTS)}; fix: use text, ids or both"
            )
        if self.num_passages < 0:
            raise ValueError("num_passages must be >= 0 (0 = all)")
        if self.empty_passages not in EMPTY_PASSAGES:
            raise ValueError(
                f"empty_passages '{self.empty_passages}' is not {' or '.join(EMPTY_PASSAGES)}; "
                f"fix: use {' or '.join(EMPTY_PASSAGES)}"
            )

    def _resolved_methods(self, methods: Any) -> dict[str, dict[str, Any]]:
        """``methods`` (a list of names, a mapping name -> overrides, or that mapping as JSON) as each named
        method's resolved options (its options dataclass, as a mapping)."""
        if isinstance(methods, str):
            raise ValueError(
                f"methods is the string '{methods}', not a list; fix: write methods: [{methods}]"
            )
        if (
            isinstance(methods, (list, tuple))
            and len(methods) == 1
            and str(methods[0]).lstrip().startswith("{")
        ):
            methods = _json_methods(methods[0])  # the command line's --methods '{"bm25_hn": {...}}'
        if isinstance(methods, Mapping):
            not_mapping = [k for k, v in methods.items() if v is not None and not isinstance(v, Mapping)]
            if not_mapping:
                name = not_mapping[0]
                raise ValueError(
                    f"methods: {name}: {methods[name]!r} is not a mapping of options; fix: write "
                    f"methods: {{{name}: {{option: value}}}} (or list the name alone)"
                )
            overrides = {str(k): dict(v or {}) for k, v in methods.items()}
        else:
            overrides = {str(n): {} for n in methods}
        known = method_names()
        unknown = [m for m in overrides if m not in known]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; fix: choose from {', '.join(known)}")
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "methods"}
        return {name: get_method(name).resolve(o, shared) for name, o in overrides.items()}

    def _check_repair(self) -> None:
        if self.false_negative_repair not in REPAIR_MODES or self.repair_scope not in REPAIR_SCOPES:
            raise ValueError(
                f"false_negative_repair '{self.false_negative_repair}' / repair_scope '{self.repair_scope}'; "
                f"fix: use one of {REPAIR_MODES} / {REPAIR_SCOPES}"
            )
        stray = [c for c in self.repair_configs if c not in self.methods]
        if stray:
            raise ValueError(f"repair_configs {stray} are not built; fix: add them to methods or drop them")
        if (
            self.false_negative_repair != "none"
            and self.repair_scope == "suspected"
            and not self._fn_scorer_name()
        ):
            raise ValueError(
                "repair_scope 'suspected' needs a false_negative_scorer; fix: set one or use repair_scope all"
            )

    def _check_judge(self) -> None:
        judge = self.false_negative_judge
        if not judge or str(judge).lower() == "none":
            return
        guards = {self._fn_scorer_name(), self._ranking_scorer()}
        for name in self.methods:
            method = get_method(name)
            if method.guard_scorer:
                guards.add(method.guard_scorer(self.options_of(name)))
        if judge in guards:
            raise ValueError(
                f"false_negative_judge '{judge}' is the build's false-negative scorer or a method's guard, so "
                "its rate would not be independent; fix: choose a scorer of another model"
            )

    def _ranking_scorer(self) -> str | None:
        """The scorer 'same' names: that of the first method (built ones first) that ranks with a scorer."""
        for name in dict.fromkeys([*self.methods, *method_names()]):
            method = get_method(name)
            if method.scorer_option:
                return self.options_of(name)[method.scorer_option]
        return None

    def _fn_scorer_name(self) -> str | None:
        name = self._ranking_scorer() if self.false_negative_scorer == "same" else self.false_negative_scorer
        return name if name and str(name).lower() != "none" else None

    def options_of(self, method: Method | str) -> dict[str, Any]:
        """A method's own options: as resolved for ``methods``, or its defaults when it is not built."""
        name = method if isinstance(method, str) else method.name
        if isinstance(self.methods, Mapping) and name in self.methods:
            return self.methods[name]
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "methods"}
        return get_method(name).resolve({}, shared)

    @classmethod
    def renamed_key(cls, key: str, value: Any = "...") -> str | None:
        """The line for a key of an older recipe that is now a method's option (or ``method_options``), naming
        the new spelling; None for a key that is not one (``hardneg.config.parse`` asks before 'unknown')."""
        if key in {f.name for f in fields(cls)}:
            return None
        if key == "method_options":
            return (
                f"method_options is now part of methods; fix: write methods: {value} (each method with its option "
                "overrides, docs/mining.md)"
            )
        targets = [
            (m.name, m.formerly.get(key, key))
            for m in map(get_method, method_names())
            if key in m.formerly or key in m.option_names()
        ]
        if not targets:
            return None
        spelled = ", ".join(f"{m}: {{{option}: {value}}}" for m, option in targets)
        return (
            f"'{key}' is now an option of each method that takes it ({', '.join(m for m, _ in targets)}); "
            f"fix: write methods: {{{spelled}}} (keep the methods you build; docs/mining.md)"
        )


def _json_methods(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        raise ValueError(
            'methods is not a list of names nor JSON; fix: pass e.g. \'{"bm25_hn": {"range_max": 10}}\''
        ) from None
    if not isinstance(value, dict):
        raise ValueError('methods JSON must be a mapping; fix: pass e.g. \'{"bm25_hn": {"range_max": 10}}\'')
    return value


def _refuse_constant(name: str) -> None:
    """json.loads hook: JSON's NaN / Infinity are not numbers an option can mean (hardneg.config's rule)."""
    raise ConfigError(f"methods holds {name}, not a finite number; fix: give a finite number")
