"""Validate and publish a built dataset folder (or a trained model) as a versioned Hub release.

Dry run (default: validates, prints the operations and the card, uploads nothing):

    python builders/publish.py --folder runs/demo/dataset --repo_id my-org/cranfield-hn --version 1.0.0

Upload in one commit, then tag v1.0.0 (token from `hf auth login` or HF_TOKEN; never printed):

    python builders/publish.py --folder runs/demo/dataset --repo_id my-org/cranfield-hn --version 1.0.0 --confirm
    make publish REPO=my-org/cranfield-hn VERSION=1.0.0 [PRIVATE=1] [CONFIRM=1]

A trained retriever (model card from the folder's card_data.json, written by training):

    python builders/publish.py --kind model --folder runs/demo/models/llm_hn --repo_id my-org/minilm-llm-hn \
        --version 1.0.0 [--dataset_id my-org/cranfield-hn --dataset_revision v1.0.0] --confirm
"""

from __future__ import annotations

from hardneg.config import run_main
from hardneg.publish import PublishConfig, publish_dataset, publish_model


def main(config: PublishConfig) -> None:
    if config.kind == "dataset":
        result = publish_dataset(
            config.folder,
            config.repo_id,
            config.version,
            private=config.private,
            confirm=config.confirm,
            notes=config.notes,
            allow_schema_change=config.allow_schema_change,
            card_updates={
                "license": config.license,
                "pretty_name": config.pretty_name,
                "summary": config.summary,
            },
        )
    else:
        result = publish_model(
            config.folder,
            config.repo_id,
            config.version,
            private=config.private,
            confirm=config.confirm,
            notes=config.notes,
            card_updates={"dataset_id": config.dataset_id, "dataset_revision": config.dataset_revision},
        )
    print(result.summary())
    if result.dry_run and config.show_card:
        print("\n" + "=" * 30 + " README.md (card) " + "=" * 30)
        print(result.card)
    if not result.dry_run:
        from huggingface_hub import constants

        kind = "datasets/" if config.kind == "dataset" else ""
        print(f"released: {constants.ENDPOINT}/{kind}{config.repo_id}/tree/{result.tag}")


if __name__ == "__main__":
    run_main(main, PublishConfig)
