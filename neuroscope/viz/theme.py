"""One look for every NeuroScope figure: colour scales, palette, fonts, margins.

Colour conventions used throughout:
- `DIVERGING` for signed quantities (projections, cosines, attributions): blue < 0 < red,
  always centred on zero, so "red" means "towards refusal" wherever a sign has that meaning.
- `SEQUENTIAL` for magnitudes and probabilities (norms, attention, top-1 probability).
- `PALETTE` (Okabe-Ito, colour-blind safe) for categorical series: positions, conditions, groups.
"""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

FONT_FAMILY = "Inter, 'Helvetica Neue', Arial, sans-serif"
MONO_FAMILY = "'JetBrains Mono', Menlo, Consolas, monospace"
FONT_SIZE = 13

NEGATIVE_RGB = (33, 102, 172)  # blue end of DIVERGING
POSITIVE_RGB = (178, 24, 43)  # red end of DIVERGING
DIVERGING: list[list[float | str]] = [
    [0.0, "rgb(33,102,172)"],
    [0.25, "rgb(146,197,222)"],
    [0.5, "rgb(247,247,247)"],
    [0.75, "rgb(244,165,130)"],
    [1.0, "rgb(178,24,43)"],
]
SEQUENTIAL = "Viridis"

PALETTE = [
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # green
    "#CC79A7",  # purple
    "#E69F00",  # orange
    "#56B4E9",  # sky
    "#F0E442",  # yellow
    "#000000",
]
HIGHLIGHT = "#E6007E"  # selected head / chosen candidate; distinct from both scales
MUTED = "rgba(120,120,120,0.18)"  # shaded / discarded regions

MARGIN = dict(l=80, r=30, t=70, b=70)

TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
TEMPLATE.layout.update(
    font=dict(family=FONT_FAMILY, size=FONT_SIZE, color="#222"),
    title=dict(x=0.0, xanchor="left", font=dict(size=FONT_SIZE + 3)),
    margin=MARGIN,
    colorway=PALETTE,
    hoverlabel=dict(font=dict(family=MONO_FAMILY, size=12)),
    legend=dict(bgcolor="rgba(255,255,255,0.7)"),
)


def rgba(rgb: tuple[int, int, int], alpha: float) -> str:
    """CSS `rgba(...)` string."""
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.3f})"


def palette(i: int) -> str:
    """The i-th categorical colour (cycles)."""
    return PALETTE[i % len(PALETTE)]


def palette_rgba(i: int, alpha: float) -> str:
    """The i-th categorical colour with transparency, for bands."""
    h = palette(i).lstrip("#")
    return rgba((int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)), alpha)


TITLE_CHARS = 62  # a title wraps past this: a half-width figure in the app is about 600 px wide
AXIS_PX_PER_CHAR = 7.5  # an axis title's width per character at FONT_SIZE (measured in Chromium)
DEFAULT_HEIGHT = 450  # plotly's


def wrap(text: str, width: int) -> str:
    """Word-wraps plain text with ``<br>`` (plotly's line break) at ``width`` characters; existing
    ``<br>`` breaks are kept. A single word longer than ``width`` stays whole."""
    lines: list[str] = []
    for part in str(text).split("<br>"):
        line = ""
        for word in part.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "<br>".join(lines)


def _fit_axis_titles(fig: go.Figure, height: int) -> None:
    """Wraps each y axis title that is longer than its axis (it would run into the figure title)."""
    margin = fig.layout.margin
    plot = (
        height
        - (margin.t if margin.t is not None else MARGIN["t"])
        - (margin.b if margin.b is not None else MARGIN["b"])
    )
    for name in [k for k in fig.layout if k.startswith("yaxis")]:
        axis = fig.layout[name]
        text = axis.title.text if axis.title is not None else None
        if not text or "<br>" in text:
            continue
        domain = axis.domain or (0, 1)
        room = max(8, int(plot * (domain[1] - domain[0]) / AXIS_PX_PER_CHAR))
        if len(text) > room:
            axis.title.text = wrap(text, room)


def styled(fig: go.Figure, title: str, height: int | None = None) -> go.Figure:
    """Apply the NeuroScope template and a title; returns `fig` for chaining.

    Long titles wrap (``TITLE_CHARS``) and the top margin grows with them; y axis titles longer than
    their axis wrap too, so that neither runs into the other or off the figure.
    """
    title = wrap(title, TITLE_CHARS)
    lines = title.count("<br>") + 1
    fig.update_layout(template=TEMPLATE, title_text=title)
    if lines > 1 and (fig.layout.margin.t is None or fig.layout.margin.t < MARGIN["t"] + 22 * (lines - 1)):
        fig.update_layout(margin_t=MARGIN["t"] + 22 * (lines - 1))
    if height is not None:
        fig.update_layout(height=height)
    _fit_axis_titles(fig, height or fig.layout.height or DEFAULT_HEIGHT)
    return fig
