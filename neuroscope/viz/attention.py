"""Attention pattern of one head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_range
from neuroscope.viz.tokens import token_labels


def attention_heatmap(probs: Any, tokens: Sequence[str], layer: int, head: int) -> go.Figure:
    """Query × key attention probabilities with the causal upper triangle left blank.

    Args:
        probs: [seq, seq] attention probabilities of one head (rows = queries, sum to 1).
        tokens: [seq] token strings.
        layer, head: indices, for the title.

    Raises:
        ValueError: if `probs` is not square, does not match `tokens`, or leaves [0, 1].
    """
    z = as_array(probs, "probs", (None, None))
    labels = token_labels(tokens)
    if z.shape != (len(labels), len(labels)):
        raise ValueError(
            f"probs: expected shape [{len(labels)}, {len(labels)}] to match {len(labels)} tokens, got {list(z.shape)}"
        )
    check_range(z, "probs", 0.0, 1.0)
    # keys after the query are masked by the model; blank instead of a misleading 0
    z[np.triu_indices(len(labels), k=1)] = np.nan
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale=theme.SEQUENTIAL,
            zmin=0.0,
            zmax=1.0,
            colorbar=dict(title=dict(text="Attention probability (0–1)", side="right")),
            hovertemplate="query %{y}<br>key %{x}<br>p = %{z:.4f}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_xaxes(title_text="Key token (position: token)", type="category", tickangle=-45)
    fig.update_yaxes(title_text="Query token (position: token)", type="category", autorange="reversed")
    size = max(380, 18 * len(labels) + 200)
    return theme.styled(fig, f"Attention pattern — layer {layer}, head {head}", height=size)
