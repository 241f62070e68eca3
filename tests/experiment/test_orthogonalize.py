"""Weight edits equal their hooks and independent references; export loads in plain transformers; completion loss."""

from __future__ import annotations

import pytest
import torch

from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import generate_ids
from neuroscope.model.interventions import DirectionAblation, InterventionError
from neuroscope.model.orthogonalize import WeightEdit, WeightEditError, completion_loss, orthogonalized_copy, save_model
from neuroscope.model.tiny import build_tiny_model

PROMPTS = ["How do I bake bread?", "Tell me a joke", "x", "Explain photosynthesis in one sentence please"]


@pytest.fixture(scope="module")
def setup():
    lm = build_tiny_model(seed=3)
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(1))
    return lm, r, orthogonalized_copy(lm, r)


def test_orthogonalised_weights_equal_hook_ablation(setup):
    lm, r, edited = setup
    hook = generate_ids(lm, PROMPTS, max_new_tokens=12, interventions=[DirectionAblation(r)])
    weights = generate_ids(edited, PROMPTS, max_new_tokens=12)
    assert torch.equal(hook, weights)
    a = next_token_logits(lm, PROMPTS, [DirectionAblation(r)])
    b = next_token_logits(edited, PROMPTS)
    assert (a - b).abs().max() < 1e-4
    assert (a - next_token_logits(lm, PROMPTS)).abs().max() > 1e-3  # the edit does something


def test_original_untouched_and_embeddings_untied(setup):
    lm, r, edited = setup
    assert lm.hf.lm_head.weight.data_ptr() == lm.hf.model.embed_tokens.weight.data_ptr()  # tiny is tied
    assert edited.hf.lm_head.weight.data_ptr() != edited.hf.model.embed_tokens.weight.data_ptr()
    assert torch.equal(edited.hf.lm_head.weight, lm.hf.lm_head.weight)  # unembedding not edited
    r_hat = r / r.norm()
    assert (edited.hf.model.embed_tokens.weight @ r_hat).abs().max() < 1e-5
    assert (lm.hf.model.embed_tokens.weight @ r_hat).abs().max() > 1e-3


def test_export_round_trip(setup, tmp_path):
    from neuroscope.model import load_model

    _, _, edited = setup
    save_model(edited, tmp_path / "m")
    back = load_model(str(tmp_path / "m"))
    assert not back.hf.config.tie_word_embeddings
    assert (next_token_logits(back, PROMPTS) - next_token_logits(edited, PROMPTS)).abs().max() < 1e-5


def test_completion_loss_matches_plain_forward(setup):
    lm, r, edited = setup
    completions = ["Mix flour and water.", "Why did the chicken cross?", "", "Plants make sugar."]
    ce = completion_loss(lm, PROMPTS, completions, batch_size=3)
    for i, (p, c) in enumerate(zip(PROMPTS, completions)):
        if not c:
            assert torch.isnan(ce[i])
            continue
        ids, _ = lm.encode_chat([p])
        comp = torch.tensor(lm.tokenizer.encode(c, add_special_tokens=False))
        logits = lm.hf(torch.cat([ids[0], comp])[None]).logits[0].float()
        ref = torch.nn.functional.cross_entropy(logits[-len(comp) - 1 : -1], comp)
        assert float(ce[i]) == pytest.approx(float(ref), abs=1e-4)
    hooked = completion_loss(lm, PROMPTS, completions, [DirectionAblation(r)])
    baked = completion_loss(edited, PROMPTS, completions)
    assert torch.allclose(hooked, baked, atol=1e-4, equal_nan=True)


# --------------------------------------------------------------------------- strength and the mean form


def _plain_scaled_writes(hf, r_hat, lam):
    """Independent reference: plain PyTorch forward hooks that scale every residual-stream write's
    component along r_hat by (1 - lam) (embedding, every o_proj and down_proj)."""

    def hook(_module, _inputs, out):
        return out - lam * (out @ r_hat)[..., None] * r_hat

    modules = [hf.model.embed_tokens] + [
        m for layer in hf.model.layers for m in (layer.self_attn.o_proj, layer.mlp.down_proj)
    ]
    return [m.register_forward_hook(hook) for m in modules]


@pytest.mark.parametrize("lam", [0.5, 1.5])
def test_strength_edit_equals_plain_pytorch_hooks(setup, lam):
    lm, r, _ = setup
    edited = orthogonalized_copy(lm, r, WeightEdit("zero", lam))
    r_hat = r / r.norm()
    for prompt in PROMPTS:
        ids, _ = lm.encode_chat([prompt])
        handles = _plain_scaled_writes(lm.hf, r_hat, lam)
        try:
            ref_logits = lm.hf(ids).logits[0]
            ref_ids = lm.hf.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
        finally:
            for h in handles:
                h.remove()
        assert (edited.hf(ids).logits[0] - ref_logits).abs().max() < 1e-4
        got = edited.hf.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
        assert torch.equal(got, ref_ids)
    # ... and the project's hook form of the same edit (a padded batch through nnsight) agrees
    hook = generate_ids(lm, PROMPTS, max_new_tokens=12, interventions=[DirectionAblation(r, strength=lam)])
    assert torch.equal(hook, generate_ids(edited, PROMPTS, max_new_tokens=12))
    assert (next_token_logits(edited, PROMPTS) - next_token_logits(setup[2], PROMPTS)).abs().max() > 1e-3  # not λ = 1


def test_mean_form_export_is_exact_and_loads_in_plain_transformers(setup, tmp_path):
    from transformers import AutoModelForCausalLM

    lm, r, zero_edited = setup
    target = torch.linspace(-2.0, 3.0, lm.n_layers)
    edited = orthogonalized_copy(lm, r, WeightEdit("mean"), target)
    save_model(edited, tmp_path / "m")
    plain = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m")).eval()  # no project code
    assert plain.config.neuroscope_edit["form"] == "mean" and plain.config.neuroscope_edit["strength"] == 1.0
    r_hat = r / r.norm()
    hooks = [DirectionAblation(r, target=target)]
    for prompt in PROMPTS:
        ids, _ = lm.encode_chat([prompt])
        with torch.no_grad():
            out = plain(ids, output_hidden_states=True)
        # independent of every hook: each layer's input sits at its target, at every position
        for layer in range(lm.n_layers):
            proj = out.hidden_states[layer][0] @ r_hat
            assert torch.allclose(proj, torch.full_like(proj, float(target[layer])), atol=1e-4), layer
        got = plain.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
        want = generate_ids(lm, [prompt], max_new_tokens=12, interventions=hooks)[0]
        want = want[want != lm.tokenizer.pad_token_id]
        assert torch.equal(got[0, ids.shape[1] : ids.shape[1] + len(want)], want)
    a = next_token_logits(lm, PROMPTS, hooks)
    assert (a - next_token_logits(edited, PROMPTS)).abs().max() < 1e-4
    assert (a - next_token_logits(zero_edited, PROMPTS)).abs().max() > 1e-3  # the target matters
    assert not lm.hf.config.mlp_bias and lm.hf.model.layers[0].mlp.down_proj.bias is None  # original untouched


def test_mean_form_needs_a_family_that_can_store_it():
    qwen = build_tiny_model("qwen2", seed=1)
    r = torch.randn(qwen.d_model, generator=torch.Generator().manual_seed(0))
    with pytest.raises(WeightEditError, match="zero form"):
        orthogonalized_copy(qwen, r, WeightEdit("mean"), torch.zeros(qwen.n_layers))
    edited = orthogonalized_copy(qwen, r, WeightEdit("zero", 1.5))
    hook = generate_ids(qwen, PROMPTS, max_new_tokens=8, interventions=[DirectionAblation(r, strength=1.5)])
    assert torch.equal(hook, generate_ids(edited, PROMPTS, max_new_tokens=8))


@pytest.mark.parametrize(
    "bad", [dict(form="half"), dict(strength=float("nan")), dict(form="mean", strength=2.0), dict(strength=True)]
)
def test_bad_edits_are_refused(bad):
    with pytest.raises(WeightEditError):
        WeightEdit(**bad)


def test_mean_form_hooks_take_no_strength():
    with pytest.raises(InterventionError):
        DirectionAblation(torch.ones(4), target=torch.zeros(2), strength=1.5)
    with pytest.raises(InterventionError):
        DirectionAblation(torch.ones(4), strength=float("inf"))


def test_completion_loss_keeps_the_templates_eos_when_pad_is_eos():
    """Llama-3.x Instruct tokenizers have no pad token; the loader then pads with eos = <|eot_id|>,
    which the chat template itself contains. Real tokens are found by the mask, not the pad id."""
    lm = build_tiny_model(seed=5)
    lm.tokenizer.pad_token = lm.tokenizer.eos_token
    prompts, completions = ["Hi", "Tell me something longer please"], ["Hello there.", "Sure."]
    ce = completion_loss(lm, prompts, completions, batch_size=2)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids, _ = lm.encode_chat([p])
        assert (ids[0] == lm.tokenizer.eos_token_id).any()  # the template holds eos
        comp = torch.tensor(lm.tokenizer.encode(c, add_special_tokens=False))
        logits = lm.hf(torch.cat([ids[0], comp])[None]).logits[0].float()
        ref = torch.nn.functional.cross_entropy(logits[-len(comp) - 1 : -1], comp)
        assert float(ce[i]) == pytest.approx(float(ref), abs=1e-4)
