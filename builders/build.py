"""Build the dataset: LLM queries for sampled passages, then hard negatives by each method on the same queries.

    python builders/build.py --config recipes/demo/build.yaml --output_dir runs/demo
    python builders/build.py --config recipes/paper/build.yaml --backend http --urls http://tgi-1:8080 http://tgi-2:8080

Writes <output_dir>/dataset/ (Hub layout: README.md card + <config>/train-*.parquet + build_stats.json).
Rerunning the same command resumes: finished stages and generated items are reused.
"""

from __future__ import annotations

import logging

from hardneg.build import BuildConfig, build
from hardneg.config import run_main
from hardneg.llm import GeneratorConfig


def main(config: BuildConfig, generator: GeneratorConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    folder = build(config, generator)
    print(f"dataset folder: {folder}")


if __name__ == "__main__":
    run_main(main, BuildConfig, GeneratorConfig)
