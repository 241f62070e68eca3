"""Types shared across layers."""

from __future__ import annotations

from typing import Callable

Progress = Callable[[float, str], None]  # progress(fraction in [0, 1], what is being done)
