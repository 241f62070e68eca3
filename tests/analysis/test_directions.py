import math

import pytest
import torch

from neuroscope.analysis.directions import (
    CandidateScores,
    ablate,
    add,
    cosine_similarity_matrix,
    difference_of_means,
    direction_stats,
    project,
    select_direction,
    unit,
)


def _r(d=16, seed=0):
    return unit(torch.randn(d, generator=torch.Generator().manual_seed(seed)))


def test_difference_of_means_shape_dtype_and_nan():
    a, b = torch.randn(3, 2, 8), torch.randn(3, 2, 8)
    out = difference_of_means(a, b)
    assert out.dtype == torch.float64 and out.shape == (3, 2, 8)
    torch.testing.assert_close(out, a.double() - b.double())
    a[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        difference_of_means(a, b)
    with pytest.raises(ValueError, match="same shape"):
        difference_of_means(torch.zeros(3), torch.zeros(4))


def test_unit_norm_and_zero_error():
    v = torch.randn(5, 7)
    torch.testing.assert_close(unit(v).norm(dim=-1), torch.ones(5))
    with pytest.raises(ValueError, match="zero"):
        unit(torch.zeros(7))


def test_project_matches_dot():
    x, r = torch.randn(2, 3, 16), _r()
    torch.testing.assert_close(project(x, r), (x * r).sum(-1))


def test_ablate_zeroes_projection_and_keeps_orthogonal_part():
    x, r = torch.randn(4, 5, 16, dtype=torch.float64), _r().double()
    out = ablate(x, r)
    assert project(out, r).abs().max() < 1e-12
    # the orthogonal complement is untouched
    torch.testing.assert_close(out - project(out, r)[..., None] * r, x - project(x, r)[..., None] * r)
    # Arditi's formula
    torch.testing.assert_close(out, x - (x @ r)[..., None] * r)


def test_ablate_target_scalar_and_tensor():
    x, r = torch.randn(4, 5, 16, dtype=torch.float64), _r().double()
    torch.testing.assert_close(project(ablate(x, r, 2.5), r), torch.full((4, 5), 2.5, dtype=torch.float64))
    target = torch.arange(4, dtype=torch.float64)[:, None]  # broadcast over positions
    torch.testing.assert_close(project(ablate(x, r, target), r), target.expand(4, 5))
    # ablating twice is idempotent
    torch.testing.assert_close(ablate(ablate(x, r), r), ablate(x, r))


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.5, 2.0])
def test_ablate_strength_scales_the_component(lam):
    x, r = torch.randn(4, 5, 16, dtype=torch.float64), _r().double()
    out = ablate(x, r, strength=lam)
    torch.testing.assert_close(project(out, r), (1 - lam) * project(x, r))
    torch.testing.assert_close(out - project(out, r)[..., None] * r, x - project(x, r)[..., None] * r)
    torch.testing.assert_close(project(ablate(x, r, 0.7, strength=lam), r), (1 - lam) * project(x, r) + 0.7)


def test_ablate_bf16_keeps_dtype_and_is_accurate():
    x, r = torch.randn(8, 64).to(torch.bfloat16), _r(64)
    out = ablate(x, r)
    assert out.dtype == torch.bfloat16
    ref = x.float() - (x.float() @ r)[:, None] * r
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=1e-2)
    assert project(out.float(), r).abs().max() < 0.05


def test_ablate_is_differentiable_and_shape_checked():
    x = torch.randn(3, 16, requires_grad=True)
    ablate(x, _r()).sum().backward()
    assert x.grad is not None
    with pytest.raises(ValueError):
        ablate(torch.randn(3, 8), _r())


def test_add():
    x, d = torch.randn(2, 3, 16), torch.randn(16)
    torch.testing.assert_close(add(x, d, 2.0), x + 2 * d)
    s = torch.tensor([1.0, -1.0])
    torch.testing.assert_close(add(x, d, s[:, None]), x + s[:, None, None] * d)
    r = _r()
    torch.testing.assert_close(project(add(x, r, 3.0), r), project(x, r) + 3.0)


def test_cosine_similarity_matrix():
    dirs = torch.randn(4, 16)
    dirs[1] = -2 * dirs[0]
    sim = cosine_similarity_matrix(dirs)
    assert sim.shape == (4, 4) and sim.dtype == torch.float64
    torch.testing.assert_close(sim, sim.T)
    torch.testing.assert_close(sim.diagonal(), torch.ones(4, dtype=torch.float64))
    assert sim[0, 1] == pytest.approx(-1.0)
    ref = torch.nn.functional.cosine_similarity(dirs.double()[:, None], dirs.double()[None], dim=-1)
    torch.testing.assert_close(sim, ref)


def test_direction_stats_separation():
    g = torch.Generator().manual_seed(123)
    r = _r()
    harmless = torch.randn(200, 16, generator=g)
    harmful = torch.randn(200, 16, generator=g) + 3 * r
    st = direction_stats(5 * r, harmful, harmless)
    assert st.norm == pytest.approx(5.0)
    assert st.harmful_mean - st.harmless_mean == pytest.approx(3.0, abs=0.4)
    assert st.cohens_d == pytest.approx(3.0, abs=0.4)
    assert st.auroc > 0.95
    same = direction_stats(r, harmless[:100], harmless[100:])
    assert 0.35 < same.auroc < 0.65


def _scores(bypass, induce, kl, **kw):
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return CandidateScores(t(bypass), t(induce), t(kl), **kw)


def test_select_direction_applies_arditi_filters():
    # 5 layers, 2 positions. Layer 4 >= 0.8*5 is pruned even though its bypass is lowest.
    bypass = [[0.0, -1.0], [-2.0, -3.0], [-4.0, -5.0], [-6.0, 1.0], [-99.0, -99.0]]
    induce = [[1.0, 1.0], [1.0, 1.0], [1.0, -0.5], [0.0, 1.0], [1.0, 1.0]]
    kl = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    kl[1][1] = 0.5  # too disruptive
    sel = select_direction(_scores(bypass, induce, kl), n_layers=5)
    # (2,1) fails induce; (3,0) has induce == 0 -> discarded; (1,1) fails KL; best is (2,0)
    assert (sel.layer, sel.pos_index, sel.position) == (2, 0, -2)
    assert sel.bypass == -4.0 and not sel.fallback
    expected = torch.tensor([[0, 0], [0, 1], [0, 1], [1, 0], [1, 1]], dtype=torch.bool)
    assert torch.equal(sel.filtered, expected)
    assert torch.equal(sel.kept, ~expected)
    assert "layer 2" in sel.reason


def test_select_direction_labels_nan_and_ties():
    bypass = [[1.0, 1.0], [float("nan"), -1.0], [-1.0, 0.0]]
    ones = [[1.0, 1.0]] * 3
    zeros = [[0.0, 0.0]] * 3
    sel = select_direction(_scores(bypass, ones, zeros, layers=[3, 4, 5], positions=[-3, -1]), n_layers=10)
    # tie at -1.0 between (4,-1) and (5,-3): the earliest layer wins
    assert (sel.layer, sel.position, sel.layer_index, sel.pos_index) == (4, -1, 1, 1)
    assert sel.filtered[1, 0]  # NaN discarded
    sel2 = select_direction(
        _scores(bypass, [[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], zeros), n_layers=3, require_positive_induce=False
    )
    assert (sel2.layer, sel2.pos_index) == (1, 1)


def test_select_direction_nothing_survives_raises_or_falls_back():
    bypass = [[-1.0, -2.0], [-3.0, -4.0]]
    induce = [[-1.0, -1.0], [-1.0, -1.0]]
    kl = [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="no candidate"):
        select_direction(_scores(bypass, induce, kl), n_layers=10)
    sel = select_direction(_scores(bypass, induce, kl), n_layers=10, allow_fallback=True)
    assert sel.fallback and "FALLBACK" in sel.reason and (sel.layer, sel.pos_index) == (1, 1)
    # KL relaxed too when needed; the layer filter never is
    high_kl = [[1.0, 1.0], [1.0, 1.0]]
    sel = select_direction(_scores(bypass, induce, high_kl), n_layers=10, allow_fallback=True)
    assert sel.fallback and (sel.layer, sel.pos_index) == (1, 1)
    with pytest.raises(ValueError):
        select_direction(_scores(bypass, induce, kl, layers=[4, 5]), n_layers=5, allow_fallback=True)


def test_candidate_scores_validates_shapes():
    with pytest.raises(ValueError):
        CandidateScores(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError):
        CandidateScores(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), layers=[0])
    cs = CandidateScores(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))
    assert cs.layers == [0, 1] and cs.positions == [-3, -2, -1]
    assert math.floor(15 * 0.8 + 1e-9) == 12


def test_ablate_renormalises_a_low_precision_direction():
    x = torch.randn(4, 64, dtype=torch.float64)
    r16 = _r(64).to(torch.bfloat16)  # norm off by ~1e-3 after rounding
    out = ablate(x, r16)
    r_hat = r16.double() / r16.double().norm()
    assert project(out, r_hat).abs().max() < 1e-12


def test_select_never_picks_a_candidate_whose_ablation_raises_refusal():
    # Baseline harmful refusal score 2.0. Only (1,1) and (0,0) pass every paper filter; (0,0) lowers
    # refusal (1.5 < 2.0), (1,1) raises it (3.0): the ceiling leaves (0,0), and fallback never
    # brings back a candidate at or above the ceiling.
    bypass = [[1.5, 9.0], [4.0, 3.0]]
    induce = [[1.0, -1.0], [-1.0, 1.0]]
    kl = [[0.0, 0.0], [0.0, 0.0]]
    sel = select_direction(_scores(bypass, induce, kl), n_layers=10, bypass_ceiling=2.0)
    assert (sel.layer, sel.pos_index) == (0, 0)
    none_lower = [[2.5, 9.0], [4.0, 3.0]]
    with pytest.raises(ValueError, match="no_bypass"):
        select_direction(_scores(none_lower, induce, kl), n_layers=10, bypass_ceiling=2.0, allow_fallback=True)
    old_rule = select_direction(_scores(none_lower, induce, kl), n_layers=10)
    assert old_rule.bypass == 2.5  # without the ceiling, a direction that raises refusal is chosen
