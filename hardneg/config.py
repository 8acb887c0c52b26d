"""One parser for every script: dataclass configs, ``--config recipe.yaml``, CLI overrides.

Pattern from trl's ``TrlParser``: values in the YAML become the parser's defaults, so any
``--field value`` given on the command line wins. Unknown YAML keys are an error (a typo in a
recipe must not be silently ignored), and so is a YAML value of the wrong type (``num_passages: 2.5``,
``methods: bm25_hn`` where a list is expected, ``temperature: null``): YAML values bypass argparse's
type conversion, so ``check_yaml_values`` checks them against the dataclass field types.

Every value is checked when it is parsed, by rules taken from the field types so that every current and
future option is covered (``hardneg.options.check_value``; built configs check themselves the same way): numbers are finite (``nan``/``inf`` refused), integers are
>= 0 and fit 64 bits (seeds: numpy's 0..2**32-1), and a field's ``metadata["bounds"] = (low, high)``
narrows (or, with a negative low, widens) its range; a recipe that names a key twice is refused
(``load_yaml``). Cross-field checks stay in each config's ``__post_init__``.

``run_main`` is the entry point of every script: it parses, runs the pre-flight checks (output folders
writable, each config's ``preflight()`` such as server reachability) before anything heavy starts, calls
``main`` and turns every known failure into one line ``error: ...; fix: ...`` with exit code 2 (Ctrl-C:
one line, exit code 130). docs/errors.md lists the messages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import yaml
from transformers import HfArgumentParser

from hardneg.files import NO_SPACE, REPLACE_FIX, replace_problem
from hardneg.options import ConfigError, check_values, matches_type
from hardneg.redact import install_log_redaction, redact

# Config fields naming a folder the stage writes into (and keeps its finished work in): checked for writability
# before any work starts. A config class whose outputs differ declares its own ``OUTPUT_FIELDS``; fields naming a
# single file it writes go in ``OUTPUT_FILES`` (the file's folder is checked; no work is kept to resume).
OUTPUT_FIELDS = ("output_dir", "run_dir")
# What each tool leaves in the folder it writes: a folder holding one of these markers is that tool's. A stage
# writes only into a folder of its own kind (``OUTPUT_KIND``) and never into a dataset or model folder (they are
# published as a whole), nor over any of its inputs (``INPUT_FIELDS``): ``check_outputs``. The names are those
# of hardneg.dataset_folder.BUILD_STATS_FILE, hardneg.train.record.SUMMARY_FILE, sentence-transformers' modules.json
# and hardneg.build's stages folder (tests/test_bad_inputs_rules.py checks them).
FOLDER_KINDS: dict[str, tuple[str, ...]] = {
    "dataset": ("build_stats.json",),
    "model": ("training_summary.json", "modules.json"),
    "run": ("stages",),
}
PUBLISHED_KINDS = ("dataset", "model")


def _fields(cfg: Any, attr: str, default: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(field, value) of the config's declared output fields that are set."""
    names = getattr(type(cfg), attr, default)
    return [(n, v) for n in names if isinstance(v := getattr(cfg, n, None), str) and v]


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping naming a key twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise ConfigError(
                    f"'{key}' is given twice in '{self.name}' (lines {seen[key]} and {line}); "
                    "fix: keep one of them"
                )
            if isinstance(key, typing.Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file '{path}' not found; fix: pass an existing recipe, e.g. recipes/demo/build.yaml"
        )
    try:
        loader = _UniqueKeyLoader(path.read_text(encoding="utf-8"))
        loader.name = str(path)
        try:
            data = loader.get_single_data() or {}
        finally:
            loader.dispose()
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


def check_yaml_values(
    values: dict[str, Any], dataclass_types: tuple[type, ...], source: str
) -> dict[str, Any]:
    """Refuse YAML values whose type does not fit the field; numbers given for string fields become strings."""
    hints: dict[str, Any] = {}
    for t in dataclass_types:
        hints.update(typing.get_type_hints(t))
    # list fields whose single string is unambiguous (a config's ONE_OR_LIST): `decontaminate: scifact`
    one_or_list = {name for t in dataclass_types for name in getattr(t, "ONE_OR_LIST", ())}
    # list fields that also take a mapping (a config's LIST_OR_MAPPING): `methods: {bm25_hn: {range_max: 10}}`
    or_mapping = {name for t in dataclass_types for name in getattr(t, "LIST_OR_MAPPING", ())}
    out = dict(values)
    for key, value in values.items():
        tp = hints.get(key, Any)
        if isinstance(value, str) and key in one_or_list:
            out[key] = [value]
            continue
        if isinstance(value, dict) and key in or_mapping:
            continue
        if matches_type(value, tp):
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


# Field metadata that is hardneg's own (``hardneg.options``), not an argparse keyword.
OWN_METADATA = ("bounds",)


class _Parser(HfArgumentParser):
    """HfArgumentParser that keeps hardneg's own field metadata (``bounds``) out of argparse.

    HfArgumentParser passes a field's whole ``metadata`` to ``add_argument`` as keywords (transformers 5.25,
    ``HfArgumentParser._parse_dataclass_field``: ``kwargs = field.metadata.copy()``); argparse's public
    ``add_argument`` is where hardneg's keys are dropped, so no private HfArgumentParser method is overridden.
    """

    def add_argument(self, *args, **kwargs):
        for key in OWN_METADATA:
            kwargs.pop(key, None)
        return super().add_argument(*args, **kwargs)


def renamed_keys(dataclass_types: tuple[type, ...]) -> dict[str, str]:
    """Old option name -> new name, from each config's ``RENAMED`` (e.g. ``hub_private`` -> ``hub_private_repo``)."""
    return {old: new for t in dataclass_types for old, new in getattr(t, "RENAMED", {}).items()}


def _warn_renamed(old: str, new: str, where: str) -> None:
    if is_main_process():
        print(
            f"warning: '{old}' in {where} is now '{new}'; rename it (the old name is read for now)",
            file=sys.stderr,
        )


def rename_values(values: dict[str, Any], renamed: dict[str, str], source: str) -> dict[str, Any]:
    """A recipe's old keys under their new names, with one deprecation line each; both names: an error."""
    out = dict(values)
    for old, new in renamed.items():
        if old in out:
            if new in out:
                raise ConfigError(f"'{old}' and '{new}' are both in {source}; fix: keep '{new}' only")
            _warn_renamed(old, new, source)
            out[new] = out.pop(old)
    return out


def rename_args(args: list[str], renamed: dict[str, str]) -> list[str]:
    """Command-line flags of old names (``--old``, ``--old=v``, ``--no_old``) under their new names."""
    out = []
    for arg in args:
        name, eq, value = arg.partition("=")
        negated = name.startswith("--no_") and name[5:] in renamed
        if name.startswith("--") and (name[2:] in renamed or negated):
            old = name[5:] if negated else name[2:]
            _warn_renamed(f"--{old}", f"--{renamed[old]}", "the command line")
            arg = f"--{'no_' if negated else ''}{renamed[old]}{eq}{value}"
        out.append(arg)
    return out


def refuse_renamed(values: dict[str, Any], dataclass_types: tuple[type, ...], where: str) -> None:
    """Keys of older recipes that a config renamed (its ``renamed_key(key, value)``): one line naming the new
    spelling instead of 'unknown key'."""
    for t in dataclass_types:
        renamed = getattr(t, "renamed_key", None)
        for key, value in values.items():
            line = renamed(key, value) if renamed else None
            if line:
                raise ConfigError(f"{line} [{key} in {where}]")


def parse(*dataclass_types: type, args: list[str] | None = None) -> tuple[Any, ...]:
    """Parse ``--config FILE`` plus CLI overrides into one instance of each dataclass type; every value is
    checked (``check_values``) before any config is built."""
    renamed = renamed_keys(dataclass_types)
    args = rename_args(list(sys.argv[1:] if args is None else args), renamed)
    parser = _Parser(dataclass_types)
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
        values = rename_values(load_yaml(config_path), renamed, config_path)
        known = {f.name for t in dataclass_types for f in dataclasses.fields(t)}
        refuse_renamed({k: v for k, v in values.items() if k not in known}, dataclass_types, config_path)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown} in {config_path}; fix: remove them or check the spelling"
            )
        parser.set_defaults(**check_yaml_values(values, dataclass_types, config_path))
    flags = {a[2:].split("=", 1)[0]: a for a in args if a.startswith("--")}
    given = {
        k: a.split("=", 1)[1]
        if "=" in a
        else (args[args.index(a) + 1] if args.index(a) + 1 < len(args) else "")
        for k, a in flags.items()
        if k not in {f.name for t in dataclass_types for f in dataclasses.fields(t)}
    }
    refuse_renamed(given, dataclass_types, "the command line")
    try:
        values = vars(parser.parse_args(args=args))
        check_values(values, dataclass_types)
        return tuple(
            t(**{f.name: values[f.name] for f in dataclasses.fields(t) if f.init and f.name in values})
            for t in dataclass_types
        )
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


def folder_kind(folder: Path) -> tuple[str, str] | None:
    """(kind, marker) of a tool's folder (``FOLDER_KINDS``), None for any other folder."""
    for kind, markers in FOLDER_KINDS.items():
        for marker in markers:
            if (folder / marker).exists():
                return kind, marker
    return None


def _paths(value: Any) -> list[Path]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [Path(v).absolute() for v in values if isinstance(v, str) and v and Path(v).exists()]


def check_outputs(cfg: Any) -> None:
    """Refuse, before anything runs, an output that would overwrite an input or another tool's folder:
    an output equal to an input, a folder of another kind (a dataset folder as a model's --output_dir), or a
    path inside a dataset or model folder (which is published as a whole)."""
    own = getattr(type(cfg), "OUTPUT_KIND", None)
    inputs = [(n, p) for n in getattr(type(cfg), "INPUT_FIELDS", ()) for p in _paths(getattr(cfg, n, None))]
    outputs = _fields(cfg, "OUTPUT_FIELDS", OUTPUT_FIELDS) + _fields(cfg, "OUTPUT_FILES")
    for name, value in outputs:
        path = Path(value).absolute()
        for input_name, source in inputs:
            if path == source:
                raise ConfigError(
                    f"--{name} '{value}' would overwrite --{input_name} '{source}', an input of this stage; "
                    f"fix: choose another --{name}"
                )
        found = folder_kind(path) if path.is_dir() else None
        if found and found[0] != own:
            raise ConfigError(
                f"--{name} '{value}' is a {found[0]} folder (it holds {found[1]}), which this stage would write "
                f"over; fix: choose another --{name}"
            )
        for parent in path.parents:
            found = folder_kind(parent)
            if found and found[0] in PUBLISHED_KINDS:
                raise ConfigError(
                    f"--{name} '{value}' is inside the {found[0]} folder '{parent}' (it holds {found[1]}), which "
                    f"is published as a whole; fix: choose a --{name} outside it"
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
    """Checks that need no model: outputs that overwrite nothing and are writable, then each config's own
    ``preflight()``."""
    for cfg in configs:
        check_outputs(cfg)
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
    return next((v for _, v in _fields_of(configs)), None)


def is_main_process() -> bool:
    """False on the non-zero ranks of a distributed launch (they stay quiet; rank 0 prints the error)."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) in ("", "0")


def error_line(err: BaseException) -> str:
    """One line for a known failure: newlines folded, URLs with credentials redacted, a fix added to an
    OS error that lacks one."""
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and "fix:" not in text:
        what = f"cannot write '{err.filename}'" if err.filename else "an operating-system call failed"
        fix = "check the path and its permissions, or choose another folder"
        if err.errno in NO_SPACE:  # disk full: the one line says so, never a traceback
            fix = "free disk space on that drive (or choose a folder on another one) and rerun: finished work is kept"
        text = f"{what} ({err.strerror or type(err).__name__}); fix: {fix}"
    return redact(" ".join(text.split()))


@contextlib.contextmanager
def output_locks(configs: tuple[Any, ...]) -> Iterator[None]:
    """Hold an exclusive lock on every output folder while the stage runs: a second run into the same
    folder stops at once with one line instead of racing the first. The lock file sits beside the folder
    (``<parent>/.<name>.lock``), so a run that fails early leaves no folder behind. Only the main process
    locks (the other processes of a launch write into the same folder by design)."""
    with contextlib.ExitStack() as stack:
        if is_main_process():
            for name, value in _fields_of(configs):
                folder = Path(value).absolute()
                lock_path = folder.parent / f".{folder.name}.lock"
                lock_path.parent.mkdir(parents=True, exist_ok=True)
                lock = filelock.FileLock(str(lock_path), timeout=0)
                try:
                    stack.enter_context(lock)
                except filelock.Timeout:
                    raise ConfigError(
                        f"another run is writing into --{name} '{value}' (it holds {lock_path}); fix: wait for "
                        f"it to finish, or choose another --{name}"
                    ) from None
        yield


def _fields_of(configs: tuple[Any, ...]) -> list[tuple[str, str]]:
    return [nv for c in configs for nv in _fields(c, "OUTPUT_FIELDS", OUTPUT_FIELDS)]


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
        with output_locks(configs):
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
