"""Files a user keeps are replaced whole or not at all.

``write_atomic`` writes beside the target under a hidden name (``.<name>.tmp-*``: no data-file pattern such
as ``<config>/train-*`` or ``results/*.json`` matches it), then renames it over the target; on any failure
the temporary file is removed and the previous version stays (``open_atomic``: the same for a file written
in pieces). A full disk is one clear line (``no_space_error``).

``replace_folder`` does the same for a folder (the dataset folder, a trained model's folder): it is written as
``.<name>.new-*`` beside the real folder (symlinks resolved), then the old one is renamed aside
(``.<name>.old-<ns>-<pid>``, ``<ns>`` a nanosecond clock), the new one renamed in and the old one renamed to
``.<name>.trash-*`` and removed; files of the old folder the new one does not write are carried over (hard
links). A failure before the swap removes the new folder; a failure of the swap itself keeps the complete new
folder and names it; an interrupted swap is rolled back, and a kill between the two renames is undone by
``recover_folder`` (the newest ``.old-``), which every stage that opens the folder calls first. A folder that
cannot be renamed (a mount point, the current directory, a read-only parent) is refused before any work
(``replace_problem``). New files and folders get the usual modes (``0o666``/``0o777`` less the umask), not
``tempfile``'s private ``0o600``/``0o700``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from hardneg.errors import first_line

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space_error(err: OSError, what: str | Path) -> ValueError | OSError:
    """The one-line error for a full disk while writing ``what`` (other OS errors are returned unchanged)."""
    if err.errno not in NO_SPACE:
        return err
    return ValueError(
        f"no space left on the device writing {what} ({first_line(err)}); the previous version is unchanged; "
        "fix: free disk space and rerun the same command"
    )


def _umask() -> int:
    """The process's umask: read from /proc where it can be (setting it to read it races other threads)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text is UTF-8) in one rename; the old file survives any failure."""
    with open_atomic(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


@contextlib.contextmanager
def open_atomic(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` in one rename when the block ends (for content written in pieces,
    e.g. files appended with ``shutil.copyfileobj``); on any failure the old file stays, the new one is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise no_space_error(err, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def replace_folder(
    folder: str | Path, *, rewritten: set[str] = frozenset(), what: str = ""
) -> Iterator[Path]:
    """Yield a staging folder beside ``folder``; when the block finishes, swap it in (see the module docstring).
    ``rewritten``: top-level names of the old folder that the new one replaces whole (not carried over)."""
    folder = Path(folder).resolve()  # a symlinked folder: write into its real target, beside it
    problem = replace_problem(folder)
    if problem:
        raise ValueError(
            f"{what or 'the folder'} {folder} cannot be replaced: it {problem}; fix: {REPLACE_FIX}"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        yield staging
        if folder.is_dir():
            _carry_over(folder, staging, rewritten)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        where = f"{what or folder} (written beside the old one)"
        if err.errno in NO_SPACE:
            raise no_space_error(err, where) from None
        raise ValueError(
            f"writing {where} failed ({first_line(err)}); the previous version is unchanged; fix: check that you "
            "can write there and that the disk is healthy, then rerun the same command"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        _swap_in(staging, folder)
    except OSError as err:  # the new folder is complete: keep it, never throw away the finished work
        raise ValueError(
            f"the new {what or 'folder'} could not be put in place of {folder} ({first_line(err)}); it is "
            f"complete at {staging}; fix: move it there yourself (mv {staging} {folder} after moving the old one "
            "away) or rerun with a folder that can be renamed"
        ) from None


REPLACE_FIX = "name a new subfolder of it (e.g. <folder>/model), a folder that is not a mount point in a folder you can write"


def replace_problem(folder: str | Path) -> str | None:
    """Why ``replace_folder`` could not swap ``folder`` in (``None`` when it can): checked before any work."""
    real = Path(folder).resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        return "is the current directory or holds it"
    if os.path.ismount(real):
        return "is a mount point (a mount point cannot be renamed)"
    parent = real.parent
    while not parent.exists():
        parent = parent.parent
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        return f"is in {parent}, which is not writable (the new folder is written beside the old one)"
    return None


def _old_order(path: Path) -> tuple[int, float]:
    """The order of ``.<name>.old-<ns>-<pid>`` backups: the clock in the name (mtime for older names)."""
    stamp = path.name.rsplit(".old-", 1)[-1].split("-", 1)[0]
    return (int(stamp), 0.0) if stamp.isdigit() else (0, path.stat().st_mtime)


def recover_folder(folder: str | Path) -> None:
    """Put back the previous folder when a swap stopped between its two renames (the folder is missing and
    its ``.<name>.old-*`` sibling is there), and remove what a killed save left beside it an hour ago or more
    (a younger staging folder may be another process's save in progress)."""
    folder = Path(folder).resolve()
    if not folder.parent.is_dir():
        return
    for trash in folder.parent.glob(f".{folder.name}.trash-*"):
        shutil.rmtree(trash, ignore_errors=True)
    olds = sorted(folder.parent.glob(f".{folder.name}.old-*"), key=_old_order)
    if olds and not folder.exists():
        try:
            os.rename(olds.pop(), folder)
        except FileNotFoundError:  # another process of the same launch put it back first
            pass
    for stale in [*olds, *folder.parent.glob(f".{folder.name}.new-*")]:
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)


def _carry_over(old: Path, new: Path, rewritten: set[str]) -> None:
    """Files of the previous folder that the new one does not write (other configs, checkpoints, a file the
    user added), linked into the new one so that the swap keeps them."""
    for path in sorted(old.rglob("*")):
        rel = path.relative_to(old)
        target = new / rel
        if rel.parts[0] in rewritten or path.is_dir() or target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def _swap_in(new: Path, folder: Path) -> None:
    """Replace ``folder`` by ``new``: the old one renamed aside, the new one renamed in, the old one removed
    (renamed to ``.trash-*`` first, so that a half-done removal is never taken for a backup)."""
    if not folder.exists():
        os.rename(new, folder)
        return
    stamp = f"{time.time_ns():020d}-{os.getpid()}"
    old = folder.parent / f".{folder.name}.old-{stamp}"
    os.rename(folder, old)
    swapped = False
    try:
        os.rename(new, folder)
        swapped = True
    finally:
        if not swapped:  # any failure or interruption (Ctrl-C) between the renames: the old folder goes back
            os.rename(old, folder)
    trash = folder.parent / f".{folder.name}.trash-{stamp}"
    try:
        os.rename(old, trash)
    except OSError:  # the new folder is in place; recover_folder removes the backup after an hour
        return
    shutil.rmtree(trash, ignore_errors=True)
