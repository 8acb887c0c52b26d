"""Versioned prompt templates: one YAML file per prompt (name, version, kind, format, inputs, stop, text).

Shipped templates (this folder):

- ``query_fewshot``  passage -> query, few-shot completion (default; works with the 135M embedded model)
- ``query_zeroshot`` passage -> query, zero-shot chat turn (for larger instruction-tuned models)
- ``llm_hn``         query -> hard negative passage (the paper's corpus-free method)
- ``llm_pos_hn``     query + positive -> hard negative passage
- ``llm_perturb_hn`` query + positive + how much to change -> the positive rewritten so it no longer answers
- ``fn_judge``       query + passage -> Yes/No: does the passage answer the query (false-negative repair)

Users pass their own file (``prompt="my_prompt.yaml"``) with the same keys. The template text, its
version and its SHA-256 go into every generated row and into the dataset card.

Placeholders are ``{passage}``, ``{query}``, ``{positive}`` and ``{change}`` (how much a rewrite changes); they are replaced in one pass, so braces
or placeholder-like text inside a passage are inserted verbatim and never expanded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

PROMPTS_DIR = Path(__file__).parent
PLACEHOLDERS = ("passage", "query", "positive", "change")
KINDS = ("query", "negative", "judge")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_REQUIRED = ("name", "version", "kind", "text")


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded prompt template; ``sha256`` hashes the exact text and settings that shape outputs."""

    name: str
    version: str
    kind: Literal["query", "negative", "judge"]
    text: str
    format: Literal["completion", "chat"] = "completion"
    inputs: tuple[str, ...] = ("passage",)
    stop: tuple[str, ...] = ("\n",)
    description: str = ""
    source: str = ""
    sha256: str = field(default="", compare=False)

    def render(self, **values: str) -> str:
        """Fill the placeholders; a value's own braces or ``{query}``-like text is never expanded."""
        missing = [k for k in self.inputs if k not in values]
        if missing:
            raise ValueError(f"prompt '{self.name}' needs {missing}; fix: pass them to render()")
        return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), self.text)

    def provenance(self) -> dict:
        """What the dataset card and the stats record about the prompt."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "text": self.text}


_REGISTERED: dict[str, PromptTemplate] = {}  # templates a method module declares in its own file


def register_prompt(text: str, source: str = "") -> PromptTemplate:
    """Declare a template from its YAML text (the keys of a template file), e.g. in a method module outside
    hardneg; ``load_prompt(name)`` then finds it by its name. A packaged template's name cannot be taken."""
    template = _parse(_yaml(text, source or "<registered prompt>"), source or "<registered prompt>")
    if (PROMPTS_DIR / f"{template.name}.yaml").is_file():
        raise ValueError(f"prompt '{template.name}' is a packaged template; fix: give yours another name")
    _REGISTERED[template.name] = template
    return template


def available_prompts() -> list[str]:
    """Names of the templates shipped with hardneg (and those registered by method modules)."""
    return sorted({p.stem for p in PROMPTS_DIR.glob("*.yaml")} | set(_REGISTERED))


def load_prompt(name_or_path: str | Path) -> PromptTemplate:
    """Load a shipped template by name (``query_fewshot``), a registered one, or a user template from a YAML file
    path."""
    if str(name_or_path) in _REGISTERED:
        return _REGISTERED[str(name_or_path)]
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"prompt template '{name_or_path}' not found; fix: use one of {available_prompts()} or a YAML file path"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"prompt file '{path}' is not valid UTF-8 YAML ({type(err).__name__}); fix: check its syntax"
        ) from None
    return _parse(_yaml(text, path), path)


def load_prompt_for(
    name_or_path: str | Path, kind: str, inputs: Sequence[str] | None, fix: str
) -> PromptTemplate:
    """``load_prompt`` of a template that suits its use: of ``kind`` and, when ``inputs`` is given, taking exactly
    those placeholders (every one is filled, none is left over). Otherwise, or when there is no such template,
    one ``ValueError`` line naming the template and ``fix``."""
    try:
        template = load_prompt(name_or_path)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    if template.kind != kind or (inputs is not None and set(template.inputs) != set(inputs)):
        wanted = f"a {kind} prompt" + (f" over {_placeholders(inputs)}" if inputs else "")
        raise ValueError(
            f"prompt '{template.name}' is a {template.kind} prompt over {_placeholders(template.inputs)}, "
            f"not {wanted}; fix: {fix}"
        )
    return template


def _placeholders(names: Sequence[str]) -> str:
    """``{query}, {positive} and {change}``."""
    braced = ["{" + n + "}" for n in names]
    return " and ".join([", ".join(braced[:-1]), braced[-1]] if len(braced) > 1 else braced)


def _yaml(text: str, where: str | Path) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(
            f"prompt file '{where}' is not valid UTF-8 YAML ({type(err).__name__}); fix: check its syntax"
        ) from None


def _parse(data: object, path: str | Path) -> PromptTemplate:
    """A template from its parsed YAML keys (checked); ``path`` names it in errors and in ``source``."""
    if not isinstance(data, dict) or any(k not in data for k in _REQUIRED):
        raise ValueError(
            f"prompt file '{path}' must be a YAML mapping with keys {list(_REQUIRED)}; fix: add the missing keys"
        )
    kind, fmt = data["kind"], data.get("format", "completion")
    if kind not in KINDS or fmt not in ("completion", "chat"):
        raise ValueError(
            f"prompt file '{path}': kind must be {'|'.join(KINDS)} and format completion|chat; fix: correct them"
        )
    text = str(data["text"])
    inputs = tuple(data.get("inputs") or sorted(set(_PLACEHOLDER_RE.findall(text))))
    unknown = [k for k in inputs if k not in PLACEHOLDERS]
    absent = [k for k in inputs if "{" + k + "}" not in text]
    if unknown or absent:
        names = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise ValueError(
            f"prompt file '{path}': inputs {unknown or absent} are not placeholders in the text; "
            f"fix: use {names} and list them under inputs"
        )
    stop = tuple(data.get("stop") or ())
    digest = hashlib.sha256(
        yaml.safe_dump(
            {"text": text, "format": fmt, "inputs": list(inputs), "stop": list(stop)}, sort_keys=True
        ).encode()
    ).hexdigest()
    return PromptTemplate(
        name=str(data["name"]),
        version=str(data["version"]),
        kind=kind,
        text=text,
        format=fmt,
        inputs=inputs,
        stop=stop,
        description=str(data.get("description", "")),
        source=str(path),
        sha256=digest,
    )
