"""Evaluate retrievers (BM25, sentence-transformers models) on BEIR-style sets; one result file per pair.

    python evaluation/evaluate.py --config recipes/demo/eval.yaml --run_dir runs/demo
    python evaluation/evaluate.py --config recipes/paper/eval.yaml --run_dir runs/paper
    accelerate launch --config_file recipes/accelerate/ddp.yaml evaluation/evaluate.py \
        --config recipes/paper/eval.yaml --run_dir runs/paper

Writes <run_dir>/results/<model>.<method>__<dataset>.json; then `python evaluation/report.py --run_dir ...`.
Under `accelerate launch` corpus encoding is sharded across the processes (same numbers as one process).
"""

from __future__ import annotations

import logging

from hardneg.config import run_main
from hardneg.eval_config import EvalConfig
from hardneg.evaluate import evaluate


def main(config: EvalConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    evaluate(config)


if __name__ == "__main__":
    run_main(main, EvalConfig)
