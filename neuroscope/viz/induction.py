"""Induction-head figures: the in-context loss curve over a repeated random sequence."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_finite


def loss_by_position(
    loss: Any, repeat_starts_at: int, title: str = "Next-token loss along a repeated random sequence"
) -> go.Figure:
    """Loss per position with the repeated copy shaded: induction shows as the drop where it begins.

    Args:
        loss: [P] mean loss (nats) of predicting token ``i + 1`` at position ``i``.
        repeat_starts_at: the first position whose prediction is a token of the repeated copy.

    Raises:
        ValueError: ``loss`` is not 1-D and finite, or the boundary lies outside it.
    """
    y = as_array(loss, "loss", (None,))
    check_finite(y, "loss")
    if not 0 <= repeat_starts_at < len(y):
        raise ValueError(f"repeat_starts_at must lie in 0..{len(y) - 1}, got {repeat_starts_at}")
    x = np.arange(len(y))
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="lines+markers",
            marker=dict(size=4),
            line=dict(color=theme.palette(0)),
            hovertemplate="position %{x}<br>loss %{y:.3f} nats<extra></extra>",
            name="loss",
        )
    )
    fig.add_vrect(
        x0=repeat_starts_at - 0.5,
        x1=len(y) - 0.5,
        fillcolor=theme.palette(1),
        opacity=0.12,
        line_width=0,
        annotation_text="repeated copy",
        annotation_position="top left",
    )
    fig.update_xaxes(title_text="Position (predicting the next token)")
    fig.update_yaxes(title_text="Cross-entropy (nats)", rangemode="tozero")
    fig.update_layout(showlegend=False)
    return theme.styled(fig, title, height=360)
