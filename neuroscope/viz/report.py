"""Figures as HTML fragments for a self-contained report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import plotly.graph_objects as go

_CONFIG = {"displaylogo": False, "responsive": True}


def figure_to_html(fig: go.Figure, include_plotlyjs: bool | Literal["cdn", "directory"] | str = True) -> str:
    """One figure as a `<div>` fragment (plotly 7: `to_html(full_html=False, ...)`).

    Args:
        fig: the figure.
        include_plotlyjs: True inlines plotly.js (~4.5 MB, works offline); False relies on an
            earlier fragment in the same page having loaded it; "cdn" / "directory" / a path
            ending in ".js" reference it instead.
    """
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs, config=_CONFIG)


def figures_to_html(figs: Sequence[go.Figure]) -> list[str]:
    """Fragments for one offline page: the first inlines plotly.js, later ones reuse it."""
    return [figure_to_html(f, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
