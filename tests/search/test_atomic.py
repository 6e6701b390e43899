"""Files written over old ones: whole or not at all."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from search import atomic
from search.storage import artifact_store


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


class _Breaking(io.BytesIO):
    """A body that fails after its first chunk, as a copy cut short would."""

    def read(self, size: int = -1) -> bytes:
        if self.tell() > 0:
            raise OSError("cut short")
        return super().read(4)


def test_artifact_store_writes_a_model_file_whole_or_not_at_all(tmp_path: Path) -> None:
    store = artifact_store("sqlite:///unused.db", str(tmp_path))
    store.write("a", io.BytesIO(b"weights"))
    with pytest.raises(OSError, match="cut short"):
        store.write("a", _Breaking(b"new weights"))
    with pytest.raises(OSError, match="cut short"):
        store.write("b", _Breaking(b"new weights"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert (tmp_path / "a").read_bytes() == b"weights"


def test_a_link_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic.write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_fifo_is_written_to_not_replaced(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    atomic.write_text(fifo, "through the pipe")
    reader.join(timeout=10)
    assert got == ["through the pipe"] and fifo.is_fifo()


def test_a_full_device_is_an_error_and_stays_a_device() -> None:
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full")
    with pytest.raises(OSError):
        atomic.write_text("/dev/full", "x" * 100_000)
    assert Path("/dev/full").is_char_device()


def test_a_dash_is_the_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    with atomic.replacing("-", "w", newline="") as f:
        f.write("a,b\n")
    assert capsys.readouterr().out == "a,b\n" and not Path("-").exists()
