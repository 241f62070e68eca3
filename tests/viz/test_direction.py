import numpy as np
import pytest

from neuroscope.viz import candidate_scores, separation_plot

LAYERS = [0, 1, 2, 3, 4, 5]
POSITIONS = ["-2: <start_of_turn>", "-1: model"]


def _scores(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(6, 2)), rng.normal(size=(6, 2)), rng.random((6, 2))


def test_candidate_scores_curves_match_input():
    bypass, induce, kl = _scores()
    fig = candidate_scores(LAYERS, POSITIONS, bypass, induce, kl)
    curves = [t for t in fig.data if t.legendgroup != "chosen"]
    assert len(curves) == 3 * 2
    for i, arr in enumerate((bypass, induce, kl)):
        for p in range(2):
            trace = curves[2 * i + p]
            np.testing.assert_array_equal(trace.x, LAYERS)
            np.testing.assert_array_equal(trace.y, arr[:, p])
            assert trace.name == ["-2: &lt;start_of_turn&gt;", "-1: model"][p]
    assert fig.layout.xaxis3.title.text == "Layer (index)"
    assert "nats" in fig.layout.yaxis3.title.text
    fig.to_json()


def test_candidate_scores_marks_chosen_and_shades_discarded_layers():
    bypass, induce, kl = _scores()
    fig = candidate_scores(LAYERS, POSITIONS, bypass, induce, kl, chosen=(3, 1), max_layer=4, kl_threshold=0.1)
    stars = [t for t in fig.data if t.legendgroup == "chosen"]
    assert len(stars) == 3
    for star, arr in zip(stars, (bypass, induce, kl)):
        assert list(star.x) == [3] and list(star.y) == [arr[3, 1]]
    assert [s.xaxis for s in stars] == ["x", "x2", "x3"]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 3 and all((r.x0, r.x1) == (3.5, 5.5) for r in rects)
    (line,) = [s for s in fig.layout.shapes if s.type == "line"]
    assert line.y0 == line.y1 == 0.1 and line.yref == "y3"


def test_candidate_scores_chosen_uses_layer_values_not_row_index():
    bypass, induce, kl = _scores()
    layers = [10, 12, 14, 16, 18, 20]
    fig = candidate_scores(layers, POSITIONS, bypass, induce, kl, chosen=(14, 0))
    star = [t for t in fig.data if t.legendgroup == "chosen"][0]
    assert list(star.x) == [14] and list(star.y) == [bypass[2, 0]]
    with pytest.raises(ValueError, match="not in layers"):
        candidate_scores(layers, POSITIONS, bypass, induce, kl, chosen=(3, 0))


def test_candidate_scores_shape_errors():
    bypass, induce, kl = _scores()
    with pytest.raises(ValueError, match="induce"):
        candidate_scores(LAYERS, POSITIONS, bypass, induce[:, :1], kl)
    with pytest.raises(ValueError, match="bypass"):
        candidate_scores(LAYERS[:5], POSITIONS, bypass, induce, kl)
    with pytest.raises(ValueError, match="position column"):
        candidate_scores(LAYERS, POSITIONS, bypass, induce, kl, chosen=(0, -1))


def test_separation_plot_mean_and_band():
    rng = np.random.default_rng(1)
    harmful, harmless = rng.normal(2, 1, (9, 5)), rng.normal(-1, 0.5, (7, 5))
    fig = separation_plot(harmful, harmless)
    means = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.legendgroup for t in means] == ["harmful", "harmless"]
    for trace, arr in zip(means, (harmful, harmless)):
        np.testing.assert_allclose(trace.y, arr.mean(axis=0))
        np.testing.assert_allclose(trace.customdata, arr.std(axis=0))
        assert f"n={arr.shape[0]}" in trace.name
    upper, lower = fig.data[0], fig.data[1]
    np.testing.assert_allclose(upper.y, harmful.mean(0) + harmful.std(0))
    np.testing.assert_allclose(lower.y, harmful.mean(0) - harmful.std(0))
    assert fig.layout.xaxis.title.text and "units" in fig.layout.yaxis.title.text
    fig.to_json()


def test_separation_plot_errors():
    with pytest.raises(ValueError, match="harmless_proj"):
        separation_plot(np.zeros((3, 5)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least one"):
        separation_plot(np.zeros((0, 5)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="layer_labels"):
        separation_plot(np.zeros((3, 5)), np.zeros((3, 5)), layer_labels=[0, 1])


def test_projection_per_layer_draws_runs_references_and_marker():
    from neuroscope.viz import projection_per_layer

    runs = {"baseline": [1.0, 2.0, 3.0], "ablated": [0.0, 0.0, 0.0]}
    fig = projection_per_layer(runs, {"harmful mean": [1.0, 1.5, 2.0]}, marker_layer=1, marker_label="add")
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["ablated"].y) == [0.0, 0.0, 0.0] and list(by_name["baseline"].y) == [1.0, 2.0, 3.0]
    assert by_name["harmful mean"].line.dash == "dash"
    assert any(shape.x0 == 1 for shape in fig.layout.shapes)
    fig.to_json()


def test_projection_per_layer_rejects_ragged_curves():
    import pytest

    from neuroscope.viz import projection_per_layer

    with pytest.raises(ValueError):
        projection_per_layer({"a": [1.0, 2.0], "b": [1.0]})


def test_another_behaviours_figures_name_its_own_groups():
    bypass, induce, kl = _scores()
    fig = candidate_scores(
        LAYERS, POSITIONS, bypass, induce, kl, groups=("french", "asked for French", "asked for English")
    )
    titles = [a.text for a in fig.layout.annotations][:3]
    assert "Bypass: asked for French + ablation" in titles[0] and "asked for English + addition" in titles[1]
    assert not any("harmful" in t or "refusal" in t for t in titles)
    axes = [fig.layout[f"yaxis{i}"].title.text for i in ("", "2", "3")]
    assert axes == ["French score (log-odds)", "French score (log-odds)", "KL (nats)"]
    refusal = candidate_scores(LAYERS, POSITIONS, bypass, induce, kl)
    assert refusal.layout.yaxis.title.text == "Refusal score (log-odds)"
    rng = np.random.default_rng(0)
    sep = separation_plot(
        rng.normal(size=(3, 5)), rng.normal(size=(4, 5)), groups=("asked for French", "asked for English")
    )
    assert [t.legendgroup for t in sep.data if t.mode == "lines+markers"] == ["asked for French", "asked for English"]
    with pytest.raises(ValueError, match="groups"):
        separation_plot(np.zeros((3, 5)), np.zeros((3, 5)), groups=("one",))
