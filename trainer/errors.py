"""The trainer's user errors, importable without torch (the command lines catch them)."""


class DataError(Exception):
    """The MNIST files are missing, unreadable or corrupt; the message says what to do."""
