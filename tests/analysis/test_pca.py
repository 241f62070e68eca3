import pytest
import torch

from neuroscope.analysis.pca import pca, pca_trajectory


def _planted(n=300, d=20, rank=2, noise=1e-3, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(d, rank, generator=g, dtype=torch.float64))  # [d, rank]
    scales = torch.tensor([5.0, 2.0, 1.0][:rank], dtype=torch.float64)
    latent = torch.randn(n, rank, generator=g, dtype=torch.float64) * scales
    shift = torch.randn(d, generator=g, dtype=torch.float64) * 10
    x = latent @ basis.T + shift + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, basis


def test_pca_recovers_planted_subspace():
    x, basis = _planted()
    res = pca(x, k=2)
    assert res.components.shape == (2, 20) and res.components.dtype == torch.float64
    torch.testing.assert_close(res.components @ res.components.T, torch.eye(2, dtype=torch.float64))
    # projector onto the found subspace equals the planted one
    p_found = res.components.T @ res.components
    p_true = basis @ basis.T
    assert (p_found - p_true).abs().max() < 1e-3
    evr = res.explained_variance_ratio
    assert evr[0] >= evr[1] and evr.sum() <= 1 + 1e-12 and evr.sum() > 0.999
    assert evr[0] / evr[1] == pytest.approx(25 / 4, rel=0.3)
    recon = res.inverse_transform(res.transform(x))
    assert (recon - x).norm() / (x - x.mean(0)).norm() < 1e-3


def test_pca_k3_ratios_and_float32_input():
    x, _ = _planted(rank=3, noise=0.1)
    res = pca(x.float(), k=3)
    assert res.explained_variance_ratio.sum() <= 1.0
    assert torch.all(res.explained_variance_ratio[:-1] >= res.explained_variance_ratio[1:])


def test_pca_sign_convention_is_deterministic():
    x, _ = _planted(rank=3, noise=0.1)
    a = pca(x, k=3)
    b = pca(-x, k=3)  # flipping the data flips raw SVD signs
    torch.testing.assert_close(a.components, b.components)
    idx = a.components.abs().argmax(dim=1)
    assert (a.components.gather(1, idx[:, None]) > 0).all()
    torch.testing.assert_close(pca(x[torch.randperm(len(x))], k=3).components, a.components)


def test_pca_errors():
    with pytest.raises(ValueError):
        pca(torch.zeros(5, 3), k=1)  # zero variance
    with pytest.raises(ValueError):
        pca(torch.randn(5, 3), k=4)
    bad = torch.randn(5, 3)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pca(bad, k=1)


def test_pca_trajectory_shapes_and_consistency():
    g = torch.Generator().manual_seed(1)
    resid = torch.randn(5, 7, 16, generator=g)
    coords, evr = pca_trajectory(resid, k=3)
    assert coords.shape == (5, 7, 3) and evr.shape == (3,)
    fit = pca(resid.reshape(35, 16), k=3)
    torch.testing.assert_close(coords.reshape(35, 3), fit.transform(resid.reshape(35, 16)))
    torch.testing.assert_close(coords.reshape(35, 3).mean(0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(evr, fit.explained_variance_ratio)


@pytest.mark.parametrize("decay", [0.5, 0.97])  # a steep spectrum, and one as flat as a random model's stream
def test_the_iterative_top_components_equal_the_svds(decay):
    """``tol`` takes the top components by subspace iteration (the trajectory view on large streams); they
    must be the exact decomposition's: components, ratios and signs, against numpy's SVD."""
    import numpy as np

    g = torch.Generator().manual_seed(4)
    n, d = 600, 300
    scales = decay ** torch.arange(d, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scales + 3.0
    fast, exact = pca(x, k=3, tol=1e-9), pca(x, k=3)
    centred = (x - x.mean(0)).numpy()
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    torch.testing.assert_close(exact.components, _signed(torch.from_numpy(vt[:3])), rtol=0, atol=1e-9)
    torch.testing.assert_close(fast.components, exact.components, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        fast.explained_variance_ratio, torch.from_numpy(s[:3] ** 2 / (s**2).sum()), rtol=1e-9, atol=0
    )


def _signed(vt):
    idx = vt.abs().argmax(dim=1, keepdim=True)
    return vt * torch.sign(vt.gather(1, idx))


def test_the_trajectory_of_a_long_stream_uses_the_checked_iteration_and_matches_the_svd():
    g = torch.Generator().manual_seed(5)
    resid = torch.randn(7, 60, 300, generator=g, dtype=torch.float64).cumsum(0)  # 420 points > 256: iterated
    coords, ratio = pca_trajectory(resid, k=3)
    exact = pca(resid.reshape(-1, 300), k=3)
    torch.testing.assert_close(coords, exact.transform(resid), rtol=0, atol=1e-4 * float(coords.abs().max()))
    torch.testing.assert_close(ratio, exact.explained_variance_ratio, rtol=1e-8, atol=0)
