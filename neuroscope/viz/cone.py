"""The refusal cone figure: refused share of harmful prompts against the number of ablated dimensions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array


def cone_curve(
    ks: Sequence[int],
    curves: Mapping[str, tuple[Any, Any, Any]],
    baseline: float | None = None,
    kl: Mapping[str, Any] | None = None,
) -> go.Figure:
    """One line per family of subspaces with its 95 % interval as error bars.

    Args:
        ks: the dimensions, e.g. [1, 2, 3, 4].
        curves: family label -> (mean, lo, hi), each [len(ks)] refused shares in 0..1.
        baseline: the refused share with nothing ablated (a dashed line).
        kl: family label -> [len(ks)] mean harmless first-token KL, shown on hover.
    """
    x = np.asarray(list(ks), dtype=int)
    fig = go.Figure()
    for i, (name, (mean, lo, hi)) in enumerate(curves.items()):
        m, a, b = (as_array(v, name, (len(x),)) for v in (mean, lo, hi))
        random = "random" in name
        k_l = as_array(kl[name], name, (len(x),)) if kl and name in kl else np.full(len(x), np.nan)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=m,
                mode="lines+markers",
                name=name,
                line=dict(color=theme.palette(i), dash="dot" if random else "solid"),
                error_y=dict(type="data", symmetric=False, array=b - m, arrayminus=m - a, thickness=1),
                customdata=k_l,
                hovertemplate="k = %{x}: %{y:.0%} refused · harmless KL %{customdata:.2f}<extra>" + name + "</extra>",
            )
        )
    if baseline is not None:
        fig.add_hline(
            y=baseline,
            line=dict(color=theme.MUTED.replace("0.18", "0.8"), dash="dash"),
            annotation_text="nothing ablated",
            annotation_position="top left",
        )
    fig.update_xaxes(title="dimensions ablated (k)", tickvals=x)
    fig.update_yaxes(title="harmful prompts refused", range=[-0.03, 1.05], tickformat=".0%")
    return theme.styled(fig, "The refusal cone: is one direction enough?")
