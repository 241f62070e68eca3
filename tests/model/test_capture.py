"""Invariants of the one-pass capture, checked against independent plain-PyTorch computations."""

from __future__ import annotations

import pytest
import torch

from neuroscope.analysis.heads import head_contributions
from neuroscope.model.capture import capture
from neuroscope.model.tiny import build_tiny_model

PROMPTS = ["How do I bake bread?", "Hi", "Tell me a story about a dragon and a knight."]


@pytest.fixture(scope="module", params=["llama", "qwen2", "mistral", "gpt2", "llama-3.2-3b-standin"])
def lm(request):
    if request.param == "llama-3.2-3b-standin":  # every real width, 2 layers, Meta's tokenizer and template
        return request.getfixturevalue("standin")
    return build_tiny_model(request.param, seed=1)


@pytest.fixture(scope="module")
def caches(lm):
    return capture(lm, PROMPTS)


def _plain_forward(lm, prompt):
    """Independent reference: HF forward with output_hidden_states on the unpadded prompt."""
    ids, mask = lm.encode_chat([prompt])
    with torch.no_grad():
        out = lm.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return ids[0], out


def test_chat_encoding_has_exactly_one_bos(lm):
    if not lm.has_chat_template:  # GPT-2: plain prompts, tokenised as they are
        ids, mask = lm.encode_chat(PROMPTS)
        expected = lm.tokenizer(PROMPTS[0], add_special_tokens=True)["input_ids"]
        assert ids[0, -len(expected) :].tolist() == expected and lm.n_post_instruction == 1
        return
    ids, mask = lm.encode_chat(PROMPTS)
    bos = lm.tokenizer.bos_token_id
    assert ((ids == bos) & mask.bool()).sum(-1).tolist() == [1] * len(PROMPTS)
    assert ids[:, -lm.n_post_instruction :].tolist() == [lm.post_instruction_ids] * len(PROMPTS)


def test_residual_chain_is_continuous(caches):
    for c in caches:
        torch.testing.assert_close(c.resid_post[:-1], c.resid_pre[1:], rtol=0, atol=0)


def test_residuals_match_hf_hidden_states(lm, caches):
    for prompt, c in zip(PROMPTS, caches):
        ids, out = _plain_forward(lm, prompt)
        assert torch.equal(c.input_ids, ids.cpu())
        hidden = torch.stack(out.hidden_states[:-1])[:, 0]  # inputs of every layer
        torch.testing.assert_close(c.resid_pre, hidden, atol=1e-5, rtol=1e-5)


def test_head_contributions_sum_to_attention_output(lm, caches):
    for c in caches:
        for layer in range(c.n_layers):
            z = c.z[layer].permute(1, 0, 2)  # [S, H, D]
            contrib = head_contributions(z, lm.o_proj_weight(layer).float())
            bias = lm.o_proj_bias(layer)  # GPT-2's c_proj has one: it belongs to no head
            total = contrib.sum(-2).float() + (0 if bias is None else bias.float())
            torch.testing.assert_close(total, c.attn_out[layer], atol=1e-5, rtol=1e-5)


def test_last_layer_logit_lens_equals_model_logits(lm, caches):
    for prompt, c in zip(PROMPTS, caches):
        _, out = _plain_forward(lm, prompt)
        probs = out.logits[0].float().softmax(-1)
        top = probs.topk(c.lens_ids.shape[-1], dim=-1)
        torch.testing.assert_close(c.lens_probs[-1], top.values, atol=1e-5, rtol=1e-5)
        assert torch.equal(c.lens_ids[-1, :, 0], top.indices[:, 0])
        torch.testing.assert_close(c.last_logits, out.logits[0, -1].float(), atol=1e-5, rtol=1e-5)
        assert c.lens_tokens[-1][-1][0] == lm.tokenizer.decode([int(top.indices[-1, 0])])


def test_intermediate_logit_lens_equals_final_norm_and_unembedding_of_hf_hidden_states(lm, caches):
    """Every layer but the last, against plain HF modules named here (not through the access map)."""
    norm = lm.hf.transformer.ln_f if lm.hf.config.model_type == "gpt2" else lm.hf.model.norm
    head = lm.hf.get_output_embeddings()
    for prompt, c in zip(PROMPTS, caches):
        _, out = _plain_forward(lm, prompt)
        for layer in range(c.n_layers - 1):  # hidden_states[l + 1] is layer l's output (the last is normed)
            with torch.no_grad():
                probs = head(norm(out.hidden_states[layer + 1][0, c.lens_start :])).float().softmax(-1)
            top = probs.topk(c.lens_ids.shape[-1], dim=-1)
            torch.testing.assert_close(c.lens_probs[layer], top.values, atol=1e-5, rtol=1e-5)
            assert torch.equal(c.lens_ids[layer, :, 0], top.indices[:, 0]), layer


def test_attention_rows_are_causal_and_sum_to_one(caches):
    c = caches[0]
    assert sorted(c.attention) == list(range(c.n_layers))
    for probs in c.attention.values():
        S = probs.shape[-1]
        upper = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1)
        assert probs[:, upper].abs().max() == 0
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]), atol=1e-5, rtol=0)


def test_gradient_times_input_matches_autograd(lm, caches):
    for prompt, c in zip(PROMPTS, caches):
        ids, mask = lm.encode_chat([prompt])
        emb = lm.access.embed(lm.hf)(ids).detach().requires_grad_(True)
        logits = lm.hf(inputs_embeds=emb, attention_mask=mask).logits
        target = int(logits[0, -1].argmax())
        logits[0, -1, target].backward()
        expected = (emb.grad * emb).sum(-1)[0]
        assert c.target_id == target
        torch.testing.assert_close(c.importance, expected.detach(), atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in lm.hf.parameters())


def test_padded_batch_equals_single_prompt_captures(lm, caches):
    for prompt, batched in zip(PROMPTS, caches):
        single = capture(lm, [prompt])[0]
        assert single.tokens == batched.tokens
        for name in ("resid_pre", "resid_post", "attn_out", "z", "lens_probs", "importance"):
            torch.testing.assert_close(getattr(batched, name), getattr(single, name), atol=1e-5, rtol=1e-4)
        for layer in single.attention:
            torch.testing.assert_close(batched.attention[layer], single.attention[layer], atol=1e-6, rtol=0)


def test_attention_layers_can_be_limited(tiny_lm):
    c = capture(tiny_lm, ["hello"], attention_layers=[1], gradients=False)[0]
    assert list(c.attention) == [1] and c.importance is None
    budget = capture(tiny_lm, ["hello"], attention_budget_mb=1e-9)[0]
    assert list(budget.attention) == [0]


def test_lens_can_be_skipped_without_changing_anything_else(tiny_lm):
    norm = tiny_lm.access.final_norm(tiny_lm.hf)
    calls = []
    handle = norm.register_forward_hook(lambda *args: calls.append(1))
    try:
        full = capture(tiny_lm, PROMPTS[:2], gradients=False)
        n_full = len(calls)
        calls.clear()
        bare = capture(tiny_lm, PROMPTS[:2], top_k=0, gradients=False)
        n_bare = len(calls)
    finally:
        handle.remove()
    n_layers = full[0].resid_post.shape[0]
    assert n_full - n_bare == n_layers - 1  # one final-norm (and unembedding) per layer but the last (the model's own)
    for f, b in zip(full, bare):
        L, S = f.resid_post.shape[:2]
        assert b.lens_ids.shape == (L, S, 0) and b.lens_probs.shape == (L, S, 0)
        for name in ("resid_pre", "resid_post", "attn_out", "z", "last_logits"):
            assert torch.equal(getattr(f, name), getattr(b, name)), name
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="top_k"):
            capture(tiny_lm, ["hello"], top_k=bad, gradients=False)


def test_lens_at_the_last_positions_equals_the_full_lens_there(tiny_lm):
    prompts = ["Hi", "Tell me a long story about a dragon, a knight and a village by the sea."]
    full = capture(tiny_lm, prompts, gradients=False)
    for K in (1, 4, 200):
        part = capture(tiny_lm, prompts, gradients=False, lens_positions=K)
        for f, c in zip(full, part):
            n = min(K, f.n_tokens)
            assert c.lens_start == f.n_tokens - n and c.lens_ids.shape[1] == n
            assert torch.equal(c.lens_ids, f.lens_ids[:, -n:]) and c.lens_tokens == [row[-n:] for row in f.lens_tokens]
            torch.testing.assert_close(c.lens_probs, f.lens_probs[:, -n:], atol=1e-6, rtol=0)
