"""The report's model-index: each local model folder's results written into its README's Hub metadata."""

from __future__ import annotations

from pathlib import Path

from hardneg.records import EvalResult


def write_model_index(results: list[EvalResult], rows_metrics: list[str]) -> list[Path]:
    """Put each local model folder's results into its README's model-index (Hub metadata)."""
    from huggingface_hub import EvalResult as HubEvalResult
    from huggingface_hub import ModelCard, ModelCardData

    by_model: dict[str, list[EvalResult]] = {}
    for r in results:
        folder = Path(r.model_path)
        if (folder / "config.json").is_file() or (folder / "modules.json").is_file():
            by_model.setdefault(r.model_path, []).append(r)
    written = []
    for folder, rs in by_model.items():
        readme = Path(folder) / "README.md"
        card = ModelCard.load(readme) if readme.is_file() else ModelCard("---\n---\n")
        if card.data is None:
            card.data = ModelCardData()
        card.data.model_name = card.data.model_name or Path(folder).name
        card.data.eval_results = [
            HubEvalResult(
                task_type="retrieval",
                dataset_type=r.dataset_source or r.dataset,
                dataset_name=r.dataset,
                dataset_split=r.split or "test",
                metric_type=m.replace("@", "_at_"),
                metric_name=m,
                metric_value=float(r.metrics[m]),
            )
            for r in rs
            for m in rows_metrics
            if m in r.metrics
        ]
        card.save(readme)
        written.append(readme)
    return written
