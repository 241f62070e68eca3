"""The refusal cone's bases and subspace ablation, against numpy (QR, least squares, SVD)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope.analysis.cone import ablate_subspace, layer_basis, orthonormal_basis, pca_basis, random_basis


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_orthonormal_basis_spans_the_same_space_in_order():
    v = _rand(3, 10)
    q = orthonormal_basis(v).numpy()
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
    ref, _ = np.linalg.qr(v.numpy().T)  # numpy's own orthonormalisation of the same columns
    np.testing.assert_allclose(np.abs(q @ ref), np.eye(3), atol=1e-10)  # same order, up to sign
    assert np.dot(q[0], v[0].numpy()) > 0


def test_a_dependent_or_zero_vector_is_refused():
    v = _rand(2, 6)
    with pytest.raises(ValueError, match="vector 2 adds no dimension"):
        orthonormal_basis(torch.cat([v, (v[0] + 2 * v[1])[None]]))
    with pytest.raises(ValueError, match="vector 0"):
        orthonormal_basis(torch.zeros(1, 6))


def test_subspace_ablation_equals_the_least_squares_residual():
    """x minus its projection on span(basis), computed by numpy least squares on the *raw* vectors."""
    raw = _rand(3, 12, seed=1)
    raw[2] = raw[0] + 0.5 * raw[1] + 0.1 * raw[2]  # far from orthogonal
    x = _rand(4, 5, 12, seed=2)
    got = ablate_subspace(x, orthonormal_basis(raw)).numpy()
    A = raw.numpy().T  # [d, k]
    flat = x.numpy().reshape(-1, 12)
    coef, *_ = np.linalg.lstsq(A, flat.T, rcond=None)
    want = (flat - (A @ coef).T).reshape(x.shape)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_pca_basis_starts_with_the_difference_of_means_then_the_main_spread():
    g = torch.Generator().manual_seed(3)
    harmless = torch.randn(40, 8, generator=g, dtype=torch.float64)
    harmful = torch.randn(50, 8, generator=g, dtype=torch.float64)
    harmful[:, 0] += 4.0  # the mean shift
    harmful[:, 1] *= 6.0  # the widest spread outside it
    q = pca_basis(harmful, harmless, 2).numpy()
    d = (harmful.mean(0) - harmless.mean(0)).numpy()
    np.testing.assert_allclose(q[0], d / np.linalg.norm(d), atol=1e-12)
    rest = harmful.numpy() - harmless.mean(0).numpy()
    rest = rest - np.outer(rest @ q[0], q[0])
    rest -= rest.mean(0)
    top = np.linalg.svd(rest, full_matrices=False)[2][0]
    top -= (top @ q[0]) * q[0]
    assert abs(np.dot(q[1], top / np.linalg.norm(top))) == pytest.approx(1.0, abs=1e-8)


def test_layer_basis_takes_neighbours_in_order_and_skips_a_vanished_one():
    dirs = _rand(5, 7, seed=4)
    dirs[3] = 0.0  # a layer with no direction
    q = layer_basis(dirs, 2, 3).numpy()
    # layer 2, then 3 (zero: skipped), then 1, then 4
    ref = orthonormal_basis(dirs[[2, 1, 4]]).numpy()
    np.testing.assert_allclose(q, ref, atol=1e-12)
    with pytest.raises(ValueError, match="span only"):
        layer_basis(torch.zeros(3, 4), 1, 1)


def test_random_basis_is_orthonormal_and_seeded():
    a = random_basis(16, 3, torch.Generator().manual_seed(0))
    b = random_basis(16, 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a @ a.T, torch.eye(3, dtype=torch.float64))
