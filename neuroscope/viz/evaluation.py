"""Evaluation figures: rates with confidence intervals, top-k head ablation vs random control."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.viz import theme
from neuroscope.viz._checks import as_array, check_finite, check_labels
from neuroscope.viz.tokens import plotly_text


def _check_interval(lo: np.ndarray, mid: np.ndarray, hi: np.ndarray, names: str) -> None:
    if np.any(lo > mid + 1e-9) or np.any(mid > hi + 1e-9):
        raise ValueError(f"{names}: expected lo <= value <= hi everywhere")


def rates_with_intervals(
    groups: Sequence[str],
    conditions: Sequence[str],
    rates: Any,
    lo: Any,
    hi: Any,
    title: str,
    y_label: str = "Refusal rate (% of prompts)",
    as_percent: bool = True,
) -> go.Figure:
    """Grouped bars (one colour per condition) with asymmetric interval error bars.

    Args:
        groups: [G] x-axis groups, e.g. "harmful", "harmless", or categories.
        conditions: [C] bar series, e.g. "baseline", "ablated", "added".
        rates: [G, C] point estimates (fractions in 0..1 when `as_percent`).
        lo, hi: [G, C] interval bounds (e.g. bootstrap 95% CI), lo <= rate <= hi.
        title: figure title.
        y_label: y-axis title with unit.
        as_percent: format ticks and hover as percentages and fix the range to 0..100%.

    Raises:
        ValueError: on mismatched shapes, non-finite values, or intervals not containing rates.
    """
    g_labels = check_labels(groups, "groups")
    c_labels = check_labels(conditions, "conditions")
    shape = (len(g_labels), len(c_labels))
    r = as_array(rates, "rates", shape)
    lo_a, hi_a = as_array(lo, "lo", shape), as_array(hi, "hi", shape)
    for name, arr in (("rates", r), ("lo", lo_a), ("hi", hi_a)):
        check_finite(arr, name)
    _check_interval(lo_a, r, hi_a, "rates/lo/hi")
    fmt = ".1%" if as_percent else ".4g"
    x = [plotly_text(g) for g in g_labels]
    fig = go.Figure()
    for c, cond in enumerate(c_labels):
        fig.add_trace(
            go.Bar(
                x=x,
                y=r[:, c],
                name=plotly_text(cond),
                marker_color=theme.palette(c),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=hi_a[:, c] - r[:, c],
                    arrayminus=r[:, c] - lo_a[:, c],
                    thickness=1.5,
                    width=4,
                ),
                customdata=np.stack([lo_a[:, c], hi_a[:, c]], axis=-1),
                hovertemplate=(
                    f"%{{x}} · {plotly_text(cond)}<br>%{{y:{fmt}}} "
                    f"(interval %{{customdata[0]:{fmt}}} – %{{customdata[1]:{fmt}}})"
                    "<extra></extra>"
                ),
            )
        )
    fig.update_layout(barmode="group", legend_title_text="Condition")
    fig.update_xaxes(title_text="Prompt group", type="category")
    fig.update_yaxes(title_text=y_label)
    if as_percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    return theme.styled(fig, title, height=440)


def _random_band(k: np.ndarray, mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[go.Scatter]:
    """The random-k control: its band (lo..hi, filled) and its mean (dashed)."""
    return [
        go.Scatter(
            x=k, y=hi, mode="lines", line=dict(width=0), showlegend=False, legendgroup="random", hoverinfo="skip"
        ),
        go.Scatter(
            x=k,
            y=lo,
            mode="lines",
            line=dict(width=0),
            fill="tonexty",
            fillcolor=theme.palette_rgba(0, 0.2),
            name="random k heads (band)",
            legendgroup="random",
            hoverinfo="skip",
        ),
        go.Scatter(
            x=k,
            y=mean,
            mode="lines",
            name="random k heads (mean)",
            legendgroup="random",
            line=dict(color=theme.palette(0), dash="dash"),
            customdata=np.stack([lo, hi], axis=-1),
            hovertemplate=(
                "random, k = %{x}<br>mean %{y:.4g} [%{customdata[0]:.4g}, %{customdata[1]:.4g}]<extra></extra>"
            ),
        ),
    ]


def topk_ablation_curve(
    ks: Any,
    top_values: Any,
    random_mean: Any,
    random_lo: Any,
    random_hi: Any,
    y_label: str,
    title: str = "Ablating the top-k heads vs k random heads",
    baseline: float | None = None,
) -> go.Figure:
    """Effect of ablating the k highest-ranked heads against a random-k control band.

    Args:
        ks: [K] numbers of heads ablated.
        top_values: [K] metric after ablating the top-k heads.
        random_mean: [K] mean metric over random k-head draws.
        random_lo, random_hi: [K] band around the random draws (e.g. 2.5 / 97.5 percentiles).
        y_label: y-axis title with unit, e.g. "Refusal rate (fraction)".
        title: figure title.
        baseline: metric with nothing ablated (dotted line), optional.

    Raises:
        ValueError: on mismatched lengths, non-finite values, or lo <= mean <= hi violated.
    """
    k = as_array(ks, "ks", (None,))
    n = (k.size,)
    top = as_array(top_values, "top_values", n)
    mean = as_array(random_mean, "random_mean", n)
    lo, hi = as_array(random_lo, "random_lo", n), as_array(random_hi, "random_hi", n)
    for name, arr in (("ks", k), ("top_values", top), ("random_mean", mean), ("random_lo", lo), ("random_hi", hi)):
        check_finite(arr, name)
    _check_interval(lo, mean, hi, "random_lo/random_mean/random_hi")
    fig = go.Figure(_random_band(k, mean, lo, hi))
    fig.add_trace(
        go.Scatter(
            x=k,
            y=top,
            mode="lines+markers",
            name="top-k heads",
            line=dict(color=theme.palette(1), width=2.5),
            hovertemplate="top-k, k = %{x}<br>%{y:.4g}<extra></extra>",
        )
    )
    if baseline is not None:
        fig.add_hline(
            y=baseline,
            line=dict(dash="dot", color="#555"),
            annotation_text="no ablation",
            annotation_position="top right",
        )
    fig.update_xaxes(title_text="Heads ablated (k)")
    fig.update_yaxes(title_text=y_label)
    fig.update_layout(hovermode="x unified")
    return theme.styled(fig, title, height=440)


def _frontier_series(
    panel: str, group: str, s_i: int, idx: list[int], names: list[str], refusal: tuple, damage: tuple, col: int
) -> go.Scatter:
    """One series of edits in one damage panel: points with both intervals, labelled by their strength."""
    r, lo, hi = refusal
    d, d_lo, d_hi = damage
    return go.Scatter(
        x=d[idx],
        y=r[idx],
        mode="markers+text+lines" if len(idx) > 1 else "markers+text",
        text=[plotly_text(names[i]) for i in idx],
        textposition="top right",
        name=plotly_text(group),
        legendgroup=group,
        showlegend=col == 1,
        line=dict(color=theme.palette(s_i), width=1, dash="dot"),
        marker=dict(color=theme.palette(s_i), size=9, symbol="diamond" if s_i else "circle"),
        error_x=dict(
            type="data",
            symmetric=False,
            array=d_hi[idx] - d[idx],
            arrayminus=d[idx] - d_lo[idx],
            thickness=1,
            width=3,
        ),
        error_y=dict(
            type="data",
            symmetric=False,
            array=hi[idx] - r[idx],
            arrayminus=r[idx] - lo[idx],
            thickness=1,
            width=3,
        ),
        customdata=np.stack([lo[idx], hi[idx], d_lo[idx], d_hi[idx]], axis=-1),
        hovertemplate=(
            "%{text}<br>refusal %{y:.1%} [%{customdata[0]:.1%}, %{customdata[1]:.1%}]<br>"
            f"{plotly_text(panel)} %{{x:.4g}} [%{{customdata[2]:.4g}}, %{{customdata[3]:.4g}}]"
            "<extra></extra>"
        ),
    )


def edit_frontier(
    labels: Sequence[str],
    groups: Sequence[str],
    refusal: Any,
    refusal_lo: Any,
    refusal_hi: Any,
    damage: dict[str, tuple[Any, Any, Any]],
    chosen: int,
    title: str,
    baseline_refusal: float | None = None,
) -> go.Figure:
    """Refusal against damage, one panel per damage measure: each point an edit, chosen one starred.

    Args:
        labels: [P] point labels, e.g. "λ = 1.5".
        groups: [P] series of each point (one colour and legend entry each), e.g. "zero form".
        refusal, refusal_lo, refusal_hi: [P] refusal rates (fractions) and their interval.
        damage: panel title -> (values, lo, hi), each [P], e.g. {"first-token KL (nats)": ...}.
        chosen: index of the chosen point (starred in every panel).
        title: figure title.
        baseline_refusal: refusal with no edit (dotted line), optional.

    Raises:
        ValueError: on mismatched lengths, non-finite values, bad intervals or a bad index.
    """
    from plotly.subplots import make_subplots

    names = check_labels(labels, "labels")
    series = [str(g) for g in groups]
    n = (len(names),)
    if len(series) != len(names):
        raise ValueError(f"groups: expected {len(names)} entries, got {len(series)}")
    r, lo, hi = (
        as_array(a, k, n) for a, k in ((refusal, "refusal"), (refusal_lo, "refusal_lo"), (refusal_hi, "refusal_hi"))
    )
    for k, a in (("refusal", r), ("refusal_lo", lo), ("refusal_hi", hi)):
        check_finite(a, k)
    _check_interval(lo, r, hi, "refusal")
    if not damage:
        raise ValueError("damage: at least one measure is needed")
    if not (isinstance(chosen, int) and 0 <= chosen < len(names)):
        raise ValueError(f"chosen: expected an index in 0..{len(names) - 1}, got {chosen!r}")
    panels = list(damage)
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, horizontal_spacing=0.06)
    order = list(dict.fromkeys(series))
    for col, panel in enumerate(panels, start=1):
        d, d_lo, d_hi = (as_array(a, f"damage[{panel!r}]", n) for a in damage[panel])
        for k, a in (("values", d), ("lo", d_lo), ("hi", d_hi)):
            check_finite(a, f"damage[{panel!r}] {k}")
        _check_interval(d_lo, d, d_hi, f"damage[{panel!r}]")
        for s_i, group in enumerate(order):
            idx = [i for i, g in enumerate(series) if g == group]
            fig.add_trace(
                _frontier_series(panel, group, s_i, idx, names, (r, lo, hi), (d, d_lo, d_hi), col), row=1, col=col
            )
        fig.add_trace(
            go.Scatter(
                x=[d[chosen]],
                y=[r[chosen]],
                mode="markers",
                name="chosen edit",
                legendgroup="chosen",
                showlegend=col == 1,
                marker=dict(symbol="star", size=18, color=theme.HIGHLIGHT, line=dict(width=1, color="#222")),
                hovertemplate=f"chosen: {plotly_text(names[chosen])}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        if baseline_refusal is not None:
            label = dict(annotation_text="no edit", annotation_position="bottom right") if col == 1 else {}
            fig.add_hline(y=baseline_refusal, line=dict(dash="dot", color="#555"), row=1, col=col, **label)
        fig.update_xaxes(title_text=panel, row=1, col=col)
    fig.update_yaxes(title_text="Held-out harmful refused", tickformat=".0%", range=[-0.03, 1.05], row=1, col=1)
    return theme.styled(fig, title, height=460)
