"""Opening Optuna's RDB storage (SQLite or PostgreSQL) safely, once per process: the storage, where its
artifacts live, and the lock that every worker of a study shares (``open_store`` gives all three)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from search import atomic, records

DEFAULT_STORAGE = "sqlite:///studies.db"
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
        if changed and state == optuna.trial.TrialState.RUNNING:  # a waiting trial this process took
            OPEN_TRIALS[trial_id] = self
        elif state.is_finished():
            OPEN_TRIALS.pop(trial_id, None)
        return changed


OPEN_TRIALS: dict[int, RDBStorage] = {}


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


def check_url(url: str) -> None:
    if url.startswith("sqlite:") and sqlite_path(url) is None:
        raise StorageError(f"storage {url!r} is in memory, which workers cannot share: use sqlite:///FILE.db")
    if not re.match(r"^(sqlite:///.+|postgresql(\+\w+)?://.+)$", url):
        raise StorageError(
            f"unknown storage URL {mask_url(url)!r}: use sqlite:///FILE.db or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
        )
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


def open_storage(url: str = DEFAULT_STORAGE, heartbeat: int | None = None) -> RDBStorage:
    """Open (creating tables in a new database) the RDB storage at ``url``.

    SQLite is put in WAL mode with a long busy timeout, so that local workers wait for
    each other instead of failing with "database is locked". PostgreSQL connections time
    out after a few seconds instead of hanging. With ``heartbeat`` (seconds), a trial
    whose worker stops beating for twice that is failed and its parameters re-run.
    """
    check_url(url)
    quiet_storage_threads()
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


def open_reader(url: str = DEFAULT_STORAGE) -> RDBStorage | None:
    """Open the storage at ``url`` to read it only; None when there is nothing to read.

    Nothing is created or written: a missing SQLite file stays missing (no lock file either),
    a database without Optuna's tables gets none, SQLite is opened read-only (a read-only file
    or folder works, see ``_sqlite_reader``), and PostgreSQL sessions are read-only
    transactions (a role that may only SELECT works).
    """
    check_url(url)
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
def file_lock(db: Path, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive lock on ``DB.lock`` beside a SQLite file, shared by every process that opens it.

    Not re-entrant: a process holding it must not take it again (the study's lock is the same file).
    ``waiting`` is called once when another process holds it, before waiting for it.
    """
    if not db.parent.exists():
        raise StorageError(f"cannot create storage sqlite:///{db}: folder {db.parent} does not exist")
    try:
        held = open(f"{db}.lock", "a")  # noqa: SIM115 - closed below
    except OSError as e:
        raise StorageError(f"storage sqlite:///{db} is read-only ({e.strerror}): make its folder writable") from e
    with held:
        if not _poll(lambda: _try_flock(held), LOCK_PATIENCE_SECONDS if waiting is not None else 0.0):
            if waiting is not None:
                waiting()
            fcntl.flock(held, fcntl.LOCK_EX)
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
    """Where artifacts live: ``directory``, else beside a SQLite file, else ./artifacts."""
    if directory is not None:
        return Path(directory)
    db = sqlite_path(url)
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

    A file lock beside a SQLite database (the one ``open_storage`` takes), a session-level
    advisory lock on PostgreSQL, held on a connection of its own.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self._db = sqlite_path(url)
        self._key = int.from_bytes(hashlib.sha1(f"mnist-hpo:{study_name}".encode()).digest()[:8], "big", signed=True)
        self._url = url
        self._engine: sqlalchemy.Engine | None = None
        self._held: Any = None

    def acquire(self) -> None:
        """Take the lock, waiting as long as another process holds it (saying so once, on stderr)."""
        if self._db is not None:
            self._held = contextlib.ExitStack()
            self._held.enter_context(file_lock(self._db, self._waiting))
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
        if self._db is not None:
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
    storage: RDBStorage
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
