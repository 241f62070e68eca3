"""Induction heads (Olsson et al. 2022) as pure tensor functions over a repeated random sequence.

The probe is ``[prefix] x x`` with ``x`` a random token sequence of length ``T`` and an optional
one-token prefix (BOS) of length ``p``. A token of the second copy at position ``q`` occurred before
at ``q - T``; an induction head attends from ``q`` to the token *after* that earlier occurrence,
``q - T + 1``, and copies it (which is the correct prediction for ``q + 1``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def repeated_random_tokens(
    n_seqs: int, half: int, allowed: Tensor, prefix: list[int], generator: torch.Generator
) -> Tensor:
    """``n_seqs`` rows of ``prefix + x + x``, ``x`` drawn uniformly (with replacement) from ``allowed`` ids.

    Returns:
        [n_seqs, len(prefix) + 2 * half] long.
    """
    if n_seqs < 1 or half < 2:
        raise ValueError(f"need at least one sequence of at least 2 tokens, got {n_seqs} x {half}")
    x = allowed[torch.randint(len(allowed), (n_seqs, half), generator=generator)]
    pre = torch.tensor(prefix, dtype=torch.long).expand(n_seqs, len(prefix))
    return torch.cat([pre, x, x], dim=1)


def second_half_queries(prefix_len: int, half: int) -> Tensor:
    """Positions of the second copy's tokens, ``[half]``."""
    return torch.arange(prefix_len + half, prefix_len + 2 * half)


def offset_attention(attention: Tensor, queries: Tensor, offset: int) -> Tensor:
    """Mean attention from each query ``q`` to key ``q - offset``.

    Args:
        attention: [..., S, S] probabilities (query rows, key columns).
        queries: [Q] query positions (each ``q - offset`` must be a valid key).
        offset: How far back the key is.

    Returns:
        [...] the mean over queries (and nothing else: batch dims are kept).
    """
    keys = queries - offset
    if int(keys.min()) < 0:
        raise ValueError("a query's key would fall before the sequence start")
    return attention[..., queries, keys].mean(-1)


def induction_scores(attention: Tensor, prefix_len: int, half: int) -> Tensor:
    """Attention from each second-copy token to the token after its earlier occurrence.

    Args:
        attention: [L, B, H, S, S].

    Returns:
        [L, H] mean over sequences and second-copy queries (1.0: a perfect induction head).
    """
    return offset_attention(attention, second_half_queries(prefix_len, half), half - 1).mean(1)


def duplicate_token_scores(attention: Tensor, prefix_len: int, half: int) -> Tensor:
    """Attention from each second-copy token to its own earlier occurrence, [L, H]."""
    return offset_attention(attention, second_half_queries(prefix_len, half), half).mean(1)


def previous_token_scores(attention: Tensor, prefix_len: int) -> Tensor:
    """Attention from each token (after the first real one) to the token right before it, [L, H]."""
    S = attention.shape[-1]
    return offset_attention(attention, torch.arange(prefix_len + 1, S), 1).mean(1)


def copying_scores(contributions: Tensor, target_unembed: Tensor, mean_unembed: Tensor) -> Tensor:
    """How much each head's direct output raises the correct next token above the average token.

    Direct logit attribution with the final norm's per-position scale left out (a positive factor,
    so signs and rankings within a position are kept); its elementwise weight is folded into the
    unembedding by the caller.

    Args:
        contributions: [H, B, Q, d] each head's output written into the residual at the queries.
        target_unembed: [B, Q, d] the unembedding row of the correct next token at each query.
        mean_unembed: [d] the mean unembedding row over the vocabulary.

    Returns:
        [H] mean over sequences and queries of ``logit[target] - mean logit``.
    """
    return torch.einsum("hbqd,bqd->hbq", contributions, target_unembed - mean_unembed).mean((-1, -2))


def split_halves(loss: Tensor, prefix_len: int, half: int) -> tuple[Tensor, Tensor]:
    """Per-sequence mean loss predicting the first copy's tokens (after the first) and the second copy's.

    Args:
        loss: [B, S-1] loss of predicting token ``i + 1`` at position ``i``.

    Returns:
        ``(first [B], second [B])``: the first copy's tokens 2..T (token 1 cannot be predicted from
        the prefix), and the second copy's tokens 1..T.
    """
    p = prefix_len
    first = loss[:, p : p + half - 1]  # predicts x_1 .. x_{T-1}
    second = loss[:, p + half - 1 : p + 2 * half - 1]  # predicts x_0 .. x_{T-1} of the second copy
    return first.mean(-1), second.mean(-1)


def top_heads(scores: Tensor, k: int) -> list[tuple[int, int]]:
    """The ``k`` highest-scoring ``(layer, head)`` pairs, highest first."""
    H = scores.shape[1]
    k = max(0, min(k, scores.numel()))
    return [(int(i) // H, int(i) % H) for i in scores.flatten().topk(k).indices]
