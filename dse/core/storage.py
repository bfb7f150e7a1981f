"""Optuna storages: SQLite (WAL, long lock timeout) by default, any Optuna storage URL on request."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import optuna


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path.resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`; SQLite files get WAL journaling, synchronous=NORMAL and a 60 s lock timeout."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as connection:  # WAL is a property of the file: set it once
            connection.execute("PRAGMA journal_mode=WAL")
        storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        import sqlalchemy

        @sqlalchemy.event.listens_for(storage.engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        storage.engine.dispose()
        return storage
    if url.startswith(("postgresql", "mysql")):  # many workers: heartbeats let a crashed worker's trial be failed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
    if url.startswith("journal:///"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:///")))
    return optuna.storages.RDBStorage(url)
