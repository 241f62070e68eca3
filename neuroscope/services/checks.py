"""Input checks shared by the research service: numbers, whole numbers, plain text; the error type."""

from __future__ import annotations

import math
import re

from neuroscope.config import SEED_MAX
from neuroscope.errors import UserError


class ResearchError(UserError):
    """A research request cannot be served; the message is for the user."""


def plain_text(value: object, limit: int = 80) -> str:
    """A file's metadata string made safe to show in Markdown: letters, digits and plain punctuation only."""
    text = re.sub(r"[^\w .,:/@+()-]", "", str(value))[:limit].strip()
    return text or "unnamed"


def _shown(value: object, limit: int = 40) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def as_float(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise ResearchError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int) and value.bit_length() > 64:  # bounded before any conversion
        raise ResearchError(f"{name} must be a number of sensible size, got {_shown(value)}")
    if isinstance(value, str) and len(value) > 64:
        raise ResearchError(f"{name} must be a number, got {_shown(value)}")
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise ResearchError(f"{name} must be a number, got {_shown(value)}") from None
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


def as_seed(value: object, name: str = "seed") -> int:
    """A seed: a whole number in 0..SEED_MAX, refused (never clamped) outside it."""
    n = as_int(value, name)
    if not 0 <= n <= SEED_MAX:
        raise ResearchError(f"{name} must be a whole number in 0..{SEED_MAX}, got {n}")
    return n


def as_bool(value: object, name: str) -> bool:
    """A checkbox's value: a real boolean only ("false", "no", 0 or None are refused, not guessed)."""
    if not isinstance(value, bool):
        raise ResearchError(f"{name} must be true or false, got {_shown(value)}")
    return value


def as_choice(value: object, name: str, choices: "tuple[str, ...] | list[str]") -> str:
    """One of ``choices`` exactly (None or anything else is refused, never mapped to a default)."""
    if not isinstance(value, str) or value not in choices:
        raise ResearchError(f"{name} must be one of {', '.join(map(repr, choices))}, got {_shown(value)}")
    return value
