"""Independent references for the tests: plain PyTorch forward hooks on the Hugging Face modules.

Nothing here uses the project's model layer (no nnsight, no ``walk_layers``, no interventions), so
a test that compares the project's numbers with these catches an intervention that never reaches
the model, a wrong position or a wrong ranking. Prompts are run one at a time (no padding).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def chat_ids(lm, prompt: str) -> torch.Tensor:
    """[1, S] token ids of one chat-formatted prompt (the tokenizer's own template, one BOS)."""
    enc = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return enc["input_ids"]


def _o_proj(hf, layer):
    return hf.model.layers[layer].self_attn.o_proj


@contextmanager
def o_proj_input_hooks(hf, rewrite):
    """``rewrite(layer, x [1, S, H*D]) -> x`` applied to every o_proj input (a forward pre-hook)."""
    handles = [
        _o_proj(hf, l).register_forward_pre_hook(lambda m, args, l=l: (rewrite(l, args[0]),))
        for l in range(len(hf.model.layers))
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def last_logits(lm, prompt: str, rewrite=None) -> torch.Tensor:
    """[vocab] next-token logits of one prompt, optionally with o_proj inputs rewritten."""
    ids = chat_ids(lm, prompt)
    if rewrite is None:
        return lm.hf(ids).logits[0, -1].float()
    with o_proj_input_hooks(lm.hf, rewrite):
        return lm.hf(ids).logits[0, -1].float()


@torch.no_grad()
def post_instruction_z(lm, prompt: str) -> torch.Tensor:
    """[L, H, P, D] every head's o_proj input at the last P (post-instruction) positions."""
    P, H, D = lm.n_post_instruction, lm.n_heads, lm.d_head
    seen = {}

    def grab(layer, x):
        seen[layer] = x[0, -P:].reshape(P, H, D).transpose(0, 1).clone()
        return x

    with o_proj_input_hooks(lm.hf, grab):
        lm.hf(chat_ids(lm, prompt))
    return torch.stack([seen[l] for l in range(lm.n_layers)])


@torch.no_grad()
def head_outputs_along(lm, prompt: str, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's output averaged over the post-instruction positions: (projection on r_hat, norm), [L, H]."""
    z = post_instruction_z(lm, prompt).double().mean(2)  # [L, H, D]
    r = direction.double() / direction.double().norm()
    D = lm.d_head
    proj, norm = (
        torch.zeros(lm.n_layers, lm.n_heads, dtype=torch.float64),
        torch.zeros(lm.n_layers, lm.n_heads, dtype=torch.float64),
    )
    for l in range(lm.n_layers):
        w = _o_proj(lm.hf, l).weight.double()
        for h in range(lm.n_heads):
            out = w[:, h * D : (h + 1) * D] @ z[l, h]
            proj[l, h], norm[l, h] = out @ r, out.norm()
    return proj, norm


def head_delta(lm, harmful, harmless, direction) -> torch.Tensor:
    """[L, H] harmful mean − harmless mean of each head's post-instruction output along the direction."""
    mean = lambda ps: torch.stack([head_outputs_along(lm, p, direction)[0] for p in ps]).mean(0)  # noqa: E731
    return mean(harmful) - mean(harmless)


def set_head(layer: int, head: int, d_head: int, value: torch.Tensor, last: int | None = None):
    """A ``rewrite`` that sets one head's o_proj input to ``value`` ([D], or [last, D] at the last positions)."""

    def rewrite(l, x):
        if l != layer:
            return x
        x = x.clone()
        sl = slice(head * d_head, (head + 1) * d_head)
        if last is None:
            x[..., sl] = value.to(x.dtype)
        else:
            x[0, -last:, sl] = value.to(x.dtype)
        return x

    return rewrite
