"""Training curves of a run: the loss per method and seed, from the log history each model folder keeps.

    plot_training_loss("runs/demo", "runs/demo/training_loss.png")

Reads ``<run_dir>/models/<method>/seed<S>/trainer_state.json`` (one folder per seed) and, for runs trained
before seeds had their own folders, ``<run_dir>/models/<method>/trainer_state.json``. A resumed training's
``trainer_state.json`` holds every segment's log history, so the curve covers the whole run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

TRAINER_STATE_FILE = "trainer_state.json"
_SEED_DIR = re.compile(r"^seed(\d+)$")


def training_histories(run_dir: str | Path) -> dict[tuple[str, int | None], list[tuple[int, float]]]:
    """{(method, seed or None): [(step, loss), ...]} for every model folder with a log history."""
    models = Path(run_dir) / "models"
    out: dict[tuple[str, int | None], list[tuple[int, float]]] = {}
    if not models.is_dir():
        return out
    # dot names are no methods: a save's staging or backup folder (.<method>.new-*, .<method>.old-*) beside it
    for method_dir in sorted(p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")):
        candidates = [(None, method_dir / TRAINER_STATE_FILE)]
        for seed_dir in method_dir.iterdir():
            m = _SEED_DIR.match(seed_dir.name)
            if m and seed_dir.is_dir():
                candidates.append((int(m.group(1)), seed_dir / TRAINER_STATE_FILE))
        for seed, path in sorted(candidates, key=lambda c: -1 if c[0] is None else c[0]):
            if not path.is_file():
                continue
            history = json.loads(path.read_text()).get("log_history", [])
            points = sorted(
                {int(h["step"]): float(h["loss"]) for h in history if "loss" in h and "step" in h}.items()
            )
            if points:
                out[(method_dir.name, seed)] = points
    return out


def plot_training_loss(run_dir: str | Path, path: str | Path) -> Path | None:
    """Training loss against optimizer step: one colour per method, one line per seed. Returns the PNG's
    path, or None (nothing written) when no model folder of the run has a log history."""
    histories = training_histories(run_dir)
    if not histories:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(m for m, _ in histories))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7, 4))
    for (method, seed), points in histories.items():
        steps, losses = zip(*points, strict=True)
        label = method if seed is None else f"{method} seed{seed}"
        ax.plot(
            steps,
            losses,
            color=colours(methods.index(method) % 10),
            alpha=0.85,
            lw=1.4,
            marker="o",
            ms=3,
            label=label,
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss per method and seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(histories) > 6 else 1)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
