"""hardneg: synthetic hard-negative training data for dense retrievers.

Pipeline (one module per stage): corpus -> queries -> negatives -> dataset (hub) -> train -> evaluate -> report.
"""

from __future__ import annotations

__version__ = "0.1.0"
