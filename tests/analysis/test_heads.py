import pytest
import torch

from neuroscope.analysis.directions import unit
from neuroscope.analysis.heads import (
    attribution_patching,
    contribution_norms,
    head_contributions,
    head_departures,
    head_projections,
    head_stats,
    head_values,
    masked_mean,
    permutation_test,
    random_head_sets,
    rank_heads,
    spearman,
)

H, DH, D = 4, 8, 24


def _setup(seed=0, batch=(2, 5)):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(*batch, H, DH, generator=g)
    w_o = torch.randn(D, H * DH, generator=g)
    r = unit(torch.randn(D, generator=g))
    return z, w_o, r


def test_head_contributions_sum_to_o_proj_output():
    z, w_o, _ = _setup()
    contrib = head_contributions(z, w_o)
    assert contrib.shape == (2, 5, H, D)
    torch.testing.assert_close(contrib.sum(-2), z.flatten(-2) @ w_o.T, rtol=1e-5, atol=1e-5)
    # head 1 alone, against torch.nn.Linear with the other heads zeroed
    lin = torch.nn.Linear(H * DH, D, bias=False)
    lin.weight.data = w_o
    only = torch.zeros_like(z)
    only[..., 1, :] = z[..., 1, :]
    torch.testing.assert_close(contrib[..., 1, :], lin(only.flatten(-2)).detach(), rtol=1e-5, atol=1e-5)


def test_contribution_norms_match_naive():
    z, w_o, _ = _setup()
    naive = head_contributions(z, w_o).norm(dim=-1)
    torch.testing.assert_close(contribution_norms(z, w_o), naive, rtol=1e-5, atol=1e-5)


def test_head_projections_match_naive():
    z, w_o, r = _setup()
    naive = head_contributions(z, w_o) @ r
    torch.testing.assert_close(head_projections(z, w_o, r), naive, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        head_projections(z, w_o, r[:-1])


def test_w_o_shape_checked():
    z, w_o, _ = _setup()
    with pytest.raises(ValueError):
        head_contributions(z, w_o[:, :-1])


def test_masked_mean_ignores_padding_garbage():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, H, DH, generator=g)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, :2] = False  # left padding
    mask[2, :5] = False
    ref = masked_mean(x, mask)
    assert ref.dtype == torch.float64 and ref.shape == (H, DH)
    torch.testing.assert_close(ref, x[mask].double().mean(0))
    x[~mask] = 1e30
    x[0, 0] = float("nan")
    torch.testing.assert_close(masked_mean(x, mask.int()), ref)
    with pytest.raises(ValueError):
        masked_mean(x, torch.zeros(3, 6, dtype=torch.bool))
    x[1, 1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        masked_mean(x, mask)


def _values(seed, n, L=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, L, H, DH, generator=g), g


def test_head_values_and_stats_match_contributions_prompt_by_prompt():
    L = 3
    zh, g = _values(2, 5, L)
    zb, _ = _values(3, 7, L)
    w_o = torch.randn(L, D, H * DH, generator=g)
    r = unit(torch.randn(D, generator=g))
    vh, vb = head_values(zh, w_o, r), head_values(zb, w_o, r)
    stats = head_stats(vh, vb)
    # independent: build every head's contribution in d_model, then project / take norms
    contrib = lambda z: torch.stack([head_contributions(z[:, l].double(), w_o[l].double()) for l in range(L)], 1)  # noqa: E731
    ch, cb = contrib(zh), contrib(zb)  # [N, L, H, D]
    torch.testing.assert_close(stats.delta_projection, (ch @ r.double()).mean(0) - (cb @ r.double()).mean(0))
    torch.testing.assert_close(stats.delta_norm, ch.norm(dim=-1).mean(0) - cb.norm(dim=-1).mean(0))
    torch.testing.assert_close(stats.harmful_projection, (ch @ r.double()).mean(0))
    torch.testing.assert_close(stats.harmless_projection_std, (cb @ r.double()).std(0))
    assert stats.n_harmful == 5 and stats.n_harmless == 7
    with pytest.raises(ValueError):
        head_stats(vh, (vb[0][:1], vb[1][:1]))  # one harmless prompt: no spread


def test_departures_pick_the_largest_z_toward_and_against_the_direction():
    L = 2
    base = (torch.zeros(4, L, H), torch.ones(4, L, H))
    base[0][:, 1, 2] = torch.tensor([0.0, 1.0, 2.0, 3.0])  # mean 1.5, std 1.29
    base[0][:, 0, 0] = torch.tensor([0.0, 0.1, 0.2, 0.3])  # small spread
    stats = head_stats((torch.zeros(3, L, H), torch.ones(3, L, H)), base)
    proj = torch.zeros(L, H)
    proj[1, 2], proj[0, 0] = 4.5, -0.35
    toward = head_departures(proj, torch.ones(L, H), stats, k=2)
    against = head_departures(proj, torch.ones(L, H), stats, k=2, sign=-1)
    # only heads that push the prompt along the direction are in the callout; the suppressor apart
    assert [(d.layer, d.head) for d in toward] == [(1, 2)]
    assert [(d.layer, d.head) for d in against][0] == (0, 0)
    assert against[0].z == pytest.approx(-0.5 / float(torch.tensor([0.0, 0.1, 0.2, 0.3]).std()), rel=1e-5)
    assert toward[0].delta == pytest.approx(3.0)
    assert toward[0].z == pytest.approx(3.0 / float(torch.tensor([0.0, 1.0, 2.0, 3.0]).std()))
    assert "L1H2" in toward[0].text() and "+3.00" in toward[0].text()
    assert all(d.z < 0 for d in against) and all(d.z > 0 for d in toward)


def test_head_labels_round_trip():
    from neuroscope.analysis.heads import head_label, parse_head_label

    assert head_label(3, 6) == "L3H6" and parse_head_label("L3H6 (callout: Δ +1.00)") == (3, 6)
    assert parse_head_label(head_label(27, 23)) == (27, 23)
    with pytest.raises(ValueError):
        parse_head_label("Head 3.6")


def test_attribution_patching_is_gradient_times_difference():
    g = torch.Generator().manual_seed(0)
    grad, a, b = (torch.randn(2, 3, 4, 5, 6, generator=g) for _ in range(3))
    est = attribution_patching(grad, a, b)
    torch.testing.assert_close(est[1, 2], (grad[:, 1, 2].double() * (b - a)[:, 1, 2].double()).sum((-1, -2)).mean())


def test_spearman():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a * 10 + 3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([0.0, 0.0, 5.0])) == pytest.approx(1.0)  # ties
    assert spearman(a, torch.tensor([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)


def test_rank_heads_signed_with_deterministic_ties():
    scores = torch.tensor([[0.1, -5.0, 2.0], [2.0, 0.0, -2.0]])
    assert rank_heads(scores, 4) == [(0, 2), (1, 0), (0, 0), (1, 1)]
    assert rank_heads(scores, 2, descending=False) == [(0, 1), (1, 2)]
    assert rank_heads(scores)[-1] == (0, 1) and len(rank_heads(scores)) == 6
    assert rank_heads(scores, 0) == []
    with pytest.raises(ValueError):
        rank_heads(torch.tensor([[float("nan")]]), 1)


def test_random_head_sets():
    sets = random_head_sets(4, 5, k=3, n_sets=10, seed=0, exclude=[(0, 0), (1, 1)])
    assert len(sets) == 10
    for s in sets:
        assert len(set(s)) == 3 and s == sorted(s)
        assert all(0 <= lay < 4 and 0 <= h < 5 for lay, h in s)
        assert (0, 0) not in s and (1, 1) not in s
    assert sets == random_head_sets(4, 5, 3, 10, 0, exclude=[(0, 0), (1, 1)])
    assert sets != random_head_sets(4, 5, 3, 10, 1, exclude=[(0, 0), (1, 1)])
    with pytest.raises(ValueError):
        random_head_sets(2, 2, 5, 1)


def test_permutation_test_null_is_roughly_uniform():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(40, 10, 20, generator=g), torch.randn(50, 10, 20, generator=g)
    res = permutation_test(a, b, n_perm=500, seed=0)
    assert res.p_values.shape == (10, 20) and res.observed.shape == (10, 20)
    p = res.p_values.flatten()
    assert 0.4 < p.mean() < 0.6
    assert (p < 0.05).double().mean() < 0.1
    assert (p < 0.5).double().mean() == pytest.approx(0.5, abs=0.1)
    assert p.min() >= 1 / 501


def test_permutation_test_planted_effect_and_determinism():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(30, 3, 4, generator=g), torch.randn(30, 3, 4, generator=g)
    a[:, 1, 2] += 1.5
    res = permutation_test(a, b, n_perm=1000, seed=0)
    assert res.p_values[1, 2] < 0.01
    torch.testing.assert_close(res.observed, a.double().mean(0) - b.double().mean(0))
    # one-sided: a planted *negative* effect is not significant under "mean_diff" ...
    res_neg = permutation_test(b, a, n_perm=1000, seed=0)
    assert res_neg.p_values[1, 2] > 0.9
    # ... but is under "abs_mean_diff"
    assert permutation_test(b, a, "abs_mean_diff", n_perm=1000, seed=0).p_values[1, 2] < 0.01
    again = permutation_test(a, b, n_perm=1000, seed=0)
    torch.testing.assert_close(again.p_values, res.p_values)


def test_permutation_test_callable_statistic():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(20, 6, generator=g), torch.randn(25, 6, generator=g)

    def median_diff(x, y):  # [P, N, F], [P, M, F] -> [P, F]
        return x.median(dim=1).values - y.median(dim=1).values

    res = permutation_test(a, b, median_diff, n_perm=200)
    assert res.p_values.shape == (6,) and ((res.p_values > 0) & (res.p_values <= 1)).all()
    with pytest.raises(ValueError):
        permutation_test(a, torch.randn(5, 7))


def test_enough_permutations_for_the_bonferroni_correction_let_a_clear_difference_pass():
    from neuroscope.analysis.heads import permutation_test, permutations_for

    L, heads = 6, 8  # the demo model's 48 heads
    gen = torch.Generator().manual_seed(0)
    harmful, harmless = torch.randn(24, L, heads, generator=gen), torch.randn(24, L, heads, generator=gen)
    harmful[:, 2, 3] += 3.0  # one head that plainly differs
    threshold = 0.05 / (L * heads)
    few = permutation_test(harmful, harmless, "abs_mean_diff", n_perm=200, seed=0)
    assert float(few.p_values.min()) > threshold  # 200 permutations can never pass the correction
    n = permutations_for(L * heads)
    enough = permutation_test(harmful, harmless, "abs_mean_diff", n_perm=n, seed=0)
    assert (enough.p_values < threshold).nonzero().tolist() == [[2, 3]]
    assert 1 / (n + 1) <= threshold / 2 and permutations_for(672) >= 26_880
