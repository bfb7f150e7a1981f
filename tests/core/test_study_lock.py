"""The study queue's lock is held across processes on every storage that several processes can share: SQLite and
journal files through their directory, PostgreSQL through an advisory lock; an in-memory study needs none."""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

import optuna
import pytest

from dse.core.storage import open_storage
from dse.core.study_lock import _lock_key, study_lock


def _study(url: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=open_storage(url), study_name=f"lock-{uuid.uuid4().hex[:8]}")


def _directory_free(directory: Path) -> bool:
    """Whether another open file description could take the directory's lock now."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("scheme, name", [("sqlite:///", "study.db"), ("journal:///", "study.log")])
def test_a_file_study_locks_its_directory(scheme: str, name: str, tmp_path: Path) -> None:
    study = _study(f"{scheme}{tmp_path / name}")
    assert _directory_free(tmp_path)
    with study_lock(study):
        assert not _directory_free(tmp_path)
    assert _directory_free(tmp_path)


def test_a_server_study_holds_an_advisory_lock(postgres_url: str) -> None:
    import sqlalchemy

    study = _study(postgres_url)
    engine = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
    query = sqlalchemy.text("SELECT pg_try_advisory_lock(:key), pg_advisory_unlock(:key)")
    try:
        with engine.connect() as other:
            with study_lock(study):
                assert other.execute(query, {"key": _lock_key(study.study_name)}).one() == (False, False)
            assert other.execute(query, {"key": _lock_key(study.study_name)}).one() == (True, True)
    finally:
        engine.dispose()
