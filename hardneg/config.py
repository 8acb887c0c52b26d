"""One parser for every script: dataclass configs, ``--config recipe.yaml``, CLI overrides.

Pattern from trl's ``TrlParser``: values in the YAML become the parser's defaults, so any
``--field value`` given on the command line wins. Unknown YAML keys are an error (a typo in a
recipe must not be silently ignored), and so is a YAML value of the wrong type (``num_passages: 2.5``,
``methods: bm25_hn`` where a list is expected, ``temperature: null``): YAML values bypass argparse's
type conversion, so ``check_yaml_values`` checks them against the dataclass field types.

``run_main`` is the entry point of every script: it parses, runs the pre-flight checks (output folders
writable, each config's ``preflight()`` such as server reachability) before anything heavy starts, calls
``main`` and turns every known failure into one line ``error: ...; fix: ...`` with exit code 2 (Ctrl-C:
one line, exit code 130). docs/errors.md lists the messages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from hardneg.files import REPLACE_FIX, replace_problem
from hardneg.redact import install_log_redaction, redact

# Config fields naming a folder the stage writes into (and keeps its finished work in): checked for writability
# before any work starts. A config class whose outputs differ declares its own ``OUTPUT_FIELDS``; fields naming a
# single file it writes go in ``OUTPUT_FILES`` (the file's folder is checked; no work is kept to resume).
OUTPUT_FIELDS = ("output_dir", "run_dir")


def _fields(cfg: Any, attr: str, default: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(field, value) of the config's declared output fields that are set."""
    names = getattr(type(cfg), attr, default)
    return [(n, v) for n in names if isinstance(v := getattr(cfg, n, None), str) and v]


class ConfigError(ValueError):
    """A recipe or command line that cannot be used; the message names the problem and the fix."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file '{path}' not found; fix: pass an existing recipe, e.g. recipes/demo/build.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file '{path}' is not UTF-8 text ({err.reason}); fix: save it as UTF-8"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{yaml_error_where(err, path)}; fix: correct the YAML syntax there") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a YAML mapping of field: value")
    return data


def yaml_error_where(err: yaml.YAMLError, path: str | Path, first_line: int = 1) -> str:
    """``'<file>' line N: <problem>`` for a YAML syntax error; ``first_line``: the file line where the YAML
    text starts (2 for a card's front matter after its opening ``---``)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"line {mark.line + first_line}" if mark is not None else "somewhere"
    return f"YAML syntax error in '{path}' {where}: {problem}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (list, tuple):
        return "a list"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        # Mapping entries pass through (EvalConfig's models/datasets accept {name: ..., revision: ...}).
        return isinstance(value, (list, tuple)) and all(
            _matches(v, inner) or isinstance(v, dict) for v in value
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


def check_yaml_values(
    values: dict[str, Any], dataclass_types: tuple[type, ...], source: str
) -> dict[str, Any]:
    """Refuse YAML values whose type does not fit the field; numbers given for string fields become strings."""
    hints: dict[str, Any] = {}
    for t in dataclass_types:
        hints.update(typing.get_type_hints(t))
    # list fields whose single string is unambiguous (a config's ONE_OR_LIST): `decontaminate: scifact`
    one_or_list = {name for t in dataclass_types for name in getattr(t, "ONE_OR_LIST", ())}
    out = dict(values)
    for key, value in values.items():
        tp = hints.get(key, Any)
        if isinstance(value, str) and key in one_or_list:
            out[key] = [value]
            continue
        if _matches(value, tp):
            if tp is str and not isinstance(value, str):
                out[key] = str(value)
            continue
        want = _type_name(next((t for t in typing.get_args(tp) if t is not type(None)), tp))
        if value is None:
            raise ConfigError(
                f"'{key}: null' in {source} but {key} needs {want}; fix: give a value or remove the line"
            )
        if isinstance(value, str) and typing.get_origin(tp) in (list, tuple):
            raise ConfigError(
                f"'{key}' in {source} is the string '{value}' but must be a list; fix: write {key}: [{value}]"
            )
        raise ConfigError(f"'{key}: {value!r}' in {source} is not {want}; fix: give {key} as {want}")
    return out


def parse(*dataclass_types: type, args: list[str] | None = None) -> tuple[Any, ...]:
    """Parse ``--config FILE`` plus CLI overrides into one instance of each dataclass type."""
    args = list(sys.argv[1:] if args is None else args)
    parser = HfArgumentParser(dataclass_types)
    parser.add_argument("--config", default=None, help="YAML recipe; command-line flags override its values")

    def refuse(message: str) -> typing.NoReturn:  # argparse would print usage + message and exit 2
        raise ConfigError(f"{message}; fix: see `--help` for the options and their types")

    parser.error = refuse  # type: ignore[method-assign]
    config_path = None
    if "--config" in args:
        i = args.index("--config")
        config_path = args[i + 1] if i + 1 < len(args) else None
        del args[i : i + 2]
    elif any(a.startswith("--config=") for a in args):
        a = next(a for a in args if a.startswith("--config="))
        config_path = a.split("=", 1)[1]
        args.remove(a)
    if config_path:
        values = load_yaml(config_path)
        known = {f.name for t in dataclass_types for f in dataclasses.fields(t)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown} in {config_path}; fix: remove them or check the spelling"
            )
        parser.set_defaults(**check_yaml_values(values, dataclass_types, config_path))
    try:
        parsed = parser.parse_args_into_dataclasses(args=args, look_for_args_file=False)
        return tuple(parsed[: len(dataclass_types)])
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(str(err)) from None


def read_json(path: str | Path, fix: str) -> Any:
    """A JSON file, or one line naming the file and where it breaks (a truncated write, a hand edit)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason}); fix: {fix}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno} is not valid JSON ({err.msg}); fix: {fix}") from None


def check_writable(folder: str | Path, option: str = "output_dir") -> None:
    """Fail now, creating nothing, when ``folder`` cannot be created or written (a file in its path,
    no permission): the same error later would come after minutes of work."""
    path = Path(folder).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"--{option} '{folder}' cannot be created: '{existing}' is a file, not a folder; "
            f"fix: choose another --{option}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--{option} '{folder}' is not writable (no permission on '{existing}'); "
            f"fix: choose a folder you can write to"
        )


def check_replaceable(folder: str | Path, option: str = "output_dir") -> None:
    """Fail now when ``folder`` is written whole and swapped in at the end (``hardneg.files.replace_folder``)
    but cannot be renamed: a mount point, the current directory, a parent that is not writable."""
    problem = replace_problem(folder)
    if problem:
        raise ConfigError(
            f"--{option} '{folder}' cannot be replaced at the end of the run: it {problem}; fix: {REPLACE_FIX}"
        )


def preflight(configs: tuple[Any, ...]) -> None:
    """Checks that need no model: output folders writable, then each config's own ``preflight()``."""
    for cfg in configs:
        for name, value in _fields(cfg, "OUTPUT_FIELDS", OUTPUT_FIELDS):
            check_writable(value, name)
        for name, value in _fields(cfg, "OUTPUT_FILES"):
            if Path(value).is_dir():
                raise ConfigError(f"--{name} '{value}' is a folder; fix: name the file to write")
            check_writable(Path(value).absolute().parent, name)
    for cfg in configs:
        check = getattr(cfg, "preflight", None)
        if callable(check):
            check()


def work_folder(configs: tuple[Any, ...]) -> str | None:
    """The folder a stage keeps its finished work in (named in the Ctrl-C line)."""
    return next((v for c in configs for _, v in _fields(c, "OUTPUT_FIELDS", OUTPUT_FIELDS)), None)


def is_main_process() -> bool:
    """False on the non-zero ranks of a distributed launch (they stay quiet; rank 0 prints the error)."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) in ("", "0")


def error_line(err: BaseException) -> str:
    """One line for a known failure: newlines folded, URLs with credentials redacted, a fix added to an
    OS error that lacks one."""
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and "fix:" not in text:
        what = f"cannot write '{err.filename}'" if err.filename else "an operating-system call failed"
        text = f"{what} ({err.strerror or type(err).__name__}); fix: check the path and its permissions, or choose another folder"
    return redact(" ".join(text.split()))


def run_main(main, *dataclass_types: type) -> None:
    """Entry point for thin scripts: parse, pre-flight checks, ``main(*configs)``; known errors become one line.

    Set ``HARDNEG_DEBUG=1`` to get the traceback instead; ``HARDNEG_CHECK_ONLY=1`` stops after parsing and
    the pre-flight checks (the Makefile runs it before ``accelerate launch``, so a bad option prints one
    line and exit code 2 instead of one line per process and the launcher's traceback).
    """
    install_log_redaction()
    configs: tuple[Any, ...] = ()
    try:
        configs = parse(*dataclass_types)
        preflight(configs)
        if os.environ.get("HARDNEG_CHECK_ONLY"):
            return
        main(*configs)
    except KeyboardInterrupt:
        if os.environ.get("HARDNEG_DEBUG"):
            raise
        if is_main_process():
            folder = work_folder(configs)
            files = [v for c in configs for _, v in _fields(c, "OUTPUT_FILES")]
            if folder:
                line = f"interrupted; work so far is kept in {folder}; rerun the same command to resume"
            elif files:  # a stage that writes one file at the end (the explorer): nothing to resume from
                line = f"interrupted; {files[0]} was not written; rerun the same command"
            else:
                line = "interrupted; work so far is kept; rerun the same command to resume"
            print(line, file=sys.stderr)
        sys.exit(130)
    except (ConfigError, OSError, RuntimeError, ValueError) as err:
        # One clear line for bad input; tracebacks are for bugs, set HARDNEG_DEBUG=1 to see them.
        if os.environ.get("HARDNEG_DEBUG"):
            raise
        if is_main_process():
            print(f"error: {error_line(err)}", file=sys.stderr)
        sys.exit(2)
