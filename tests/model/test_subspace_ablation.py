"""SubspaceAblation inside the model equals plain PyTorch hooks that remove the same span (numpy least squares
on the raw, non-orthogonal vectors) from every block input and every attention and MLP output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import generate
from neuroscope.model.interventions import DirectionAblation, InterventionError, SubspaceAblation
from tests.reference import chat_ids

PROMPTS = ["How do I bake bread?", "Tell me a story about a dragon"]


def _project_out(x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    A = raw.double().numpy().T
    flat = x.detach().double().reshape(-1, x.shape[-1]).numpy()
    coef, *_ = np.linalg.lstsq(A, flat.T, rcond=None)
    return torch.from_numpy(flat - (A @ coef).T).reshape(x.shape).to(x.dtype)


@torch.no_grad()
def _hooked_logits(lm, prompt: str, raw: torch.Tensor) -> torch.Tensor:
    hf = lm.hf
    handles = []
    for block in hf.model.layers:
        handles.append(
            block.register_forward_pre_hook(
                lambda m, args, kwargs: (
                    ((_project_out(args[0], raw), *args[1:]), kwargs)
                    if args
                    else (args, {**kwargs, "hidden_states": _project_out(kwargs["hidden_states"], raw)})
                ),
                with_kwargs=True,
            )
        )
        for module in (block.self_attn, block.mlp):
            handles.append(
                module.register_forward_hook(
                    lambda m, args, out: (
                        (_project_out(out[0], raw), *out[1:]) if isinstance(out, tuple) else _project_out(out, raw)
                    )
                )
            )
    try:
        return hf(chat_ids(lm, prompt)).logits[0, -1].float()
    finally:
        for h in handles:
            h.remove()


def test_subspace_ablation_equals_plain_hooks(tiny_lm):
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(3, tiny_lm.d_model, generator=g)
    raw[2] = raw[0] + 0.3 * raw[1] + 0.2 * raw[2]  # non-orthogonal: the intervention must orthonormalise
    got = next_token_logits(tiny_lm, PROMPTS, [SubspaceAblation(raw)])
    for i, p in enumerate(PROMPTS):
        torch.testing.assert_close(got[i], _hooked_logits(tiny_lm, p, raw), rtol=1e-4, atol=1e-4)
    plain = next_token_logits(tiny_lm, PROMPTS)
    assert (got - plain).abs().max() > 1e-3  # the ablation changed something


def test_one_dimension_is_direction_ablation(tiny_lm):
    r = torch.randn(tiny_lm.d_model, generator=torch.Generator().manual_seed(1))
    a = generate(tiny_lm, PROMPTS, 6, [SubspaceAblation(r[None])])
    b = generate(tiny_lm, PROMPTS, 6, [DirectionAblation(r)])
    assert a == b
    torch.testing.assert_close(
        next_token_logits(tiny_lm, PROMPTS, [SubspaceAblation(3 * r[None])]),
        next_token_logits(tiny_lm, PROMPTS, [DirectionAblation(r)]),
        rtol=1e-5,
        atol=1e-5,
    )


def test_bad_subspaces_are_intervention_errors(tiny_lm):
    with pytest.raises(InterventionError, match="adds no dimension"):
        SubspaceAblation(torch.zeros(2, tiny_lm.d_model))
    with pytest.raises(InterventionError, match="the model needs"):
        next_token_logits(tiny_lm, PROMPTS[:1], [SubspaceAblation(torch.randn(1, tiny_lm.d_model + 1))])
