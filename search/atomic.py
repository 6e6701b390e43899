"""Writing a file over an old one so that a crash at any instant leaves the old file or the new one, whole."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: object) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path`` in one rename.

    The data is flushed and fsynced before the rename, and the folder after it, so that a
    kill -9 or a power loss never leaves a truncated file under ``path``. On an error the
    temporary file is removed and ``path`` is left as it was. Only regular files are
    replaced: ``-`` is the standard output, a symbolic link is followed to its target
    (which is replaced; the link stays), and a FIFO, device or socket is written directly.

    Args:
        path: the file to write (``-``: stdout); its folder is created when missing.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        open_kwargs: passed on to ``open`` (``encoding``, ``newline``).
    """
    if str(path) == STDOUT:
        yield _stdout(mode)
        return
    # A link is followed: its target gets the new file and the link stays a link.
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file() and not target.is_dir():
        # A FIFO, a device, a socket: written as it is (its reader gets the data), never replaced by a file.
        with open(target, mode, **open_kwargs) as f:  # type: ignore[call-overload]
            yield f
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with open(fd, mode, **open_kwargs) as f:  # type: ignore[call-overload]
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


STDOUT = "-"


def _stdout(mode: str) -> IO:
    """The standard output, left open when the caller is done with it."""
    stream = sys.stdout.buffer if "b" in mode else sys.stdout
    return _Unclosed(stream)  # type: ignore[return-value]


class _Unclosed:
    """A stream whose ``close`` only flushes (``-`` must not close the process's stdout)."""

    def __init__(self, stream: IO) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)

    def __enter__(self) -> _Unclosed:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``text`` atomically (see ``replacing``); returns the path."""
    with replacing(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (see ``replacing``); returns the path."""
    with replacing(path, "wb") as f:
        f.write(data)
    return Path(path)


def _umask() -> int:
    # /proc tells the umask without changing it; os.umask() would change it for every thread a moment.
    with contextlib.suppress(OSError, StopIteration, ValueError):
        lines = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in lines if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot open a folder, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
