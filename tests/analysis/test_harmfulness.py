"""Harmfulness vs refusal maths (Zhao et al. 2025), against plain numpy / hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuroscope.analysis.harmfulness import (
    GroupPlace,
    bootstrap_cosines,
    direction_pair,
    group_place,
    layer_cosines,
    relative_coordinates,
)
from neuroscope.analysis.metrics import Interval


def _acts(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, 2, 8, generator=g)
    x[:, :, 0, 0] += shift  # harmfulness along axis 0
    x[:, :, 1, 1] += shift  # refusal along axis 1
    return x


def test_directions_and_cosines_equal_numpy():
    h, b = _acts(20, 0, shift=3.0), _acts(16, 1)
    d = direction_pair(h, b)
    ref = h.numpy().astype(np.float64).mean(0) - b.numpy().astype(np.float64).mean(0)
    np.testing.assert_allclose(d.numpy(), ref, rtol=1e-12)
    cos = layer_cosines(d).numpy()
    want = [np.dot(ref[l, 0], ref[l, 1]) / np.linalg.norm(ref[l, 0]) / np.linalg.norm(ref[l, 1]) for l in range(4)]
    np.testing.assert_allclose(cos, want, rtol=1e-10)
    assert np.all(np.abs(cos) < 0.8)  # shifted along different axes: distinct directions


def test_a_vanished_direction_gives_nan_not_a_cosine():
    h, b = _acts(10, 0, shift=2.0), _acts(10, 1)
    h[:, 0, 1] = 0.0
    b[:, 0, 1] = 0.0  # layer 0: the template token is the same in every prompt
    cos = layer_cosines(direction_pair(h, b))
    assert math.isnan(cos[0]) and not torch.isnan(cos[1:]).any()
    lo, hi = bootstrap_cosines(h, b, n_boot=50)
    assert math.isnan(lo[0]) and bool((lo[1:] <= cos[1:]).all() and (cos[1:] <= hi[1:]).all())


def test_training_means_sit_at_zero_and_one():
    """By linearity the harmful training prompts average exactly 1 on both coordinates, the harmless 0."""
    h, b = _acts(12, 0, shift=2.0), _acts(9, 1)
    for layer in range(4):
        torch.testing.assert_close(relative_coordinates(h, h, b, layer).mean(0), torch.ones(2, dtype=torch.float64))
        torch.testing.assert_close(relative_coordinates(b, h, b, layer).mean(0), torch.zeros(2, dtype=torch.float64))


def test_coordinates_read_each_slot_on_its_own_direction():
    """x moves with the instruction token only, y with the template token only."""
    h, b = _acts(12, 0, shift=2.0), _acts(9, 1)
    probe = b[:1].clone()
    d = direction_pair(h, b)[2]
    base = relative_coordinates(probe, h, b, 2)[0]
    moved = probe.clone()
    moved[0, 2, 0] += d[0].float()  # one harmfulness direction more at the instruction token
    got = relative_coordinates(moved, h, b, 2)[0]
    assert got[0] - base[0] == pytest.approx(1.0, abs=1e-5) and got[1] == pytest.approx(float(base[1]), abs=1e-6)


def _iv(mean: float, lo: float, hi: float) -> Interval:
    return Interval(mean, lo, hi, 10)


@pytest.mark.parametrize(
    "harm, refuse, apart",
    [
        ((0.9, 0.7, 1.1), (0.2, 0.1, 0.3), True),  # reads as harmful, not refused
        ((0.2, 0.1, 0.3), (0.9, 0.7, 1.1), True),  # refused without reading as harmful
        ((1.0, 0.9, 1.1), (0.8, 0.7, 0.9), False),  # both high: different numbers, same side
        ((0.9, 0.4, 1.1), (0.2, 0.1, 0.3), False),  # harmfulness interval straddles the midpoint
    ],
)
def test_a_group_comes_apart_only_on_opposite_sides_of_the_midpoint(harm, refuse, apart):
    assert GroupPlace(_iv(*harm), _iv(*refuse)).apart is apart


def test_group_place_is_the_coordinates_mean():
    coords = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    place = group_place(coords)
    assert place.harmfulness.mean == pytest.approx(0.5) and place.refusal.mean == pytest.approx(0.5)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="n_layers, 2, d_model"):
        direction_pair(torch.zeros(3, 4, 8), torch.zeros(3, 4, 8))
    with pytest.raises(ValueError, match="layer 9"):
        relative_coordinates(_acts(2, 0), _acts(2, 1), _acts(2, 2), 9)
