"""The dashboard's HTTP surface, by real requests against a running ``python -m search dashboard``."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from search.dashboard import content_disposition
from search.storage import open_storage
from tests.conftest import REPO
from tests.search.conftest import run_search
from tests.search.test_cli import one_line_error

STORED_NAME = 'model "best";\r\nX: 1.pt'


class Dashboard:
    """A running dashboard: its port, and requests sent exactly as written (raw path, any Host)."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port

    def get(
        self, path: str, host: str | None = None, method: str = "GET", accept_encoding: str | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"127.0.0.1:{self.port}" if host is None else host)
            if accept_encoding is not None:
                conn.putheader("Accept-Encoding", accept_encoding)
            conn.putheader("Content-Length", "0")
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.msg, response.read()
        finally:
            conn.close()


def start_dashboard(cwd: Path, *args: str) -> tuple[subprocess.Popen[str], int, str]:
    """``python -m search dashboard --port 0 ARGS``; returns it, its port and its banner once that is printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--port", "0", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"http://[^:]+:(\d+)/", line)
        if match:
            return proc, int(match.group(1)), line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the dashboard did not start: {proc.stderr.read()}")


def stop(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C the dashboard; its remaining stderr."""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return err


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dashboard, dict[str, int | str]]]:
    """A study with one trial holding one artifact (stored under an awkward name), and a dashboard on it."""
    folder = tmp_path_factory.mktemp("dashboard")
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{folder / 'studies.db'}")
    trial = study.ask()
    source = folder / "upload.bin"
    source.write_bytes(b"weights")
    store = FileSystemArtifactStore(folder / "studies-artifacts")
    (folder / "studies-artifacts").mkdir()
    artifact_id = upload_artifact(artifact_store=store, file_path=str(source), study_or_trial=trial)
    # The stored name as another client could have uploaded it: quotes, a semicolon and a line break.
    key = f"artifacts:{artifact_id}"
    meta = json.loads(study._storage.get_trial_system_attrs(trial._trial_id)[key])
    study._storage.set_trial_system_attr(trial._trial_id, key, json.dumps({**meta, "filename": STORED_NAME}))
    study.tell(trial, 1.0)
    proc, port, _ = start_dashboard(folder)
    ids = {"study": study._study_id, "trial": trial._trial_id, "artifact": artifact_id}
    try:
        yield Dashboard(proc, port), ids
    finally:
        err = stop(proc)
        assert "Traceback" not in err and "KeyError" not in err, err


def test_injected_header_in_an_artifact_path_is_not_answered(dashboard: tuple[Dashboard, dict]) -> None:
    server, _ = dashboard
    status, headers, _ = server.get("/artifacts/1/x%0d%0aSet-Cookie:%20pwned=1")
    assert status == 404
    assert "Set-Cookie" not in headers and "pwned" not in str(headers)


def test_artifact_is_named_from_its_stored_metadata_and_carries_no_wildcard_cors(
    dashboard: tuple[Dashboard, dict],
) -> None:
    server, ids = dashboard
    status, headers, body = server.get(f"/artifacts/{ids['study']}/{ids['trial']}/{ids['artifact']}")
    assert status == 200 and body == b"weights"
    assert headers["Content-Disposition"] == content_disposition(STORED_NAME)
    assert headers["Content-Disposition"].startswith('attachment; filename="model__best____X__1.pt"')
    assert "X" not in headers  # the line break in the stored name did not start a header
    assert "Access-Control-Allow-Origin" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    ["/artifacts/1/999/{artifact}", "/artifacts/999/{artifact}", "/artifacts/1/{trial}/" + str(uuid.uuid4())],
)
def test_artifact_of_a_missing_trial_or_study_is_404(dashboard: tuple[Dashboard, dict], path: str) -> None:
    server, ids = dashboard
    status, _, _ = server.get(path.format(**ids))
    assert status == 404


@pytest.mark.parametrize(
    "path",
    ["/artifacts/9223372036854775808/x", "/artifacts/1/99999999999999999999/x", "/csv/9223372036854775808",
     "/api/studies/9223372036854775808"],
)  # fmt: skip
def test_an_id_past_64_bits_is_404_with_nosniff(dashboard: tuple[Dashboard, dict], path: str) -> None:
    server, _ = dashboard
    status, headers, _ = server.get(path)
    assert status == 404 and headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/static/..", "/static/../index.html", "/static/%2e%2e/index.html", "/favicon.ico"])
def test_static_paths_without_accept_encoding_are_not_500(dashboard: tuple[Dashboard, dict], path: str) -> None:
    server, _ = dashboard
    status, _, _ = server.get(path)
    assert status in ((200,) if path == "/favicon.ico" else (404,))


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("127.0.0.1:{port}", True),
        ("localhost:{port}", True),
        ("localhost", True),
        ("[::1]:{port}", True),
        ("evil.example:{port}", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_only_the_bound_host_names_are_served(dashboard: tuple[Dashboard, dict], host: str, served: bool) -> None:
    server, _ = dashboard
    status, _, _ = server.get("/api/studies", host=host.format(port=server.port))
    assert (status == 200) is served and (status == 421) is not served


def test_writes_are_refused(dashboard: tuple[Dashboard, dict]) -> None:
    server, ids = dashboard
    status, _, _ = server.get(f"/api/studies/{ids['study']}", method="DELETE")
    assert status == 403


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_port_out_of_range_is_one_line(tmp_path: Path, port: str) -> None:
    one_line_error(run_search("dashboard", "--port", port, cwd=tmp_path), f"'{port}'", "0..65535")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5])
def test_ctrl_c_while_the_dashboard_starts_is_quiet(tmp_path: Path, delay: float) -> None:
    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(delay)
    err = stop(proc)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode in (0, 130), err


def test_read_only_dashboard_follows_a_study_being_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = open_storage(url)  # WAL mode, as every worker opens it
    optuna.create_study(study_name="first", storage=storage)
    storage.engine.dispose()
    proc, port, _ = start_dashboard(tmp_path)
    try:
        server = Dashboard(proc, port)
        status, _, body = server.get("/api/studies")
        assert status == 200 and b"first" in body and b"second" not in body
        writer = open_storage(url)
        optuna.create_study(study_name="second", storage=writer)  # while the writer holds the database open
        status, _, body = server.get("/api/studies")
        assert status == 200 and b"second" in body
        writer.engine.dispose()
    finally:
        err = stop(proc)
    assert "Traceback" not in err, err


def test_read_only_pages_carry_a_banner_saying_so(dashboard: tuple[Dashboard, dict]) -> None:
    server, _ = dashboard
    status, headers, body = server.get("/dashboard", accept_encoding="gzip")  # a browser's request
    assert status == 200 and b'id="read-only-banner"' in body and b"--allow-writes" in body
    assert b'<style id="read-only-style">' in body  # the write controls hidden, as test_browser.py sees
    assert b'[aria-label="delete study"]{display:none!important}' in body
    assert int(headers["Content-Length"]) == len(body)
