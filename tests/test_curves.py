"""The training-loss plot reads each model folder's log history (per-seed folders and old single-seed ones)."""

from __future__ import annotations

import json
from pathlib import Path

from hardneg.curves import plot_training_loss, training_histories


def _state(folder: Path, losses: list[float]) -> None:
    folder.mkdir(parents=True)
    history = [{"step": i + 1, "loss": v, "epoch": 0.1} for i, v in enumerate(losses)] + [{"train_loss": 1.0}]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))


def test_plot_training_loss(tmp_path):
    run = tmp_path / "run"
    _state(run / "models" / "llm_hn" / "seed0", [2.0, 1.5, 1.0])
    _state(run / "models" / "llm_hn" / "seed1", [2.1, 1.4])
    _state(run / "models" / "bm25_hn", [1.9, 1.7])  # a run from before per-seed folders
    (run / "models" / "ce_hn").mkdir()  # not trained yet: no log history
    _state(run / "models" / ".llm_hn.old-00000000000000000001-1", [3.0])  # a killed save's backup: no method
    _state(run / "models" / ".bm25_hn.new-abc", [3.0])  # a save in progress
    histories = training_histories(run)
    assert histories == {
        ("bm25_hn", None): [(1, 1.9), (2, 1.7)],
        ("llm_hn", 0): [(1, 2.0), (2, 1.5), (3, 1.0)],
        ("llm_hn", 1): [(1, 2.1), (2, 1.4)],
    }
    path = plot_training_loss(run, tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert plot_training_loss(tmp_path / "empty", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_report_plots_training_loss_when_models_kept_their_history(tmp_path):
    import numpy as np
    from test_report import _write

    from hardneg.report import ReportConfig, render_report

    rng = np.random.default_rng(0)
    _write(tmp_path, "all-MiniLM-L6-v2", "zero-shot", rng.uniform(0, 1, 30))
    _write(tmp_path, "all-MiniLM-L6-v2", "llm_hn", rng.uniform(0, 1, 30))
    paths = render_report(ReportConfig(run_dir=str(tmp_path), n_resamples=100))
    assert "training_loss" not in paths  # no model folder kept a log history
    _state(tmp_path / "models" / "llm_hn" / "seed0", [2.0, 1.0])
    paths = render_report(ReportConfig(run_dir=str(tmp_path), n_resamples=100))
    assert paths["training_loss"] == tmp_path / "training_loss.png" and paths["training_loss"].is_file()
