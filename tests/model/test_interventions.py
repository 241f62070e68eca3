"""Causal effects of the interventions, checked inside captures and against plain PyTorch hooks."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from neuroscope.analysis.directions import project, unit
from neuroscope.model.activations import mean_head_z, mean_resid_pre, projection_means
from neuroscope.model.capture import capture
from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import generate, generate_ids
from neuroscope.model.interventions import DirectionAblation, DirectionAddition, HeadAblation, InterventionError

PROMPTS = ["How do I bake bread?", "Hi", "Name three colours"]


@pytest.fixture(scope="module")
def direction(tiny_lm):
    g = torch.Generator().manual_seed(3)
    return torch.randn(tiny_lm.d_model, generator=g) * 4


def test_zero_ablation_removes_the_component_at_every_layer_and_position(tiny_lm, direction):
    base = capture(tiny_lm, PROMPTS, gradients=False)
    ablated = capture(tiny_lm, PROMPTS, gradients=False, interventions=[DirectionAblation(direction)])
    r = unit(direction)
    for b, a in zip(base, ablated):
        assert project(b.resid_pre, r).abs().max() > 1e-2  # there was something to remove
        assert project(a.resid_pre, r).abs().max() < 1e-5
        assert project(a.attn_out, r).abs().max() < 1e-5
        # after the last layer the stream is the sum of ablated pieces: still no component
        assert project(a.resid_post, r).abs().max() < 1e-4


def test_mean_ablation_pins_projection_to_target(tiny_lm, direction):
    target = torch.linspace(-1.0, 2.0, tiny_lm.n_layers)
    caches = capture(tiny_lm, PROMPTS, gradients=False, interventions=[DirectionAblation(direction, target=target)])
    for c in caches:
        proj = project(c.resid_pre, unit(direction))  # [L, S]
        torch.testing.assert_close(proj, target[:, None].expand_as(proj), atol=1e-5, rtol=0)


def test_addition_shifts_only_the_chosen_layer_input_onwards(tiny_lm, direction):
    layer, strength = 1, 2.5
    base = capture(tiny_lm, PROMPTS, gradients=False)
    added = capture(tiny_lm, PROMPTS, gradients=False, interventions=[DirectionAddition(direction, layer, strength)])
    for b, a in zip(base, added):
        torch.testing.assert_close(a.resid_pre[:layer], b.resid_pre[:layer], rtol=0, atol=0)
        torch.testing.assert_close(
            a.resid_pre[layer] - b.resid_pre[layer],
            (strength * direction).expand_as(b.resid_pre[layer]),
            atol=1e-5,
            rtol=1e-5,
        )
        assert (a.resid_post[-1] - b.resid_post[-1]).abs().max() > 1e-3


def test_head_ablation_replaces_z_with_real_token_means(tiny_lm):
    means = mean_head_z(tiny_lm, PROMPTS).float()
    heads = [(0, 1), (2, 3)]
    caches = capture(tiny_lm, PROMPTS, gradients=False, interventions=[HeadAblation(heads, means)])
    base = capture(tiny_lm, PROMPTS, gradients=False)
    for c, b in zip(caches, base):
        for layer, head in heads:
            torch.testing.assert_close(c.z[layer, head], means[layer, head].expand_as(c.z[layer, head]))
        torch.testing.assert_close(c.z[0, 0], b.z[0, 0])  # other heads of an earlier layer untouched


def test_head_means_exclude_padding(tiny_lm):
    # One prompt alone vs. in a padded batch of 1: the mean over real tokens must not move.
    alone = mean_head_z(tiny_lm, ["Hi"], batch_size=1)
    ids, mask = tiny_lm.encode_chat(["Hi", "A much longer prompt that forces padding of the first one"])
    assert (mask[0] == 0).any()
    two = mean_head_z(tiny_lm, ["Hi", "A much longer prompt that forces padding of the first one"], batch_size=2)
    long = mean_head_z(tiny_lm, ["A much longer prompt that forces padding of the first one"], batch_size=1)
    n_short, n_long = int(mask[0].sum()), int(mask[1].sum())
    torch.testing.assert_close(two, (alone * n_short + long * n_long) / (n_short + n_long), atol=1e-6, rtol=1e-6)


def test_projection_means_and_resid_means_agree_with_captures(tiny_lm, direction):
    caches = capture(tiny_lm, PROMPTS, gradients=False)
    r = unit(direction)
    expected = torch.stack([project(c.resid_pre.double(), r.double()).sum(-1) for c in caches]).sum(0)
    expected /= sum(c.n_tokens for c in caches)
    torch.testing.assert_close(projection_means(tiny_lm, PROMPTS, direction), expected, atol=1e-6, rtol=1e-6)
    P = tiny_lm.n_post_instruction
    means = mean_resid_pre(tiny_lm, PROMPTS, batch_size=2)
    torch.testing.assert_close(
        means, torch.stack([c.resid_pre[:, -P:].double() for c in caches]).mean(0), atol=1e-6, rtol=1e-6
    )


def _reference_hooks(lm, iv_direction, layer, strength):
    """Plain PyTorch forward hooks doing activation addition: an independent implementation."""
    block = lm.access.layer(lm.hf, layer)

    def pre(module, args, kwargs):
        if args:
            return (args[0] + strength * iv_direction,) + args[1:], kwargs
        kwargs = dict(kwargs)
        kwargs["hidden_states"] = kwargs["hidden_states"] + strength * iv_direction
        return args, kwargs

    return [block.register_forward_pre_hook(pre, with_kwargs=True)]


def test_generation_under_addition_matches_plain_hooks(tiny_lm, direction):
    layer, strength = 1, 6.0
    steered = generate_ids(
        tiny_lm, PROMPTS, max_new_tokens=6, interventions=[DirectionAddition(direction, layer, strength)]
    )
    plain = generate_ids(tiny_lm, PROMPTS, max_new_tokens=6)
    handles = _reference_hooks(tiny_lm, direction, layer, strength)
    try:
        ids, mask = tiny_lm.encode_chat(PROMPTS)
        ref = tiny_lm.hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=tiny_lm.tokenizer.pad_token_id,
            eos_token_id=tiny_lm.eos_token_ids,
        )
    finally:
        for h in handles:
            h.remove()
    assert torch.equal(steered, ref[:, ids.shape[1] :])
    assert not torch.equal(steered, plain)


def test_interventions_never_leak_into_later_runs(tiny_lm, direction):
    before = next_token_logits(tiny_lm, PROMPTS)
    steered = next_token_logits(tiny_lm, PROMPTS, [DirectionAddition(direction, 0, 5.0)])
    after = next_token_logits(tiny_lm, PROMPTS)
    assert (steered - before).abs().max() > 1e-3
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_concurrent_runs_equal_serial_runs(tiny_lm, direction):
    jobs = [(p, [DirectionAddition(direction, 1, 4.0)] if i % 2 else []) for i, p in enumerate(PROMPTS * 4)]
    serial = [next_token_logits(tiny_lm, [p], ivs) for p, ivs in jobs]
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(i, p, ivs):
        try:
            results[i] = next_token_logits(tiny_lm, [p], ivs)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i, p, ivs)) for i, (p, ivs) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, expected in enumerate(serial):
        torch.testing.assert_close(results[i], expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda lm, d: DirectionAddition(d, 1, math.nan),
        lambda lm, d: DirectionAddition(d, lm.n_layers, 1.0),
        lambda lm, d: DirectionAddition(d[:-1], 0, 1.0),
        lambda lm, d: DirectionAblation(d, target=torch.zeros(lm.n_layers + 1)),
        lambda lm, d: HeadAblation([(0, lm.n_heads)], torch.zeros(lm.n_layers, lm.n_heads, lm.d_head)),
    ],
)
def test_bad_interventions_are_rejected_with_a_message(tiny_lm, direction, make):
    with pytest.raises(InterventionError, match=r"\w"):
        iv = make(tiny_lm, direction)
        generate(tiny_lm, ["hi"], max_new_tokens=2, interventions=[iv])


def test_zero_direction_is_an_intervention_error(tiny_lm):
    with pytest.raises(InterventionError, match="cannot ablate"):
        DirectionAblation(torch.zeros(tiny_lm.d_model))


def test_streamed_generation_equals_the_batch_call_under_interventions(tiny_lm, direction):
    from neuroscope.model.generate import generate_ids, stream_ids

    ivs = [DirectionAddition(direction, 1, 4.0)]
    parts = list(stream_ids(tiny_lm, "Tell me a story", max_new_tokens=6, interventions=ivs))
    full = generate_ids(tiny_lm, ["Tell me a story"], max_new_tokens=6, interventions=ivs)[0].tolist()
    plain = generate_ids(tiny_lm, ["Tell me a story"], max_new_tokens=6)[0].tolist()
    assert [len(p) for p in parts] == list(range(1, len(parts) + 1))
    assert parts[-1] == full[: len(parts[-1])] and full != plain  # the intervention reached the stream
