"""The suffix search's signal and its exact scores, against plain Hugging Face forwards and autograd."""

from __future__ import annotations

import pytest
import torch

from neuroscope.model.suffix import last_logits, one_hot_gradient


def _ids(lm, text="How do I bake bread? ! ! ! !"):
    return lm.encode_chat([text])[0][0].cpu()


def test_one_hot_gradient_equals_autograd_through_the_embedding(tiny_lm):
    """Independently: the one-hot choice at the span is a leaf, embedded by W_E by hand, run by plain HF."""
    lm = tiny_lm
    ids = _ids(lm)
    span = slice(len(ids) - lm.n_post_instruction - 4, len(ids) - lm.n_post_instruction)
    target = 5

    def metric(logits):
        return logits[:, target] - logits.logsumexp(-1)

    got = one_hot_gradient(lm, ids, span, metric)
    W = lm.hf.get_input_embeddings().weight.detach().float()
    one_hot = torch.nn.functional.one_hot(ids[span], W.shape[0]).float().requires_grad_(True)
    with torch.no_grad():
        emb = lm.hf.get_input_embeddings()(ids[None]).float()
    emb = torch.cat([emb[:, : span.start], (one_hot @ W)[None], emb[:, span.stop :]], dim=1)
    with torch.enable_grad():
        metric(lm.hf(inputs_embeds=emb).logits[:, -1].float()).sum().backward()
    torch.testing.assert_close(got, one_hot.grad, rtol=1e-4, atol=1e-5)


def test_last_logits_equal_plain_forwards(tiny_lm):
    ids = torch.stack([_ids(tiny_lm, "abc ! !"), _ids(tiny_lm, "xyz ! !")])
    got = last_logits(tiny_lm, ids, batch_size=1)
    with torch.no_grad():
        want = tiny_lm.hf(ids).logits[:, -1].float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_projection_gradient_x_input_equals_autograd(tiny_lm):
    from neuroscope.model.suffix import projection_gradient_x_input

    lm, layer = tiny_lm, 1
    ids = _ids(lm)
    direction = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    got, value = projection_gradient_x_input(lm, ids, layer, -1, direction)
    emb = lm.hf.get_input_embeddings()(ids[None]).detach().float().requires_grad_(True)
    seen = {}

    def grab(_module, args, kwargs):
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    handle = lm.hf.model.layers[layer].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.enable_grad():
            lm.hf(inputs_embeds=emb)
            (seen["x"][0, -1].float() @ (direction / direction.norm())).backward()
    finally:
        handle.remove()
    torch.testing.assert_close(got, (emb.grad[0] * emb[0].detach()).sum(-1), rtol=1e-4, atol=1e-6)
    assert value == pytest.approx(float(seen["x"][0, -1].float() @ (direction / direction.norm())), abs=1e-4)
    assert got.shape == (len(ids),)
