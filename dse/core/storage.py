"""Optuna storages: SQLite (WAL, long lock timeout) by default, journal files and PostgreSQL/MySQL on request.

Every storage that can hold several processes gets heartbeats: a trial left RUNNING by a dead process is failed once
its heartbeat is stale, and its parameters are retried (SQLite and server databases through Optuna's RDB heartbeat,
journal files through `HeartbeatJournalStorage`). Creating a storage is race-free (a directory lock around SQLite
creation; on PostgreSQL an advisory lock, elsewhere retries, around table creation on a server), and a file or
database the tool did not create is only ever read: an empty server database gets the study tables, one that holds
other tables is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage

from costmodel import UserError
from dse.core.optuna_adapter import HeartbeatJournalStorage, HeartbeatRDBStorage

HEARTBEAT_S = 10  # default heartbeat interval; a trial is stale after GRACE_FACTOR intervals without one
GRACE_FACTOR = 3
MAX_RETRY = 3  # a stale trial's parameters are retried at most this often
SCHEMES = ("sqlite:///", "journal:///", "postgresql", "mysql")
OPTUNA_TABLES = {"studies", "trials", "alembic_version"}
TABLES_LOCK = zlib.crc32(b"adaptive-dse: study tables")  # PostgreSQL advisory lock key around table creation


class StorageError(UserError):
    """A --storage URL or study file that cannot be used; the message names it."""


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path.resolve()}"


def _file_path(url: str, scheme: str) -> Path:
    """The file a sqlite:/// or journal:/// URL names, after checking it can be a file."""
    raw = url.removeprefix(scheme)
    if not raw or raw.endswith("/"):
        raise StorageError(f"--storage {url}: needs a file path after '{scheme}'")
    path = Path(raw)
    if path.is_dir():
        raise StorageError(f"--storage {url}: {path} is a directory, not a file")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise StorageError(f"--storage {url}: {parent} is a file, not a directory")
    return path


def check_storage_url(url: str) -> None:
    """Refuse a malformed storage URL (unknown scheme, bad path, missing driver) without touching anything."""
    if not url.startswith(SCHEMES):
        raise StorageError(f"--storage {url}: unknown storage (use sqlite:///FILE, journal:///FILE or "
                           f"postgresql+psycopg2://user:password@host/database)")
    for scheme in ("sqlite:///", "journal:///"):
        if url.startswith(scheme):
            _file_path(url, scheme)
            return
    import sqlalchemy

    try:
        sqlalchemy.engine.make_url(url).get_dialect().import_dbapi()
    except ImportError as exc:
        raise StorageError(f"--storage {url}: the database driver is not installed ({exc})") from None
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError) as exc:
        raise StorageError(f"--storage {url}: not a database URL ({exc})") from None


def sqlite_tables(path: Path, url: str) -> set[str]:
    """Table names of an existing SQLite file; StorageError if it is not SQLite.

    Only SQLite itself opens the file: closing any other descriptor of it would drop the locks of this process's
    open connections (POSIX locks are per process), which corrupts a database in use. A file in rollback-journal
    mode (not one of ours: we set WAL on every study database) is read through a read-only connection, so it is
    never changed. A WAL file needs a normal connection: after a crash, a read-only one trusts a stale
    shared-memory index and reads old data.
    """
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                connection.close()
                connection = sqlite3.connect(path, timeout=60)
            return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StorageError(f"--storage {url}: {path} is not a readable SQLite study database ({exc})") from None


def _check_ours(path: Path, url: str) -> bool:
    """True when `path` holds a study database of ours, False when it does not exist or is an empty SQLite file (left
    by an interrupted creation before creation was atomic: nothing in it to keep); refuses anything else."""
    if not path.exists():
        return False
    tables = sqlite_tables(path, url)
    if not tables:
        return False
    if not OPTUNA_TABLES <= tables:
        raise StorageError(f"--storage {url}: {path} is a SQLite file but not a study database (left unchanged)")
    return True


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on `directory`, so that only one process creates a storage in it at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _heartbeat_kwargs(heartbeat_s: int | None) -> dict[str, Any]:
    """RDBStorage's heartbeat arguments (none for a read-only storage)."""
    if heartbeat_s is None:
        return {}
    return {"heartbeat_interval": heartbeat_s, "grace_period": GRACE_FACTOR * heartbeat_s,
            "heartbeat_stale_trial_callback": retry_stale()}


def retry_stale() -> RetryHeartbeatStaleTrialCallback:
    """Optuna's callback that queues a stale trial's parameters again (at most MAX_RETRY times)."""
    with warnings.catch_warnings():  # marked experimental since Optuna 2.8; the 5.0 name of the retry
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def _first_line(exc: BaseException | None) -> str:
    """The first line of an exception's message (drivers add hints on further lines)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _rdb(url: str, heartbeat_s: int | None, **kwargs: Any) -> optuna.storages.RDBStorage:
    """An RDBStorage; table creation from several processes at once is retried, connection errors are one line."""
    import sqlalchemy

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return HeartbeatRDBStorage(url, **kwargs, **_heartbeat_kwargs(heartbeat_s))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            if attempt == 4:
                raise StorageError(f"--storage {url}: cannot create the study tables ({exc.orig})") from None
            time.sleep(0.2 * (attempt + 1))  # another process is creating the tables
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError) as exc:
            raise StorageError(f"--storage {url}: cannot open the database ({_first_line(exc.orig)})") from None
        except optuna.exceptions.StorageInternalError as exc:
            raise StorageError(f"--storage {url}: cannot open the database ({_first_line(exc.__cause__)})") from None
        except RuntimeError as exc:  # Optuna's schema version check
            raise StorageError(f"--storage {url}: {exc}") from None
    raise AssertionError("unreachable")


CREATING_SUFFIX = ".creating"  # a study database being created, beside its final path (renamed when whole)


def _create_sqlite(path: Path, url: str) -> None:
    """Create a whole study database at `path`: tables made in `path` + CREATING_SUFFIX, WAL set, every connection
    closed, then renamed into place, so that an interrupted creation leaves no file a later run refuses. Call under
    the directory lock: the temporary name is fixed, and a leftover of an interrupted creation is replaced."""
    temporary = path.with_name(path.name + CREATING_SUFFIX)
    try:
        for leftover in (temporary, *(path.with_name(path.name + side) for side in ("-wal", "-shm", "-journal"))):
            leftover.unlink(missing_ok=True)  # side files without their database: never to be applied to a new one
        storage = _rdb(sqlite_url(temporary), None, skip_compatibility_check=True)  # this Optuna's schema
        storage.engine.dispose()
        with contextlib.closing(sqlite3.connect(temporary)) as connection:  # WAL is a property of the file: set once
            connection.execute("PRAGMA journal_mode=WAL")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _open_sqlite(url: str, heartbeat_s: int | None, create: bool) -> optuna.storages.RDBStorage:
    """A SQLite study database: created whole under a directory lock (see `_create_sqlite`); an existing file only if
    it is ours."""
    path = _file_path(url, "sqlite:///")
    engine_kwargs = {"connect_args": {"timeout": 60}}
    if not create:
        ours = path.exists()
        if ours:
            with directory_lock(path.parent):  # a first run may be creating it right now: wait until it is whole
                ours = _check_ours(path, url)
        if not ours:
            raise StorageError(f"--storage {url}: no study database at {path}")
        storage = _rdb(url, heartbeat_s, engine_kwargs=engine_kwargs, skip_table_creation=True)
    else:
        with directory_lock(path.parent):
            existing = _check_ours(path, url)
            if not existing:
                _create_sqlite(path, url)
            # a file created here has this Optuna's schema: skip the check (it parses every Alembic migration)
            storage = _rdb(url, heartbeat_s, engine_kwargs=engine_kwargs, skip_table_creation=True,
                           skip_compatibility_check=not existing)
    import sqlalchemy

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    storage.engine.dispose()
    return storage


def _engine(url: str):  # type: ignore[no-untyped-def]
    """A SQLAlchemy engine on a server database, for the checks around Optuna's own (no pool kept)."""
    import sqlalchemy

    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


def _server_error(url: str, exc: Exception) -> StorageError:
    """A driver error while checking a server database, as one line naming the URL."""
    return StorageError(f"--storage {url}: cannot open the database ({_first_line(getattr(exc, 'orig', exc))})")


@contextmanager
def _tables_lock(url: str) -> Iterator[None]:
    """On PostgreSQL, a database-wide advisory lock held while the study tables are checked and created, so that
    processes starting at once create them once; the server drops it if this process dies. Elsewhere, no lock
    (`_rdb` retries a creation that collides)."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = _engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": TABLES_LOCK})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": TABLES_LOCK})
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError) as exc:
        raise _server_error(url, exc) from None
    finally:
        engine.dispose()


def _server_ours(url: str) -> bool:
    """True when the server database holds the study tables, False when it holds no table; refuses a database that
    holds other tables (it is left unchanged)."""
    import sqlalchemy

    engine = _engine(url)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.DatabaseError) as exc:
        raise _server_error(url, exc) from None
    finally:
        engine.dispose()
    if tables and not OPTUNA_TABLES <= tables:
        raise StorageError(f"--storage {url}: the database holds other tables ({', '.join(sorted(tables)[:3])}"
                           f"{', …' if len(tables) > 3 else ''}), not a study database (left unchanged)")
    return bool(tables)


def _open_journal(url: str, heartbeat_s: int | None, create: bool) -> optuna.storages.BaseStorage:
    """A journal file; a missing file is an error unless creating, a file that is not a journal always is."""
    path = _file_path(url, "journal:///")
    if not create and not path.is_file():
        raise StorageError(f"--storage {url}: no journal file at {path}")
    if not create or path.exists():
        try:
            with open(path, "rb") as handle:
                first = handle.readline()
        except OSError as exc:
            raise StorageError(f"--storage {url}: unreadable ({exc.strerror})") from None
        if first and not first.lstrip().startswith(b"{"):
            raise StorageError(f"--storage {url}: {path} is not an Optuna journal file (left unchanged)")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        backend = JournalFileBackend(str(path))
        if heartbeat_s is None:
            return JournalStorage(backend)
        return HeartbeatJournalStorage(backend, heartbeat_s, GRACE_FACTOR * heartbeat_s, retry_stale())
    except (OSError, ValueError, KeyError) as exc:
        raise StorageError(f"--storage {url}: not a readable Optuna journal ({exc})") from None


def open_storage(url: str, heartbeat_s: int | None = HEARTBEAT_S, create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`, with heartbeats every `heartbeat_s` seconds (None: read-only use, no heartbeat).

    With `create=False` nothing is created or changed: a missing file, or a file that is not a study database of
    ours, is refused before any write.
    """
    check_storage_url(url)
    if url.startswith("sqlite:///"):
        return _open_sqlite(url, heartbeat_s, create)
    if url.startswith("journal:///"):
        return _open_journal(url, heartbeat_s, create)
    with _tables_lock(url):
        if not _server_ours(url) and not create:
            raise StorageError(f"--storage {url}: no study database there (the database holds no tables)")
        return _rdb(url, heartbeat_s, skip_table_creation=not create)


def study_exists(url: str, name: str) -> bool:
    """Whether `url` already holds a study called `name` (read-only: creates nothing)."""
    if url.startswith(("sqlite:///", "journal:///")):
        scheme = "sqlite:///" if url.startswith("sqlite:///") else "journal:///"
        path = _file_path(url, scheme)
        if not path.exists() or (scheme == "sqlite:///" and not _check_ours(path, url)):
            return False
    else:
        with _tables_lock(url):  # a first run may be creating the tables right now: wait until they are whole
            if not _server_ours(url):
                return False
    storage = open_storage(url, heartbeat_s=None, create=False)
    return name in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
