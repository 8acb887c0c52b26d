"""Training-free diagnostics of every config of a build (hardness, safety, ECI, source probe, diversity),
set beside the trained results when the run has them: diagnostics.json, diagnostics.png, card section.

    python evaluation/diagnose.py --dataset runs/demo/dataset --run_dir runs/demo --train_recipe recipes/demo/train.yaml
    python evaluation/diagnose.py --dataset org/name --revision v1.0.0 --run_dir runs/hub --target_encoder intfloat/e5-base-v2 --query_prompt "query: " --passage_prompt "passage: " --train_recipe ""
    make diagnose RUN_DIR=runs/demo

See docs/diagnostics.md for every measure and where hardneg had to choose.
"""

from __future__ import annotations

from hardneg.config import run_main
from hardneg.diagnose.record import diagnostics_path
from hardneg.diagnose.run import DiagnoseConfig, diagnose


def main(config: DiagnoseConfig) -> None:
    diag = diagnose(config)
    print(diag.markdown())
    cost = diag.cost
    print(
        f"diagnostics written to {diagnostics_path(config.run_dir)} in {cost['total_seconds']} s; texts: "
        f"{cost['texts']} ({cost['from_evaluation_cache']} from evaluation's cache, {cost['from_pool_cache']} from "
        f"the build's pool cache, {cost['encoded']} encoded)"
    )


if __name__ == "__main__":
    run_main(main, DiagnoseConfig)
