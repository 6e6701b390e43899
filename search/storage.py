"""Opening Optuna's RDB storage (SQLite or PostgreSQL) safely, and where its artifacts live."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import optuna
import sqlalchemy
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

DEFAULT_STORAGE = "sqlite:///studies.db"
SQLITE_BUSY_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 5
MAX_RETRIES = 3  # a trial whose worker died is re-run at most this many times


class StorageError(Exception):
    """The storage cannot be used; the message names it (password masked) and says why."""


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, else None."""
    if not url.startswith("sqlite:"):
        return None
    path = url.split("sqlite:///", 1)[1].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


def check_url(url: str) -> None:
    if url.startswith("sqlite:") and sqlite_path(url) is None:
        raise StorageError(f"storage {url!r} is in memory, which workers cannot share: use sqlite:///FILE.db")
    if not re.match(r"^(sqlite:///.+|postgresql(\+\w+)?://.+)$", url):
        raise StorageError(
            f"unknown storage URL {mask_url(url)!r}: use sqlite:///FILE.db or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
        )


def open_storage(url: str = DEFAULT_STORAGE, heartbeat: int | None = None) -> RDBStorage:
    """Open (creating tables in a new database) the RDB storage at ``url``.

    SQLite is put in WAL mode with a long busy timeout, so that local workers wait for
    each other instead of failing with "database is locked". PostgreSQL connections time
    out after a few seconds instead of hanging. With ``heartbeat`` (seconds), a trial
    whose worker stops beating for twice that is failed and its parameters re-run.
    """
    check_url(url)
    db = sqlite_path(url)
    # Workers opening a new SQLite file at once would race to switch it to WAL and to create
    # its tables ("database is locked", "table ... already exists"): they take turns instead.
    with file_lock(db) if db is not None else contextlib.nullcontext():
        return _open(url, heartbeat)


def _open(url: str, heartbeat: int | None) -> RDBStorage:
    engine_url, engine_kwargs = _engine(url)
    retry = {}
    if heartbeat is not None:
        retry = {
            "heartbeat_interval": heartbeat,
            "grace_period": 2 * heartbeat,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
        }
    try:
        # An existing database is opened without creating tables, so that Optuna's schema-version
        # check runs before anything is written: an old or new schema is never silently migrated.
        storage = _open_rdb(engine_url, engine_kwargs, retry)
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error) as e:
        raise StorageError(f"cannot open storage {mask_url(url)}: {_first_line(e)}") from e
    except RuntimeError as e:  # the schema-version check: "... `optuna storage upgrade` ..."
        raise StorageError(f"storage {mask_url(url)}: {' '.join(str(e).split())}") from e
    return storage


@contextlib.contextmanager
def file_lock(db: Path) -> Iterator[None]:
    """An exclusive lock on ``DB.lock`` beside a SQLite file, shared by every process that opens it.

    Not re-entrant: a process holding it must not take it again (the study's lock is the same file).
    """
    if not db.parent.exists():
        raise StorageError(f"cannot create storage sqlite:///{db}: folder {db.parent} does not exist")
    try:
        held = open(f"{db}.lock", "a")  # noqa: SIM115 - closed below
    except OSError as e:
        raise StorageError(f"storage sqlite:///{db} is read-only ({e.strerror}): make its folder writable") from e
    with held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _open_rdb(engine_url: str, engine_kwargs: dict, retry: dict) -> RDBStorage:
    for attempt in range(3):
        existing = _has_tables(engine_url, engine_kwargs)
        try:
            return RDBStorage(engine_url, engine_kwargs=engine_kwargs, skip_table_creation=existing, **retry)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Two workers creating the tables of a new PostgreSQL database at once: one wins, the other
            # finds the tables there when it tries again.
            if attempt == 2:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def _has_tables(engine_url: str, engine_kwargs: dict) -> bool:
    engine = sqlalchemy.create_engine(engine_url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)
    try:
        return sqlalchemy.inspect(engine).has_table("alembic_version")
    finally:
        engine.dispose()


def artifact_store(url: str, directory: str | None = None) -> FileSystemArtifactStore:
    """The file-system artifact store: ``directory``, else beside a SQLite file, else ./artifacts."""
    if directory is None:
        db = sqlite_path(url)
        directory = str(db.with_name(f"{db.stem}-artifacts")) if db else "artifacts"
    os.makedirs(directory, exist_ok=True)
    return FileSystemArtifactStore(directory)


def _engine(url: str) -> tuple[str, dict]:
    db = sqlite_path(url)
    if db is not None:
        _prepare_sqlite(db, url)
        return url, {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url, {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS}, "pool_pre_ping": True}


def _prepare_sqlite(db: Path, url: str) -> None:
    """Refuse unusable files before Optuna touches them."""
    if db.exists():
        if not os.access(db, os.W_OK) or not os.access(db.parent or Path("."), os.W_OK):
            raise StorageError(f"storage {url} is read-only: make {db} and its folder writable, or pass --storage")
    elif not db.parent.exists():
        raise StorageError(f"cannot create storage {url}: folder {db.parent} does not exist")
    if not db.exists() or db.stat().st_size == 0:
        _use_wal(db)  # a new database: WAL from the start, before any table exists
        return
    # Read through SQLite, never with open()/close(): closing any descriptor of the database file
    # drops every POSIX lock this process's SQLite connections hold on it, and corrupts reads.
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=SQLITE_BUSY_SECONDS)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise StorageError(
            f"storage {url} is not a usable SQLite database ({e}); move it away or pass --storage"
        ) from e


def _use_wal(db: Path) -> None:
    """WAL lets readers (the dashboard, other workers) go on while a worker writes; set once, kept in the file."""
    with contextlib.closing(sqlite3.connect(db, timeout=SQLITE_BUSY_SECONDS)) as conn:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def quiet_optuna() -> None:
    """Optuna's per-trial INFO lines and its notes on experimental features would bury our progress."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
