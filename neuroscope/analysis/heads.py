"""Per-head attention contributions, head deltas, rankings and a permutation test.

Notation: z is the input of o_proj split by head, [..., H, Dh]; W_O is o_proj's weight,
[d_model, H*Dh] (torch Linear layout), so o_proj(z) = z.flatten(-2) @ W_O.T (+ bias) and head h
writes z_h @ W_O[:, h*Dh:(h+1)*Dh].T into the residual stream. Biases are not attributed to heads.
"""

from __future__ import annotations

import math
import re

from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import torch
from torch import Tensor

from neuroscope.analysis._checks import require_finite, require_no_nan, stat_dtype

__all__ = [
    "RANKING_RULE",
    "HeadDeparture",
    "HeadStats",
    "PermutationResult",
    "attribution_patching",
    "contribution_norms",
    "head_contributions",
    "head_departures",
    "head_projections",
    "head_stats",
    "head_values",
    "masked_mean",
    "permutation_test",
    "random_head_sets",
    "rank_heads",
    "spearman",
]


def _split_w_o(W_O: Tensor, n_heads: int, d_head: int, dtype: torch.dtype) -> Tensor:
    """W_O [d_model, H*Dh] -> [H, Dh, d_model] in `dtype` (row h is W_O_h.T)."""
    if W_O.ndim != 2 or W_O.shape[1] != n_heads * d_head:
        raise ValueError(f"W_O must be [d_model, {n_heads}*{d_head}], got {tuple(W_O.shape)}")
    return W_O.to(dtype).T.reshape(n_heads, d_head, W_O.shape[0])


@torch.no_grad()
def head_contributions(z: Tensor, W_O: Tensor) -> Tensor:
    """What each head writes into the residual stream.

    Args:
        z: [..., H, Dh] per-head inputs of o_proj.
        W_O: [d_model, H*Dh] o_proj weight.

    Returns:
        [..., H, d_model] (at least float32), on z's device; summing over H gives o_proj's output
        without bias.
    """
    dtype = stat_dtype(z)
    w = _split_w_o(W_O.to(z.device), z.shape[-2], z.shape[-1], dtype)
    return torch.einsum("...hk,hkd->...hd", z.to(dtype), w)


@torch.no_grad()
def contribution_norms(z: Tensor, W_O: Tensor) -> Tensor:
    """L2 norm of each head's contribution, without materialising [..., H, d_model].

    ||z_h W_O_h^T||^2 = z_h G_h z_h^T with G_h = W_O_h^T W_O_h ([Dh, Dh]); computed in float64.

    Args:
        z: [..., H, Dh].
        W_O: [d_model, H*Dh].

    Returns:
        float32 [..., H] (float64 if z is float64), on z's device.
    """
    w = _split_w_o(W_O.to(z.device), z.shape[-2], z.shape[-1], torch.float64)
    gram = w @ w.transpose(-1, -2)  # [H, Dh, Dh]
    z64 = z.double()
    sq = torch.einsum("...hk,hkl,...hl->...h", z64, gram, z64)
    return sq.clamp_min(0.0).sqrt().to(stat_dtype(z))


@torch.no_grad()
def head_projections(z: Tensor, W_O: Tensor, unit_direction: Tensor) -> Tensor:
    """Projection of each head's contribution on a unit direction, <z_h W_O_h^T, r_hat>.

    Computed as z_h . (W_O_h^T r_hat): the direction is pulled back into each head's Dh space
    first, so [..., H, d_model] is never built.

    Args:
        z: [..., H, Dh].
        W_O: [d_model, H*Dh].
        unit_direction: [d_model], unit norm.

    Returns:
        [..., H] (at least float32), on z's device.
    """
    dtype = stat_dtype(z)
    n_heads, d_head = z.shape[-2], z.shape[-1]
    if unit_direction.shape != W_O.shape[:1]:
        raise ValueError(f"unit_direction {tuple(unit_direction.shape)} does not match W_O {tuple(W_O.shape)}")
    pulled = W_O.to(z.device, torch.float64).T @ unit_direction.to(z.device, torch.float64)
    pulled = pulled.reshape(n_heads, d_head).to(dtype)  # [H, Dh]
    return (z.to(dtype) * pulled).sum(dim=-1)


@torch.no_grad()
def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over the real (unpadded) tokens of a batch.

    Padded positions are never read into the sum, so NaN or garbage there cannot leak in.

    Args:
        x: [B, S, ...].
        mask: [B, S] bool or 0/1; True for real tokens.

    Returns:
        float64 [...], on x's device.

    Raises:
        ValueError: if the mask selects nothing or the selected values are not finite.
    """
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match x {tuple(x.shape)}[:2]")
    sel = x[mask.to(x.device).bool()]  # [n_real, ...]
    if sel.shape[0] == 0:
        raise ValueError("mask selects no tokens")
    require_finite(sel, "x at unmasked positions")
    return sel.double().mean(dim=0)


RANKING_RULE = (
    "signed Δ along the refusal direction: harmful mean − harmless mean of each head's output (averaged "
    "over the post-instruction positions) projected on the unit direction, largest first"
)


@torch.no_grad()
def head_values(z_post: Tensor, W_O: Tensor, unit_direction: Tensor) -> tuple[Tensor, Tensor]:
    """Per prompt and head: its output at the post-instruction positions, on the direction and in norm.

    A head's output for a prompt is its contribution averaged over the post-instruction positions
    (``z`` averaged first: contributions are linear in ``z``).

    Args:
        z_post: [N, L, H, Dh] per-prompt ``z`` averaged over the post-instruction positions.
        W_O: [L, d_model, H*Dh] o_proj weights of every layer.
        unit_direction: [d_model], unit norm.

    Returns:
        ``(projection, norm)``, each float64 [N, L, H] on the CPU.
    """
    if z_post.ndim != 4 or W_O.ndim != 3 or W_O.shape[0] != z_post.shape[1]:
        raise ValueError(
            f"need z_post [N, L, H, Dh] and W_O [L, d_model, H*Dh], got {tuple(z_post.shape)} and {tuple(W_O.shape)}"
        )
    z = z_post.detach().double().cpu()
    w, r = W_O.detach().double().cpu(), unit_direction.detach().double().cpu()
    proj = torch.stack([head_projections(z[:, layer], w[layer], r) for layer in range(z.shape[1])], dim=1)
    norm = torch.stack([contribution_norms(z[:, layer], w[layer]) for layer in range(z.shape[1])], dim=1)
    return proj.double(), norm.double()


@dataclass(frozen=True)
class HeadStats:
    """THE head Δ (one definition, used by the app, the CLI and the report) and its harmless baseline.

    Every statistic is over prompts, of each head's output averaged over the post-instruction
    positions (:func:`head_values`). All tensors float64 [L, H].

    Attributes:
        delta_projection: harmful mean − harmless mean of the output projected on the direction
            (residual units); the ranking statistic (``RANKING_RULE``).
        delta_norm: harmful mean − harmless mean of the output norm.
        harmful_projection: harmful mean of the projection: each head's direct contribution to the
            direction on harmful prompts (direct feature attribution).
        harmless_projection_mean, harmless_projection_std: the harmless distribution (z-scores).
        harmless_norm_mean, harmless_norm_std: same for the norm.
        n_harmful, n_harmless: prompts behind the means.
    """

    delta_projection: Tensor
    delta_norm: Tensor
    harmful_projection: Tensor
    harmless_projection_mean: Tensor
    harmless_projection_std: Tensor
    harmless_norm_mean: Tensor
    harmless_norm_std: Tensor
    n_harmful: int
    n_harmless: int


@torch.no_grad()
def head_stats(harmful: tuple[Tensor, Tensor], harmless: tuple[Tensor, Tensor]) -> HeadStats:
    """Head Δ and the harmless baseline from :func:`head_values` of both prompt sets.

    Args:
        harmful: ``(projection, norm)``, each [N, L, H].
        harmless: ``(projection, norm)``, each [M, L, H], M >= 2 (a standard deviation is needed).
    """
    (hp, hn), (bp, bn) = harmful, harmless
    if hp.shape != hn.shape or bp.shape != bn.shape or hp.shape[1:] != bp.shape[1:] or hp.ndim != 3:
        raise ValueError(f"values must be [N, L, H] with matching [L, H], got {tuple(hp.shape)} and {tuple(bp.shape)}")
    if hp.shape[0] < 1 or bp.shape[0] < 2:
        raise ValueError("need at least 1 harmful and 2 harmless prompts")
    for name, t in (
        ("harmful projection", hp),
        ("harmful norm", hn),
        ("harmless projection", bp),
        ("harmless norm", bn),
    ):
        require_finite(t, name)
    hp, hn, bp, bn = (t.double() for t in (hp, hn, bp, bn))
    return HeadStats(
        delta_projection=hp.mean(0) - bp.mean(0),
        delta_norm=hn.mean(0) - bn.mean(0),
        harmful_projection=hp.mean(0),
        harmless_projection_mean=bp.mean(0),
        harmless_projection_std=bp.std(0),
        harmless_norm_mean=bn.mean(0),
        harmless_norm_std=bn.std(0),
        n_harmful=int(hp.shape[0]),
        n_harmless=int(bp.shape[0]),
    )


@dataclass(frozen=True)
class HeadDeparture:
    """How far one head's output on one prompt lies from the harmless baseline."""

    layer: int
    head: int
    delta: float  # projection on the direction minus the harmless mean (residual units)
    z: float  # that difference in harmless standard deviations
    delta_norm: float  # output norm minus the harmless mean
    z_norm: float

    def text(self) -> str:
        return (
            f"{head_label(self.layer, self.head)} · Δ = {self.delta:+.2f} along the refusal direction "
            f"(z = {self.z:+.1f} vs harmless)"
        )


HEAD_LABEL = re.compile(r"^L(\d+)H(\d+)\b")


def head_label(layer: int, head: int) -> str:
    """The one way a head is named in every view, the CLI and the report: ``L3H6`` (layer 3, head 6; from 0)."""
    return f"L{layer}H{head}"


def parse_head_label(text: str) -> tuple[int, int]:
    """``"L3H6 (anything)"`` -> ``(3, 6)``; ValueError for text that does not start with a head label."""
    match = HEAD_LABEL.match(text.strip())
    if match is None:
        raise ValueError(f"not a head label (L<layer>H<head>): {text!r}")
    return int(match.group(1)), int(match.group(2))


def head_departures(
    projection: Tensor, norm: Tensor, stats: HeadStats, k: int = 3, eps: float = 1e-6, sign: int = 1
) -> list[HeadDeparture]:
    """The (at most) k heads that push this prompt hardest along (``sign=1``) or against (``sign=-1``)
    the direction, compared with the harmless baseline: largest ``sign * z`` first, only ``sign * z > 0``.

    Args:
        projection, norm: [L, H] this prompt's :func:`head_values` (one row).
        stats: The baseline.
        k: How many heads.
        eps: Floor of the standard deviations (a constant head gives z = Δ / eps, not a division by 0).
        sign: +1 for the heads that push toward the behaviour, -1 for those that suppress it.
    """
    if projection.shape != stats.delta_projection.shape or norm.shape != projection.shape:
        raise ValueError(f"values must be {tuple(stats.delta_projection.shape)}, got {tuple(projection.shape)}")
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    delta = projection.double() - stats.harmless_projection_mean
    z = delta / stats.harmless_projection_std.clamp_min(eps)
    dn = norm.double() - stats.harmless_norm_mean
    zn = dn / stats.harmless_norm_std.clamp_min(eps)
    n_heads = delta.shape[1]
    signed = (sign * z).flatten().tolist()
    order = sorted((i for i in range(len(signed)) if signed[i] > 0), key=lambda i: (-signed[i], i))[: max(0, k)]
    out = []
    for i in order:
        layer, head = divmod(i, n_heads)
        out.append(
            HeadDeparture(
                layer,
                head,
                float(delta[layer, head]),
                float(z[layer, head]),
                float(dn[layer, head]),
                float(zn[layer, head]),
            )
        )
    return out


def rank_heads(scores: Tensor, k: int | None = None, descending: bool = True) -> list[tuple[int, int]]:
    """Heads by signed score, largest first (``descending=False``: smallest first).

    Signed, never |score|: a head that writes *less* of the direction on harmful prompts works
    against refusal, and ablating it together with refusal-writing heads would cancel their
    effects. Ties are broken by (layer, head) ascending, so the order is deterministic.

    Args:
        scores: [L, H].
        k: how many heads (None = all; clamped to L*H).

    Returns:
        list of (layer, head).
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be [L, H], got {tuple(scores.shape)}")
    if k is not None and k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    require_no_nan(scores, "scores")
    sign = -1.0 if descending else 1.0
    values = scores.detach().double().flatten().tolist()
    n_heads = scores.shape[1]
    order = sorted(range(len(values)), key=lambda i: (sign * values[i], i))
    return [divmod(i, n_heads) for i in order[: len(order) if k is None else k]]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two equally shaped tensors (average ranks for ties)."""
    x, y = a.detach().double().flatten(), b.detach().double().flatten()
    if x.shape != y.shape or x.numel() < 2:
        raise ValueError(f"need two tensors of the same size >= 2, got {tuple(a.shape)} and {tuple(b.shape)}")
    require_finite(x, "a")
    require_finite(y, "b")

    def ranks(v: Tensor) -> Tensor:
        order = v.argsort(stable=True)
        r = torch.empty_like(v)
        r[order] = torch.arange(len(v), dtype=torch.float64)
        for value in v.unique():  # average ranks of ties
            tie = v == value
            if tie.sum() > 1:
                r[tie] = r[tie].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(rx.norm() * ry.norm())
    return float((rx @ ry) / denom) if denom > 0 else float("nan")


@torch.no_grad()
def attribution_patching(grad_z: Tensor, z_clean: Tensor, z_source: Tensor) -> Tensor:
    """First-order estimate of patching each head: gradient · (source − clean), summed per head.

    Args:
        grad_z: [N, L, H, P, Dh] gradient of the metric w.r.t. ``z`` on the clean run, at the
            patched positions.
        z_clean, z_source: [N, L, H, P, Dh] ``z`` of the clean run and of the run patched in.

    Returns:
        float64 [L, H]: the estimated change of the metric's mean over prompts.
    """
    if not grad_z.shape == z_clean.shape == z_source.shape or grad_z.ndim != 5:
        raise ValueError(
            f"need three [N, L, H, P, Dh] tensors, got {tuple(grad_z.shape)}, {tuple(z_clean.shape)}, "
            f"{tuple(z_source.shape)}"
        )
    g = grad_z.double()
    return (g * (z_source.double() - z_clean.double())).sum(dim=(-1, -2)).mean(0)


def random_head_sets(
    n_layers: int,
    n_heads: int,
    k: int,
    n_sets: int,
    seed: int = 0,
    exclude: Iterable[tuple[int, int]] = (),
) -> list[list[tuple[int, int]]]:
    """Random sets of k distinct heads, a baseline for "ablate the top-k heads".

    Args:
        n_layers, n_heads: model size.
        k: heads per set.
        n_sets: number of sets.
        seed: generator seed (same seed, same sets).
        exclude: heads never drawn (e.g. the top-k set being compared against).

    Returns:
        n_sets lists of k (layer, head) pairs, each sorted by (layer, head).
    """
    excluded = set(exclude)
    pool = [(lay, h) for lay in range(n_layers) for h in range(n_heads) if (lay, h) not in excluded]
    if not 0 <= k <= len(pool):
        raise ValueError(f"k={k} heads requested from a pool of {len(pool)}")
    gen = torch.Generator().manual_seed(seed)
    draws = [torch.randperm(len(pool), generator=gen)[:k].tolist() for _ in range(n_sets)]
    return [sorted(pool[i] for i in draw) for draw in draws]


@dataclass(frozen=True)
class PermutationResult:
    """Label-permutation test per feature (e.g. per head).

    Attributes:
        observed: float64 [...] statistic on the true labels.
        p_values: float64 [...] (1 + #{null >= observed}) / (1 + n_perm), in (0, 1].
        n_perm: number of permutations.
    """

    observed: Tensor
    p_values: Tensor
    n_perm: int


Statistic = Callable[[Tensor, Tensor], Tensor]
_PERM_CHUNK_ELEMENTS = 1 << 24


def _mean_diff(a: Tensor, b: Tensor) -> Tensor:
    """[P, N, F], [P, M, F] -> [P, F]: mean(a) - mean(b) per permutation."""
    return a.mean(dim=1) - b.mean(dim=1)


def _abs_mean_diff(a: Tensor, b: Tensor) -> Tensor:
    """[P, N, F], [P, M, F] -> [P, F]: |mean(a) - mean(b)| per permutation."""
    return _mean_diff(a, b).abs()


_STATISTICS: dict[str, Statistic] = {"mean_diff": _mean_diff, "abs_mean_diff": _abs_mean_diff}


@torch.no_grad()
def permutations_for(n_tests: int, alpha: float = 0.05, floor: int = 1000) -> int:
    """Label permutations enough for a Bonferroni correction over ``n_tests``: the smallest p-value a
    permutation test can give, 1 / (n + 1), lies at least 2x below ``alpha / n_tests`` (fewer, and
    "no head differs" is guaranteed whatever the data; 200 permutations over 48 heads was)."""
    if n_tests < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_tests >= 1 and 0 < alpha < 1, got {n_tests}, {alpha}")
    return max(floor, math.ceil(2 * n_tests / alpha))


def permutation_test(
    harmful_values: Tensor,
    harmless_values: Tensor,
    statistic: Literal["mean_diff", "abs_mean_diff"] | Statistic = "mean_diff",
    n_perm: int = 1000,
    seed: int = 0,
) -> PermutationResult:
    """One-sided permutation test: is the statistic on the true labels larger than chance?

    Pools the N + M samples, reassigns the harmful / harmless labels uniformly at random n_perm
    times and compares. Vectorised over features and over a chunk of permutations at a time.
    "mean_diff" tests mean(harmful) > mean(harmless) per feature; "abs_mean_diff" is two-sided
    in effect. A callable receives a batch of permuted groups a [P, N, F], b [P, M, F] and must
    return [P, F].

    Args:
        harmful_values: [N, ...] per-prompt values (e.g. [N, L, H] head projections).
        harmless_values: [M, ...] with the same trailing shape.
        statistic: "mean_diff", "abs_mean_diff" or a batched callable.
        n_perm: number of label permutations.
        seed: generator seed.

    Returns:
        PermutationResult with float64 [...] observed and p_values.
    """
    if harmful_values.shape[1:] != harmless_values.shape[1:]:
        raise ValueError(f"trailing shapes differ: {tuple(harmful_values.shape)} vs {tuple(harmless_values.shape)}")
    n, m = harmful_values.shape[0], harmless_values.shape[0]
    if n == 0 or m == 0 or n_perm < 1:
        raise ValueError(f"need N, M >= 1 and n_perm >= 1, got N={n}, M={m}, n_perm={n_perm}")
    stat = _STATISTICS[statistic] if isinstance(statistic, str) else statistic
    feature_shape = harmful_values.shape[1:]
    pooled = torch.cat([harmful_values, harmless_values]).double().reshape(n + m, -1).cpu()  # [N+M, F]
    require_finite(pooled, "values")
    observed = stat(pooled[None, :n], pooled[None, n:])[0]  # [F]
    gen = torch.Generator().manual_seed(seed)
    exceed = torch.zeros_like(observed)
    chunk = max(1, _PERM_CHUNK_ELEMENTS // pooled.numel())
    for start in range(0, n_perm, chunk):
        size = min(chunk, n_perm - start)
        perm = torch.rand(size, n + m, generator=gen).argsort(dim=1)  # [P, N+M]
        shuffled = pooled[perm]  # [P, N+M, F]
        null = stat(shuffled[:, :n], shuffled[:, n:])  # [P, F]
        # Tolerance so that exact ties (e.g. the identity permutation) count as "at least as large".
        exceed += (null >= observed - 1e-12 * observed.abs().clamp_min(1.0)).sum(dim=0)
    p_values = (1.0 + exceed) / (1.0 + n_perm)
    return PermutationResult(
        observed=observed.reshape(feature_shape),
        p_values=p_values.reshape(feature_shape),
        n_perm=n_perm,
    )
