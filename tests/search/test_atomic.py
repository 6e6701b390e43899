"""Files written over old ones: whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from search import atomic


def test_write_text_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "r.html"
    atomic.write_text(path, "old")
    atomic.write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_an_error_while_writing_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    atomic.write_bytes(path, b"old")
    with pytest.raises(RuntimeError), atomic.replacing(path, "wb") as f:
        f.write(b"half")
        raise RuntimeError("killed here")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
