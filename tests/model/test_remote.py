"""Remote execution (NDIF): every trace the engine runs is remote-compatible, proven offline.

nnsight's ``remote="local"`` serializes each trace exactly as a request to NDIF would be, then
deserializes it with this project's modules hidden (as on a server that does not have them) and
runs it: a trace that references a local-only object (the model wrapper with its lock, an
unshipped function) fails there as it would remotely. Each path must give the same numbers as a
plain local run. What cannot be proven here (no network): a real NDIF round trip.
"""

from __future__ import annotations

import pytest
import torch

from neuroscope.model.interventions import DirectionAblation, DirectionAddition, HeadAblation
from neuroscope.model.loader import RemoteUnavailable, check_remote, register_for_remote

PROMPTS = ["How do I bake bread?", "Hi", "Tell me a story about a dragon"]


@pytest.fixture()
def pair():
    """The same tiny model twice: one tracing here, one through the simulated remote path."""
    from neuroscope.model.tiny import build_tiny_model

    register_for_remote()
    here, there = build_tiny_model(seed=4), build_tiny_model(seed=4)
    there.remote = "local"
    return here, there


def _ivs(lm):
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    return [
        DirectionAblation(r, target=torch.linspace(-1, 1, lm.n_layers)),
        DirectionAddition(r, 1, 0.5),
        HeadAblation(((0, 1),), torch.zeros(lm.n_layers, lm.n_heads, lm.d_head)),
    ]


def test_forward_generation_statistics_and_capture_run_remotely(pair):
    from neuroscope.model.activations import mean_resid_pre, post_instruction_z
    from neuroscope.model.capture import capture
    from neuroscope.model.forward import next_token_logits
    from neuroscope.model.generate import generate_ids

    here, there = pair
    ivs = _ivs(here)
    assert torch.allclose(next_token_logits(here, PROMPTS, ivs), next_token_logits(there, PROMPTS, ivs), atol=1e-5)
    assert torch.equal(generate_ids(here, PROMPTS, 5, ivs), generate_ids(there, PROMPTS, 5, ivs))
    assert torch.allclose(mean_resid_pre(here, PROMPTS), mean_resid_pre(there, PROMPTS), atol=1e-6)
    assert torch.allclose(
        post_instruction_z(here, PROMPTS, by_position=True),
        post_instruction_z(there, PROMPTS, by_position=True),
        atol=1e-6,
    )
    a, b = capture(here, PROMPTS[:2], top_k=3), capture(there, PROMPTS[:2], top_k=3)
    for x, y in zip(a, b):
        assert torch.allclose(x.resid_post, y.resid_post, atol=1e-5) and torch.allclose(x.z, y.z, atol=1e-5)
        assert torch.allclose(x.importance, y.importance, atol=1e-5) and x.lens_tokens == y.lens_tokens
        assert sorted(x.attention) == sorted(y.attention)


def test_patching_gradients_and_completion_loss_run_remotely(pair):
    from neuroscope.analysis.metrics import refusal_score
    from neuroscope.model.activations import post_instruction_z
    from neuroscope.model.orthogonalize import completion_loss
    from neuroscope.model.patching import metric_gradients, patch_heads

    here, there = pair
    metric = lambda logits: refusal_score(logits, [40, 41])  # noqa: E731
    src = post_instruction_z(here, PROMPTS[::-1], by_position=True)
    assert torch.allclose(
        patch_heads(here, PROMPTS, src, [(1, 2)], metric), patch_heads(there, PROMPTS, src, [(1, 2)], metric), atol=1e-5
    )
    for x, y in zip(metric_gradients(here, PROMPTS, metric), metric_gradients(there, PROMPTS, metric)):
        assert torch.allclose(x, y, atol=1e-5)
    answers = ["Mix flour.", "Hello!", "Once upon a time"]
    assert torch.allclose(completion_loss(here, PROMPTS, answers), completion_loss(there, PROMPTS, answers), atol=1e-5)


def test_remote_needs_an_api_key(monkeypatch):
    from nnsight.schema.config import CONFIG

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    with pytest.raises(RemoteUnavailable, match="NDIF_API_KEY"):
        check_remote(True)
    check_remote("local")  # the simulation needs none
    monkeypatch.setenv("NDIF_API_KEY", "k")
    check_remote(True)


def test_views_that_need_local_weights_say_so_in_remote_mode():
    from neuroscope.model.capture import _logit_lens
    from neuroscope.model.orthogonalize import orthogonalize_weights
    from neuroscope.model.tiny import build_tiny_model

    lm = build_tiny_model(seed=1)
    lm.remote = True  # as load_remote leaves it: a weightless skeleton here, traces on NDIF
    resid = [torch.zeros(1, 2, lm.d_model)]
    for call in (
        lambda: lm.o_proj_weight(0),
        lambda: _logit_lens(lm, resid, 3),
        lambda: orthogonalize_weights(lm, torch.ones(lm.d_model)),
    ):
        with pytest.raises(RemoteUnavailable, match="weights on this machine"):
            call()
