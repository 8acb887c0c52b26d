"""Write the offline explorer of a build (and of a run's retrievals): one static HTML file.

    python evaluation/explore.py --dataset runs/demo/dataset --run_dir runs/demo --output runs/demo/explore.html
    python evaluation/explore.py --dataset org/name --revision v1.0.0 --output explore.html
    make explore RUN_DIR=runs/demo

Open the file in any browser, from disk: no server, no network. See docs/explore.md.
"""

from __future__ import annotations

from hardneg.config import run_main
from hardneg.explore import ExploreConfig, write_explorer


def main(config: ExploreConfig) -> None:
    path = write_explorer(
        config.dataset,
        config.output,
        revision=config.revision,
        run_dir=config.run_dir,
        rejects_dir=config.rejects_dir,
        metric=config.metric,
        eval_data=config.eval_data,
        sample_queries=config.sample_queries,
    )
    print(f"explorer written to {path} ({path.stat().st_size / 1e6:.2f} MB); open it in a browser")


if __name__ == "__main__":
    run_main(main, ExploreConfig)
