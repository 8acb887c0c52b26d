"""``accelerate launch`` whose failures read like every other hardneg error: one line, the process's exit code.

    python -m hardneg.launch --num_processes 1 training/train.py --config recipes/demo/train.yaml ...
    python -m hardneg.launch --config_file recipes/accelerate/ddp.yaml --num_processes 8 training/train.py ...

It takes exactly ``accelerate launch``'s arguments (same parser) and runs the same launcher. Each launched
process already prints its own error as one line (``hardneg.config.run_main``; only rank 0 prints), whenever
the error is found: in the pre-flight or after it (an empty anchor in row 5 of the data). Plain ``accelerate
launch`` then raises ``CalledProcessError`` (one process) or ``ChildFailedError`` (torchrun, several
processes): a traceback that repeats the child's stderr, so the one line appears twice. Here the launch
ends with the failed process's own exit code (2 for bad input, 130 for Ctrl-C) and nothing more.
``make train`` launches through this module (``LAUNCH``).
"""

from __future__ import annotations

import logging
import subprocess
import sys


def _exit_code(err: BaseException) -> int:
    """The exit code of the first failed process (1 when the launcher does not say)."""
    if isinstance(err, subprocess.CalledProcessError):
        return err.returncode or 1
    failures = getattr(err, "failures", None) or {}  # torch's ChildFailedError: {rank: ProcessFailure}
    codes = [getattr(f, "exitcode", None) for _, f in sorted(failures.items())]
    return next((c for c in codes if isinstance(c, int) and c > 0), 1)


def main(argv: list[str] | None = None) -> None:
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = launch_command_parser().parse_args(argv)
    # torchrun's agent logs each failed worker at ERROR level before raising: the worker has said why.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        launch_command(args)
    except (subprocess.CalledProcessError, ChildFailedError) as err:
        sys.exit(_exit_code(err))


if __name__ == "__main__":
    main()
