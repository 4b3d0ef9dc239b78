"""bench/REPORT.md and its plots from one run's results (bench/results/run.json)."""

from __future__ import annotations

from pathlib import Path

from bench.report_headline import headline, memory_rows
from bench.report_plots import plots
from bench.report_render import others_sentence, render

# The parts live beside it (report_format, report_headline, report_plots, report_render, report_metrics).
__all__ = ["headline", "memory_rows", "others_sentence", "plots", "render", "write"]


def write(run: dict, path: Path) -> Path:
    """The report at ``path``, its plots in ``plots/`` beside it (linked relatively)."""
    made = plots(run, path.parent / "plots")
    path.write_text(render(run, made))
    return path
