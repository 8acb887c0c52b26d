"""Fine-tune a retriever on one config of a hard-negative dataset (library: ``hardneg.train``).

One process (here, or one GPU):
    accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \\
        training/train.py --config recipes/demo/train.yaml --dataset runs/demo/dataset \\
        --dataset_config llm_hn --output_dir runs/demo/models/llm_hn

All GPUs of one machine (DDP; in-batch negatives gathered across GPUs):
    accelerate launch --config_file recipes/accelerate/ddp.yaml --num_processes 8 training/train.py \\
        --config recipes/paper/train_e5-base-v2.yaml --dataset_config bm25_hn \\
        --output_dir runs/paper/models/e5-base-v2/bm25_hn

Multi-node, DeepSpeed ZeRO-2 and FSDP commands: docs/training.md.

Several training seeds, same budget in optimizer steps (models in <output_dir>/seed<S>/):
    python training/train.py --config recipes/demo/train.yaml --dataset_config llm_hn \
        --output_dir runs/demo/models/llm_hn --seeds 0 1 2 --max_steps 20

Plain ``python training/train.py --config ...`` also works for a single process. A rerun of the same
command resumes from the last complete checkpoint in ``<output_dir>/checkpoints`` (with seeds: skips
finished seeds).
"""

from __future__ import annotations

from accelerate import PartialState

from hardneg.config import run_main
from hardneg.train.config import TrainConfig
from hardneg.train.loop import train_seeds


def main(config: TrainConfig) -> None:
    folders = train_seeds(config)
    if PartialState().is_main_process:
        for folder in folders:
            print(f"model saved to {folder}")


if __name__ == "__main__":
    run_main(main, TrainConfig)
