"""Batched activation statistics over prompt sets (float64 accumulation, padding excluded)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.analysis.directions import project
from neuroscope.model.generate import _batches
from neuroscope.model.interventions import Intervention, validate_all, walk_layers


def _collect(
    lm: Any,
    instructions: Sequence[str],
    record: frozenset[str],
    batch_size: int,
    interventions: Sequence[Intervention] = (),
    progress=None,
):
    """Yields ``(sink, mask)`` per batch: ``sink[name]`` is a list over layers of [B, S, ...]."""
    validate_all(lm, interventions)
    done = 0
    tr = lm.tracing
    for chunk in _batches(list(instructions), batch_size):
        ids, mask = lm.encode_chat(chunk)
        sink: dict[str, list] = defaultdict(list)
        with lm.lock, torch.no_grad():
            with lm.nn.trace({"input_ids": ids, "attention_mask": mask}, **lm.run_options()):
                walk_layers(tr, interventions, record=record, sink=sink)
                nnsight.save(sink)
        done += len(chunk)
        if progress is not None:
            progress(done, len(instructions))
        yield sink, mask


def mean_resid_pre(lm: Any, instructions: Sequence[str], batch_size: int = 32, progress=None) -> Tensor:
    """Mean residual at every layer input and post-instruction position.

    Left padding puts the template's post-instruction tokens at the same last positions in every
    row, so no mask is needed here.

    Returns:
        [n_layers, n_post_instruction, d_model] float64 on the CPU.
    """
    if not instructions:
        raise ValueError("need at least one instruction to average over")
    P = lm.n_post_instruction
    total = torch.zeros(lm.n_layers, P, lm.d_model, dtype=torch.float64)
    for sink, _mask in _collect(lm, instructions, frozenset({"resid_pre"}), batch_size, progress=progress):
        for layer, x in enumerate(sink["resid_pre"]):
            total[layer] += x[:, -P:].to(torch.float64).sum(0).cpu()
    return total / len(instructions)


def projection_means(lm: Any, instructions: Sequence[str], direction: Tensor, batch_size: int = 32) -> Tensor:
    """Mean of ``<resid_pre[l], r_hat>`` over every real token of the prompts.

    Returns:
        [n_layers] float64 on the CPU (the mean-ablation target).
    """
    total = torch.zeros(lm.n_layers, dtype=torch.float64)
    count = 0
    r = direction.double() / direction.double().norm()
    for sink, mask in _collect(lm, instructions, frozenset({"resid_pre"}), batch_size):
        m = mask.bool().cpu()
        count += int(m.sum())
        for layer, x in enumerate(sink["resid_pre"]):
            total[layer] += project(x.cpu().double()[m], r).sum()
    return total / count


def mean_head_z(lm: Any, instructions: Sequence[str], batch_size: int = 32) -> Tensor:
    """Mean per-head ``z`` over every real token (padding excluded) — the head mean-ablation values.

    Returns:
        [n_layers, n_heads, d_head] float64 on the CPU.
    """
    total = torch.zeros(lm.n_layers, lm.n_heads, lm.d_head, dtype=torch.float64)
    count = 0
    for sink, mask in _collect(lm, instructions, frozenset({"z"}), batch_size):
        m = mask.bool().cpu()
        count += int(m.sum())
        for layer, z in enumerate(sink["z"]):
            total[layer] += z.cpu().double()[m].sum(0)
    return total / count


def post_instruction_z(lm: Any, instructions: Sequence[str], batch_size: int = 16, by_position: bool = False) -> Tensor:
    """Each prompt's per-head ``z`` at its post-instruction positions, averaged over them (or not).

    Only ``z`` is recorded (no residuals, attention outputs or logit lens): left padding puts the
    template's post-instruction tokens at the same last positions in every row.

    Args:
        by_position: Keep the positions apart (what activation patching writes back).

    Returns:
        [N, n_layers, n_heads, d_head], or [N, n_layers, n_heads, P, d_head] with ``by_position``;
        float32 on the CPU.
    """
    P = lm.n_post_instruction
    rows = []
    for sink, _mask in _collect(lm, instructions, frozenset({"z"}), batch_size):
        # sink["z"]: per layer [B, S, H, D] -> [B, H, D] (or [B, H, P, D]) -> stacked over layers
        last = [z[:, -P:].float().cpu() for z in sink["z"]]
        rows.append(torch.stack([z.transpose(1, 2) if by_position else z.mean(dim=1) for z in last], dim=1))
    if not rows:
        shape = (0, lm.n_layers, lm.n_heads) + ((P,) if by_position else ()) + (lm.d_head,)
        return torch.empty(shape)
    return torch.cat(rows)


def last_token_projections(
    lm: Any,
    instructions: Sequence[str],
    direction: Tensor,
    batch_size: int = 32,
    interventions: Sequence[Intervention] = (),
) -> Tensor:
    """Projection of each prompt's last-position residual (every layer input) on a direction.

    Returns:
        [N, n_layers] float32 on the CPU.
    """
    r = direction.double() / direction.double().norm()
    rows = []
    for sink, _mask in _collect(lm, instructions, frozenset({"resid_pre"}), batch_size, interventions):
        rows.append(torch.stack([project(x[:, -1].cpu().double(), r) for x in sink["resid_pre"]], dim=1))
    return torch.cat(rows).float()


def resid_pre_at(
    lm: Any, instructions: Sequence[str], positions: Sequence[int], batch_size: int = 32, progress=None
) -> Tensor:
    """Every prompt's residual at every layer input, at a few positions counted from the end.

    Left padding keeps positions counted from the end (``-1`` the last template token) on the same
    tokens in every row.

    Returns:
        [N, n_layers, len(positions), d_model] float32 on the CPU.
    """
    if not positions or any(p >= 0 for p in positions):
        raise ValueError(f"positions are counted from the end (-1 = the last token), got {list(positions)}")
    index = list(positions)
    rows = []
    for sink, _mask in _collect(lm, instructions, frozenset({"resid_pre"}), batch_size, progress=progress):
        rows.append(torch.stack([x[:, index].float().cpu() for x in sink["resid_pre"]], dim=1))
    if not rows:
        return torch.empty(0, lm.n_layers, len(index), lm.d_model)
    return torch.cat(rows)
