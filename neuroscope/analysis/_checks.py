"""Boundary checks shared by the analysis modules (private)."""

from __future__ import annotations

import torch
from torch import Tensor


def require_finite(x: Tensor, name: str) -> None:
    """Raise a ValueError naming `x` if it holds NaN or +-inf.

    Args:
        x: any shape.
        name: how the error message refers to the tensor.
    """
    if not torch.isfinite(x).all():
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"{name} has {n_nan} NaN and {n_inf} inf values (shape {tuple(x.shape)}); expected finite numbers"
        )


def require_no_nan(x: Tensor, name: str) -> None:
    """Raise a ValueError naming `x` if it holds NaN (infinities allowed).

    Args:
        x: any shape.
        name: how the error message refers to the tensor.
    """
    if torch.isnan(x).any():
        raise ValueError(f"{name} has {int(torch.isnan(x).sum())} NaN values (shape {tuple(x.shape)})")


def stat_dtype(x: Tensor) -> torch.dtype:
    """The dtype to compute statistics in: at least float32, float64 kept.

    Args:
        x: any shape.
    """
    return torch.promote_types(x.dtype, torch.float32)
