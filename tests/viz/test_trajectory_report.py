import numpy as np
import pytest

from neuroscope.viz import figure_to_html, figures_to_html, head_grid, pca_trajectory_3d

TOKENS = ["<bos>", " How", " to"]


def test_pca_trajectory_lines_and_axis_titles():
    coords = np.random.default_rng(0).normal(size=(5, 3, 3))
    fig = pca_trajectory_3d(coords, TOKENS, [0.421, 0.2, 0.05], highlight_positions=[2])
    assert len(fig.data) == 3
    for pos, trace in enumerate(fig.data):
        np.testing.assert_array_equal(trace.x, coords[:, pos, 0])
        np.testing.assert_array_equal(trace.z, coords[:, pos, 2])
        assert list(trace.customdata) == ["L0", "L1", "L2", "L3", "final"]  # L0 = input of block 0
    assert fig.data[2].name == "2: ▁to" and "text" in fig.data[2].mode
    assert list(fig.data[2].text) == ["", "", "", "", "2"]  # one short label per line (its position): no pile-up
    assert "text" not in fig.data[0].mode and fig.data[0].opacity < 1
    scene = fig.layout.scene
    assert "42%" in scene.xaxis.title.text and "20%" in scene.yaxis.title.text
    assert "5%" in scene.zaxis.title.text
    assert "carries" not in fig.layout.title.text
    fig.to_json()


def test_pca_3d_labels_are_plain_and_its_axis_titles_fit():
    """WebGL text takes no HTML: a token like <|eot_id|> must not show as "&lt;|eot_id|&gt;" in the scene; and the
    camera sits further out than plotly's default (1.25), which cut the PC2 title off at the scene's edge."""
    coords = np.random.default_rng(0).normal(size=(5, 3, 3))
    fig = pca_trajectory_3d(coords, ["<|eot_id|>", "<b>", "x"], [0.5, 0.2, 0.1], highlight_positions=[0, 1])
    texts = [t for trace in fig.data if trace.text is not None for t in trace.text if t]
    assert texts == ["0", "1"] and not any("&" in t for t in texts)
    eye = fig.layout.scene.camera.eye
    assert min(eye.x, eye.y) > 1.25


def test_pca_2d_draws_pc1_and_pc2_and_says_when_one_component_dominates():
    from neuroscope.viz import pca_trajectory_2d

    coords = np.random.default_rng(1).normal(size=(5, 3, 2))
    fig = pca_trajectory_2d(coords, TOKENS, [0.93, 0.04], highlight_positions=[2])
    for pos, trace in enumerate(fig.data):
        np.testing.assert_array_equal(trace.x, coords[:, pos, 0])
        np.testing.assert_array_equal(trace.y, coords[:, pos, 1])
    assert "93%" in fig.layout.xaxis.title.text and "4%" in fig.layout.yaxis.title.text
    assert "PC1 carries 93%" in fig.layout.title.text
    assert [a.text for a in fig.layout.annotations] == ["2: ▁to"]  # named once, where its line ends


def test_the_pca_is_fitted_without_the_first_token(tiny_lm):
    """Independent: numpy's SVD of the centred trajectory without position 0 gives the same variance shares."""
    from neuroscope.config import Settings
    from neuroscope.services.explorer import analyze, trajectory_pca

    result = analyze(tiny_lm, "Hello there friend", Settings(max_new_tokens=2))
    coords, ratio, first = trajectory_pca(result.cache)
    resid = result.cache.trajectory()
    assert first == 1 and coords.shape[:2] == (resid.shape[0], resid.shape[1] - 1)
    points = resid[:, 1:].reshape(-1, resid.shape[-1]).double().numpy()
    s = np.linalg.svd(points - points.mean(0), compute_uv=False) ** 2
    np.testing.assert_allclose(ratio.numpy(), (s / s.sum())[:3], rtol=1e-4)


@pytest.mark.parametrize(
    "coords, ev, hl, match",
    [
        (np.zeros((5, 2, 3)), [0.1, 0.1, 0.1], None, "coords"),
        (np.zeros((5, 3, 2)), [0.1, 0.1, 0.1], None, "coords"),
        (np.zeros((5, 3, 3)), [0.1, 0.1], None, "explained_variance"),
        (np.zeros((5, 3, 3)), [42.0, 20.0, 5.0], None, "explained_variance"),
        (np.zeros((5, 3, 3)), [0.6, 0.5, 0.1], None, "sum"),
        (np.zeros((5, 3, 3)), [0.1, 0.1, 0.1], [3], "highlight_positions"),
    ],
)
def test_pca_trajectory_rejects(coords, ev, hl, match):
    with pytest.raises(ValueError, match=match):
        pca_trajectory_3d(coords, TOKENS, ev, highlight_positions=hl)


def test_report_inlines_plotlyjs_only_once():
    figs = [head_grid(np.eye(2), f"fig {i}", "v") for i in range(3)]
    first, *rest = figures_to_html(figs)
    assert "<html" not in first and first.lstrip().startswith("<div")
    assert len(first) > 1_000_000  # the plotly.js bundle
    assert all(len(r) < 100_000 and "fig " in r for r in rest)
    assert len(figure_to_html(figs[0], include_plotlyjs=False)) < 100_000
    assert 'src="https://cdn.plot.ly' in figure_to_html(figs[0], include_plotlyjs="cdn")
