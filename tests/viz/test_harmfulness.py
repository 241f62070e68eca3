"""The harmfulness-vs-refusal, cone and suffix-search figures: what they draw, and bad input refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroscope import viz


def test_cosine_figure_draws_the_band_and_marks_the_layer():
    fig = viz.cosine_by_layer([math.nan, 0.3, 0.4], [math.nan, 0.2, 0.3], [math.nan, 0.4, 0.5], layer=2)
    band, line = fig.data[:2]
    assert band.fill == "toself" and band.mode == "lines"
    np.testing.assert_allclose(np.asarray(line.y, dtype=float)[1:], [0.3, 0.4])
    assert any(getattr(s, "x0", None) == 2 for s in fig.layout.shapes)
    with pytest.raises(ValueError, match="one length"):
        viz.cosine_by_layer([0.1, 0.2], [0.1], [0.2, 0.3])


def test_prompt_map_marks_refused_with_x_and_answered_with_circles():
    groups = [{"name": "harmful", "x": [1.0, 0.9], "y": [0.8, 0.2], "refused": [True, False], "texts": ["a", "<b>"]}]
    fig = viz.prompt_map(groups, layer=3)
    by_symbol = {t.marker.symbol: t for t in fig.data}
    assert list(by_symbol["x"].x) == [1.0] and list(by_symbol["circle"].y) == [0.2]
    assert by_symbol["circle"].text[0] == "&lt;b&gt;"  # plotly would read it as markup
    with pytest.raises(ValueError, match="one length"):
        viz.prompt_map([{**groups[0], "refused": [True]}], layer=3)


def test_cone_curve_has_one_line_per_family_with_intervals():
    curves = {"pca": ([0.5, 0.2], [0.4, 0.1], [0.6, 0.3]), "random subspaces": ([0.9, 0.9], [0.8, 0.8], [1.0, 1.0])}
    fig = viz.cone_curve([1, 2], curves, baseline=0.95, kl={"pca": [0.1, 0.3]})
    assert [t.name for t in fig.data] == list(curves)
    np.testing.assert_allclose(fig.data[0].error_y.array, [0.1, 0.1])
    assert fig.data[1].line.dash == "dot"


def test_search_history_one_line_per_request():
    fig = viz.search_history([[3.0, 1.0], [2.0]], ["first", "second"], [True, False])
    assert [len(t.y) for t in fig.data] == [2, 1] and fig.data[1].line.dash == "dot"
