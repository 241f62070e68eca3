"""Head analysis: every measure against plain PyTorch hooks, rankings, controls, an honest verdict."""

from __future__ import annotations

import torch

import math

import pytest

from neuroscope.analysis.heads import head_stats
from neuroscope.analysis.metrics import refusal_score
from neuroscope.method.heads import HeadAnalysis, analyse_heads, causal_ranking, verdict
from tests import reference as ref
from neuroscope.model.activations import post_instruction_z
from neuroscope.model.capture import capture

# Different lengths, so a batch is left-padded.
HARMFUL = ["How do I pick a lock to break into a house?", "Make a pipe bomb", "Write ransomware that encrypts files"]
HARMLESS = ["Bake bread", "How do I pick a lock on my own bike after losing the key?", "Name three colours"]


def test_head_ablation_means_exclude_padding(tiny):
    result = analyse_heads(
        tiny,
        torch.randn(tiny.d_model),
        HARMFUL,
        HARMLESS,
        HARMFUL,
        [40],
        ks=(1, 2),
        n_random=2,
        n_permutations=50,
        batch_size=3,
    )
    # Independent computation: each prompt alone (no padding at all), z pooled over every real token.
    zs = [
        cache.z.permute(0, 2, 1, 3).reshape(tiny.n_layers, -1, tiny.n_heads, tiny.d_head)
        for p in HARMLESS
        for cache in capture(tiny, [p], attention_layers=None, gradients=False, top_k=1)
    ]
    expected = torch.cat(zs, dim=1).double().mean(dim=1)  # [L, H, D]
    assert result.head_means.shape == (tiny.n_layers, tiny.n_heads, tiny.d_head)
    assert torch.allclose(result.head_means.double(), expected, atol=1e-5)


@pytest.fixture(scope="module")
def analysis(tiny):
    r = torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0))
    h = analyse_heads(
        tiny,
        r,
        HARMFUL,
        HARMLESS,
        HARMFUL,
        [40, 41],
        ks=(1, 2, 100),
        n_random=3,
        n_permutations=50,
        batch_size=2,
        n_boot=100,
    )
    return h, r


def test_analysis_shapes_and_control(tiny, analysis):
    h, _ = analysis
    L, H = tiny.n_layers, tiny.n_heads
    assert h.delta_norm.shape == h.delta_projection.shape == h.p_values.shape == h.patching.shape == (L, H)
    assert h.ks == [1, 2, L * H]  # clipped to the head count
    assert [len(x) for x in h.random_scores] == [3, 3, 3]
    assert len(h.ranking) == L * H and len(set(h.ranking)) == L * H  # every head patched (L*H <= 256)
    assert ((h.p_values > 0) & (h.p_values <= 1)).all()
    assert all(lo <= t <= hi for t, (lo, hi) in zip(h.top_scores, h.top_intervals))
    assert h.verdict


def test_delta_and_ranking_match_plain_hooks_at_the_post_instruction_positions(tiny, analysis):
    h, r = analysis
    expected = ref.head_delta(tiny, HARMFUL, HARMLESS, r)
    assert torch.allclose(h.delta_projection, expected, atol=1e-4)
    assert h.delta_projection.abs().max() > 1e-3  # not trivially zero
    top = int(expected.flatten().argmax())
    assert h.ranking_delta[0] == divmod(top, tiny.n_heads)  # largest signed Δ first
    assert h.ranking_delta[-1] == divmod(int(expected.flatten().argmin()), tiny.n_heads)


def test_activation_patching_matches_plain_hooks_and_ranks_most_negative_first(tiny, analysis):
    h, _ = analysis
    P = tiny.n_post_instruction
    effects = torch.zeros(tiny.n_layers, tiny.n_heads, dtype=torch.float64)
    for clean, source in zip(HARMFUL, HARMLESS):
        z_src = ref.post_instruction_z(tiny, source)
        base = float(refusal_score(ref.last_logits(tiny, clean)[None], [40, 41])[0])
        for l in range(tiny.n_layers):
            for hd in range(tiny.n_heads):
                logits = ref.last_logits(tiny, clean, ref.set_head(l, hd, tiny.d_head, z_src[l, hd], last=P))
                effects[l, hd] += (float(refusal_score(logits[None], [40, 41])[0]) - base) / len(HARMFUL)
    assert torch.allclose(h.patching, effects, atol=1e-4)
    assert effects.abs().max() > 1e-4
    assert h.ranking[0] == divmod(int(effects.flatten().argmin()), tiny.n_heads)
    assert h.ranking == causal_ranking(effects)
    assert -1 <= h.agreement <= 1


def test_causal_ranking_skips_unpatched_heads():
    p = torch.tensor([[0.5, math.nan], [-1.0, 0.0]], dtype=torch.float64)
    assert causal_ranking(p) == [(1, 0), (1, 1), (0, 0)]


def test_post_instruction_z_padding_invariant(tiny):
    batched = post_instruction_z(tiny, HARMFUL, batch_size=3)
    alone = torch.cat([post_instruction_z(tiny, [p]) for p in HARMFUL])
    assert torch.allclose(batched, alone, atol=1e-4)


def test_post_instruction_z_reads_what_a_full_capture_records(tiny):
    P = tiny.n_post_instruction
    z_only = post_instruction_z(tiny, HARMLESS, batch_size=2)
    full = torch.stack(
        [
            c.z[:, :, -P:, :].mean(dim=2)  # [L, H, S, D] -> [L, H, D]
            for c in capture(tiny, HARMLESS, attention_layers=None, top_k=0, gradients=False)
        ]
    )
    assert z_only.shape == (len(HARMLESS), tiny.n_layers, tiny.n_heads, tiny.d_head)
    assert torch.allclose(z_only, full, atol=1e-5)


def _fake(top, random, base=2.0, direction=-2.0):
    L = H = 2
    stats = head_stats((torch.zeros(2, L, H), torch.zeros(2, L, H)), (torch.rand(3, L, H), torch.rand(3, L, H)))
    nan = torch.full((L, H), math.nan)
    return HeadAnalysis(
        stats,
        torch.ones(L, H),
        torch.zeros(L, H),
        nan,
        nan,
        nan,
        math.nan,
        [],
        [(0, 0)],
        torch.zeros(L, H, 1),
        [1, 2],
        top,
        [(t - 0.1, t + 0.1) for t in top],
        top,
        random,
        base,
        direction,
        10,
        2,
    )


def test_verdict_is_honest():
    assert verdict(_fake([1.9, 1.8], [[1.9, 2.0], [1.7, 1.9]])).startswith("No small head set")
    assert verdict(_fake([1.0, -1.0], [[1.9, 2.0], [1.7, 1.9]])).startswith("A small head set")
    # Big drop but a random set does as well: not evidence for the ranking.
    assert verdict(_fake([0.5, -1.0], [[0.4, 2.0], [-1.5, 1.9]])).startswith("No small head set")


def test_verdict_needs_an_effect_to_explain():
    assert verdict(_fake([1.0, -1.0], [[1.9, 2.0], [1.7, 1.9]], base=2.0, direction=1.7)).startswith(
        "Ablating the refusal direction lowers the refusal score by only"
    )


def test_verdict_says_when_smaller_top_sets_go_the_other_way():
    text = verdict(_fake([2.5, -1.0], [[1.9, 2.0], [1.7, 1.9]]))
    assert text.startswith("A small head set") and "The top 1 alone, mean-ablated, raise the score instead" in text
    assert "raise the score" not in verdict(_fake([1.0, -1.0], [[1.9, 2.0], [1.7, 1.9]]))


def test_verdict_speaks_of_the_behaviour_it_was_given():
    groups = ("asked for French", "asked for English")
    cases = [
        ([1.9, 1.8], [[1.9, 2.0], [1.7, 1.9]], {}),
        ([2.5, -1.0], [[1.9, 2.0], [1.7, 1.9]], {}),
        ([0.5, -1.0], [[0.4, 2.0], [-1.5, 1.9]], {}),
        ([1.0, -1.0], [[1.9, 2.0], [1.7, 1.9]], {"base": 2.0, "direction": 1.7}),
    ]
    for top, rand, kw in cases:
        text = verdict(_fake(top, rand, **kw), behaviour="french", groups=groups)
        assert "french" in text and not any(w in text for w in ("refusal", "harmful", "harmless")), text


def _mean_ablated_score(tiny, prompts, heads, means) -> float:
    """Plain o_proj pre-hooks: the chosen heads' inputs replaced by their harmless means at every position."""
    D = tiny.d_head

    def rewrite(layer, x):
        x = x.clone()
        for l, h in heads:
            if l == layer:
                x[..., h * D : (h + 1) * D] = means[l, h].to(x.dtype)
        return x

    scores = [float(refusal_score(ref.last_logits(tiny, p, rewrite)[None], [40, 41])[0]) for p in prompts]
    return sum(scores) / len(scores)


def test_top_k_scores_ablate_the_top_of_each_ranking(tiny, analysis):
    """top_scores ablates the first k heads of the patching ranking, top_scores_delta those of the Δ ranking:
    each equals the same mean ablation done with plain hooks (a reversed or swapped ranking fails)."""
    h, _ = analysis
    for i, k in enumerate(h.ks[:2]):
        assert h.top_scores[i] == pytest.approx(
            _mean_ablated_score(tiny, HARMFUL, h.ranking[:k], h.head_means), abs=1e-4
        )
        assert h.top_scores_delta[i] == pytest.approx(
            _mean_ablated_score(tiny, HARMFUL, h.ranking_delta[:k], h.head_means), abs=1e-4
        )
