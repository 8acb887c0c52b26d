"""The rule every option value obeys, whether it came from a recipe, the command line or Python.

Taken from the field types so that every current and future option is covered: numbers are finite
(``nan``/``inf`` refused), integers are >= 0 and fit 64 bits (seeds: numpy's 0..2**32-1), and a field's
``metadata["bounds"] = (low, high)`` narrows (or, with a negative low, widens) its range. ``hardneg.config.parse``
checks the parsed values before any config is built; ``check_fields`` checks a built config (each config's
``__post_init__`` calls it), so a config made in Python obeys the same rule. Standard library only.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A recipe or command line that cannot be used; the message names the problem and the fix."""


INT64 = (-(2**63), 2**63 - 1)
SEED_BOUNDS = (0, 2**32 - 1)  # numpy's seeds (datasets' shuffle, samplers); torch and the LLMs accept them


def field_bounds(f: dataclasses.Field, kind: type, own: bool = True) -> tuple[float | None, float | None]:
    """(low, high) of a numeric field, inclusive: ``metadata["bounds"]`` if given, else >= 0 for integers
    (counts, sizes, budgets) and any finite value for numbers; seeds within numpy's 0..2**32-1. A field
    hardneg does not declare (``own`` False, see ``own_fields``) keeps its library's own range checks."""
    if "bounds" in f.metadata:
        return f.metadata["bounds"]
    if not own:
        return (None, None)
    if "seed" in f.name:
        return SEED_BOUNDS
    return (0, None) if kind is int else (None, None)


def _numeric(tp: Any) -> type | None:
    """int or float when the field holds numbers (``int``, ``float | None``, ``list[int]``), else None."""
    args = [t for t in typing.get_args(tp) if t is not type(None)] if typing.get_origin(tp) else [tp]
    if typing.get_origin(tp) in (list, tuple):
        args = list(typing.get_args(tp)[:1])
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return _numeric(args[0])
    return args[0] if len(args) == 1 and args[0] in (int, float) else None


def _finite(value: Any, where: str) -> None:
    """Every number inside a nested value (a dict option such as ``methods``) is finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} holds {value}, not a finite number; fix: give a finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _finite(v, where)


def check_value(f: dataclasses.Field, tp: Any, value: Any, own: bool = True) -> None:
    """Refuse a value that no option can mean: nan/inf, an integer out of its bounds (64 bits at most)."""
    kind = _numeric(tp)
    if kind is None or value is None:
        _finite(value, f"--{f.name}")
        return
    low, high = field_bounds(f, kind, own)
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue  # a type error, reported by the type check
        if not math.isfinite(v):
            default = f" (default {f.default})" if f.default is not dataclasses.MISSING else ""
            raise ConfigError(
                f"--{f.name} {v} is not a finite number; fix: give --{f.name} a number{default}"
            )
        shown = v if len(str(v)) <= 20 else f"{str(v)[:12]}...({len(str(v).lstrip('-'))} digits)"
        if low is not None and high is not None and not low <= v <= high:
            raise ConfigError(
                f"--{f.name} {shown} is out of its range {low}..{high}; fix: give --{f.name} a value from {low} "
                f"to {high}"
            )
        if low is not None and v < low:
            raise ConfigError(f"--{f.name} {shown} is below {low}; fix: give --{f.name} a value >= {low}")
        if high is not None and v > high:
            raise ConfigError(f"--{f.name} {shown} is above {high}; fix: give --{f.name} a value <= {high}")
        if kind is int and not INT64[0] <= v <= INT64[1]:
            raise ConfigError(
                f"--{f.name} {shown} does not fit 64 bits; fix: give --{f.name} a value of at most 19 digits"
            )


def own_fields(t: type) -> set[str]:
    """The fields hardneg's own classes declare. A config may build on another library's dataclass
    (``TrainConfig`` on sentence-transformers' training arguments): the fields it inherits follow that
    library's own range rules (``local_rank: -1``): hardneg refuses only non-finite and over-64-bit values."""
    return {
        name
        for klass in t.__mro__
        if klass.__module__.split(".")[0] == "hardneg"
        for name in vars(klass).get("__annotations__", {})
    }


def check_values(values: dict[str, Any], dataclass_types: tuple[type, ...]) -> None:
    """``check_value`` for every field of ``values`` (parsed from the command line and the recipe)."""
    for t in dataclass_types:
        hints, own = typing.get_type_hints(t), own_fields(t)
        for f in dataclasses.fields(t):
            if f.name in values:
                check_value(f, hints[f.name], values[f.name], f.name in own)


def check_fields(cfg: Any) -> None:
    """``check_value`` for every field of a built config (dataclass instance)."""
    hints, own = typing.get_type_hints(type(cfg)), own_fields(type(cfg))
    for f in dataclasses.fields(cfg):
        check_value(f, hints[f.name], getattr(cfg, f.name), f.name in own)


def matches_type(value: Any, tp: Any) -> bool:
    """Whether a recipe/YAML value fits a dataclass field's type (a number is accepted as a string)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches_type(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        # Mapping entries pass through (EvalConfig's models/datasets accept {name: ..., revision: ...}).
        return isinstance(value, (list, tuple)) and all(
            matches_type(v, inner) or isinstance(v, dict) for v in value
        )
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return True
