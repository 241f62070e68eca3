"""Refusal-direction figures: candidate selection, group separation, cosine similarities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_index, check_labels, check_range, check_shape
from neuroscope.viz.tokens import plotly_text

REFUSAL_GROUPS = ("refusal", "harmful", "harmless")  # (behaviour, prompts that show it, prompts that do not)


def _score_rows(groups: Sequence[str]) -> tuple[tuple[str, str], ...]:
    behaviour, positive, negative = groups
    return (
        # short: a subplot title sits over a plot area that is ~360 px wide in a half-width figure
        ("bypass", f"Bypass: {positive} + ablation (lower = better)"),
        ("induce", f"Induce: {negative} + addition (higher = better)"),
        ("kl", f"KL on {negative} under ablation (nats)"),
    )


def _position_curves(fig: go.Figure, xs: np.ndarray, pos: list[str], rows: dict[str, np.ndarray]) -> None:
    """One curve per candidate position in each of the three panels (one legend entry per position)."""
    for r, key in enumerate(("bypass", "induce", "kl"), start=1):
        for p, label in enumerate(pos):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=rows[key][:, p],
                    mode="lines+markers",
                    name=plotly_text(label),
                    legendgroup=f"pos{p}",
                    showlegend=r == 1,
                    line=dict(color=theme.palette(p), width=2),
                    marker=dict(size=5),
                    hovertemplate=(
                        f"position {plotly_text(label)}<br>layer %{{x}}<br>{key} = %{{y:.4g}}<extra></extra>"
                    ),
                ),
                row=r,
                col=1,
            )


def _mark_chosen(fig: go.Figure, xs: np.ndarray, pos: list[str], rows: dict[str, np.ndarray], chosen: Any) -> None:
    """A star on the chosen candidate in each panel."""
    if len(chosen) != 2:
        raise ValueError(f"chosen: expected (layer, position column), got {chosen!r}")
    hits = np.flatnonzero(xs == chosen[0])
    if hits.size == 0:
        raise ValueError(f"chosen: layer {chosen[0]!r} is not in layers")
    li, p = int(hits[0]), check_index(chosen[1], "chosen position column", len(pos))
    for r, key in enumerate(("bypass", "induce", "kl"), start=1):
        fig.add_trace(
            go.Scatter(
                x=[xs[li]],
                y=[rows[key][li, p]],
                mode="markers",
                name=f"chosen: layer {xs[li]:g}, {plotly_text(pos[p])}",
                legendgroup="chosen",
                showlegend=r == 1,
                marker=dict(symbol="star", size=16, color=theme.HIGHLIGHT, line=dict(color="white", width=1)),
                hovertemplate=f"chosen<br>layer %{{x}}<br>{key} = %{{y:.4g}}<extra></extra>",
            ),
            row=r,
            col=1,
        )


def _shade_discarded(fig: go.Figure, xs: np.ndarray, max_layer: int) -> None:
    """The layers the selection discards (≥ ``max_layer``), shaded and labelled."""
    fig.add_vrect(
        x0=max_layer - 0.5,
        x1=float(xs.max()) + 0.5,
        fillcolor=theme.MUTED,
        line_width=0,
        layer="below",
        row="all",
        col=1,
    )
    fig.add_annotation(  # inside the shaded band, clear of the subplot title above it
        x=float(xs.max()) + 0.5,
        y=0.98,
        xref="x",
        yref="y domain",
        xanchor="right",
        yanchor="top",
        text=f"discarded (layer ≥ {max_layer})",
        showarrow=False,
        bgcolor="rgba(255,255,255,0.75)",
        font=dict(size=11, color="#555"),
    )


def candidate_scores(
    layers: Sequence[int],
    position_labels: Sequence[str],
    bypass: Any,
    induce: Any,
    kl: Any,
    chosen: tuple[int, int] | None = None,
    max_layer: int | None = None,
    kl_threshold: float | None = None,
    title: str = "Refusal-direction candidates (Arditi et al. selection)",
    groups: Sequence[str] = REFUSAL_GROUPS,
) -> go.Figure:
    """Per-layer selection scores of every candidate direction, one curve per position.

    Args:
        layers: [L] layer index of each row (x axis).
        position_labels: [P] label of each candidate position, e.g. "-1: <end_of_turn>".
        bypass, induce, kl: [L, P] scores; NaN where a candidate was not evaluated.
        chosen: (layer, position column) of the selected direction. The layer is a value from
            `layers`; the column is an index 0..P-1 into `position_labels`.
        max_layer: layers >= max_layer were discarded (shaded).
        kl_threshold: KL filter threshold (dashed line on the KL panel).
        title: figure title.
        groups: (behaviour, prompts that show it, prompts that do not), for the panel titles.

    Raises:
        ValueError: on mismatched shapes or a `chosen` candidate outside the grid.
    """
    xs = as_array(layers, "layers", (None,))
    pos = check_labels(position_labels, "position_labels")
    shape = (len(xs), len(pos))
    rows = {
        "bypass": as_array(bypass, "bypass", shape),
        "induce": as_array(induce, "induce", shape),
        "kl": as_array(kl, "kl", shape),
    }
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=[t for _, t in _score_rows(check_labels(groups, "groups", 3))],
    )
    fig.update_annotations(font_size=12)  # the subplot titles
    _position_curves(fig, xs, pos, rows)
    if chosen is not None:
        _mark_chosen(fig, xs, pos, rows, chosen)
    if max_layer is not None and xs.size and xs.max() >= max_layer:
        _shade_discarded(fig, xs, max_layer)
    if kl_threshold is not None:
        fig.add_hline(
            y=kl_threshold,
            line=dict(dash="dash", color="#555"),
            row=3,
            col=1,
            annotation_text=f"KL threshold {kl_threshold:g}",
            annotation_position="top left",
        )
    fig.update_xaxes(title_text="Layer (index)", row=3, col=1)
    score = f"{groups[0][:1].upper() + groups[0][1:]} score (log-odds)"
    for r, unit in enumerate((score, score, "KL (nats)"), start=1):
        fig.update_yaxes(title_text=unit, row=r, col=1)
    fig.update_layout(legend_title_text="Token position", hovermode="closest")
    return theme.styled(fig, title, height=820)


def separation_plot(
    harmful_proj: Any,
    harmless_proj: Any,
    layer_labels: Sequence[int] | None = None,
    y_label: str = "Projection on refusal direction (resid units)",
    title: str = "Harmful vs harmless prompts along the refusal direction",
    groups: Sequence[str] = REFUSAL_GROUPS[1:],
) -> go.Figure:
    """Mean ± 1 standard deviation of the projection per layer for both prompt groups.

    Args:
        harmful_proj: [N, L] projection of each harmful prompt at each layer.
        harmless_proj: [M, L] the same for harmless prompts.
        layer_labels: [L] x values; default 0..L-1.
        y_label: y-axis title with unit.
        title: figure title.
        groups: legend names of the two groups (the prompts that show the behaviour first).

    Raises:
        ValueError: if the two groups disagree on L, a group is empty, or labels mismatch.
    """
    names = check_labels(groups, "groups", 2)
    harmful = as_array(harmful_proj, "harmful_proj", (None, None))
    harmless = as_array(harmless_proj, "harmless_proj", (None, harmful.shape[1]))
    for name, arr in (("harmful_proj", harmful), ("harmless_proj", harmless)):
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: needs at least one prompt")
    n_layers = harmful.shape[1]
    xs = (
        as_array(layer_labels, "layer_labels", (n_layers,))
        if layer_labels is not None
        else np.arange(n_layers, dtype=np.float64)
    )
    fig = go.Figure()
    for g, (name, arr) in enumerate(zip(names, (harmful, harmless))):
        mean, std = arr.mean(axis=0), arr.std(axis=0)
        color = theme.palette(1 if g == 0 else 0)
        band = theme.palette_rgba(1 if g == 0 else 0, 0.2)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=mean + std,
                mode="lines",
                line=dict(width=0),
                legendgroup=name,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=mean - std,
                mode="lines",
                line=dict(width=0),
                fill="tonexty",
                fillcolor=band,
                legendgroup=name,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=mean,
                mode="lines+markers",
                name=f"{name} (n={arr.shape[0]}), mean ± 1 sd",
                legendgroup=name,
                line=dict(color=color, width=2.5),
                customdata=std,
                hovertemplate=(f"{name}<br>layer %{{x}}<br>mean %{{y:.4g}} ± %{{customdata:.4g}} (sd)<extra></extra>"),
            )
        )
    fig.update_xaxes(title_text="Layer (index)")
    fig.update_yaxes(title_text=y_label, zeroline=True, zerolinecolor="#888")
    fig.update_layout(hovermode="x unified")
    return theme.styled(fig, title, height=460)


def cosine_matrix(
    matrix: Any,
    labels: Sequence[str],
    title: str,
    axis_title: str = "Direction",
) -> go.Figure:
    """Symmetric cosine-similarity matrix on a −1..1 diverging scale, values written in cells.

    Args:
        matrix: [K, K] cosine similarities.
        labels: [K] name of each direction / layer.
        title: figure title.
        axis_title: what the rows and columns are.

    Raises:
        ValueError: if the matrix is not square, not symmetric, leaves [−1, 1], or mismatches
            `labels`.
    """
    k = len(check_labels(labels, "labels"))
    z = as_array(matrix, "matrix", (k, k))
    check_range(z, "matrix", -1.0, 1.0)
    if not np.allclose(z, z.T, atol=1e-5, equal_nan=True):
        raise ValueError("matrix: cosine-similarity matrix must be symmetric")
    names = [plotly_text(f"{i}: {lab}") for i, lab in enumerate(labels)]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            colorscale=theme.DIVERGING,
            zmin=-1.0,
            zmax=1.0,
            zmid=0.0,
            texttemplate="%{z:.2f}" if k <= 24 else None,
            colorbar=dict(title=dict(text="Cosine similarity (−1..1)", side="right")),
            hovertemplate="%{y} · %{x}<br>cos = %{z:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text=f"{axis_title} (index: name)", type="category", tickangle=-45)
    fig.update_yaxes(title_text=f"{axis_title} (index: name)", type="category", autorange="reversed")
    return theme.styled(fig, title, height=max(420, 26 * k + 220))


def projection_per_layer(
    runs: dict[str, Any],
    references: dict[str, Any] | None = None,
    marker_layer: int | None = None,
    marker_label: str = "",
    y_label: str = "Projection on the unit direction (residual units)",
    title: str = "The prompt's last token along the refusal direction, per layer",
) -> go.Figure:
    """One prompt's projection per layer under several conditions, against reference group means.

    Args:
        runs: condition name -> [L] projections (e.g. baseline / ablated / added).
        references: name -> [L] reference curves drawn dashed (e.g. held-out harmful/harmless means).
        marker_layer: a layer to mark with a vertical line (e.g. where the direction is added).
        marker_label: text of that marker.
        y_label: y-axis title with unit.
        title: figure title.

    Raises:
        ValueError: if the curves disagree in length or no run is given.
    """
    if not runs:
        raise ValueError("runs: needs at least one condition")
    curves = {name: as_array(v, f"runs[{name!r}]", (None,)) for name, v in runs.items()}
    n_layers = len(next(iter(curves.values())))
    refs = {name: as_array(v, f"references[{name!r}]", (n_layers,)) for name, v in (references or {}).items()}
    for name, arr in curves.items():
        check_shape(arr, f"runs[{name!r}]", (n_layers,))
    layers = np.arange(n_layers)
    fig = go.Figure()
    for i, (name, arr) in enumerate(refs.items()):
        rgb = theme.POSITIVE_RGB if i == 0 else theme.NEGATIVE_RGB
        fig.add_trace(
            go.Scatter(
                x=layers, y=arr, mode="lines", name=name, line=dict(dash="dash", width=1.5, color=theme.rgba(rgb, 0.8))
            )
        )
    for i, (name, arr) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=arr,
                mode="lines+markers",
                name=name,
                line=dict(
                    width=2.5, color=theme.palette([7, 2, 3, 4, 5][i % 5])
                ),  # no red or blue: the dashed means are
                hovertemplate=f"{name}<br>layer %{{x}}<br>projection %{{y:.4g}}<extra></extra>",
            )
        )
    if marker_layer is not None:
        check_index(marker_layer, "marker_layer", n_layers)
        fig.add_vline(
            x=marker_layer,
            line=dict(dash="dot", color="#888"),
            annotation_text=marker_label,
            annotation_position="top left",
        )
    fig.update_xaxes(title_text="Layer (index; projection at the layer's input)", dtick=1 if n_layers <= 32 else None)
    fig.update_yaxes(title_text=y_label, zeroline=True, zerolinecolor="#888")
    fig.update_layout(hovermode="x unified", legend=dict(orientation="h", y=-0.25))
    return theme.styled(fig, title, height=440)
