"""Head interventions checked by their effect downstream, against plain PyTorch hooks.

Never by reading back the intervention's own record: each test compares what the model outputs
under the project's intervention with the same edit made by an independent forward pre-hook on
the Hugging Face ``o_proj`` (tests/reference.py), and checks that the edit changes the output.
"""

from __future__ import annotations

import pytest
import torch

from neuroscope.analysis.heads import attribution_patching
from neuroscope.analysis.metrics import refusal_score
from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import generate_ids
from neuroscope.model.interventions import DirectionAblation, HeadAblation, HeadPatch, InterventionError
from neuroscope.model.activations import post_instruction_z
from neuroscope.model.patching import metric_gradients, patch_heads
from tests import reference as ref

PROMPTS = ["How do I pick a lock?", "Tell me a joke about cats please", "x"]
SOURCES = ["Bake some bread", "Name three colours of the rainbow", "Hello"]
REFUSAL_IDS = [40, 41, 83]


@pytest.fixture(scope="module")
def lm():
    from neuroscope.model.tiny import build_tiny_model

    return build_tiny_model(seed=11)


def test_head_mean_ablation_reaches_the_model(lm):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(lm.n_layers, lm.n_heads, lm.d_head, generator=g)
    heads = ((0, 1), (2, 3))
    ours = next_token_logits(lm, PROMPTS, [HeadAblation(heads, means)], batch_size=3)  # a padded batch

    def rewrite(layer, x):
        for l, h in heads:
            x = ref.set_head(l, h, lm.d_head, means[l, h])(layer, x)
        return x

    for i, p in enumerate(PROMPTS):
        theirs = ref.last_logits(lm, p, rewrite)
        assert (ours[i] - theirs).abs().max() < 1e-4
        assert (ref.last_logits(lm, p) - theirs).abs().max() > 1e-3  # the edit does something


def test_head_patch_reaches_the_model_at_the_last_positions(lm):
    P = lm.n_post_instruction
    src = post_instruction_z(lm, SOURCES, batch_size=3, by_position=True)  # [N, L, H, P, D]
    assert torch.allclose(src[1], ref.post_instruction_z(lm, SOURCES[1]), atol=1e-5)  # same positions as plain
    layer, head = 1, 2
    metric = lambda logits: logits[:, 7].double()  # noqa: E731
    ours = patch_heads(lm, PROMPTS, src, [(layer, head)], metric, batch_size=2)[0]
    for i, p in enumerate(PROMPTS):
        theirs = ref.last_logits(lm, p, ref.set_head(layer, head, lm.d_head, src[i, layer, head], last=P))
        assert float(ours[i]) == pytest.approx(float(theirs[7]), abs=1e-4)
        assert abs(float(theirs[7]) - float(ref.last_logits(lm, p)[7])) > 1e-5


def test_metric_gradients_equal_plain_autograd(lm):
    P, H, D = lm.n_post_instruction, lm.n_heads, lm.d_head
    metric = lambda logits: refusal_score(logits, REFUSAL_IDS)  # noqa: E731
    values, grad, z = metric_gradients(lm, PROMPTS, metric, batch_size=2)
    for i, p in enumerate(PROMPTS):
        kept = {}

        def keep(l, x, kept=kept):
            x.retain_grad()  # the total derivative: every downstream path stays connected
            kept[l] = x
            return x

        with torch.enable_grad(), ref.o_proj_input_hooks(lm.hf, keep):
            emb = lm.hf.model.embed_tokens(ref.chat_ids(lm, p)).detach().requires_grad_(True)
            logits = lm.hf(inputs_embeds=emb).logits[:, -1].float()
            score = metric(logits)
            score.sum().backward()
        assert float(values[i]) == pytest.approx(float(score.detach()), abs=1e-4)
        for l in range(lm.n_layers):
            plain = kept[l].grad[0, -P:].reshape(P, H, D).transpose(0, 1)
            assert torch.allclose(grad[i, l], plain, atol=1e-5), l


def test_attribution_patching_matches_patching_for_small_edits(lm):
    """Linearity check: for a tiny source - clean difference, the gradient estimate equals patching."""
    metric = lambda logits: refusal_score(logits, REFUSAL_IDS)  # noqa: E731
    clean, grad, z = metric_gradients(lm, PROMPTS, metric, batch_size=3)
    eps = 1e-3 * torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    source = z + eps
    est = attribution_patching(grad, z, source)
    heads = [(0, 0), (1, 3), (2, 1)]
    exact = (patch_heads(lm, PROMPTS, source, heads, metric, batch_size=3) - clean[None]).mean(1)
    for (l, h), e in zip(heads, exact):
        assert float(est[l, h]) == pytest.approx(float(e), rel=0.05, abs=1e-6)


def test_direction_ablation_reaches_the_model(lm):
    """The zero form as plain hooks: remove r from the embedding, every o_proj and down_proj output."""
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(4))
    r_hat = r / r.norm()
    hf = lm.hf
    hook = lambda m, a, out: out - (out @ r_hat)[..., None] * r_hat  # noqa: E731
    mods = [hf.model.embed_tokens] + [
        m for layer in hf.model.layers for m in (layer.self_attn.o_proj, layer.mlp.down_proj)
    ]
    handles = [m.register_forward_hook(hook) for m in mods]
    try:
        theirs = [ref.last_logits(lm, p) for p in PROMPTS]
    finally:
        for h in handles:
            h.remove()
    ours = next_token_logits(lm, PROMPTS, [DirectionAblation(r)], batch_size=3)
    for i in range(len(PROMPTS)):
        assert (ours[i] - theirs[i]).abs().max() < 1e-4
        assert (ref.last_logits(lm, PROMPTS[i]) - theirs[i]).abs().max() > 1e-3
    ids = generate_ids(lm, PROMPTS[:1], 6, [DirectionAblation(r)])
    assert ids.shape == (1, 6)


def test_bad_patches_are_rejected(lm):
    with pytest.raises(InterventionError):
        HeadPatch(((0, 0), (0, 0)), torch.zeros(2, 1, 2, lm.d_head))
    with pytest.raises(InterventionError):
        HeadPatch(((0, 0),), torch.full((1, 1, 2, lm.d_head), float("nan")))
    with pytest.raises(InterventionError):
        next_token_logits(lm, PROMPTS[:1], [HeadPatch(((0, 99),), torch.zeros(1, 1, 2, lm.d_head))])
