"""Files a user keeps are replaced whole or not at all.

``write_atomic`` writes beside the target under a hidden name (``.<name>.tmp-*``: no data-file pattern such
as ``<config>/train-*`` or ``results/*.json`` matches it), then renames it over the target; on any failure
the temporary file is removed and the previous version stays. A full disk is one clear line
(``no_space_error``). Folders are swapped in the same way by ``hardneg.dataset_folder.save_dataset_folder``.
"""

from __future__ import annotations

import errno
import os
import tempfile
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
