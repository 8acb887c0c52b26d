"""Render the comparison report of a run: table (Markdown/CSV/JSON), significance tests, plots.

    python evaluation/report.py --run_dir runs/demo
    python evaluation/report.py --run_dir runs/paper --metrics ndcg@10 p@10 recall@100 --test t-test
    python evaluation/report.py --run_dir runs/paper --model_index   # results into model cards

Reads <run_dir>/results/*.json (from evaluation/evaluate.py); writes <run_dir>/results.{json,csv,md,png},
results_scatter.png and significance.{json,csv}; prints the table.
"""

from __future__ import annotations

from hardneg.config import run_main
from hardneg.report import ReportConfig, render_report


def main(config: ReportConfig) -> None:
    render_report(config)


if __name__ == "__main__":
    run_main(main, ReportConfig)
