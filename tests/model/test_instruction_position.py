"""The residual at the instruction's last token (Zhao et al.'s t_inst) and at the last template token, read
in a left-padded batch, equal a plain PyTorch pre-hook on each prompt alone at independently found indices."""

from __future__ import annotations

import torch

from neuroscope.model.activations import resid_pre_at

PROMPTS = ["hello there", "Write a poem about the sea, please", "x"]


def _plain_resid(lm, text: str) -> tuple[torch.Tensor, int]:
    """Every block's input for one prompt (no padding), and the index of the instruction's last token found
    by matching the instruction's own tokens inside the templated ids."""
    ids, _ = lm.encode_chat([text])
    own = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    seq = ids[0].tolist()
    starts = [i for i in range(len(seq) - len(own) + 1) if seq[i : i + len(own)] == own]
    assert len(starts) == 1, "the instruction's tokens appear once in the templated prompt"
    end = starts[0] + len(own) - 1
    seen: list[torch.Tensor] = []
    hooks = [
        block.register_forward_pre_hook(
            lambda _m, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True
        )
        for block in lm.hf.model.layers
    ]
    try:
        with torch.no_grad():
            lm.hf(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack([s[0] for s in seen]), end  # [L, S, D]


def test_instruction_and_template_positions_equal_plain_hooks(tiny_lm):
    lm = tiny_lm
    got = resid_pre_at(lm, PROMPTS, [lm.last_instruction_position, -1], batch_size=3)
    assert got.shape == (len(PROMPTS), lm.n_layers, 2, lm.d_model)
    for i, text in enumerate(PROMPTS):
        resid, end = _plain_resid(lm, text)
        torch.testing.assert_close(got[i, :, 0], resid[:, end].float(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got[i, :, 1], resid[:, -1].float(), rtol=1e-4, atol=1e-5)


def test_the_instruction_position_is_just_before_the_template(tiny_lm):
    ids, _ = tiny_lm.encode_chat(["hello there"])
    tail = ids[0, tiny_lm.last_instruction_position + 1 :].tolist()
    assert tail == tiny_lm.post_instruction_ids
    assert tiny_lm.token_strings(ids[0, tiny_lm.last_instruction_position : tiny_lm.last_instruction_position + 1]) == [
        "e"
    ]
