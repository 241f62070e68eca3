"""Reading residual-stream writes as token logits (pure tensor functions).

Direct logit attribution follows TransformerLens' convention: the final norm's scale is frozen at
the position's actual residual (the norm is then linear), so the logits of a sum of writes are the
sum of the writes' logits, and a head's share can be read on its own.
"""

from __future__ import annotations

from torch import Tensor


def norm_scale(resid: Tensor, eps: float, centred: bool) -> Tensor:
    """The final norm's denominator at each position: ``sqrt(mean(x²) + eps)`` for RMSNorm,
    ``sqrt(var(x) + eps)`` for LayerNorm (``centred``). ``resid`` [..., d] -> [...]."""
    x = resid.double()
    if centred:
        x = x - x.mean(-1, keepdim=True)
    return (x.pow(2).mean(-1) + eps).sqrt()


def frozen_norm_write(write: Tensor, scale: Tensor, centred: bool) -> Tensor:
    """A write [..., d] as the final norm passes it on with its scale frozen (before the norm's
    elementwise weight): centred for LayerNorm, divided by the position's ``scale`` [...]."""
    x = write.double()
    if centred:
        x = x - x.mean(-1, keepdim=True)
    return x / scale.double()[..., None]


def top_and_bottom(logits: Tensor, k: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The ``k`` most promoted and ``k`` most suppressed token ids of a [V] logit vector, with values."""
    if logits.ndim != 1:
        raise ValueError(f"logits must be [V], got {tuple(logits.shape)}")
    k = max(0, min(int(k), logits.numel()))
    top = logits.topk(k)
    bottom = (-logits).topk(k)
    return (
        [(int(i), float(v)) for v, i in zip(top.values, top.indices)],
        [(int(i), float(-v)) for v, i in zip(bottom.values, bottom.indices)],
    )
