"""Harmfulness vs refusal figures: the two directions' cosine per layer, and the 2-D map of prompts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_index
from neuroscope.viz.tokens import plotly_text


def cosine_by_layer(cosine: Any, lo: Any, hi: Any, layer: int | None = None) -> go.Figure:
    """The cosine between the harmfulness and the refusal direction at every layer, with its interval band.

    Args:
        cosine, lo, hi: [n_layers] (NaN where a direction vanishes, e.g. layer 0).
        layer: the map's layer, marked.
    """
    c, a, b = (as_array(v, name) for v, name in ((cosine, "cosine"), (lo, "lo"), (hi, "hi")))
    if not c.shape == a.shape == b.shape or c.ndim != 1:
        raise ValueError(f"cosine, lo and hi must be [n_layers] of one length, got {c.shape}, {a.shape}, {b.shape}")
    x = np.arange(len(c))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([x, x[::-1]]),
            y=np.concatenate([b, a[::-1]]),
            mode="lines",
            fill="toself",
            fillcolor=theme.palette_rgba(0, 0.18),
            line=dict(width=0),
            hoverinfo="skip",
            name="95 % interval",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=c,
            mode="lines+markers",
            line=dict(color=theme.palette(0)),
            name="cosine",
            hovertemplate="layer %{x}: cosine %{y:.2f}<extra></extra>",
        )
    )
    if layer is not None:
        check_index(layer, "layer", len(c))
        fig.add_vline(x=layer, line=dict(color=theme.HIGHLIGHT, dash="dash"), annotation_text=f"map: layer {layer}")
    fig.update_xaxes(title="layer (input of the block)", dtick=max(1, len(c) // 14))
    fig.update_yaxes(title="cosine(harmfulness, refusal)", range=[-0.2, 1.05])
    return theme.styled(fig, "Harmfulness vs refusal direction: cosine per layer")


GROUP_COLOURS = {
    "harmful": theme.POSITIVE_RGB,
    "harmless": theme.NEGATIVE_RGB,
}


def prompt_map(groups: Sequence[dict[str, Any]], layer: int) -> go.Figure:
    """Each prompt at (harmfulness, refusal) coordinates; the marker says refused (x) or answered (circle).

    Args:
        groups: dicts with ``name``, ``x``, ``y`` ([N] each), ``refused`` (N bools) and ``texts`` (N strings).
        layer: where the coordinates were read (for the title).
    """
    fig = go.Figure()
    for i, g in enumerate(groups):
        x, y = as_array(g["x"], "x"), as_array(g["y"], "y")
        refused = [bool(r) for r in g["refused"]]
        if not len(x) == len(y) == len(refused) == len(g["texts"]):
            raise ValueError(f"group {g['name']!r}: x, y, refused and texts must have one length")
        rgb = GROUP_COLOURS.get(g["name"])
        colour = theme.rgba(rgb, 0.85) if rgb else theme.palette(i + 2)
        for flag, symbol, word in ((True, "x", "refused"), (False, "circle", "answered")):
            keep = [j for j, r in enumerate(refused) if r is flag]
            if not keep:
                continue
            fig.add_trace(
                go.Scatter(
                    x=x[keep],
                    y=y[keep],
                    mode="markers",
                    marker=dict(symbol=symbol, size=9, color=colour, line=dict(width=1, color="white")),
                    name=f"{g['name']} · {word} ({len(keep)})",
                    legendgroup=g["name"],
                    text=[plotly_text(g["texts"][j][:160]) for j in keep],
                    hovertemplate="%{text}<br>harmfulness %{x:.2f} · refusal %{y:.2f}<extra></extra>",
                )
            )
    for v in (0.0, 1.0):
        fig.add_vline(x=v, line=dict(color=theme.MUTED, width=1))
        fig.add_hline(y=v, line=dict(color=theme.MUTED, width=1))
    fig.update_xaxes(title="harmfulness (0 = harmless mean, 1 = harmful)", zeroline=False)
    fig.update_yaxes(title="refusal (0 = harmless, 1 = harmful)", zeroline=False)
    fig.update_layout(legend=dict(font=dict(size=11)))
    return theme.styled(fig, f"Where prompts sit on the two directions (layer {layer})", height=520)


def search_history(histories: Sequence[Sequence[float]], labels: Sequence[str], broken: Sequence[bool]) -> go.Figure:
    """The suffix search's best refusal log-odds after each step, one line per request (solid = broken)."""
    if not len(histories) == len(labels) == len(broken):
        raise ValueError("histories, labels and broken must have one length")
    fig = go.Figure()
    for i, (h, label, b) in enumerate(zip(histories, labels, broken)):
        y = as_array(list(h), "history")
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(y) + 1),
                y=y,
                mode="lines+markers",
                name=plotly_text(label[:40]) + (" · broken" if b else " · still refused"),
                line=dict(color=theme.palette(i), dash="solid" if b else "dot"),
                hovertemplate="step %{x}: log-odds %{y:.2f}<extra></extra>",
            )
        )
    fig.add_hline(y=0.0, line=dict(color=theme.MUTED, width=1))
    fig.update_xaxes(title="search step")
    fig.update_yaxes(title="first-token refusal log-odds (lower = less refusal)")
    return theme.styled(fig, "Suffix search: refusal score per step")


def attack_success(families: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """Each jailbreak family's success under both judges, with 95 % intervals.

    Args:
        families: family -> {"success": {mean, lo, hi}, "success_broad": {mean, lo, hi}, ...} (the study's JSON).
    """
    from neuroscope.viz.evaluation import rates_with_intervals

    keys = ("success", "success_broad")
    return rates_with_intervals(
        [f.replace("_", " ") for f in families],
        ["substring judge", "broad judge"],
        [[families[f][k]["mean"] for k in keys] for f in families],
        [[families[f][k]["lo"] for k in keys] for f in families],
        [[families[f][k]["hi"] for k in keys] for f in families],
        "Attack success per jailbreak family (95 % CI)",
        y_label="Requests answered (% of attacks)",
    )
