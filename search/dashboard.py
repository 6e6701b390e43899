"""optuna-dashboard on our storage, read-only unless asked, with artifacts served as downloads."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sys
import urllib.parse
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna_dashboard
from optuna.storages import BaseStorage

# optuna-dashboard's public API has no look-up of an artifact's stored metadata; its routes use these.
from optuna_dashboard.artifact._backend import get_study_artifact_meta, get_trial_artifact_meta

from search.storage import StorageError, artifact_store, mask_url, open_reader, open_storage
from trainer.errors import UsageError

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class ReadOnlyGuard:
    """WSGI middleware around optuna-dashboard: what reaches it, and what its answers may carry.

    optuna-dashboard has no authentication: anyone who reaches the port can tell, delete,
    annotate and upload, so writes are refused unless ``allow_writes``. Only the ``Host``
    names in ``hosts`` are served, so that a web page on another name cannot read the
    studies through DNS rebinding, and no answer carries a wildcard CORS header. Artifacts
    download as attachments named from their stored metadata (never from the request), so
    an uploaded HTML file is never shown as a page and no header can be injected.
    """

    def __init__(
        self,
        app: WSGIApp,
        allow_writes: bool = False,
        hosts: Iterable[str] = LOOPBACK_NAMES,
        storage: BaseStorage | None = None,
    ) -> None:
        self.app, self.allow_writes, self.storage = app, allow_writes, storage
        self.hosts = {h.lower().strip("[]") for h in hosts}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET").upper(), environ.get("PATH_INFO", "")
        if _host_name(environ.get("HTTP_HOST", "")) not in self.hosts:
            return _refuse(start_response, "421 Misdirected Request", "this dashboard answers only for its own address")
        if method not in SAFE_METHODS and not self.allow_writes:
            return _refuse(
                start_response,
                "403 Forbidden",
                "this dashboard is read-only; restart it with --allow-writes to change studies",
            )
        if ".." in path.split("/") or any(_out_of_range(part) for part in path.split("/")):
            return _refuse(start_response, "404 Not Found", "not found")
        # optuna-dashboard reads this header without a default (a KeyError, answered 500, when absent).
        environ.setdefault("HTTP_ACCEPT_ENCODING", "identity")
        disposition = None
        if path.startswith("/artifacts/"):
            filename = self._artifact_filename(path)
            if filename is None:
                return _refuse(start_response, "404 Not Found", "no such artifact")
            disposition = content_disposition(filename)

        def guarded_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            dropped = {"x-content-type-options", "access-control-allow-origin"}
            if disposition is not None:
                dropped.add("content-disposition")
            headers = [(k, v) for k, v in headers if k.lower() not in dropped]
            headers.append(("X-Content-Type-Options", "nosniff"))
            if disposition is not None:
                headers.append(("Content-Disposition", disposition))
            return start_response(status, headers, exc_info)

        if not self.allow_writes and path.startswith("/dashboard"):
            environ["HTTP_ACCEPT_ENCODING"] = "identity"  # the page is rewritten below: not compressed
            return _with_banner(self.app, environ, guarded_start)
        return self.app(environ, guarded_start)

    def _artifact_filename(self, path: str) -> str | None:
        """The stored file name of the artifact at ``/artifacts/STUDY[/TRIAL]/ID``; None when there is none."""
        parts = path.strip("/").split("/")[1:]
        if self.storage is None or len(parts) not in (2, 3) or not all(_is_id(p) for p in parts[:-1]):
            return None
        try:
            if len(parts) == 2:
                meta = get_study_artifact_meta(self.storage, int(parts[0]), parts[1])
            else:
                meta = get_trial_artifact_meta(self.storage, int(parts[0]), int(parts[1]), parts[2])
        except KeyError:  # no such study or trial
            return None
        return str(meta.get("filename") or parts[-1]) if meta else None


MAX_ID = 2**63 - 1  # the storage's ids are 64-bit: a larger one names nothing (and overflows its driver)


def _is_id(part: str) -> bool:
    """An id the storage may hold: ASCII digits (``int`` reads other scripts' digits too) within 64 bits."""
    return part.isascii() and part.isdigit() and int(part) <= MAX_ID


def _out_of_range(part: str) -> bool:
    return part.isascii() and part.isdigit() and int(part) > MAX_ID


READ_ONLY_BANNER = (
    b'<div id="read-only-banner" style="position:fixed;bottom:0;left:0;right:0;z-index:2000;padding:6px 12px;'
    b"background:#fff3cd;color:#664d03;border-top:1px solid #ffe69c;font:14px system-ui,sans-serif;"
    b'text-align:center"><b>read-only</b>: creating, renaming, deleting, uploading and editing notes are off here; '
    b"restart with <code>--allow-writes</code> to change studies</div>"
)
# optuna-dashboard (0.21) has no read-only mode: its write controls are hidden by what marks them,
# an accessible name or the Material icon that optuna-dashboard gives each (CSS :has(), Chromium 105+,
# Firefox 121+, Safari 15.4+). Anything missed is still refused by ReadOnlyGuard, and the banner says why.
WRITE_CONTROLS = (
    '[aria-label="rename study"]',
    '[aria-label="delete study"]',
    '[aria-label="delete artifact"]',
    '[aria-label="skip trial"]',
    'button:has(svg[data-testid="AddBoxIcon"])',  # CREATE a study
    'button:has(svg[data-testid="EditIcon"])',  # edit a study's or a trial's note
    ':has(> button svg[data-testid="UploadFileIcon"])',  # upload an artifact: the card around the button
    'button:has(svg[data-testid="StopCircleIcon"])',  # Fail Trial, on a running trial
)
# One rule each: a browser that cannot read one selector drops only that rule.
_HIDDEN = "".join(f"{selector}{{display:none!important}}" for selector in WRITE_CONTROLS)
READ_ONLY_STYLE = f'<style id="read-only-style">{_HIDDEN}</style>'.encode()


def _with_banner(app: Callable, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    """The app's answer, with ``READ_ONLY_STYLE`` and ``READ_ONLY_BANNER`` at the end of an HTML page's body."""
    answer: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        answer.update(status=status, headers=headers, exc_info=exc_info)
        return lambda data: None

    result = app(environ, capture)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    headers = answer["headers"]
    kinds = {k.lower(): v for k, v in headers}
    if kinds.get("content-type", "").startswith("text/html") and "content-encoding" not in kinds:
        body = body.replace(b"</body>", READ_ONLY_STYLE + READ_ONLY_BANNER + b"</body>", 1)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    start_response(answer["status"], headers, answer["exc_info"])
    return [body]


def content_disposition(filename: str) -> str:
    """``attachment`` with ``filename`` quoted safely: an ASCII fallback without quotes, controls or
    separators, and the exact name percent-encoded (RFC 6266 / 5987)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"


def _host_name(host: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8080`` -> ``::1``, ``localhost:80`` -> ``localhost``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _refuse(start_response: Callable, status: str, reason: str) -> list[bytes]:
    body = json.dumps({"reason": reason}).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def make_app(
    storage_url: str,
    artifacts: str | None = None,
    allow_writes: bool = False,
    hosts: Iterable[str] = LOOPBACK_NAMES,
) -> ReadOnlyGuard:
    """optuna-dashboard's WSGI app on ``storage_url`` behind ``ReadOnlyGuard``.

    Read-only, it opens the storage to read only (nothing is created; a read-only file or role
    works); with ``allow_writes`` it opens it like a worker does.
    """
    if allow_writes:
        storage = open_storage(storage_url)
    else:
        storage = open_reader(storage_url)
        if storage is None:
            raise StorageError(f"no studies in {mask_url(storage_url)}: nothing to show (check --storage)")
    store = artifact_store(storage_url, artifacts, create=allow_writes)
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    return ReadOnlyGuard(app, allow_writes, hosts, storage)


def served_hosts(host: str, extra: Iterable[str] = ()) -> set[str]:
    """The Host names served: loopback, the bound address, and on a wildcard address this machine's names."""
    names = set(LOOPBACK_NAMES) | {host} | set(extra)
    if host in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname(), socket.getfqdn()}
    return {n.lower().strip("[]") for n in names}


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
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Serve the dashboard until interrupted, answering only for ``served_hosts(host, allowed_hosts)``."""
    app = make_app(storage_url, artifacts, allow_writes, served_hosts(host, allowed_hosts))
    try:
        server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except (OSError, OverflowError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise UsageError(f"cannot listen on {host}:{port} ({why}); pass another --port or --host") from e
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
