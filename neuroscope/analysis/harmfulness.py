"""Harmfulness apart from refusal (Zhao et al. 2025): two difference-of-means directions read at two positions.

Activations come as ``[N, n_layers, 2, d_model]``: slot ``HARM`` is the residual at the last token of the
user's instruction (where Zhao et al. read harmfulness), slot ``REFUSE`` at the last template token (where
Arditi et al.'s refusal direction is read). Pure tensor functions; float64 statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from neuroscope.analysis._checks import require_finite
from neuroscope.analysis.directions import difference_of_means
from neuroscope.analysis.metrics import Interval, bootstrap_ci

HARM, REFUSE = 0, 1
MIDPOINT = 0.5  # halfway from the harmless (0) to the harmful (1) training mean


def _check(acts: Tensor, name: str) -> None:
    if acts.ndim != 4 or acts.shape[2] != 2 or acts.shape[0] == 0:
        raise ValueError(f"{name} must be [N >= 1, n_layers, 2, d_model], got {tuple(acts.shape)}")
    require_finite(acts, name)


@torch.no_grad()
def direction_pair(harmful: Tensor, harmless: Tensor) -> Tensor:
    """The harmfulness and refusal directions at every layer.

    Args:
        harmful, harmless: [N, n_layers, 2, d_model] activations (``N`` may differ between the two).

    Returns:
        [n_layers, 2, d_model] float64: ``[:, HARM]`` harmfulness, ``[:, REFUSE]`` refusal (unnormalised).
    """
    _check(harmful, "harmful")
    _check(harmless, "harmless")
    return difference_of_means(harmful.double().mean(0), harmless.double().mean(0))


@torch.no_grad()
def layer_cosines(directions: Tensor) -> Tensor:
    """Cosine between the harmfulness and the refusal direction at every layer: [n_layers, 2, d] -> [n_layers].

    NaN where a direction vanishes (norm below 1e-6 of its largest layer's): at layer 0 the last template
    token is the same token in every prompt, so its embedding carries no refusal direction at all.
    """
    a, b = directions[:, HARM].double(), directions[:, REFUSE].double()
    na, nb = a.norm(dim=-1), b.norm(dim=-1)
    cos = (a * b).sum(-1) / (na * nb).clamp_min(1e-300)
    vanished = (na <= 1e-6 * na.max()) | (nb <= 1e-6 * nb.max())
    return cos.masked_fill(vanished, float("nan"))


@torch.no_grad()
def bootstrap_cosines(
    harmful: Tensor, harmless: Tensor, n_boot: int = 500, alpha: float = 0.05, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Percentile intervals of ``layer_cosines`` with both prompt sets resampled (each side on its own).

    Returns:
        (lo, hi), each [n_layers] float64.
    """
    _check(harmful, "harmful")
    _check(harmless, "harmless")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    gen = torch.Generator().manual_seed(seed)
    h, b = harmful.double(), harmless.double()
    draws = []
    for _ in range(n_boot):
        hi = torch.randint(len(h), (len(h),), generator=gen)
        bi = torch.randint(len(b), (len(b),), generator=gen)
        draws.append(layer_cosines(h[hi].mean(0) - b[bi].mean(0)))
    q = torch.nanquantile(torch.stack(draws), torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64), dim=0)
    return q[0], q[1]


@torch.no_grad()
def relative_coordinates(acts: Tensor, harmful: Tensor, harmless: Tensor, layer: int) -> Tensor:
    """Each prompt's place on the two directions at ``layer``, on a scale fixed by the training sets.

    ``x`` is the harmfulness coordinate (the instruction's last token along the harmfulness direction),
    ``y`` the refusal coordinate (the last template token along the refusal direction); each is 0 at the
    harmless training mean and 1 at the harmful training mean: ``(a - mean_harmless) . d / |d|^2``.

    Args:
        acts: [N, n_layers, 2, d_model] the prompts to place.
        harmful, harmless: the training activations that define the directions and the scale.

    Returns:
        [N, 2] float64: columns (x, y).
    """
    _check(acts, "acts")
    if not 0 <= layer < acts.shape[1]:
        raise ValueError(f"layer {layer} is outside 0..{acts.shape[1] - 1}")
    d = direction_pair(harmful, harmless)[layer]  # [2, D]
    base = harmless.double().mean(0)[layer]  # [2, D]
    shift = acts.double()[:, layer] - base  # [N, 2, D]
    return (shift * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-30)


@dataclass(frozen=True)
class GroupPlace:
    """Where one group of prompts sits on the two directions, with intervals."""

    harmfulness: Interval
    refusal: Interval

    @property
    def apart(self) -> bool:
        """The group's two signals part: one coordinate's interval lies above the midpoint between the harmless
        and harmful training means (0.5) while the other's lies below it — read as harmful but not refused
        (or refused without reading as harmful)."""
        h, r = self.harmfulness, self.refusal
        return (h.lo > MIDPOINT and r.hi < MIDPOINT) or (r.lo > MIDPOINT and h.hi < MIDPOINT)


def group_place(coords: Tensor, n_boot: int = 2000, seed: int = 0) -> GroupPlace:
    """Mean harmfulness and refusal coordinates of a group ([N, 2] from ``relative_coordinates``)."""
    return GroupPlace(bootstrap_ci(coords[:, 0], n_boot, seed=seed), bootstrap_ci(coords[:, 1], n_boot, seed=seed))
