"""The project's own errors, importable without torch: what a command line turns into one line.

Any other exception escaping a command is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A value given to the project is out of range or inconsistent; the message quotes it and says what is accepted.

    A ``ValueError``, so that callers catching that still do.
    """


class DataError(Exception):
    """The MNIST files are missing, unreadable or corrupt; the message says what to do."""
