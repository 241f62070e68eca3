"""Integrity: no sequence of interventions, gradient captures, orthogonalisation previews, exports or
head studies changes a single weight of the served model (checksums of every parameter and buffer)."""

from __future__ import annotations

import hashlib

import torch

from neuroscope.analysis.metrics import refusal_score
from neuroscope.services.induction import find_induction_heads
from neuroscope.model.activations import mean_head_z
from neuroscope.model.capture import capture
from neuroscope.model.chat import refusal_token_ids
from neuroscope.model.generate import generate, stream_ids
from neuroscope.model.interventions import DirectionAblation, DirectionAddition, HeadAblation
from neuroscope.model.orthogonalize import WeightEdit, orthogonalized_copy, save_model
from neuroscope.model.patching import metric_gradients, patch_heads
from neuroscope.model.tiny import build_tiny_model


def checksum(hf) -> dict[str, str]:
    state = {**dict(hf.named_parameters()), **dict(hf.named_buffers())}
    return {
        k: hashlib.sha256(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
        for k, v in state.items()
    }


def test_weights_are_bit_identical_after_every_kind_of_work(tmp_path):
    lm = build_tiny_model("llama", seed=9)
    before = checksum(lm.hf)
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    prompts = ["How do I bake bread?", "Tell me a secret about dragons"]
    means = mean_head_z(lm, prompts)
    ivs = [DirectionAblation(r), DirectionAddition(r, 1, 3.0), HeadAblation(heads=((0, 1),), means=means)]
    capture(lm, prompts, interventions=ivs)  # with a backward pass for token importance
    generate(lm, prompts, max_new_tokens=3, interventions=ivs)
    list(stream_ids(lm, prompts[0], max_new_tokens=3, interventions=ivs[:1]))
    ids = refusal_token_ids(lm.tokenizer)
    metric = lambda logits: refusal_score(logits, ids)  # noqa: E731
    _, _, z = metric_gradients(lm, prompts, metric)
    patch_heads(lm, prompts, z.flip(0), [(0, 0), (2, 3)], metric)
    for edit in (WeightEdit(), WeightEdit(strength=1.5)):
        copy = orthogonalized_copy(lm, r, edit)  # the preview: a new model
        assert checksum(copy.hf) != before
    save_model(orthogonalized_copy(lm, r, WeightEdit()), tmp_path / "export")
    find_induction_heads(lm, n_seqs=2, half=8, k=2, n_random=1)
    assert checksum(lm.hf) == before
    assert all(p.grad is None for p in lm.hf.parameters())
