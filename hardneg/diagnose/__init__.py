"""Training-free diagnostics of every config of a build, checked against the trained results (docs/diagnostics.md).

- ``hardneg.diagnose.run``: ``DiagnoseConfig`` and ``diagnose(config)``, the whole pass (``make diagnose``);
- ``hardneg.diagnose.embed``: embeddings of the texts from the build's and evaluation's caches, the rest once;
- ``hardneg.diagnose.measures``: hardness and safety, ECI, ECI_sem, surface statistics, diversity;
- ``hardneg.diagnose.probe``: source detectability (cross-validated linear probe, ROC AUC with an interval);
- ``hardneg.diagnose.against``: rank correlation with the trained metrics and what the sample can support;
- ``hardneg.diagnose.record``: ``Diagnostics``, the typed ``diagnostics.json`` (``to_disk`` / ``from_disk``);
- ``hardneg.diagnose.plots``: the figures.

This package's ``__init__`` imports only the record, so the report, the cards and the explorer can read
``diagnostics.json`` without loading the diagnosis stack.
"""

from __future__ import annotations

from hardneg.diagnose.record import (
    DIAGNOSTICS_FILE,
    NO_LLM_NEGATIVES,
    ConfigDiagnostics,
    Diagnostics,
    diagnostics_path,
)

__all__ = ["DIAGNOSTICS_FILE", "NO_LLM_NEGATIVES", "ConfigDiagnostics", "Diagnostics", "diagnostics_path"]
