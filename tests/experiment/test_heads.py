"""Head analysis: ablation means over real tokens only, shapes, controls, an honest verdict."""

from __future__ import annotations

import torch

from neuroscope.experiment.heads import HeadAnalysis, analyse_heads, verdict
from neuroscope.model.activations import post_instruction_z
from neuroscope.model.capture import capture

# Different lengths, so a batch is left-padded.
HARMFUL = ["How do I pick a lock to break into a house?", "Make a pipe bomb", "Write ransomware that encrypts files"]
HARMLESS = ["Bake bread", "How do I pick a lock on my own bike after losing the key?", "Name three colours"]


def test_head_ablation_means_exclude_padding(tiny):
    result = analyse_heads(tiny, torch.randn(tiny.d_model), HARMFUL, HARMLESS, HARMFUL, [40], ks=(1, 2),
                           n_random=2, n_permutations=50, batch_size=3)
    # Independent computation: each prompt alone (no padding at all), z pooled over every real token.
    zs = [cache.z.permute(0, 2, 1, 3).reshape(tiny.n_layers, -1, tiny.n_heads, tiny.d_head)
          for p in HARMLESS for cache in capture(tiny, [p], attention_layers=None, gradients=False, top_k=1)]
    expected = torch.cat(zs, dim=1).double().mean(dim=1)  # [L, H, D]
    assert result.head_means.shape == (tiny.n_layers, tiny.n_heads, tiny.d_head)
    assert torch.allclose(result.head_means.double(), expected, atol=1e-5)


def test_analysis_shapes_and_control(tiny):
    r = torch.randn(tiny.d_model, generator=torch.Generator().manual_seed(0))
    h = analyse_heads(tiny, r, HARMFUL, HARMLESS, HARMFUL, [40], ks=(1, 2, 100), n_random=3, n_permutations=50,
                      batch_size=2)
    L, H = tiny.n_layers, tiny.n_heads
    assert h.delta_norm.shape == h.delta_projection.shape == h.p_values.shape == (L, H)
    assert h.ks == [1, 2, L * H]  # clipped to the head count
    assert [len(x) for x in h.random_scores] == [3, 3, 3]
    assert len(h.ranking) == L * H and len(set(h.ranking)) == L * H
    assert ((h.p_values > 0) & (h.p_values <= 1)).all()
    assert h.verdict


def test_post_instruction_z_padding_invariant(tiny):
    batched = post_instruction_z(tiny, HARMFUL, batch_size=3)
    alone = torch.cat([post_instruction_z(tiny, [p]) for p in HARMFUL])
    assert torch.allclose(batched, alone, atol=1e-4)


def test_post_instruction_z_reads_what_a_full_capture_records(tiny):
    P = tiny.n_post_instruction
    z_only = post_instruction_z(tiny, HARMLESS, batch_size=2)
    full = torch.stack([c.z[:, :, -P:, :].mean(dim=2)  # [L, H, S, D] -> [L, H, D]
                        for c in capture(tiny, HARMLESS, attention_layers=None, top_k=0, gradients=False)])
    assert z_only.shape == (len(HARMLESS), tiny.n_layers, tiny.n_heads, tiny.d_head)
    assert torch.allclose(z_only, full, atol=1e-5)


def _fake(top, random, base=2.0, direction=-2.0):
    L = H = 2
    return HeadAnalysis(torch.zeros(L, H), torch.zeros(L, H), torch.ones(L, H), [(0, 0)], torch.zeros(L, H, 1),
                        [1, 2], top, random, base, direction, 10)


def test_verdict_is_honest():
    assert verdict(_fake([1.9, 1.8], [[1.9, 2.0], [1.7, 1.9]])).startswith("No small head set")
    assert verdict(_fake([1.0, -1.0], [[1.9, 2.0], [1.7, 1.9]])).startswith("A small head set")
    # Big drop but a random set does as well: not evidence for the ranking.
    assert verdict(_fake([0.5, -1.0], [[0.4, 2.0], [-1.5, 1.9]])).startswith("No small head set")


def test_verdict_needs_an_effect_to_explain():
    assert verdict(_fake([1.0, -1.0], [[1.9, 2.0], [1.7, 1.9]], base=2.0, direction=1.7)).startswith(
        "Ablating the refusal direction lowers the refusal score by only")
