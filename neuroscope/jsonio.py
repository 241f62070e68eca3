"""JSON from outside (uploaded prompt files, direction metadata, artifacts), parsed with limits.

``json.loads`` recurses once per nesting level: a file nested 10,000 deep is a ``RecursionError``
(an internal error) rather than a clear message. :func:`loads` checks the nesting depth and the size
first and raises ``json.JSONDecodeError`` (what every caller already handles) when they are exceeded.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
MAX_CHARS = 64 * 1024 * 1024
_STRUCTURE = re.compile(r'["\\\[\]{}]')


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of JSON text, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    previous = -2  # where the last backslash inside a string was
    for match in _STRUCTURE.finditer(text):
        ch = match.group()
        if in_string:
            if escaped:
                escaped = False
                # an escaped character right after the backslash: only matters when it is a quote or backslash
                if match.start() == previous + 1:
                    continue
            if ch == "\\":
                escaped, previous = True, match.start()
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string, escaped = True, False
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text: str, max_depth: int = MAX_DEPTH, max_chars: int = MAX_CHARS) -> Any:
    """``json.loads`` that refuses text over ``max_chars`` characters or nested over ``max_depth`` levels."""
    if len(text) > max_chars:
        raise json.JSONDecodeError(f"JSON larger than {max_chars:,} characters", text[:100], 0)
    if nesting_depth(text) > max_depth:
        raise json.JSONDecodeError(f"JSON nested deeper than {max_depth} levels", text[:100], 0)
    return json.loads(text)
