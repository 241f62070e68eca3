"""Logit lens: the most likely next token read out of the residual stream at every layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_labels, check_range
from neuroscope.viz.tokens import format_token, plotly_text, token_labels


def _check_token_grid(grid: Sequence[Sequence[Any]], name: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless nested lists of strings have exactly `shape`."""

    def walk(node: Any, depth: int, where: str) -> None:
        if depth == len(shape):
            if not isinstance(node, str):
                raise ValueError(f"{name}{where}: expected a token string, got {node!r}")
            return
        if isinstance(node, str) or len(node) != shape[depth]:
            got = "a string" if isinstance(node, str) else f"length {len(node)}"
            raise ValueError(f"{name}{where}: expected length {shape[depth]}, got {got}")
        for i, child in enumerate(node):
            walk(child, depth + 1, f"{where}[{i}]")

    walk(grid, 0, "")


def logit_lens_heatmap(
    top_tokens: Sequence[Sequence[str]],
    top_probs: Any,
    tokens: Sequence[str],
    topk_tokens: Sequence[Sequence[Sequence[str]]] | None = None,
    topk_probs: Any | None = None,
    layer_labels: Sequence[str] | None = None,
    title: str = "Logit lens — top-1 next-token prediction per layer",
    first_position: int = 0,
) -> go.Figure:
    """Layers × positions grid coloured by top-1 probability, the top token written in each cell.

    Args:
        top_tokens: [n_layers][seq] top-1 decoded token per layer and position.
        top_probs: [n_layers, seq] its probability.
        tokens: [seq] input tokens (x axis).
        topk_tokens: optional [n_layers][seq][k] top-k tokens, shown on hover.
        topk_probs: optional [n_layers, seq, k] their probabilities; needed with `topk_tokens`.
        layer_labels: optional [n_layers] y labels (e.g. "emb", "0", ...); default 0..n-1.
        title: figure title.
        first_position: the prompt position of ``tokens[0]`` (the lens shows the last positions).

    Raises:
        ValueError: on mismatched shapes or probabilities outside [0, 1].
    """
    xlabels = token_labels(tokens, first_position=first_position)
    probs = as_array(top_probs, "top_probs", (None, len(xlabels)))
    check_range(probs, "top_probs", 0.0, 1.0)
    n_layers, seq = probs.shape
    _check_token_grid(top_tokens, "top_tokens", (n_layers, seq))
    ylabels = (
        [plotly_text(s) for s in check_labels(layer_labels, "layer_labels", n_layers)]
        if layer_labels is not None
        else [str(i) for i in range(n_layers)]
    )
    if (topk_tokens is None) != (topk_probs is None):
        raise ValueError("topk_tokens and topk_probs must be given together")

    text = [[plotly_text(format_token(t, 8)) for t in row] for row in top_tokens]
    hover_extra = np.full((n_layers, seq), "", dtype=object)
    if topk_tokens is not None:
        kprobs = as_array(topk_probs, "topk_probs", (n_layers, seq, None))
        check_range(kprobs, "topk_probs", 0.0, 1.0)
        _check_token_grid(topk_tokens, "topk_tokens", kprobs.shape)
        for li in range(n_layers):
            for si in range(seq):
                lines = [
                    f"{r + 1}. {plotly_text(format_token(t))}  {p:.4f}"
                    for r, (t, p) in enumerate(zip(topk_tokens[li][si], kprobs[li, si]))
                ]
                hover_extra[li, si] = "<br>top-k:<br>" + "<br>".join(lines)

    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=xlabels,
            y=ylabels,
            text=text,
            texttemplate="%{text}",
            textfont=dict(family=theme.MONO_FAMILY, size=10),
            customdata=hover_extra,
            colorscale=theme.SEQUENTIAL,
            zmin=0.0,
            zmax=1.0,
            colorbar=dict(title=dict(text="Top-1 probability (0–1)", side="right")),
            hovertemplate=("layer %{y}, position %{x}<br>top-1: %{text}  p = %{z:.4f}%{customdata}<extra></extra>"),
        )
    )
    # vertical labels: slanted ones reach left past the first column into the y axis title
    fig.update_xaxes(title_text="Input position (position: token)", type="category", tickangle=-90, automargin=True)
    fig.update_yaxes(title_text="Layer (output of block)", type="category", automargin=True)
    height = max(380, 24 * n_layers + 200)
    return theme.styled(fig, title, height=height)
