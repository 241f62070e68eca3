"""The one base class of every error whose message is meant for the user.

The UI and the CLI show a ``UserError``'s message as it is (one line, what to do). Anything else is
a bug: it is logged with its traceback and the user sees a short generic message, never internals
dressed up as input advice.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class UserError(ValueError):
    """Bad input, a missing file, an unusable model...: the message says what to do about it."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose user errors are one line on stderr and exit status 2 (not a usage block)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
