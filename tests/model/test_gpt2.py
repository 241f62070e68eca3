"""The GPT-2 family through the same access map: Conv1D writers, learned positions, no chat template.

Capture invariants run in ``test_capture.py`` (the ``gpt2`` parameter); here interventions are
checked by their downstream effect against plain PyTorch hooks on the GPT-2 modules themselves.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import torch

from neuroscope.config import Settings
from neuroscope.services.explorer import analyze
from neuroscope.model.forward import token_run
from neuroscope.model.interventions import DirectionAblation, HeadAblation
from neuroscope.model.orthogonalize import WeightEdit, WeightEditError, orthogonalized_copy
from neuroscope.model.tiny import build_tiny_model


@pytest.fixture(scope="module")
def gpt2():
    return build_tiny_model("gpt2", seed=4, n_layers=3, n_heads=4)


def _ids(gpt2):
    return torch.tensor([[5, 77, 120, 33, 90, 5, 77, 120, 33, 90, 61]])


def _plain_loss(hf, ids):
    with torch.no_grad():
        logp = hf(ids).logits[:, :-1].float().log_softmax(-1)
    return -logp.gather(-1, ids[:, 1:, None])[..., 0]


def test_head_ablation_equals_plain_c_proj_hooks(gpt2):
    means = torch.randn(gpt2.n_layers, gpt2.n_heads, gpt2.d_head)
    heads = ((0, 1), (2, 3))
    ours = token_run(gpt2, _ids(gpt2), [HeadAblation(heads=heads, means=means)])["loss"]
    D = gpt2.d_head

    def pre(layer):
        def hook(module, args):
            x = args[0].clone()
            for l, h in heads:
                if l == layer:
                    x[..., h * D : (h + 1) * D] = means[l, h]
            return (x,)

        return hook

    with ExitStack() as stack:
        for l, block in enumerate(gpt2.hf.transformer.h):
            handle = block.attn.c_proj.register_forward_pre_hook(pre(l))
            stack.callback(handle.remove)
        reference = _plain_loss(gpt2.hf, _ids(gpt2))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert (ours - _plain_loss(gpt2.hf, _ids(gpt2))).abs().max() > 1e-3  # the ablation did change something


def test_direction_ablation_equals_plain_projection_hooks(gpt2):
    r = torch.randn(gpt2.d_model)
    u = r / r.norm()
    ours = token_run(gpt2, _ids(gpt2), [DirectionAblation(r)])["loss"]

    def remove(x):
        return x - (x @ u)[..., None] * u

    with ExitStack() as stack:
        for block in gpt2.hf.transformer.h:
            for handle in (
                block.register_forward_pre_hook(lambda m, a: (remove(a[0]),) + a[1:]),
                block.attn.c_proj.register_forward_hook(lambda m, a, out: remove(out)),
                block.mlp.register_forward_hook(lambda m, a, out: remove(out)),
            ):
                stack.callback(handle.remove)
        reference = _plain_loss(gpt2.hf, _ids(gpt2))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert (ours - _plain_loss(gpt2.hf, _ids(gpt2))).abs().max() > 1e-3


def test_plain_prompts_run_through_the_explorer(gpt2):
    result = analyze(gpt2, "The capital of France is", Settings(model="demo"), max_new_tokens=3)
    assert result.cache.tokens == [
        gpt2.tokenizer.decode([i]) for i in gpt2.tokenizer("The capital of France is")["input_ids"]
    ]
    assert result.cache.n_post_instruction == 1 and result.head_norms.shape == (3, 4)


def test_weight_edits_are_refused_with_a_reason(gpt2):
    with pytest.raises(WeightEditError, match="Conv1D"):
        orthogonalized_copy(gpt2, torch.randn(gpt2.d_model), WeightEdit())
