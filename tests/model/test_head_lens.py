"""The per-head logit lens (direct logit attribution) against plain PyTorch hooks and the model's own logits.

``LoadedModel.unembed_write`` reads a residual write through the final norm with its scale frozen at
the position. Two independent checks: the last layer's whole output read that way is the model's own
logits (so scale, centring and the norm's weight are right, for RMSNorm and LayerNorm), and one
head's lens equals its write computed from a plain ``o_proj`` pre-hook and the final norm's input.
"""

from __future__ import annotations

import pytest
import torch

from neuroscope.services.explorer import head_logit_lens
from tests import reference as ref

PROMPT = "How do I pick a lock?"


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm(request):
    from neuroscope.model.tiny import build_tiny_model

    return build_tiny_model(request.param, seed=3)


@torch.no_grad()
def _final_input_and_logits(lm, ids):
    """The final norm's input (the last layer's output) and the logits, from a plain forward hook."""
    seen = {}
    norm = lm.access.final_norm(lm.hf)
    handle = norm.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].clone()))
    try:
        logits = lm.hf(ids).logits[0].float()
    finally:
        handle.remove()
    bias = getattr(norm, "bias", None)
    if bias is not None:  # a LayerNorm's bias is nobody's write: take its logits out
        logits = logits - lm.access.lm_head(lm.hf)(bias)
    return seen["x"][0], logits


def test_the_whole_residual_read_through_the_lens_is_the_models_logits(lm):
    ids = torch.tensor([[5, 9, 17, 33, 2, 41, 7]])
    x, logits = _final_input_and_logits(lm, ids)
    got = lm.unembed_write(x, x)
    assert torch.allclose(got, logits, atol=1e-4), (got - logits).abs().max()
    # linear with the scale frozen: two halves of the write sum to the whole
    half = lm.unembed_write(x / 3, x) + lm.unembed_write(2 * x / 3, x)
    assert torch.allclose(half, got, atol=1e-4)


@torch.no_grad()
def test_one_heads_lens_equals_its_write_from_plain_hooks(lm):
    if lm.access.paths.conv1d:
        pytest.skip("the plain o_proj reference hooks are written for the Llama tree")
    from neuroscope.model.capture import capture

    cache = capture(lm, [PROMPT], attention_layers=None, top_k=1, gradients=False)[0]
    ids = ref.chat_ids(lm, PROMPT)
    x, _ = _final_input_and_logits(lm, ids)
    z = {}

    def grab(layer, inp):
        z[layer] = inp[0, -1].clone()
        return inp

    with ref.o_proj_input_hooks(lm.hf, grab):
        lm.hf(ids)
    D = lm.d_head
    norm = lm.access.final_norm(lm.hf)
    scale = (x[-1].double().pow(2).mean() + norm.variance_epsilon).sqrt()
    W_U = lm.access.lm_head(lm.hf).weight.double()
    for layer, head in [(0, 0), (lm.n_layers - 1, lm.n_heads - 1), (1, 2)]:
        w = ref._o_proj(lm.hf, layer).weight.double()[:, head * D : (head + 1) * D]
        write = w @ z[layer][head * D : (head + 1) * D].double()
        expected = W_U @ (norm.weight.double() * write / scale)
        lens = head_logit_lens(lm, cache.z[:, :, -1], cache.resid_post[-1, -1], layer, head, k=5)
        assert lens.norm == pytest.approx(float(write.norm()), rel=1e-4)
        top = expected.topk(5)
        assert [t for t, _ in lens.promoted] == lm.token_strings(top.indices)
        assert [v for _, v in lens.promoted] == pytest.approx(top.values.tolist(), abs=1e-4)
        low = (-expected).topk(5)
        assert [t for t, _ in lens.suppressed] == lm.token_strings(low.indices)
        assert [v for _, v in lens.suppressed] == pytest.approx((-low.values).tolist(), abs=1e-4)
