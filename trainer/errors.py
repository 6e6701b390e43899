"""The project's own error for bad input: what a command line turns into one line and exit 2."""

from __future__ import annotations


class UsageError(ValueError):
    """A value given to the project is out of range or inconsistent; the message quotes it and says what is accepted.

    A ``ValueError``, so that callers catching that still do; any other ``ValueError``
    escaping a command is a bug and keeps its traceback.
    """
