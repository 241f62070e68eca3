"""Token-level gradients and raw-id forwards: the suffix search (GCG, Zou et al. 2023) and which tokens of a
jailbreak lower the refusal projection. Raw ids in, no template added, no padding.

``one_hot_gradient`` is the search's signal: the gradient of a metric of the last position's logits with
respect to the one-hot token choice at a span of positions (the embedding's gradient times ``W_E^T``).
"""

from __future__ import annotations

from typing import Any, Callable

import nnsight
import torch
from torch import Tensor


def one_hot_gradient(lm: Any, ids: Tensor, span: slice, metric: Callable[[Tensor], Tensor]) -> Tensor:
    """d metric(logits[-1]) / d one_hot(ids[span]).

    Args:
        ids: [S] token ids of one sequence.
        span: the positions whose tokens are searched.
        metric: [1, vocab] last-position logits -> [1] (e.g. the refusal score).

    Returns:
        [len(span), vocab] float32 on the CPU: a first-order estimate of how much each token at each
        searched position would change the metric.
    """
    lm.require_weights("the token embedding")
    ids = ids.to(lm.device)[None]
    saved: dict[str, Any] = {}
    tr = lm.tracing
    with lm.lock, torch.enable_grad():
        with lm.nn.trace({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, **lm.run_options()):
            emb = tr.access.embed(tr.nn).output
            emb.requires_grad_(True)
            value = metric(tr.access.lm_head(tr.nn).output[:, -1].float())
            with value.sum().backward():
                saved["grad"] = emb.grad.detach()[0, span].float().cpu()
            nnsight.save(saved)
    return saved["grad"] @ lm.embedding_matrix().T


@torch.no_grad()
def last_logits(lm: Any, ids: Tensor, batch_size: int = 64) -> Tensor:
    """[B, S] raw ids (one length, no padding) -> [B, vocab] last-position logits, float32 on the CPU."""
    out = []
    tr = lm.tracing
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size].to(lm.device)
        saved: dict[str, Tensor] = {}
        with lm.lock:
            with lm.nn.trace({"input_ids": chunk, "attention_mask": torch.ones_like(chunk)}, **lm.run_options()):
                saved["logits"] = tr.access.lm_head(tr.nn).output[:, -1].float().cpu()
                nnsight.save(saved)
        out.append(saved["logits"])
    return torch.cat(out)


def projection_gradient_x_input(
    lm: Any, ids: Tensor, layer: int, position: int, direction: Tensor
) -> tuple[Tensor, float]:
    """Gradient × input of one projection: how much each token's embedding pushes the residual at ``layer``'s
    input and ``position`` along ``direction`` (first order, summed over the embedding's dimensions).

    Args:
        ids: [S] token ids of one sequence.
        position: counted from the end (-1 = the last token) or from the start.
        direction: [d_model], any norm (normalised here).

    Returns:
        ([S] float32 scores on the CPU, the projection itself): one pass gives both.
    """
    lm.require_weights("the token embedding")
    lm.check_layer(layer)
    r = (direction.double() / direction.double().norm()).float().to(lm.device)
    ids = ids.to(lm.device)[None]
    saved: dict[str, Any] = {}
    tr = lm.tracing
    with lm.lock, torch.enable_grad():
        with lm.nn.trace({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, **lm.run_options()):
            emb = tr.access.embed(tr.nn).output
            emb.requires_grad_(True)
            x = tr.access.layer(tr.nn, layer).input
            value = x[0, position].float() @ r
            saved["value"] = value.detach().cpu()
            with value.backward():
                saved["grad"] = emb.grad.detach()[0].float().cpu()
            saved["emb"] = emb.detach()[0].float().cpu()
            nnsight.save(saved)
    return (saved["grad"] * saved["emb"]).sum(-1), float(saved["value"])
