"""Residual-stream trajectories through the layers, projected on three principal components."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_index, check_range
from neuroscope.viz.tokens import token_labels


def _checked(coords, tokens, explained_variance, highlight_positions, first_position: int, k: int):
    """Validated inputs of the trajectory figures: (labels, coords [n, seq, k], variance [k], highlighted set)."""
    labels = token_labels(tokens, first_position=first_position)  # numbered as in the token strip
    xyz = as_array(coords, "coords", (None, len(labels), k))
    ev = as_array(explained_variance, "explained_variance", (k,))
    check_range(ev, "explained_variance", 0.0, 1.0)
    if ev.sum() > 1.0 + 1e-6:
        raise ValueError(f"explained_variance: fractions sum to {ev.sum():.3f} > 1")
    highlight = (
        None
        if highlight_positions is None
        else {check_index(p, "highlight_positions", len(labels)) for p in highlight_positions}
    )
    return labels, xyz, ev, highlight


def _lines(coords, tokens, explained_variance, highlight_positions, first_position: int, k: int):
    """One line per token position through the layer boundaries, in 2-D or 3-D: ``(figure, variance [k])``.

    Highlighted positions are bold and named once, where their line ends; the rest are faded.
    """
    labels, pts, ev, highlight = _checked(coords, tokens, explained_variance, highlight_positions, first_position, k)
    layer_text = boundary_labels(pts.shape[0])
    fig = go.Figure()
    ends: list[tuple[float, float, str]] = []  # 2-D: the named lines' final points, labelled in a column
    for pos, label in enumerate(labels):
        bold = highlight is None or pos in highlight
        named = highlight is not None and pos in highlight
        style = dict(
            name=label,
            customdata=layer_text,
            opacity=1.0 if bold else (0.25 if k == 3 else 0.3),
            line=dict(color=theme.palette(pos), width=(6 if named else 3) if k == 3 else (3 if named else 1.5)),
            marker=dict(size=(4 if bold else 2) if k == 3 else (6 if bold else 4), color=theme.palette(pos)),
        )
        if k == 3:
            fig.add_trace(
                go.Scatter3d(
                    x=pts[:, pos, 0],
                    y=pts[:, pos, 1],
                    z=pts[:, pos, 2],
                    mode="lines+markers+text" if named else "lines+markers",
                    # one short label where the line ends: its position number (WebGL text takes no HTML, so a
                    # token's escaped "&lt;" would show as is, and full names pile up where lines converge)
                    text=[""] * (len(layer_text) - 1) + [label.split(":", 1)[0]] if named else None,
                    textposition="top center",
                    hovertemplate=f"{label}<br>layer boundary %{{customdata}}<br>"
                    "PC1 %{x:.3f}, PC2 %{y:.3f}, PC3 %{z:.3f}<extra></extra>",
                    **style,
                )
            )
            continue
        fig.add_trace(
            go.Scatter(
                x=pts[:, pos, 0],
                y=pts[:, pos, 1],
                mode="lines+markers",
                hovertemplate=f"{label}<br>%{{customdata}}<br>PC1 %{{x:.3f}}, PC2 %{{y:.3f}}<extra></extra>",
                **style,
            )
        )
        if named:  # named where the line ends (the final residual), not at every boundary
            ends.append((float(pts[-1, pos, 0]), float(pts[-1, pos, 1]), label))
    if ends:
        _label_column(fig, pts, ends)
    return fig, ev


def _label_column(fig: go.Figure, pts: np.ndarray, ends: list[tuple[float, float, str]]) -> None:
    """Names the final points in a column right of the data, in their vertical order, each with a line to
    its point: final points of neighbouring tokens often sit on top of each other, their labels must not."""
    x0, x1 = float(pts[..., 0].min()), float(pts[..., 0].max())
    y0, y1 = float(pts[..., 1].min()), float(pts[..., 1].max())
    xr, yr = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    ends = sorted(ends, key=lambda e: -e[1])
    slots = np.linspace(y1, y0, len(ends)) if len(ends) > 1 else [ends[0][1]]
    column = x1 + 0.08 * xr
    for (x, y, text), slot in zip(ends, slots):
        fig.add_annotation(
            x=x,
            y=y,
            ax=column,
            ay=float(slot),
            axref="x",
            ayref="y",
            text=text,
            xanchor="left",
            showarrow=True,
            arrowhead=0,
            arrowcolor="#888",
            standoff=2,
        )
    fig.update_xaxes(range=[x0 - 0.05 * xr, x1 + 0.8 * xr])
    fig.update_yaxes(range=[y0 - 0.08 * yr, y1 + 0.08 * yr])


def pca_trajectory_3d(
    coords: Any,
    tokens: Sequence[str],
    explained_variance: Any,
    highlight_positions: Iterable[int] | None = None,
    title: str = "Residual stream trajectory (PCA)",
    first_position: int = 0,
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
    fig, ev = _lines(coords, tokens, explained_variance, highlight_positions, first_position, 3)
    axis = [f"PC{i + 1} ({100 * v:.0f}%)" for i, v in enumerate(ev)]
    fig.update_layout(
        # the camera a step further out than plotly's (1.25): the axis titles stay inside the figure
        scene=dict(
            xaxis_title=axis[0],
            yaxis_title=axis[1],
            zaxis_title=axis[2],
            camera=dict(eye=dict(x=1.75, y=1.75, z=0.8), center=dict(x=0, y=0, z=-0.2)),
        ),
        legend_title_text="Token position",
    )
    return theme.styled(fig, title + dominance_note(ev), height=620)


DOMINANT = 0.8  # PC1 share above which the figure says one direction carries the variance


def boundary_labels(n_boundaries: int) -> list[str]:
    """Layer boundaries as every view numbers them: L0 = the input of block 0 ... and the last block's output."""
    return [f"L{i}" for i in range(n_boundaries - 1)] + ["final"]


def dominance_note(explained_variance: Any) -> str:
    """A title suffix when PC1 carries most of the variance (the other axes then show little)."""
    share = float(as_array(explained_variance, "explained_variance", (None,))[0])
    if share < DOMINANT:
        return ""
    return (
        f"<br><sup>PC1 carries {100 * share:.0f}% of the variance: the tokens differ mostly along one direction</sup>"
    )


def pca_trajectory_2d(
    coords: Any,
    tokens: Sequence[str],
    explained_variance: Any,
    highlight_positions: Iterable[int] | None = None,
    title: str = "Residual stream trajectory (PCA)",
    first_position: int = 0,
) -> go.Figure:
    """The 2-D version of :func:`pca_trajectory_3d`: one line per token position through the layer
    boundaries on PC1 x PC2; highlighted positions are bold and their boundaries labelled.

    Raises:
        ValueError: on mismatched shapes, variance fractions outside [0, 1], or bad positions.
    """
    fig, ev = _lines(coords, tokens, explained_variance, highlight_positions, first_position, 2)
    fig.update_xaxes(title_text=f"PC1 ({100 * ev[0]:.0f}% of variance)")
    fig.update_yaxes(title_text=f"PC2 ({100 * ev[1]:.0f}% of variance)")
    fig.update_layout(legend_title_text="Token position")
    return theme.styled(fig, title + dominance_note(ev), height=560)
