"""The run's report: report.md (``text``), report.html (``html``: the Markdown through markdown-it-py plus the
figures of ``figures``) and metrics.json (``numbers``)."""

from __future__ import annotations

from pathlib import Path

from neuroscope.experiment.report.figures import beyond_figures, figures
from neuroscope.experiment.report.html import html_report, md_to_html
from neuroscope.experiment.report.numbers import LABELS, fmt_num, fmt_rate, metrics
from neuroscope.experiment.report.text import markdown, markdown_table
from neuroscope.method import artifacts as art

__all__ = [
    "LABELS", "beyond_figures", "figures", "fmt_num", "fmt_rate", "html_report", "markdown", "markdown_table",
    "md_to_html", "metrics", "write_report",
]  # fmt: skip


def write_report(result, out_dir: str | Path) -> None:
    """Writes report.md, report.html (self-contained: plotly.js inlined) and metrics.json, atomically."""
    out = Path(out_dir)
    art.write_json(out / "metrics.json", metrics(result))
    art.write_text(out / "report.md", markdown(result))
    art.write_text(out / "report.html", html_report(result))
