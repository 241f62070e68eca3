import numpy as np
import pytest

from neuroscope.viz import edit_frontier, rates_with_intervals, topk_ablation_curve

GROUPS = ["harmful", "harmless"]
CONDITIONS = ["baseline", "ablated", "added"]
RATES = np.array([[0.9, 0.1, 0.95], [0.05, 0.02, 0.7]])
LO = RATES - np.array([[0.05, 0.05, 0.03], [0.05, 0.02, 0.1]])
HI = RATES + np.array([[0.04, 0.08, 0.05], [0.06, 0.03, 0.1]])


def test_rates_bars_and_asymmetric_error_bars():
    fig = rates_with_intervals(GROUPS, CONDITIONS, RATES, LO, HI, "Refusal", "Refusal rate (%)")
    assert [t.name for t in fig.data] == CONDITIONS
    for c, bar in enumerate(fig.data):
        assert list(bar.x) == GROUPS
        np.testing.assert_allclose(bar.y, RATES[:, c])
        assert bar.error_y.symmetric is False
        np.testing.assert_allclose(bar.error_y.array, HI[:, c] - RATES[:, c])
        np.testing.assert_allclose(bar.error_y.arrayminus, RATES[:, c] - LO[:, c])
    assert fig.layout.barmode == "group"
    assert fig.layout.yaxis.title.text == "Refusal rate (%)" and fig.layout.xaxis.title.text
    fig.to_json()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rates=RATES[:, :2]), "rates"),
        (dict(lo=LO.T), "lo"),
        (dict(hi=RATES - 0.01), "lo <= value <= hi"),
        (dict(rates=np.where(RATES > 0.5, np.nan, RATES)), "NaN"),
        (dict(groups=["harmful"]), "rates"),
    ],
)
def test_rates_rejects(kwargs, match):
    args = dict(groups=GROUPS, conditions=CONDITIONS, rates=RATES, lo=LO, hi=HI, title="t")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        rates_with_intervals(**args)


def test_topk_curve_data():
    ks = np.array([1, 2, 4, 8])
    top = np.array([0.8, 0.6, 0.3, 0.1])
    mean = np.array([0.9, 0.88, 0.87, 0.85])
    lo, hi = mean - 0.05, mean + 0.04
    fig = topk_ablation_curve(ks, top, mean, lo, hi, "Refusal rate (fraction)", baseline=0.9)
    by_name = {t.name: t for t in fig.data if t.name}
    np.testing.assert_array_equal(by_name["top-k heads"].x, ks)
    np.testing.assert_array_equal(by_name["top-k heads"].y, top)
    np.testing.assert_array_equal(by_name["random k heads (mean)"].y, mean)
    np.testing.assert_array_equal(fig.data[0].y, hi)
    np.testing.assert_array_equal(by_name["random k heads (band)"].y, lo)
    assert by_name["random k heads (band)"].fill == "tonexty"
    assert fig.layout.shapes[0].y0 == 0.9
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "Refusal rate (fraction)"
    fig.to_json()


def test_topk_curve_rejects():
    ks, v = [1, 2, 3], np.array([0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="top_values"):
        topk_ablation_curve(ks, v[:2], v, v, v, "y")
    with pytest.raises(ValueError, match="random_lo/random_mean/random_hi"):
        topk_ablation_curve(ks, v, v, v + 0.1, v + 0.2, "y")


def _frontier_args(**over):
    args = dict(
        labels=["mean form", "λ = 1", "λ = 1.5"],
        groups=["mean", "zero", "zero"],
        refusal=[0.01, 0.3, 0.02],
        refusal_lo=[0.0, 0.2, 0.0],
        refusal_hi=[0.03, 0.4, 0.05],
        damage={
            "KL": ([0.02, 0.016, 0.05], [0.015, 0.013, 0.045], [0.026, 0.019, 0.06]),
            "CE": ([1.03, 1.04, 1.12], [0.95, 0.95, 1.03], [1.12, 1.13, 1.22]),
        },
        chosen=0,
        title="t",
        baseline_refusal=0.9,
    )
    args.update(over)
    return args


def test_edit_frontier_panels_points_and_chosen_star():
    fig = edit_frontier(**_frontier_args())
    data = [t for t in fig.data if t.name != "chosen edit"]
    stars = [t for t in fig.data if t.name == "chosen edit"]
    assert len(stars) == 2 and len(data) == 4  # two panels x (one star, two series)
    assert [float(s.x[0]) for s in stars] == [0.02, 1.03] and all(float(s.y[0]) == 0.01 for s in stars)
    zero = [t for t in data if t.name == "zero"][0]
    assert list(zero.y) == [0.3, 0.02] and list(zero.error_y.array) == pytest.approx([0.1, 0.03])
    assert list(zero.error_x.arrayminus) == pytest.approx([0.003, 0.005])


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(chosen=3), "chosen"),
        (dict(refusal_lo=[0.05, 0.2, 0.0]), "refusal"),
        (dict(damage={}), "damage"),
        (dict(groups=["a"]), "groups"),
        (dict(damage={"KL": ([np.nan, 0.1, 0.2], [0, 0, 0], [1, 1, 1])}), "finite|NaN"),
    ],
)
def test_edit_frontier_rejects(over, match):
    with pytest.raises(ValueError, match=match):
        edit_frontier(**_frontier_args(**over))
