"""The one base class of every error whose message is meant for the user.

The UI and the CLI show a ``UserError``'s message as it is (one line, what to do). Anything else is
a bug: it is logged with its traceback and the user sees a short generic message, never internals
dressed up as input advice.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input, a missing file, an unusable model...: the message says what to do about it."""
