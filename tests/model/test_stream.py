"""The submit's one forward pass and every view computed on demand from it (#30).

Each on-demand view is held equal to the eager full capture (``capture.capture``, itself checked against
plain Hugging Face hidden states in test_capture.py), with and without interventions, on tiny models of
every family, the demo model and the 2-layer real-width Llama-3.2-3B stand-in. Hooks count which modules
run, so a view that quietly runs the whole model fails too.
"""

from __future__ import annotations

import pytest
import torch

from neuroscope.model import _compat  # noqa: F401
from neuroscope.config import Settings
from neuroscope.services.explorer import analyze
from neuroscope.model.capture import capture
from neuroscope.model.interventions import DirectionAblation, DirectionAddition, HeadAblation
from neuroscope.model.stream import capture_stream, gradient_x_input, layer_attention, lens_topk, stream_dtype
from neuroscope.model.tiny import build_tiny_model

PROMPT = "Tell me a story about a dragon and a knight who meet at the river."


@pytest.fixture(scope="module", params=["llama", "qwen2", "mistral", "gpt2", "demo", "llama-3.2-3b-standin"])
def lm(request):
    if request.param == "llama-3.2-3b-standin":  # every real width, 2 layers, Meta's tokenizer and template
        return request.getfixturevalue("standin")
    if request.param == "demo":
        from neuroscope.model import load_model

        return load_model("demo")
    return build_tiny_model(request.param, seed=1)


def _interventions(lm):
    gen = torch.Generator().manual_seed(3)
    r = torch.randn(lm.d_model, generator=gen)
    means = torch.randn(lm.n_layers, lm.n_heads, lm.d_head, generator=gen)
    return {
        "none": (),
        "direction ablated": (DirectionAblation(r),),
        "direction added": (DirectionAddition(r, lm.n_layers // 2, 4.0),),
        "head ablated": (HeadAblation(heads=((lm.n_layers - 1, 1), (0, 0)), means=means),),
    }


@pytest.fixture(scope="module")
def pairs(lm):
    """Per intervention: (the eager full capture, the submit's cache)."""
    return {
        name: (capture(lm, [PROMPT], interventions=ivs)[0], capture_stream(lm, PROMPT, interventions=ivs))
        for name, ivs in _interventions(lm).items()
    }


def test_the_submit_keeps_the_stream_the_heads_tail_and_the_logits(lm, pairs):
    for name, (full, cache) in pairs.items():
        assert cache.stream.dtype == torch.float32, name  # small prompts stay in the model's precision
        torch.testing.assert_close(cache.trajectory(), full.trajectory(), rtol=0, atol=0, msg=name)
        P = cache.z_tail.shape[2]
        assert P == min(full.n_tokens, lm.n_post_instruction)
        torch.testing.assert_close(cache.z_tail, full.z[:, :, -P:], rtol=0, atol=0, msg=name)
        # the submit unembeds the last position alone (logits_to_keep=1): equal up to the matmul's rounding
        torch.testing.assert_close(cache.last_logits, full.last_logits, rtol=1e-5, atol=1e-5, msg=name)
        assert cache.tokens == full.tokens and cache.target_id == full.target_id


def test_the_lens_on_demand_equals_the_full_capture(lm, pairs):
    for name, (full, cache) in pairs.items():
        n, k = full.lens_ids.shape[1], full.lens_ids.shape[2]
        positions = list(range(cache.n_tokens - n, cache.n_tokens))
        probs, ids = lens_topk(lm, cache, range(lm.n_layers), positions, k)
        assert torch.equal(ids, full.lens_ids), name
        torch.testing.assert_close(probs, full.lens_probs, rtol=1e-5, atol=1e-7, msg=name)
        # one layer and one position, read on their own, are the same numbers
        layer, pos = lm.n_layers // 2, positions[len(positions) // 2]
        one_probs, one_ids = lens_topk(lm, cache, [layer], [pos], k)
        assert torch.equal(one_ids[0, 0], full.lens_ids[layer, pos - positions[0]])


def test_one_layers_attention_on_demand_equals_the_full_capture(lm, pairs):
    for name, (full, cache) in pairs.items():
        for layer in range(lm.n_layers):
            got = layer_attention(lm, cache, layer)
            torch.testing.assert_close(got, full.attention[layer], rtol=1e-5, atol=1e-6, msg=f"{name}, layer {layer}")


def test_gradient_x_input_on_demand_equals_the_full_capture(lm, pairs):
    for name, (full, cache) in pairs.items():
        scale = float(full.importance.abs().max())
        got = gradient_x_input(lm, cache)
        torch.testing.assert_close(got, full.importance, rtol=1e-5, atol=1e-5 * scale, msg=name)


def _counting(lm):
    """Forward pre-hooks counting each layer's attention module's runs: ``(counts, remove)``."""
    counts = [0] * lm.n_layers
    handles = []
    for layer in range(lm.n_layers):

        def hook(module, args, kwargs, layer=layer):
            counts[layer] += 1

        handles.append(lm.access.attn(lm.hf, layer).register_forward_pre_hook(hook, with_kwargs=True))
    return counts, lambda: [h.remove() for h in handles]


def test_a_layers_attention_runs_that_layer_alone(lm, pairs):
    _, cache = pairs["none"]
    layer = lm.n_layers - 1
    counts, remove = _counting(lm)
    try:
        layer_attention(lm, cache, layer)
    finally:
        remove()
    assert counts == [0] * layer + [1]  # earlier layers skipped (their outputs are the cache), none after


def test_a_submit_computes_no_view_and_each_view_is_computed_once(tiny_lm):
    lm = tiny_lm
    result = analyze(lm, PROMPT, Settings(max_new_tokens=1))
    assert result.views.nbytes == 0 and not list(result.views._items)
    counts, remove = _counting(lm)
    try:
        first = result.attention(lm, 1)
        again = result.attention(lm, 1)
        result.lens(lm, [result.cache.n_tokens - 1], 3)
        result.pca()
    finally:
        remove()
    assert again is first and counts == [0, 1, 0]  # the second look is the memo's
    assert ("attention", 1) in result.views and result.views.nbytes > 0


def test_the_memo_keeps_the_most_recent_views_within_its_bytes(tiny_lm):
    from neuroscope.services.explorer import ViewMemo

    memo = ViewMemo(max_bytes=3 * 400)
    for i in range(5):
        memo.get(i, lambda: torch.zeros(100))  # 400 bytes each
    assert [k for k in memo._items] == [2, 3, 4] and memo.nbytes == 1200
    memo.get(2, lambda: pytest.fail("recomputed a memoised view"))
    memo.get(5, lambda: torch.zeros(100))
    assert [k for k in memo._items] == [4, 2, 5]  # 2 was used last, so 3 went first


def test_a_long_stream_is_kept_in_bfloat16_and_the_views_stay_close(tiny_lm):
    lm = tiny_lm
    full = capture(lm, [PROMPT])[0]
    cache = capture_stream(lm, PROMPT, budget_mb=0)
    assert cache.stream.dtype == torch.bfloat16 and stream_dtype(lm, 10, budget_mb=1) == torch.float32
    small = capture_stream(lm, PROMPT)
    assert cache.nbytes < small.nbytes - small.stream.numel() * 2 + 64  # two bytes per value, not four
    torch.testing.assert_close(cache.trajectory(), full.trajectory(), rtol=1e-2, atol=1e-2)
    for layer in range(lm.n_layers):
        torch.testing.assert_close(layer_attention(lm, cache, layer), full.attention[layer], rtol=0, atol=2e-2)
