"""Causal head attribution in the model: activation patching and its gradient estimate.

Both patch at the post-instruction positions (the last ``P`` tokens of every left-padded row: the
chat template after the instruction), from a *source* run into a *clean* run, prompt i of one
set into prompt i of the other, and read a scalar metric of the last position's logits per prompt
(e.g. the refusal log-odds).

- :func:`patch_heads` runs one forward pass per head and batch with that head's ``z`` overwritten
  (:class:`HeadPatch`): exact, L·H passes.
- :func:`metric_gradients` runs one forward and one backward pass per batch and returns the
  gradient of the metric w.r.t. every head's ``z`` at those positions: with
  :func:`neuroscope.analysis.heads.attribution_patching` the first-order estimate of every head's
  patching effect at once (Nanda's attribution patching; Syed et al. 2023).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.analysis.heads import head_label
from neuroscope.model.interventions import HeadPatch
from neuroscope.types import Progress

Metric = Callable[[Tensor], Tensor]  # [B, vocab] last-position logits -> [B]


def _rows(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


@torch.no_grad()
def patch_heads(
    lm: Any,
    instructions: Sequence[str],
    source_z: Tensor,
    heads: Sequence[tuple[int, int]],
    metric: Metric,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> Tensor:
    """The metric per head and prompt with that head's ``z`` patched in from the source run.

    Args:
        lm: A ``LoadedModel``.
        instructions: N clean prompts.
        source_z: [N, L, H, P, d_head]: ``post_instruction_z(..., by_position=True)`` of the
            source prompts (row i is patched into prompt i).
        heads: The heads to patch, one at a time.
        metric: Last-position logits [B, vocab] -> [B].

    Returns:
        [len(heads), N] float64 on the CPU.
    """
    from neuroscope.model.interventions import validate_all, walk_layers

    n = len(instructions)
    if source_z.ndim != 5 or source_z.shape[0] != n:
        raise ValueError(f"source_z must be [{n}, L, H, P, d_head], got {tuple(source_z.shape)}")
    out = torch.empty(len(heads), n, dtype=torch.float64)
    tr = lm.tracing
    batches = [(rows, lm.encode_chat(list(instructions[rows]))) for rows in _rows(n, batch_size)]
    for i, (layer, head) in enumerate(heads):
        if progress is not None:
            progress(i / max(1, len(heads)), f"activation patching: {head_label(layer, head)}")
        for rows, (ids, mask) in batches:
            iv = HeadPatch(((layer, head),), source_z[rows, layer, head][None])
            validate_all(lm, [iv])
            saved: dict[str, Tensor] = {}
            with lm.lock:
                with lm.nn.trace({"input_ids": ids, "attention_mask": mask}, **lm.run_options()):
                    walk_layers(tr, [iv])
                    saved["logits"] = tr.access.lm_head(tr.nn).output[:, -1].detach().float().cpu()
                    nnsight.save(saved)
            out[i, rows] = metric(saved["logits"]).double()
    return out


def _per_head(flat: list[Tensor], n_heads: int, d_head: int) -> Tensor:
    """L x [B, P, H*D] -> [B, L, H, P, D]."""
    return torch.stack([t.reshape(*t.shape[:2], n_heads, d_head).transpose(1, 2) for t in flat], dim=1)


def metric_gradients(
    lm: Any, instructions: Sequence[str], metric: Metric, batch_size: int = 16, progress: Progress | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradient of the metric w.r.t. every head's ``z`` at the post-instruction positions.

    One forward and one backward pass per batch; weights never collect ``.grad`` (they are frozen).

    Returns:
        ``(metric [N] float64, grad [N, L, H, P, d_head], z [N, L, H, P, d_head])``, float32 on the CPU.
    """
    P, L = lm.n_post_instruction, lm.n_layers
    H, D = lm.n_heads, lm.d_head
    values, grads, zs = [], [], []
    n = len(instructions)
    nn, access = lm.nn, lm.access
    for b, rows in enumerate(_rows(n, batch_size)):
        if progress is not None:
            progress(b * batch_size / max(1, n), "attribution patching: gradients")
        ids, mask = lm.encode_chat(list(instructions[rows]))
        saved: dict[str, Any] = {}
        z_envoys: list[Any] = []
        with lm.lock, torch.enable_grad():
            with lm.nn.trace({"input_ids": ids, "attention_mask": mask}, **lm.run_options()):
                access.embed(nn).output.requires_grad_(True)
                for layer in range(L):
                    z_envoys.append(access.o_proj(nn, layer).input)
                logits = access.lm_head(nn).output[:, -1].float()
                value = metric(logits)
                saved["metric"] = value.detach().double().cpu()
                saved["z"] = [z.detach()[:, -P:].float().cpu() for z in z_envoys]
                grad_list: list[Tensor] = []
                with value.sum().backward():
                    for layer in reversed(range(L)):  # gradients arrive in reverse execution order
                        grad_list.append(z_envoys[layer].grad.detach()[:, -P:].float().cpu())
                saved["grad"] = grad_list
                nnsight.save(saved)
        values.append(saved["metric"])
        zs.append(_per_head(saved["z"], H, D))
        grads.append(_per_head(list(reversed(saved["grad"])), H, D))
    return torch.cat(values), torch.cat(grads), torch.cat(zs)
