"""Files a user keeps are replaced whole or not at all.

``write_atomic`` writes beside the target under a hidden name (``.<name>.tmp-*``: no data-file pattern such
as ``<config>/train-*`` or ``results/*.json`` matches it), then renames it over the target; on any failure
the temporary file is removed and the previous version stays. A full disk is one clear line
(``no_space_error``).

``replace_folder`` does the same for a folder (the dataset folder, a trained model's folder): it is written as
``.<name>.new-*`` beside the old one, then the old one is renamed aside (``.<name>.old-*``), the new one renamed
in and the old one removed; files of the old folder the new one does not write are carried over (hard links).
A failure before the swap removes the new folder; a crash between the two renames is undone by the next
``replace_folder`` of that folder (``recover_folder``).
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


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text is UTF-8) in one rename; the old file survives any failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise no_space_error(err, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def replace_folder(
    folder: str | Path, *, rewritten: set[str] = frozenset(), what: str = ""
) -> Iterator[Path]:
    """Yield a staging folder beside ``folder``; when the block finishes, swap it in (see the module docstring).
    ``rewritten``: top-level names of the old folder that the new one replaces whole (not carried over)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        yield staging
        if folder.is_dir():
            _carry_over(folder, staging, rewritten)
        _swap_in(staging, folder)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise no_space_error(err, f"{what or folder} (written beside the old one)") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def recover_folder(folder: str | Path) -> None:
    """Put back the previous folder when a swap stopped between its two renames (the folder is missing and
    its ``.<name>.old-*`` sibling is there), and remove what a killed save left beside it an hour ago or more
    (a younger staging folder may be another process's save in progress)."""
    folder = Path(folder)
    olds = sorted(folder.parent.glob(f".{folder.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not folder.exists():
        os.rename(olds.pop(), folder)
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
    """Replace ``folder`` by ``new``: the old one renamed aside, the new one renamed in, the old one removed."""
    if not folder.exists():
        os.rename(new, folder)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    os.rmdir(old)
    os.rename(folder, old)
    try:
        os.rename(new, folder)
    except OSError:
        os.rename(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)
