"""`set_trial_attrs` (a trial's attributes in one transaction) reads back exactly as Optuna's own one-by-one writes,
on every storage: SQLite and PostgreSQL (one upsert per kind), journal files and memory (Optuna's writes)."""

from __future__ import annotations

import uuid
from pathlib import Path

import optuna
import pytest

from dse.core.optuna_adapter import HEARTBEAT_ATTR, constraint_attr, set_trial_attrs, study_storage, trial_id
from dse.core.storage import open_storage

USER = {"front": [{"cascade": "a > b", "thresholds": [0.25], "calib_energy_j": 6.0e-5}],
        "cascade": "a > b", "calib_extra_errors": 10, "test_accuracy_loss_pct": 1.0000000000000009, "none": None}


@pytest.fixture(params=["sqlite", "journal", "memory", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> optuna.storages.BaseStorage:
    if request.param == "sqlite":
        return open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    if request.param == "journal":
        return open_storage(f"journal:///{tmp_path / 'study.log'}")
    if request.param == "memory":
        return optuna.storages.InMemoryStorage()
    return open_storage(request.getfixturevalue("postgres_url"))  # a database of this test's own


def _user(trial: optuna.trial.FrozenTrial) -> dict:
    """The trial's user attributes, less the journal storage's heartbeat."""
    return {key: value for key, value in trial.user_attrs.items() if key != HEARTBEAT_ATTR}


def _study(storage: optuna.storages.BaseStorage) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=storage, study_name=f"attrs-{uuid.uuid4().hex[:8]}",
                               directions=["minimize", "minimize"])


def test_batched_attributes_read_back_as_optuna_writes_them(storage: optuna.storages.BaseStorage) -> None:
    study = _study(storage)

    def batched(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_categorical("little", ["mini1", "mini2"])
        set_trial_attrs(trial, USER, {constraint_attr("accuracy_loss"): -0.5, "constraints": [-0.5]})
        assert {k: trial.user_attrs[k] for k in USER} == USER  # the running trial sees its own attributes
        return 1.0, 2.0

    def one_by_one(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_categorical("little", ["mini1", "mini2"])
        for key, value in USER.items():
            trial.set_user_attr(key, value)
        trial.set_constraint("accuracy_loss", -0.5)
        trial.storage.set_trial_system_attr(trial._trial_id, "constraints", [-0.5])
        return 1.0, 2.0

    study.optimize(batched, n_trials=1)
    study.optimize(one_by_one, n_trials=1)
    mine, optunas = study.get_trials()
    assert _user(mine) == _user(optunas) == USER
    assert mine.system_attrs == optunas.system_attrs
    assert mine.constraints == optunas.constraints == {"accuracy_loss": -0.5, "0": -0.5}
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage).trials[0]
    assert _user(reloaded) == USER and reloaded.constraints == mine.constraints


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() outside optimize: fine for this check
def test_batched_attributes_replace_existing_keys(storage: optuna.storages.BaseStorage) -> None:
    study = _study(storage)
    trial = study.ask()
    set_trial_attrs(trial, {"a": 1, "b": [1, 2]}, {"s": "x"})
    set_trial_attrs(trial, {"a": 2}, {"s": "y"})
    frozen = study._storage.get_trial(trial._trial_id)
    assert _user(frozen) == {"a": 2, "b": [1, 2]} and frozen.system_attrs["s"] == "y"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_batched_attributes_refuse_a_finished_trial(storage: optuna.storages.BaseStorage) -> None:
    study = _study(storage)
    trial = study.ask()
    study.tell(trial, [1.0, 2.0])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_trial_attrs(trial, {"a": 1}, {})


def test_a_new_study_file_is_stamped_with_the_head_schema(tmp_path: Path) -> None:
    for name in ("a.db", "b.db", "a.db"):  # two new files (compatibility check skipped), then one reopened
        storage = open_storage(f"sqlite:///{tmp_path / name}")
        assert storage.get_current_version() == storage.get_head_version()
