"""Plain forward passes (no cache): next-token logits, optionally under interventions."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.model.generate import _batches
from neuroscope.model.interventions import Intervention, validate_all, walk_layers


@torch.no_grad()
def next_token_logits(
    lm: Any,
    instructions: Sequence[str],
    interventions: Sequence[Intervention] = (),
    batch_size: int = 32,
    progress=None,
) -> Tensor:
    """Logits for the first answer token of every instruction.

    Returns:
        [N, vocab] float32 on the CPU.
    """
    validate_all(lm, interventions)
    out: list[Tensor] = []
    tr = lm.tracing
    for chunk in _batches(list(instructions), batch_size):
        ids, mask = lm.encode_chat(chunk)
        saved: dict[str, Tensor] = {}
        with lm.lock:
            with lm.nn.trace({"input_ids": ids, "attention_mask": mask}, **lm.run_options()):
                walk_layers(tr, interventions)
                saved["logits"] = tr.access.lm_head(tr.nn).output[:, -1].float().cpu()
                nnsight.save(saved)
        out.append(saved["logits"])
        if progress is not None:
            progress(sum(len(o) for o in out), len(instructions))
    return torch.cat(out) if out else torch.empty(0, lm.vocab_size)


def token_run(
    lm: Any, ids: Tensor, interventions: Sequence[Intervention] = (), attention: bool = False, z: bool = False
) -> dict[str, Tensor]:
    """One forward pass over raw token ids (no template, no padding): per-position loss, optionally more.

    Args:
        lm: A ``LoadedModel``.
        ids: [B, S] token ids, every row the same length.
        interventions: Applied during the pass.
        attention: Also return every layer's attention probabilities.
        z: Also return every head's output before ``W_O``.

    Returns:
        ``loss`` [B, S-1] (next-token cross-entropy at positions 0..S-2), and when asked ``attention``
        [L, B, H, S, S] and ``z`` [L, B, S, H, D]; float32 on the CPU.
    """
    validate_all(lm, interventions)
    ids = ids.to(lm.device)
    sink: dict[str, list] = defaultdict(list)
    saved: dict[str, Tensor] = {}
    record = frozenset({"z"}) if z else frozenset()
    layers = range(lm.n_layers) if attention else ()
    tr = lm.tracing
    with lm.lock, torch.no_grad():
        with lm.nn.trace({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, **lm.run_options()):
            walk_layers(tr, interventions, record=record, attention_layers=layers, sink=sink)
            logp = tr.access.lm_head(tr.nn).output[:, :-1].float().log_softmax(-1)
            saved["loss"] = -logp.gather(-1, ids[:, 1:, None])[..., 0].cpu()
            nnsight.save(saved)
            nnsight.save(sink)
    out = {"loss": saved["loss"]}
    if attention:
        out["attention"] = torch.stack([a.float().cpu() for a in sink["attention"]])
    if z:
        out["z"] = torch.stack([t.float().cpu() for t in sink["z"]])
    return out
