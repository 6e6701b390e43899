"""optuna-dashboard on our storage, read-only unless asked, with artifacts served as downloads."""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna_dashboard

from search.storage import artifact_store, mask_url, open_storage

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class ReadOnlyGuard:
    """WSGI middleware: refuses every write unless ``allow_writes``; artifacts download as attachments.

    optuna-dashboard has no authentication: anyone who reaches the port can tell,
    delete, annotate and upload. An uploaded HTML artifact would be served as a page.
    """

    def __init__(self, app: WSGIApp, allow_writes: bool = False) -> None:
        self.app, self.allow_writes = app, allow_writes

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET").upper(), environ.get("PATH_INFO", "")
        if method not in SAFE_METHODS and not self.allow_writes:
            body = json.dumps(
                {"reason": "this dashboard is read-only; restart it with --allow-writes to change studies"}
            )
            start_response(
                "403 Forbidden",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("X-Content-Type-Options", "nosniff"),
                ],
            )
            return [body.encode()]
        is_artifact = path.startswith("/artifacts/")

        def guarded_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "x-content-type-options"]
            headers.append(("X-Content-Type-Options", "nosniff"))
            if is_artifact:
                headers = [(k, v) for k, v in headers if k.lower() != "content-disposition"]
                headers.append(("Content-Disposition", f'attachment; filename="{path.rstrip("/").rsplit("/", 1)[-1]}"'))
            return start_response(status, headers, exc_info)

        return self.app(environ, guarded_start)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def make_app(storage_url: str, artifacts: str | None = None, allow_writes: bool = False) -> ReadOnlyGuard:
    storage = open_storage(storage_url)
    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store(storage_url, artifacts))
    return ReadOnlyGuard(app, allow_writes)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    storage_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifacts: str | None = None,
    allow_writes: bool = False,
) -> None:
    """Serve the dashboard until interrupted."""
    app = make_app(storage_url, artifacts, allow_writes)
    try:
        server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}); pass another --port or --host") from e
    if not is_loopback(host):
        print(
            f"warning: serving on {host}, reachable from other machines; optuna-dashboard has no authentication",
            file=sys.stderr,
        )
    mode = "read-write" if allow_writes else "read-only"
    print(
        f"optuna-dashboard ({mode}) for {mask_url(storage_url)} at http://{host}:{server.server_port}/ "
        "(Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
