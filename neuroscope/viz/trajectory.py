"""Residual-stream trajectories through the layers, projected on three principal components."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_index, check_range
from neuroscope.viz.tokens import token_labels


def pca_trajectory_3d(
    coords: Any,
    tokens: Sequence[str],
    explained_variance: Any,
    highlight_positions: Iterable[int] | None = None,
    title: str = "Residual stream trajectory (PCA)",
) -> go.Figure:
    """One 3-D line per token position, one marker per layer boundary.

    Args:
        coords: [n_layers + 1, seq, 3] PCA coordinates of the residual stream at every layer
            input plus the final output.
        tokens: [seq] token strings.
        explained_variance: [3] fraction of variance (0..1) explained by PC1..PC3.
        highlight_positions: positions drawn bold and labelled with layer numbers; the rest are
            faded. None draws every position alike (labels on hover only).
        title: figure title.

    Raises:
        ValueError: on mismatched shapes, variance fractions outside [0, 1], or bad positions.
    """
    labels = token_labels(tokens)
    xyz = as_array(coords, "coords", (None, len(labels), 3))
    ev = as_array(explained_variance, "explained_variance", (3,))
    check_range(ev, "explained_variance", 0.0, 1.0)
    if ev.sum() > 1.0 + 1e-6:
        raise ValueError(f"explained_variance: fractions sum to {ev.sum():.3f} > 1")
    highlight = (
        None
        if highlight_positions is None
        else {check_index(p, "highlight_positions", len(labels)) for p in highlight_positions}
    )
    layer_text = [f"L{i}" for i in range(xyz.shape[0])]
    fig = go.Figure()
    for pos, label in enumerate(labels):
        bold = highlight is None or pos in highlight
        show_text = highlight is not None and pos in highlight
        fig.add_trace(
            go.Scatter3d(
                x=xyz[:, pos, 0],
                y=xyz[:, pos, 1],
                z=xyz[:, pos, 2],
                mode="lines+markers+text" if show_text else "lines+markers",
                name=label,
                text=layer_text,
                textposition="top center",
                opacity=1.0 if bold else 0.25,
                line=dict(color=theme.palette(pos), width=6 if show_text else 3),
                marker=dict(size=4 if bold else 2, color=theme.palette(pos)),
                hovertemplate=(
                    f"{label}<br>layer boundary %{{text}}<br>"
                    "PC1 %{x:.3f}, PC2 %{y:.3f}, PC3 %{z:.3f}<extra></extra>"
                ),
            )
        )
    axis = [f"PC{i + 1} ({100 * v:.1f}% of variance, resid units)" for i, v in enumerate(ev)]
    fig.update_layout(
        scene=dict(xaxis_title=axis[0], yaxis_title=axis[1], zaxis_title=axis[2]),
        legend_title_text="Token position",
    )
    return theme.styled(fig, title, height=620)
