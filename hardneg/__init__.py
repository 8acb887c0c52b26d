"""hardneg: synthetic hard-negative training data for dense retrievers.

Pipeline (one module per stage): corpus -> queries -> negatives -> dataset (hub) -> train -> evaluate -> report.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning. On small shared CPUs, spinning threads made batched
# generation and scoring up to ~10x slower here; set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
