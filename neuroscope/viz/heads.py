"""Layers × heads grids (per-head contribution norms, per-head projection on a direction)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_index


def head_grid(
    values: Any,
    title: str,
    value_label: str,
    selected: tuple[int, int] | None = None,
    signed: bool = False,
    outlined: Sequence[tuple[int, int]] = (),
    zrange: tuple[float, float] | None = None,
) -> go.Figure:
    """Heatmap of one number per attention head, layer on y and head on x.

    Args:
        values: [n_layers, n_heads] per-head quantity.
        title: figure title.
        value_label: what the colour means, with its unit,
            e.g. "‖head output‖ (L2, resid units)".
        selected: (layer, head) to outline, or None.
        signed: diverging scale centred at 0 (e.g. projection on the refusal direction);
            otherwise a sequential scale for magnitudes.
        outlined: further (layer, head) cells to outline (e.g. heads ticked for ablation).
        zrange: a fixed colour range (e.g. (0, 1) for a score that lives there), so that a grid of
            small values does not auto-range into looking bright; None auto-ranges.

    Raises:
        ValueError: if `values` is not 2-D or `selected` lies outside the grid.
    """
    z = as_array(values, "values", (None, None))
    n_layers, n_heads = z.shape
    heatmap = go.Heatmap(
        z=z,
        x=np.arange(n_heads),
        y=np.arange(n_layers),
        colorscale=theme.DIVERGING if signed else theme.SEQUENTIAL,
        zmid=0.0 if signed and zrange is None else None,
        zmin=None if zrange is None else zrange[0],
        zmax=None if zrange is None else zrange[1],
        colorbar=dict(title=dict(text=value_label, side="right")),
        hovertemplate=f"layer %{{y}}, head %{{x}}<br>{value_label}: %{{z:.4g}}<extra></extra>",
    )
    fig = go.Figure(heatmap)
    if selected is not None:
        if len(selected) != 2:
            raise ValueError(f"selected: expected (layer, head), got {selected!r}")
        layer = check_index(selected[0], "selected layer", n_layers)
        head = check_index(selected[1], "selected head", n_heads)
        fig.add_shape(
            type="rect",
            x0=head - 0.5,
            x1=head + 0.5,
            y0=layer - 0.5,
            y1=layer + 0.5,
            line=dict(color=theme.HIGHLIGHT, width=3),
            name="selected head",
        )
    for cell in outlined:
        layer = check_index(cell[0], "outlined layer", n_layers)
        head = check_index(cell[1], "outlined head", n_heads)
        fig.add_shape(
            type="rect",
            x0=head - 0.5,
            x1=head + 0.5,
            y0=layer - 0.5,
            y1=layer + 0.5,
            line=dict(color=theme.HIGHLIGHT, width=2, dash="dot"),
            name="outlined head",
        )
    fig.update_xaxes(title_text="Head (index)", dtick=1 if n_heads <= 32 else None)
    # Layer 0 at the top, as in the head-toggle grid and the attention maps (first query on top).
    fig.update_yaxes(title_text="Layer (index)", dtick=1 if n_layers <= 32 else None, autorange="reversed")
    return theme.styled(fig, title, height=max(320, 22 * n_layers + 140))


def head_maps(
    maps: dict[str, Any],
    title: str,
    marked: Sequence[tuple[int, int]] = (),
) -> go.Figure:
    """Several per-head measures side by side, one layers × heads panel each, each centred at 0.

    Every panel has its own diverging scale (the measures have different units), labelled in its
    hover text; NaN cells (a head a measure did not cover) stay blank.

    Args:
        maps: panel title (with unit) -> [n_layers, n_heads] signed values.
        title: figure title.
        marked: (layer, head) cells outlined in every panel (e.g. the top heads by the causal measure).

    Raises:
        ValueError: no maps, maps of different shapes, or a marked cell outside the grid.
    """
    from plotly.subplots import make_subplots

    if not maps:
        raise ValueError("maps: at least one measure is needed")
    arrays = {name: as_array(v, f"maps[{name!r}]", (None, None)) for name, v in maps.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"maps: every measure must have the same [layers, heads] shape, got {sorted(shapes)}")
    n_layers, n_heads = shapes.pop()
    n = len(arrays)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(arrays), horizontal_spacing=0.035, shared_yaxes=True)
    for col, (name, z) in enumerate(arrays.items(), start=1):
        finite = z[np.isfinite(z)]
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        x_mid = (col - 0.5) / n
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=np.arange(n_heads),
                y=np.arange(n_layers),
                colorscale=theme.DIVERGING,
                zmid=0.0,
                zmin=-bound or -1.0,
                zmax=bound or 1.0,
                colorbar=dict(orientation="h", x=x_mid, xanchor="center", y=-0.28, len=0.8 / n, thickness=10),
                hovertemplate=f"layer %{{y}}, head %{{x}}<br>{name}: %{{z:.4g}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        for cell in marked:
            layer = check_index(cell[0], "marked layer", n_layers)
            head = check_index(cell[1], "marked head", n_heads)
            fig.add_shape(
                type="rect",
                x0=head - 0.5,
                x1=head + 0.5,
                y0=layer - 0.5,
                y1=layer + 0.5,
                line=dict(color=theme.HIGHLIGHT, width=2),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="Head", dtick=1 if n_heads <= 16 else None, row=1, col=col)
    fig.update_yaxes(title_text="Layer", dtick=1 if n_layers <= 32 else None, autorange="reversed", row=1, col=1)
    for col in range(2, n + 1):
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_annotations(font_size=12)
    fig.update_layout(margin=dict(b=120))
    return theme.styled(fig, title, height=max(380, 22 * n_layers + 220))
