"""What a prompt may contain: one rule for typed prompts and for prompt files."""

from __future__ import annotations

import unicodedata

ALLOWED_CONTROL = frozenset("\n\t\r")
# Bidirectional embedding, override and isolate controls: they make displayed text differ from what
# the model reads (the "Trojan Source" trick).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def text_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable prompt (a sentence fragment), or None.

    Refused: control characters other than newline, tab and carriage return; bidirectional overrides;
    and text with nothing visible (only spaces and invisible format characters such as U+200B).
    """
    bad = sorted({c for c in text if (unicodedata.category(c) in ("Cc", "Cs") and c not in ALLOWED_CONTROL)})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        return f"contains control characters ({shown})"
    bidi = sorted(set(text) & BIDI_CONTROLS)
    if bidi:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bidi[:5])
        return f"contains bidirectional override characters ({shown})"
    if not any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text):
        return "has no visible characters"
    return None
