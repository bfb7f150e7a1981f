"""One process at a time on a study's queue: a lock held across processes (and machines, on a database server).

SQLite and journal files are locked through their directory (`flock`, this machine only, as those files are);
PostgreSQL through a session advisory lock, MySQL through GET_LOCK; an in-memory study needs none.
"""

from __future__ import annotations

import contextlib
import zlib
from pathlib import Path
from typing import Iterator

import optuna

from dse.core.optuna_adapter import journal_path, rdb_backend, study_storage
from dse.core.storage import directory_lock

LOCK_NAMESPACE = "adaptive-dse study queue"


def _lock_key(study_name: str) -> int:
    """A signed 64-bit key for `study_name` (PostgreSQL advisory locks take a bigint)."""
    high = zlib.crc32(LOCK_NAMESPACE.encode())
    low = zlib.crc32(study_name.encode())
    key = (high << 32) | low
    return key - (1 << 64) if key >= 1 << 63 else key


@contextlib.contextmanager
def study_lock(study: optuna.Study) -> Iterator[None]:
    """Hold the study's queue lock: whoever holds it reads the queue and adds to it without a race."""
    storage = study_storage(study)
    backend = rdb_backend(storage)
    if backend is not None:
        engine = backend.engine
        if engine.name == "sqlite":
            with directory_lock(Path(str(engine.url.database)).resolve().parent):
                yield
            return
        import sqlalchemy

        key = _lock_key(study.study_name)
        acquire, release = {"postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
                            "mysql": ("SELECT GET_LOCK(:name, 600)", "SELECT RELEASE_LOCK(:name)")}[engine.name]
        values = {"key": key, "name": f"dse-{key:x}"}
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(acquire), values)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(release), values)
                connection.commit()
        return
    path = journal_path(storage)
    if path is not None:
        with directory_lock(path.resolve().parent):
            yield
        return
    yield
