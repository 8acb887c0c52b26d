"""One parser for every script: dataclass configs, ``--config recipe.yaml``, CLI overrides.

Pattern from trl's ``TrlParser``: values in the YAML become the parser's defaults, so any
``--field value`` given on the command line wins. Unknown YAML keys are an error (a typo in a
recipe must not be silently ignored).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser


class ConfigError(ValueError):
    """A recipe or command line that cannot be used; the message names the problem and the fix."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file '{path}' not found; fix: pass an existing recipe, e.g. recipes/demo/build.yaml"
        )
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a YAML mapping of field: value")
    return data


def parse(*dataclass_types: type, args: list[str] | None = None) -> tuple[Any, ...]:
    """Parse ``--config FILE`` plus CLI overrides into one instance of each dataclass type."""
    args = list(sys.argv[1:] if args is None else args)
    parser = HfArgumentParser(dataclass_types)
    parser.add_argument("--config", default=None, help="YAML recipe; command-line flags override its values")
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
        parser.set_defaults(**values)
    try:
        parsed = parser.parse_args_into_dataclasses(args=args, look_for_args_file=False)
        return tuple(parsed[: len(dataclass_types)])
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def run_main(main, *dataclass_types: type) -> None:
    """Entry point for thin scripts: parse, call ``main(*configs)``, and turn known errors into one line."""
    try:
        configs = parse(*dataclass_types)
        main(*configs)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as err:
        # One clear line for bad input; tracebacks are for bugs, set HARDNEG_DEBUG=1 to see them.
        import os

        if os.environ.get("HARDNEG_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
