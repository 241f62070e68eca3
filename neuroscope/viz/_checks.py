"""Input validation shared by the figure builders.

Every builder converts its inputs here, so shape errors surface as one kind of exception
(`ValueError`) with the argument's name, before plotly sees anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def as_array(x: Any, name: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """A float64 numpy copy of `x` (numpy array, nested list, or torch tensor on any device).

    Args:
        x: array-like.
        name: argument name, used in error messages.
        shape: expected shape; `None` entries match any size. The number of entries fixes `ndim`.

    Raises:
        ValueError: if `x` is not numeric or its shape does not match.
    """
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        # a torch tensor (duck-typed so viz never imports torch): leave the graph and the GPU;
        # bfloat16 has no numpy dtype, so it goes through float32
        x = x.detach().cpu()
        try:
            x = x.numpy()
        except TypeError:
            x = x.float().numpy()
    try:
        arr = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as err:  # ragged nested lists, non-numeric objects
        raise ValueError(f"{name}: could not convert to a numeric array ({err})") from None
    if shape is not None:
        check_shape(arr, name, shape)
    return arr


def check_shape(arr: np.ndarray, name: str, shape: tuple[int | None, ...]) -> None:
    """Raise ValueError unless `arr.shape` matches `shape` (`None` = any size)."""
    ok = arr.ndim == len(shape) and all(e is None or e == a for e, a in zip(shape, arr.shape))
    if not ok:
        want = "[" + ", ".join("?" if e is None else str(e) for e in shape) + "]"
        raise ValueError(f"{name}: expected shape {want}, got {list(arr.shape)}")


def check_labels(labels: Sequence[Any], name: str, n: int | None = None) -> list[str]:
    """A list of string labels of length `n` (if given); numbers are accepted and stringified."""
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise ValueError(f"{name}: expected a sequence of labels, got {type(labels).__name__}")
    out = [lab if isinstance(lab, str) else str(lab) for lab in labels]
    if n is not None and len(out) != n:
        raise ValueError(f"{name}: expected {n} labels to match the data, got {len(out)}")
    return out


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise ValueError if `arr` holds NaN or infinity."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")


def check_range(arr: np.ndarray, name: str, lo: float, hi: float, atol: float = 1e-6) -> None:
    """Raise ValueError if any non-NaN entry lies outside [lo, hi] (with tolerance `atol`)."""
    vals = arr[~np.isnan(arr)]
    if vals.size and (vals.min() < lo - atol or vals.max() > hi + atol):
        raise ValueError(f"{name}: values must lie in [{lo:g}, {hi:g}], got [{vals.min():.4g}, {vals.max():.4g}]")


def check_index(i: int, name: str, n: int) -> int:
    """Raise ValueError unless `i` is an integer in [0, n)."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
        raise ValueError(f"{name}: expected an integer in [0, {n}), got {i!r}")
    return int(i)
