"""Input checks shared by the research service: numbers, whole numbers, plain text; the error type."""

from __future__ import annotations

import math
import re
from typing import Callable

from neuroscope.errors import UserError

Progress = Callable[[float, str], None]


class ResearchError(UserError):
    """A research request cannot be served; the message is for the user."""


def plain_text(value: object, limit: int = 80) -> str:
    """A file's metadata string made safe to show in Markdown: letters, digits and plain punctuation only."""
    text = re.sub(r"[^\w .,:/@+()-]", "", str(value))[:limit].strip()
    return text or "unnamed"


def as_float(value: object, name: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ResearchError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ResearchError(f"{name} must be a finite number, got {value!r}")
    return x


def as_int(value: object, name: str) -> int:
    x = as_float(value, name)
    if x != int(x):
        raise ResearchError(f"{name} must be a whole number, got {value!r}")
    return int(x)


def positive_int(value: object, name: str) -> int:
    n = as_int(value, name)
    if n < 1:
        raise ResearchError(f"{name} must be at least 1, got {n}")
    return n
