"""Every use of an Optuna internal (private module, attribute or name) in one place, checked at import against the
Optuna versions this adapter is tested with.

Optuna's public API has no way to write a study's system attributes, to read a running trial's queued parameters,
to batch a trial's attribute writes, or to add heartbeats to a journal file: the functions here do those through
Optuna's internals, so that a new Optuna release is met here alone (and by `tests/core/test_optuna_adapter.py`).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from packaging.specifiers import SpecifierSet  # installed with Optuna, which requires it

from costmodel import UserError

SUPPORTED_OPTUNA = ">=5.0,<6"  # the versions this adapter is tested with (pyproject.toml pins the same range)
FIXED_PARAMS = "fixed_params"  # the trial system attribute in which Optuna keeps a queued trial's parameters
HEARTBEAT_ATTR = "heartbeat_unix_s"  # journal trials: the last heartbeat, seconds since the epoch


class OptunaVersionError(UserError):
    """The installed Optuna is outside the versions whose internals this adapter is tested with."""


def check_version(installed: str) -> None:
    """Refuse an Optuna version outside SUPPORTED_OPTUNA, naming both."""
    if not SpecifierSet(SUPPORTED_OPTUNA).contains(installed, prereleases=True):
        raise OptunaVersionError(f"Optuna {installed} is installed, but adaptive-dse is tested with Optuna "
                                 f"{SUPPORTED_OPTUNA} only (it uses some of Optuna's internals): "
                                 f"pip install 'optuna{SUPPORTED_OPTUNA}'")


check_version(optuna.__version__)

# after the check, so that an untested Optuna that moved these gets the version error rather than an ImportError
from optuna._hypervolume import compute_hypervolume  # noqa: E402
from optuna.storages._heartbeat import BaseHeartbeat  # noqa: E402
from optuna.storages._rdb import models  # noqa: E402
from optuna.storages._rdb.storage import _create_scoped_session  # noqa: E402
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY  # noqa: E402


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes through (Optuna's cache around an RDB storage, as trials see it)."""
    return study._storage


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """A study's system attributes (Optuna 5 reads them only internally)."""
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    """Write a study system attribute: large report data kept out of the user attributes optuna-dashboard lists."""
    study._storage.set_study_system_attr(study._study_id, key, value)


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (not its number within the study)."""
    return trial._trial_id


def queued_params(trial: optuna.Trial | FrozenTrial) -> dict[str, Any] | None:
    """The parameters a trial was queued with (None: the sampler draws them); a running trial's own copy, read
    without a storage access."""
    attrs = trial._cached_frozen_trial.system_attrs if isinstance(trial, optuna.Trial) else trial.system_attrs
    return attrs.get(FIXED_PARAMS)


def constraint_attr(name: str) -> str:
    """The trial system attribute in which Optuna keeps constraint `name` (what `FrozenTrial.constraints` reads)."""
    return f"{_CONSTRAINTS_KEY}:{name}"


def rdb_backend(storage: optuna.storages.BaseStorage) -> optuna.storages.RDBStorage | None:
    """The RDB storage behind `storage` (Optuna wraps one in its cache), or None when it is not a database."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def journal_path(storage: optuna.storages.BaseStorage) -> Path | None:
    """The file a journal-file storage writes, or None for any other storage."""
    backend = storage._backend if isinstance(storage, JournalStorage) else None
    return Path(backend._file_path) if isinstance(backend, JournalFileBackend) else None


def set_trial_attrs(trial: optuna.Trial, user_attrs: dict[str, Any], system_attrs: dict[str, Any]) -> None:
    """Write a running trial's user and system attributes at once: on a database in one transaction, one upsert
    statement per kind on SQLite and PostgreSQL (Optuna's one commit and three statements per attribute were most
    of a trial's cost), elsewhere one write per attribute."""
    storage = trial.storage
    backend = rdb_backend(storage)
    if backend is not None:
        with _create_scoped_session(backend.scoped_session, True) as session:
            for model, attrs in ((models.TrialUserAttributeModel, user_attrs),
                                 (models.TrialSystemAttributeModel, system_attrs)):
                _upsert_attrs(backend, session, model, trial._trial_id, attrs)
    else:
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial._trial_id, key, value)
        for key, value in system_attrs.items():
            storage.set_trial_system_attr(trial._trial_id, key, value)
    frozen = trial._cached_frozen_trial  # what the running trial's own properties read
    frozen.user_attrs.update(user_attrs)
    frozen.system_attrs.update(system_attrs)


def _upsert_attrs(backend: optuna.storages.RDBStorage, session: Any, model: Any, trial_id: int,
                  attrs: dict[str, Any]) -> None:
    """Insert or replace a trial's attributes of one kind (`model`) within `session`, after Optuna's check that the
    trial is still running."""
    if not attrs:
        return
    if backend.engine.name not in ("sqlite", "postgresql"):  # MySQL: Optuna's own statements, in this transaction
        for key, value in attrs.items():
            backend._set_trial_attr_without_commit(session, model, trial_id, key, value)
        return
    from sqlalchemy.dialects import postgresql, sqlite

    backend.check_trial_is_updatable(trial_id, models.TrialModel.find_or_raise_by_id(trial_id, session).state)
    insert = (sqlite if backend.engine.name == "sqlite" else postgresql).insert(model)
    upsert = insert.on_conflict_do_update(index_elements=[model.trial_id, model.key],
                                          set_={"value_json": insert.excluded.value_json})
    session.execute(upsert, [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                             for key, value in attrs.items()])


class HeartbeatRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, where a RUNNING trial that never recorded a heartbeat (its process died between creating
    it and the first beat) is stale too, once it started more than the grace period ago."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials whose last heartbeat, or start when they have none, is older than the grace period."""
        import sqlalchemy

        assert self.heartbeat_interval is not None
        grace = timedelta(seconds=self.grace_period or 2 * self.heartbeat_interval)
        utc_now = datetime.now(timezone.utc).replace(tzinfo=None)  # trial starts are naive UTC (Optuna 5)
        with _create_scoped_session(self.scoped_session, True) as session:
            db_now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)  # heartbeats: the DB's clock
            running = (session.query(models.TrialModel)
                       .options(sqlalchemy.orm.selectinload(models.TrialModel.heartbeats))
                       .filter(models.TrialModel.state == TrialState.RUNNING, models.TrialModel.study_id == study_id)
                       .all())
            return [trial.trial_id for trial in running
                    if (db_now - trial.heartbeats[0].heartbeat if trial.heartbeats
                        else utc_now - (trial.datetime_start or utc_now)) > grace]


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal-file storage with heartbeats: each running trial records the time as a user attribute, and a
    RUNNING trial whose last heartbeat (or start) is more than `grace_s` ago is stale."""

    def __init__(self, backend: JournalFileBackend, heartbeat_s: int, grace_s: float,
                 stale_callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        super().__init__(backend)
        self.heartbeat_s, self.grace_s, self.stale_callback = heartbeat_s, grace_s, stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        """Record that the trial's process is alive."""
        self.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """RUNNING trials without a heartbeat for `grace_s`."""
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            start = trial.datetime_start.timestamp() if trial.datetime_start else now  # naive local time
            if now - trial.user_attrs.get(HEARTBEAT_ATTR, start) > self.grace_s:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        """The heartbeat interval in seconds."""
        return self.heartbeat_s

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        """What to do with a stale trial: retry its parameters."""
        return self.stale_callback


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """The hypervolume of minimised `points` (rows) up to `reference`, as Optuna's samplers compute it."""
    return float(compute_hypervolume(points, reference))
