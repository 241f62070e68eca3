"""Readable, unique token labels for axes and hover text."""

from __future__ import annotations

import html
from collections.abc import Sequence

from neuroscope.viz._checks import check_labels

# Whitespace made visible. "▁" matches SentencePiece's own space marker, so decoded and raw
# pieces look alike.
_VISIBLE = {" ": "▁", "\n": "↵", "\t": "→", "\r": "␍"}


def format_token(token: str, max_len: int = 16) -> str:
    """One token as a visible string: spaces as "▁", newlines as "↵", tabs as "→".

    Other control characters are shown as `\\xNN`, the empty string as "∅", and tokens longer
    than `max_len` are cut with "…". The result is plain text (not escaped for HTML).
    """
    out = "".join(_VISIBLE.get(ch, f"\\x{ord(ch):02x}" if ord(ch) < 32 or ord(ch) == 127 else ch) for ch in token)
    if not out:
        return "∅"
    return out if len(out) <= max_len else out[: max_len - 1] + "…"


def plotly_text(text: str) -> str:
    """Escape `text` for plotly labels, which parse a subset of HTML (`<br>`, `<b>`...)."""
    return html.escape(text, quote=False)


def token_labels(tokens: Sequence[str], max_len: int = 16, first_position: int = 0) -> list[str]:
    """Unique axis labels `"i: token"` in order, escaped for plotly.

    The position prefix keeps repeated tokens apart; a plotly category axis would otherwise
    merge them into one row. ``first_position``: the prompt position of ``tokens[0]`` when they are
    a window of the prompt (positions are numbered as in the token strip, in every view).
    """
    toks = check_labels(tokens, "tokens")
    return [plotly_text(f"{first_position + i}: {format_token(t, max_len)}") for i, t in enumerate(toks)]
