"""The refusal cone (Wollschläger et al., ICML 2025): is one direction enough, or does refusal span a few?

Pure tensor functions: orthonormal bases of k-dimensional candidate subspaces and the subspace ablation
``x - (x Q^T) Q``. The intervention that applies it inside the model is ``model.interventions.SubspaceAblation``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neuroscope.analysis._checks import require_finite, stat_dtype

RANK_TOL = 1e-6  # a vector whose part outside the span so far is below this share of its norm adds no dimension


@torch.no_grad()
def orthonormal_basis(vectors: Tensor) -> Tensor:
    """Gram-Schmidt (twice, for stability) in the given order: ``[k, d]`` -> ``[k, d]`` orthonormal rows.

    Raises:
        ValueError: if a vector adds no new dimension (zero, or in the span of the ones before it).
    """
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise ValueError(f"vectors must be [k >= 1, d], got {tuple(vectors.shape)}")
    require_finite(vectors, "vectors")
    v = vectors.double()
    rows: list[Tensor] = []
    for i, x in enumerate(v):
        norm = x.norm()
        for _ in range(2):
            for q in rows:
                x = x - (x @ q) * q
        if norm == 0 or x.norm() <= RANK_TOL * norm:
            raise ValueError(f"vector {i} adds no dimension to the ones before it")
        rows.append(x / x.norm())
    return torch.stack(rows)


@torch.no_grad()
def pca_basis(harmful: Tensor, harmless: Tensor, k: int) -> Tensor:
    """The difference of means, then the main axes of how harmful prompts differ from the harmless mean.

    Args:
        harmful: [N, d] activations at one layer and position; harmless: [M, d].
        k: dimensions (1 gives the difference-of-means direction alone).

    Returns:
        [k, d] float64 orthonormal: row 0 the (unit) difference of means, rows 1.. the top principal
        components of ``harmful - mean(harmless)`` with the rows before them projected out.
    """
    if not 1 <= k <= min(len(harmful), harmful.shape[-1]):
        raise ValueError(f"k must be in 1..{min(len(harmful), harmful.shape[-1])}, got {k}")
    h, b = harmful.double(), harmless.double()
    diffs = h - b.mean(0)
    first = diffs.mean(0)
    basis = orthonormal_basis(first[None])
    rest = diffs - (diffs @ basis.T) @ basis  # the spread of harmful prompts outside the direction
    rest = rest - rest.mean(0)
    if k > 1:
        _, _, vt = torch.linalg.svd(rest, full_matrices=False)
        basis = orthonormal_basis(torch.cat([basis, vt[: k - 1]]))
    return basis


@torch.no_grad()
def layer_basis(directions: Tensor, layer: int, k: int) -> Tensor:
    """The direction at ``layer``, then its neighbours' (layer+1, layer-1, layer+2, ...), orthonormalised in
    that order; a neighbour that adds no dimension (e.g. a zero direction at layer 0) is skipped.

    Args:
        directions: [n_layers, d] difference-of-means directions at one position.
    """
    L = directions.shape[0]
    if not 0 <= layer < L:
        raise ValueError(f"layer {layer} is outside 0..{L - 1}")
    order = [layer] + [x for s in range(1, L) for x in (layer + s, layer - s) if 0 <= x < L]
    rows: list[Tensor] = []
    for i in order:
        try:
            rows = list(orthonormal_basis(torch.stack([*rows, directions[i].double()])))
        except ValueError:
            continue
        if len(rows) == k:
            return torch.stack(rows)
    raise ValueError(f"the layers' directions span only {len(rows)} dimensions, fewer than k = {k}")


def random_basis(d: int, k: int, generator: torch.Generator) -> Tensor:
    """A uniformly random k-dimensional subspace of R^d: [k, d] float64 orthonormal."""
    return orthonormal_basis(torch.randn(k, d, generator=generator, dtype=torch.float64))


def ablate_subspace(x: Tensor, basis: Tensor) -> Tensor:
    """Remove the span of an orthonormal ``basis`` [k, d] from ``x`` [..., d]: ``x - (x Q^T) Q``.

    Computed in float32 (or float64) and cast back to x's dtype once; differentiable.
    """
    if basis.ndim != 2 or basis.shape[-1] != x.shape[-1]:
        raise ValueError(f"basis {tuple(basis.shape)} does not match x {tuple(x.shape)}")
    dtype = stat_dtype(x)
    q = basis.to(device=x.device, dtype=dtype)
    xf = x.to(dtype)
    return (xf - (xf @ q.T) @ q).to(x.dtype)
