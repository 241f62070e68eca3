"""Plain forward passes (no cache): next-token logits, optionally under interventions."""

from __future__ import annotations

from typing import Any, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.model.generate import _batches
from neuroscope.model.interventions import Intervention, validate_all, walk_layers


@torch.no_grad()
def next_token_logits(lm: Any, instructions: Sequence[str], interventions: Sequence[Intervention] = (),
                      batch_size: int = 32, progress=None) -> Tensor:
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
