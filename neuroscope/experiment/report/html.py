"""report.html: the Markdown through markdown-it-py, with every figure inlined (self-contained)."""

from __future__ import annotations

import html

from neuroscope.experiment.report.figures import figures
from neuroscope.experiment.report.text import markdown
from neuroscope.viz import figures_to_html


def md_to_html(md: str) -> str:
    """The report's Markdown as HTML (markdown-it-py, which gradio brings: CommonMark plus tables; raw HTML
    in the text is escaped, not rendered)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}"
    "th{background:#f3f3f3}code{background:#f3f3f3;padding:0 3px}"
)


def html_report(result) -> str:
    body = md_to_html(markdown(result))
    figs = "\n".join(f"<div class='fig'>{frag}</div>" for frag in figures_to_html(figures(result)))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>NeuroScope experiment: "
        f"{html.escape(result.model_name)}</title><style>{_STYLE}</style></head><body>{body}"
        f"<h2>Figures</h2>{figs}</body></html>"
    )
