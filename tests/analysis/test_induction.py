"""Induction scores against hand-built attention patterns, and on models with and without induction."""

from __future__ import annotations

import pytest
import torch

from neuroscope.analysis import induction as ind
from neuroscope.services.induction import InductionError, find_induction_heads, probe_tokens


def _causal_uniform(L, B, H, S):
    att = torch.tril(torch.ones(S, S))
    att = att / att.sum(-1, keepdim=True)
    return att.expand(L, B, H, S, S).clone()


def test_scores_find_planted_patterns_and_only_them():
    p, T = 1, 6
    S = p + 2 * T
    att = _causal_uniform(3, 2, 4, S)
    for q in range(S):  # layer 2 head 1: induction; layer 1 head 3: previous token; layer 0 head 0: duplicate
        att[2, :, 1, q] = 0
        att[1, :, 3, q] = 0
        att[0, :, 0, q] = 0
        if q >= p + T:
            att[2, :, 1, q, q - T + 1] = 1
            att[0, :, 0, q, q - T] = 1
        else:
            att[2, :, 1, q, q] = 1
            att[0, :, 0, q, q] = 1
        att[1, :, 3, q, max(q - 1, 0)] = 1
    scores = ind.induction_scores(att, p, T)
    assert scores[2, 1] == 1 and ind.top_heads(scores, 1) == [(2, 1)]
    assert scores.flatten().topk(2).values[1] < 0.2
    assert ind.duplicate_token_scores(att, p, T)[0, 0] == 1 and ind.top_heads(
        ind.duplicate_token_scores(att, p, T), 1
    ) == [(0, 0)]
    assert ind.previous_token_scores(att, p)[1, 3] == 1


def test_repeated_tokens_and_loss_halves_line_up():
    g = torch.Generator().manual_seed(0)
    ids = ind.repeated_random_tokens(3, 5, torch.arange(10, 20), [1], g)
    assert ids.shape == (3, 11) and (ids[:, 0] == 1).all() and torch.equal(ids[:, 1:6], ids[:, 6:])
    loss = torch.zeros(3, 10)
    loss[:, 1:5] = 4.0  # predicting x1..x4 of the first copy
    loss[:, 5:10] = 1.0  # predicting the second copy
    first, second = ind.split_halves(loss, 1, 5)
    assert torch.equal(first, torch.full((3,), 4.0)) and torch.equal(second, torch.full((3,), 1.0))


def test_copying_score_is_the_target_logit_above_the_mean():
    contrib = torch.zeros(2, 1, 1, 3)
    contrib[0, 0, 0] = torch.tensor([1.0, 0, 0])
    unembed = torch.eye(3)
    target = unembed[torch.tensor([[0]])]  # [B=1, Q=1, d]
    scores = ind.copying_scores(contrib, target, unembed.mean(0))
    torch.testing.assert_close(scores, torch.tensor([1 - 1 / 3, 0.0]))


def test_random_model_has_no_induction(tiny_lm):
    result = find_induction_heads(tiny_lm, n_seqs=4, half=16, k=2, n_random=2, seed=0)
    assert float(result.induction.max()) < 0.3
    assert abs(result.loss_drop.mean) < 0.5
    assert result.table()[0]["induction"] == pytest.approx(float(result.induction.max()), abs=1e-4)
    # and it says so instead of naming a "top induction head"; its grid keeps the 0..1 scale
    assert "No induction heads found" in result.summary() and "Top induction head" not in result.summary()
    from neuroscope.viz import head_grid

    fig = head_grid(result.induction.numpy(), "induction", "score", zrange=(0.0, 1.0))
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0)
    assert head_grid(result.induction.numpy(), "induction", "score").data[0].zmax is None
    # the stripe kept for the app holds one sequence's maps, not a view into the whole batch's [L, B, H, S, S]
    held = result.attention.untyped_storage().nbytes()
    assert held == result.attention.numel() * result.attention.element_size()


def test_probe_avoids_special_tokens_and_starts_with_bos(tiny_lm):
    ids, p = probe_tokens(tiny_lm, 4, 20, seed=3)
    assert p == 1 and (ids[:, 0] == tiny_lm.tokenizer.bos_token_id).all()
    assert not set(ids[:, 1:].flatten().tolist()) & set(tiny_lm.tokenizer.all_special_ids)


@pytest.mark.parametrize(
    "kw", [dict(n_seqs=0), dict(half=1), dict(k=0), dict(k=10**6), dict(n_random=-1), dict(half=2.5), dict(n_seqs=True)]
)
def test_bad_settings_are_refused_with_a_message(tiny_lm, kw):
    with pytest.raises(InductionError):
        find_induction_heads(tiny_lm, **kw)
