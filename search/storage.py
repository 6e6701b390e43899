"""Opening Optuna's storage (SQLite, PostgreSQL or a Journal log file) safely, once per process: the storage,
where its artifacts live, and the lock that every worker of a study shares (``open_store`` gives all three)."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import optuna
import sqlalchemy
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.storages.journal._file import BaseJournalFileLock  # the lock's interface has no public name
from sqlalchemy.engine import make_url

from search import atomic, records

DEFAULT_STORAGE = "sqlite:///studies.db"
JOURNAL = "journal:"
ACCEPTED = "sqlite:///FILE.db, journal:FILE.log or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
MASK = "***"
SQLITE_BUSY_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 5
LOCK_PATIENCE_SECONDS = 10  # a claim holds the study's lock for under a second: a longer wait is said
MAX_RETRIES = 3  # a point whose own training fails (not a kill, an interrupt or a dead worker) runs this often


class StorageError(Exception):
    """The storage cannot be used; the message names it (password masked) and says why."""


class _Storage(RDBStorage):
    """Optuna's RDBStorage that remembers which trials this process opened and has not closed.

    When the storage fails mid-run (disk full, database dropped), Optuna's own clean-up fails
    with it and loses track of the trial; ``close_open_trials`` then closes them from here.
    """

    # Optuna's _CachedStorage (which every Study wraps its storage in) creates trials through this
    # private method, not the public create_new_trial, so it is the one place that sees them all.
    def _create_new_trial(
        self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None
    ) -> optuna.trial.FrozenTrial:
        frozen = super()._create_new_trial(study_id, template_trial)
        if frozen.state == optuna.trial.TrialState.RUNNING:
            OPEN_TRIALS[frozen._trial_id] = self
        return frozen

    def set_trial_state_values(
        self, trial_id: int, state: optuna.trial.TrialState, values: Sequence[float] | None = None
    ) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        _track(self, trial_id, state, changed)
        return changed


OPEN_TRIALS: dict[int, BaseStorage] = {}


def _track(storage: BaseStorage, trial_id: int, state: optuna.trial.TrialState, changed: bool) -> None:
    """Note a trial this process took (a waiting one set RUNNING) or closed, in ``OPEN_TRIALS``."""
    if changed and state == optuna.trial.TrialState.RUNNING:
        OPEN_TRIALS[trial_id] = storage
    elif state.is_finished():
        OPEN_TRIALS.pop(trial_id, None)


def close_open_trials(cause: str) -> str:
    """Close as FAIL every trial this process left RUNNING; says in words what became of them.

    The ``fail_reason`` marks them interrupted: the storage failed, not the point, so a grid
    point closed here runs again. A trial the failing storage will not let close is left to
    the heartbeat of the next run.
    """
    closed, left = 0, 0
    for trial_id, storage in list(OPEN_TRIALS.items()):
        try:
            storage.set_trial_user_attr(trial_id, records.FAIL_REASON, f"{records.INTERRUPTED}: storage error: {cause}")
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
            closed += 1
        except Exception:  # noqa: BLE001 - the storage is failing: any error means the write did not happen
            left += 1
        OPEN_TRIALS.pop(trial_id, None)
    parts = [f"{closed} running trial(s) closed as failed, to run again"] if closed else []
    if left:
        parts.append(
            f"{left} running trial(s) left RUNNING, as the storage refused to close them: the next run fails "
            "them once silent for twice --heartbeat and runs them again"
        )
    return "; ".join(parts) or "no trial was running"


def quiet_storage_threads() -> None:
    """Storage errors in background threads (Optuna's heartbeats, ours) print no traceback.

    The failing storage fails the main thread's next write too, which then says it in one
    line; a thread's traceback would bury that line. Other errors are printed as usual.
    """
    previous = threading.excepthook
    if getattr(previous, "_quiet_storage", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or storage_failure(args.exc_value) is None:
            previous(args)

    hook._quiet_storage = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def storage_failure(error: BaseException) -> str | None:
    """The first line of the storage error behind ``error`` (also when Optuna's clean-up raised another), or None."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    # The database's own error names the cause; Optuna's StorageInternalError only wraps it.
    for kinds in ((sqlalchemy.exc.SQLAlchemyError, sqlite3.Error), (optuna.exceptions.StorageInternalError,)):
        found = next((e for e in chain if isinstance(e, kinds)), None)
        if found is not None:
            return _first_line(found)
    return None


def failure_message(url: str, error: BaseException, close_trials: bool = True) -> str | None:
    """The one line that says how the storage at ``url`` failed behind ``error`` (None: not a storage error).

    A refused write says so, naming what still works; with ``close_trials``, the trials this
    process left running are closed first (``close_open_trials``) and the line says how.
    """
    cause = storage_failure(error)
    if cause is None:
        return None
    if _is_read_only(cause):
        return (
            f"storage {mask_url(url)} is read-only for this user ({cause}); writing commands need "
            "write access, reading ones (list, best, export, report, dashboard) work"
        )
    text = f"storage {mask_url(url)} failed: {cause}"
    return f"{text}; {close_open_trials(cause)}" if close_trials else text


def refused_write(error: BaseException) -> bool:
    """Whether the storage error behind ``error`` is a write this user may not make (a read-only storage)."""
    cause = storage_failure(error)
    return cause is not None and _is_read_only(cause)


def _is_read_only(line: str) -> bool:
    """A refused write: PostgreSQL's "permission denied" or "read-only transaction", SQLite's "readonly database"."""
    return any(text in line for text in ("permission denied", "read-only transaction", "readonly database"))


def mask_url(url: str) -> str:
    """``url`` with its password, and a ``password=`` query parameter, replaced by ``***``.

    SQLAlchemy's own parser reads the URL the way the driver will, so a password holding
    ``/``, ``#`` or ``?`` is masked whole.
    """
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        # Not a URL SQLAlchemy can read: hide everything between the scheme and an "@".
        return re.sub(r"(://).*@", r"\1***@", url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": MASK})
    return parsed.render_as_string(hide_password=True).replace("password=%2A%2A%2A", f"password={MASK}")


def mask_arg(arg: str) -> str:
    """A command-line word with any storage URL in it masked, also in the ``--storage=URL`` form."""
    if arg.startswith("-") and "=" in arg:
        flag, value = arg.split("=", 1)
        return f"{flag}={mask_url(value)}"
    return mask_url(arg) if "://" in arg else arg


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, else None."""
    if not url.startswith("sqlite:"):
        return None
    path = url.split("sqlite:///", 1)[1].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


def journal_path(url: str) -> Path | None:
    """The log file of a ``journal:PATH`` storage (relative or absolute), else None."""
    return Path(url[len(JOURNAL) :]) if url.startswith(JOURNAL) and url[len(JOURNAL) :] else None


def check_url(url: str) -> None:
    if url.startswith("sqlite:") and sqlite_path(url) is None:
        raise StorageError(f"storage {url!r} is in memory, which workers cannot share: use sqlite:///FILE.db")
    if (log := journal_path(url)) is not None:
        _check_log(log, url, write=False)  # a folder or a file that is no log, before any work starts
        return
    if not re.match(r"^(sqlite:///.+|postgresql(\+\w+)?://.+)$", url):
        raise StorageError(f"unknown storage URL {mask_url(url)!r}: use {ACCEPTED}")
    _check_driver(url)


def _check_driver(url: str) -> None:
    """Refuse a driver that is absent or asynchronous (Optuna's storage is synchronous) in one line."""
    if url.startswith(("sqlite:", "postgresql://")):
        return  # sqlite3 and psycopg (3), which postgresql:// is mapped to, come with the project
    parsed = make_url(url)
    works = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (psycopg 3, installed with the project)"
    try:
        dialect = parsed.get_dialect()
        dialect.import_dbapi()
    except ImportError as e:
        raise StorageError(
            f"storage {mask_url(url)}: its driver {e.name or parsed.get_driver_name()!r} is not installed; use {works}"
        ) from None
    if getattr(dialect, "is_async", False):
        raise StorageError(
            f"storage {mask_url(url)}: {parsed.get_driver_name()} is an asynchronous driver, which Optuna's storage "
            f"cannot use; use {works}"
        )


def open_storage(url: str = DEFAULT_STORAGE, heartbeat: int | None = None) -> BaseStorage:
    """Open (creating tables in a new database, or a new log file) the storage at ``url``.

    SQLite is put in WAL mode with a long busy timeout, so that local workers wait for
    each other instead of failing with "database is locked". PostgreSQL connections time
    out after a few seconds instead of hanging. A ``journal:PATH`` log is appended to under
    a file lock beside it (``_Journal``). With ``heartbeat`` (seconds), a trial whose worker
    stops beating for twice that is failed and its parameters re-run.
    """
    check_url(url)
    quiet_storage_threads()
    if (log := journal_path(url)) is not None:
        return _open_journal(log, heartbeat)
    db = sqlite_path(url)
    made = db is not None and not Path(f"{db}.lock").exists()
    # Workers opening a new SQLite file at once would race to switch it to WAL and to create
    # its tables ("database is locked", "table ... already exists"): they take turns instead.
    with file_lock(db) if db is not None else contextlib.nullcontext():
        try:
            return _open(url, heartbeat)
        except StorageError:
            if made:  # a refused writer (a schema too old or too new) leaves no file behind
                Path(f"{db}.lock").unlink(missing_ok=True)  # under the lock: see file_lock
            raise


def _open(url: str, heartbeat: int | None) -> RDBStorage:
    engine_url, engine_kwargs = _engine(url)
    retry = {}
    if heartbeat is not None:
        retry = {
            "heartbeat_interval": heartbeat,
            "grace_period": 2 * heartbeat,
            # A dead worker is never its trial's fault: its point runs again however often that happens.
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=None),
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


def open_reader(url: str = DEFAULT_STORAGE) -> BaseStorage | None:
    """Open the storage at ``url`` to read it only; None when there is nothing to read.

    Nothing is created or written: a missing SQLite file or Journal log stays missing (no lock
    file either), a database without Optuna's tables gets none, SQLite is opened read-only (a
    read-only file or folder works, see ``_sqlite_reader``), a log is read without its lock,
    and PostgreSQL sessions are read-only transactions (a role that may only SELECT works).
    """
    check_url(url)
    if (log := journal_path(url)) is not None:
        return _read_journal(log)
    db = sqlite_path(url)
    if db is not None:
        if not db.is_file():
            return None
        # A connection per session, so that each one sees whether a writer has the file open now.
        engine_url, engine_kwargs = url, {"creator": _sqlite_reader(db), "poolclass": sqlalchemy.pool.NullPool}
    else:
        engine_url, engine_kwargs = _engine(url)
        engine_kwargs["connect_args"]["options"] = "-c default_transaction_read_only=on"
    try:
        if not _has_tables(engine_url, engine_kwargs):
            return None
        return RDBStorage(engine_url, engine_kwargs=engine_kwargs, skip_table_creation=True)
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error) as e:
        raise StorageError(f"cannot read storage {mask_url(url)}: {_first_line(e)}") from e
    except RuntimeError as e:  # the schema-version check
        raise StorageError(f"storage {mask_url(url)}: {' '.join(str(e).split())}") from e


def _sqlite_reader(db: Path) -> Callable[[], sqlite3.Connection]:
    """A connection factory that opens ``db`` read-only and makes no file beside it.

    A database in the old rollback-journal mode is read with ``mode=ro``, which takes
    SQLite's locks and makes no file. On a WAL database (the mode this project sets), while
    a writer has it open its ``-wal`` file exists and ``mode=ro`` reads the committed state
    through it; with no ``-wal`` no one has it open and the file holds everything committed:
    it is opened ``immutable`` (no locks, no files; ``mode=ro`` would make ``-wal`` and
    ``-shm`` files that a reader cannot remove). A writer that opens it meanwhile writes to
    its own new ``-wal`` and reaches the file only at a checkpoint. In a folder this process
    may not write, ``mode=ro`` cannot make the ``-shm`` index and ``immutable`` is the way in
    too: such a database is an archive.
    """
    path = urllib.parse.quote(str(db.resolve()))
    # Byte 18 of the header is 2 in WAL mode. Read before any connection of this process
    # exists: closing a descriptor of the file would drop the locks such a connection holds.
    with open(db, "rb") as f:
        wal = f.read(20)[18:19] == b"\x02"

    def open_mode(mode: str) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{path}?{mode}", uri=True, timeout=SQLITE_BUSY_SECONDS, check_same_thread=False)

    def connect() -> sqlite3.Connection:
        if not wal:
            return open_mode("mode=ro")
        if Path(f"{db}-wal").exists():
            conn = open_mode("mode=ro")
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
        return open_mode("mode=ro&immutable=1")

    return connect


@contextlib.contextmanager
def file_lock(
    db: Path, lock: Path | None = None, url: str | None = None, waiting: Callable[[], None] | None = None
) -> Iterator[None]:
    """An exclusive lock on ``lock`` (default ``DB.lock``) beside the storage file ``db``, shared by every
    process that opens it; ``url`` names the storage in messages (default ``sqlite:///DB``).

    Not re-entrant: a process holding it must not take it again (the study's lock is the same file).
    Its holder may remove the file (``open_storage`` does when it made it and was refused): a
    process that waited on the removed file takes the new one instead. ``waiting`` is called once
    when another process holds it, before waiting for it.
    """
    url = url or f"sqlite:///{db}"
    if not db.parent.exists():
        raise StorageError(f"cannot create storage {url}: folder {db.parent} does not exist")
    path = Path(lock or f"{db}.lock")
    while True:
        try:
            held = open(path, "a")  # noqa: SIM115 - closed below
        except OSError as e:
            raise StorageError(f"storage {url} is read-only ({e.strerror}): make its folder writable") from e
        if not _poll(lambda held=held: _try_flock(held), LOCK_PATIENCE_SECONDS if waiting is not None else 0.0):
            if waiting is not None:
                waiting()
                waiting = None  # said once
            fcntl.flock(held, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            mine, named = os.fstat(held.fileno()), path.stat()
            if (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino):
                break
        held.close()  # removed while this process waited: its lock no longer guards anything
    with held:
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _try_flock(held: Any) -> bool:
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _poll(attempt: Callable[[], bool], seconds: float) -> bool:
    """Whether ``attempt`` succeeded within ``seconds`` (tried at once, then every 50 ms)."""
    deadline = time.monotonic() + seconds
    while not attempt():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _open_rdb(engine_url: str, engine_kwargs: dict, retry: dict) -> RDBStorage:
    for attempt in range(3):
        existing = _has_tables(engine_url, engine_kwargs)
        try:
            return _Storage(engine_url, engine_kwargs=engine_kwargs, skip_table_creation=existing, **retry)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Two workers creating the tables of a new PostgreSQL database at once: one wins, the other
            # finds the tables there when it tries again.
            if attempt == 2:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def _has_tables(engine_url: str, engine_kwargs: dict) -> bool:
    engine = sqlalchemy.create_engine(engine_url, **{"poolclass": sqlalchemy.pool.NullPool, **engine_kwargs})
    try:
        return sqlalchemy.inspect(engine).has_table("alembic_version")
    finally:
        engine.dispose()


def artifact_dir(url: str, directory: str | None = None) -> Path:
    """Where artifacts live: ``directory``, else beside a SQLite file or Journal log, else ./artifacts."""
    if directory is not None:
        return Path(directory)
    db = sqlite_path(url) or journal_path(url)
    return db.with_name(f"{db.stem}-artifacts") if db else Path("artifacts")


class _AtomicArtifactStore(FileSystemArtifactStore):
    """Optuna's file-system artifact store, writing each file whole or not at all.

    Optuna's own ``write`` copies into the final path, so a kill mid-copy left a truncated
    model file behind the artifact's metadata.
    """

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        # _get_filepath is Optuna's check that the id stays inside the store; there is no public one.
        with atomic.replacing(self._get_filepath(artifact_id), "wb") as f:
            shutil.copyfileobj(content_body, f)


def artifact_store(url: str, directory: str | None = None, create: bool = True) -> FileSystemArtifactStore:
    """The file-system artifact store (see ``artifact_dir``); ``create=False`` for readers, who make nothing."""
    folder = artifact_dir(url, directory)
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return _AtomicArtifactStore(folder)


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


class LockHeld(Exception):
    """The database's write lock stayed held by another process for the whole wait (a stopped worker?)."""


def record_heartbeats(
    storage: optuna.storages.BaseStorage, trial_ids: Sequence[int], wait_seconds: float | None = None
) -> None:
    """A heartbeat for each of ``trial_ids``, in one short transaction.

    Optuna's ``record_heartbeat`` takes one transaction per trial; a group of 27 trials at
    ``--heartbeat 1`` took SQLite's write lock 27 times a second, so a stop (Ctrl-Z, a paused
    machine) often caught it held. Here the lock is held for one UPDATE (and an INSERT for a
    trial's first beat). With ``wait_seconds``, a lock held that long raises ``LockHeld``
    instead of waiting out the 60 s busy timeout, so that the caller can say so and try again.
    """
    if not trial_ids:
        return
    # Optuna's heartbeat table: its model is the schema Optuna reads the heartbeats back with.
    from optuna.storages._rdb.models import TrialHeartbeatModel

    table = TrialHeartbeatModel.__table__
    ids = list(trial_ids)
    if isinstance(storage, _Journal):  # a beat is a file's time there: no transaction, no lock
        for trial_id in ids:
            storage.record_heartbeat(trial_id)
        return
    engine = getattr(storage, "_backend", storage).engine  # Study wraps the RDBStorage in a cache
    try:
        with engine.begin() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if wait_seconds is not None:
                _lock_wait(conn, sqlite, wait_seconds)
            try:
                now = sqlalchemy.func.now()
                updated = conn.execute(table.update().where(table.c.trial_id.in_(ids)).values(heartbeat=now))
                if updated.rowcount < len(ids):
                    have = set(conn.scalars(sqlalchemy.select(table.c.trial_id).where(table.c.trial_id.in_(ids))))
                    new = [{"trial_id": i} for i in ids if i not in have]
                    conn.execute(table.insert().values(heartbeat=now), new)
            finally:
                if wait_seconds is not None and sqlite:  # the pooled connection goes back as it came
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_SECONDS * 1000}")
    except sqlalchemy.exc.OperationalError as e:
        if wait_seconds is not None and _lock_timeout(e):
            raise LockHeld(_first_line(e)) from e
        raise


def _lock_wait(conn: sqlalchemy.Connection, sqlite: bool, seconds: float) -> None:
    """Wait at most ``seconds`` for a lock in this transaction."""
    if sqlite:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    else:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(seconds * 1000)}")


def _lock_timeout(error: BaseException) -> bool:
    text = str(getattr(error, "orig", error)).lower()
    return "database is locked" in text or "lock timeout" in text


class StudyLock:
    """A lock over one study shared by every process that opens the same storage.

    A file lock beside a SQLite database (the one ``open_storage`` takes) or beside a Journal log
    (``LOG.study-lock``, apart from the lock its appends take), a session-level advisory lock on
    PostgreSQL, held on a connection of its own.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self._db = sqlite_path(url)
        self._log = journal_path(url)
        self._key = int.from_bytes(hashlib.sha1(f"mnist-hpo:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._url = url
        self._engine: sqlalchemy.Engine | None = None
        self._held: Any = None

    def acquire(self) -> None:
        """Take the lock, waiting as long as another process holds it (saying so once, on stderr)."""
        if self._db is not None or self._log is not None:
            self._held = contextlib.ExitStack()
            if self._log is not None:
                lock = Path(f"{self._log}.study-lock")
                self._held.enter_context(file_lock(self._log, lock, self._url, self._waiting))
            else:
                self._held.enter_context(file_lock(self._db, waiting=self._waiting))  # type: ignore[arg-type]
            return
        if self._engine is None:
            engine_url, kwargs = _engine(self._url)
            self._engine = sqlalchemy.create_engine(engine_url, poolclass=sqlalchemy.pool.NullPool, **kwargs)
        self._held = self._engine.connect()
        query, key = sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
        if not _poll(lambda: bool(self._held.execute(query, key).scalar()), LOCK_PATIENCE_SECONDS):
            self._waiting()
            self._held.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        self._held.commit()

    @staticmethod
    def _waiting() -> None:
        # A claim holds the lock for well under a second: a longer wait is a holder stopped (Ctrl-Z, a paused VM).
        print(
            f"process {os.getpid()}: waiting for the study's lock, which another process holds (if it is stopped, "
            "continue it or end it; this one goes on as soon as the lock is free)",
            file=sys.stderr,
            flush=True,
        )

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        if self._db is not None or self._log is not None:
            held.close()
            return
        try:
            held.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            held.commit()
        finally:
            held.close()  # closing the session releases the lock in any case

    @property
    def held(self) -> bool:
        return self._held is not None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class Store:
    """One opened storage and what lies beside it: the value a process passes down instead of a URL.

    ``url`` is kept for messages (``mask_url``) and for worker processes, which open their own.
    """

    url: str
    storage: BaseStorage
    artifacts: FileSystemArtifactStore
    artifact_dir: Path

    def lock(self, study_name: str) -> StudyLock:
        """The lock every worker of ``study_name`` on this storage shares."""
        return StudyLock(self.url, study_name)


def open_store(url: str = DEFAULT_STORAGE, heartbeat: int | None = None, artifacts: str | None = None) -> Store:
    """Open the storage at ``url`` (see ``open_storage``) and its artifact store (its folder made)."""
    storage = open_storage(url, heartbeat)
    folder = artifact_dir(url, artifacts)
    return Store(url, storage, artifact_store(url, artifacts), folder)


# Journal storage: Optuna's JournalStorage on a log file (``journal:PATH``).


class _LogLock(BaseJournalFileLock):
    """The lock a log's appends take, as ``fcntl.flock`` on ``LOG.write-lock``.

    Optuna's default (a symlink) outlives a writer killed while holding it, and other writers
    wait 30 s before forcing it open; a flock goes with its process. It needs a file system
    with working locks, as the study's lock beside the log does anyway.
    """

    def __init__(self, path: Path) -> None:
        self._path, self._file = path, None

    def acquire(self) -> bool:
        held = open(self._path, "a")  # noqa: SIM115 - closed in release
        fcntl.flock(held, fcntl.LOCK_EX)
        self._file = held
        return True

    def release(self) -> None:
        held, self._file = self._file, None
        if held is not None:
            held.close()  # closing the descriptor drops the lock


class _LogFile(JournalFileBackend):
    """Optuna's log-file backend, whose failures (disk full, a damaged line) are storage errors."""

    def __init__(self, log: Path) -> None:
        super().__init__(str(log), lock_obj=_LogLock(Path(f"{log}.write-lock")))

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        try:
            yield from super().read_logs(log_number_from)
        except (OSError, ValueError) as e:  # ValueError: a line that is not JSON
            raise optuna.exceptions.StorageInternalError(f"cannot read journal {self._file_path}: {e}") from e

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        try:
            super().append_logs(logs)
        except OSError as e:
            raise optuna.exceptions.StorageInternalError(f"cannot write journal {self._file_path}: {e}") from e


class _Journal(JournalStorage, BaseHeartbeat):
    """Optuna's JournalStorage with heartbeats (Optuna's has none) and the trials this process opened tracked.

    A trial's heartbeat is the modification time of ``LOG.heartbeats/TRIAL_ID``: a beat writes
    no line to the log, which keeps only what happened to the trials, and the file goes when
    the trial finishes.
    """

    def __init__(self, log: Path, heartbeat: int | None = None) -> None:
        super().__init__(_LogFile(log))
        self._beats = Path(f"{log}.heartbeats")
        self._interval = heartbeat
        # No retry limit: a dead worker is never the point's fault (the retry rule, docs/guarantees.md).
        self._callback = RetryHeartbeatStaleTrialCallback(max_retry=None) if heartbeat else None

    def create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == optuna.trial.TrialState.RUNNING:
            OPEN_TRIALS[trial_id] = self
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: optuna.trial.TrialState, values: Sequence[float] | None = None
    ) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        _track(self, trial_id, state, changed)
        if state.is_finished():
            self._beat_file(trial_id).unlink(missing_ok=True)
        return changed

    def _beat_file(self, trial_id: int) -> Path:
        return self._beats / str(trial_id)

    def record_heartbeat(self, trial_id: int) -> None:
        self._beats.mkdir(exist_ok=True)
        self._beat_file(trial_id).touch()

    def _beat_ages(self, study_id: int) -> dict[int, float | None]:
        """Each RUNNING trial's seconds since its last heartbeat (None: it never sent one)."""
        now, ages = time.time(), {}
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            try:
                ages[trial._trial_id] = now - self._beat_file(trial._trial_id).stat().st_mtime
            except FileNotFoundError:
                ages[trial._trial_id] = None
        return ages

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        grace = 2 * (self._interval or 0)
        return [trial_id for trial_id, age in self._beat_ages(study_id).items() if age is not None and age > grace]

    def silent_trial_ids(self, study_id: int, started_before: datetime.datetime) -> list[int]:
        """RUNNING trials that never sent a heartbeat and started before ``started_before`` (naive local time)."""
        silent = [trial_id for trial_id, age in self._beat_ages(study_id).items() if age is None]
        started = {t: self.get_trial(t).datetime_start for t in silent}
        return [t for t in silent if started[t] is not None and started[t] < started_before]

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None:
        return self._callback


def _check_log(log: Path, url: str, write: bool) -> bool:
    """Refuse a log path that cannot be used, in one line; returns whether the log exists."""
    if log.is_dir():
        raise StorageError(f"storage {url} is a folder, not a log file: use {ACCEPTED}")
    if not log.exists():
        if write and not log.parent.exists():
            raise StorageError(f"cannot create storage {url}: folder {log.parent} does not exist")
        return False
    try:
        with open(log, "rb") as f:
            head = f.readline(_HEAD_BYTES)
    except OSError as e:
        raise StorageError(f"cannot read storage {url} ({e.strerror}): make {log} readable") from e
    if head and not _is_entry(head):
        raise StorageError(
            f"storage {url} is not an Optuna journal log (its first line is no journal entry): "
            f"pass a log that Optuna's JournalStorage wrote, or a new file; accepted: {ACCEPTED}"
        )
    if write and (not os.access(log, os.W_OK) or not os.access(log.parent, os.W_OK)):
        raise StorageError(f"storage {url} is read-only: make {log} and its folder writable, or pass --storage")
    return True


_HEAD_BYTES = 1 << 16  # a journal's first entry (a study's creation) is far shorter


def _is_entry(line: bytes) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return False
    return isinstance(entry, dict) and isinstance(entry.get("op_code"), int) and "worker_id" in entry


def _repair_tail(log: Path) -> None:
    """Cut a last line without its newline (an append cut short by a full disk), under the append lock.

    Its writer got an error and the entry was never applied; left there, the next append
    would be glued to it and every reader would stop at the damaged line.
    """
    with open(log, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(max(size - _HEAD_BYTES, 0))
        tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        if cut < 0 and size > _HEAD_BYTES:
            raise StorageError(f"storage journal:{log} ends in a damaged line longer than {_HEAD_BYTES} bytes")
        f.truncate(size - len(tail) + cut + 1)


def _open_journal(log: Path, heartbeat: int | None) -> _Journal:
    url = f"{JOURNAL}{log}"
    _check_log(log, url, write=True)
    try:
        with file_lock(log, Path(f"{log}.write-lock"), url):
            if log.exists():
                _repair_tail(log)
            else:
                log.touch()
        return _Journal(log, heartbeat)
    except optuna.exceptions.StorageInternalError as e:
        raise StorageError(f"cannot open storage {url}: {_first_line(e)}") from e


def _read_journal(log: Path) -> JournalStorage | None:
    url = f"{JOURNAL}{log}"
    if not _check_log(log, url, write=False) or log.stat().st_size == 0:
        return None
    try:
        return JournalStorage(_LogFile(log))
    except optuna.exceptions.StorageInternalError as e:
        raise StorageError(f"cannot read storage {url}: {_first_line(e)}") from e
