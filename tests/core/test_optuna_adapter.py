"""The Optuna adapter, function by function, on every storage: SQLite file, journal file, memory and PostgreSQL.

`set_trial_attrs` (a trial's attributes in one transaction) reads back exactly as Optuna's own one-by-one writes
(one upsert per kind on SQLite and PostgreSQL, Optuna's writes elsewhere); the version check refuses an Optuna
outside the tested range at import; no module outside the adapter touches an Optuna internal.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest

from dse.core.optuna_adapter import (HEARTBEAT_ATTR, SUPPORTED_OPTUNA, OptunaVersionError, check_version,
                                     constraint_attr, hypervolume, journal_path, queued_params, rdb_backend,
                                     set_study_system_attr, set_trial_attrs, study_storage, study_system_attrs,
                                     trial_id)
from dse.core.storage import open_storage
from dse.core.workers import fail_stale

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "dse" / "core" / "optuna_adapter.py"

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
        trial.storage.set_trial_system_attr(trial_id(trial), "constraints", [-0.5])
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
    frozen = study_storage(study).get_trial(trial_id(trial))
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


def test_study_system_attributes_read_back_from_a_reloaded_study(storage: optuna.storages.BaseStorage) -> None:
    study = _study(storage)
    value = {"baselines": [{"energy_j": 1.5e-6, "cascade": "a > b"}], "none": None}
    set_study_system_attr(study, "dse:x", value)
    set_study_system_attr(study, "dse:x", [value])  # replaced, not appended
    again = optuna.load_study(study_name=study.study_name, storage=storage)
    assert study_system_attrs(study)["dse:x"] == study_system_attrs(again)["dse:x"] == [value]
    assert "dse:x" not in again.user_attrs


def test_the_storage_behind_a_study(storage: optuna.storages.BaseStorage, tmp_path: Path) -> None:
    study = _study(storage)
    is_database = isinstance(storage, optuna.storages.RDBStorage)
    assert rdb_backend(study_storage(study)) is (storage if is_database else None)
    if not is_database:
        assert study_storage(study) is storage
    is_journal = isinstance(storage, optuna.storages.JournalStorage)
    assert journal_path(study_storage(study)) == (tmp_path / "study.log" if is_journal else None)
    assert [s.study_name for s in optuna.get_all_study_summaries(study_storage(study))] == [study.study_name]


def test_trial_ids_and_queued_parameters(storage: optuna.storages.BaseStorage) -> None:
    study = _study(storage)
    study.enqueue_trial({"little": "mini2"})
    seen: list[tuple[int, dict | None]] = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        seen.append((trial_id(trial), queued_params(trial)))  # before the sampler draws anything
        trial.suggest_categorical("little", ["mini1", "mini2"])
        return 1.0, 2.0

    study.optimize(objective, n_trials=2)
    first, second = study.get_trials()
    assert seen == [(trial_id(first), {"little": "mini2"}), (trial_id(second), None)]
    assert queued_params(first) == {"little": "mini2"} and queued_params(second) is None
    assert [storage.get_trial(trial_id(t)).number for t in (first, second)] == [0, 1]


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def heartbeat_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if request.param == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    return request.getfixturevalue("postgres_url")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() outside optimize: no heartbeat thread
def test_a_silent_running_trial_goes_stale_and_its_parameters_are_retried(heartbeat_url: str) -> None:
    """A RUNNING trial that never beat goes stale after the grace period (the adapter's heartbeat storages); one
    that beats does not; the stale one fails and its parameters are queued again."""
    storage = open_storage(heartbeat_url, heartbeat_s=1)
    backend = rdb_backend(storage)
    if backend is not None:
        backend.grace_period = 1
    else:
        storage.grace_s = 1.0
    study = _study(storage)
    study.enqueue_trial({"little": "mini2"})
    silent = study.ask()
    silent.suggest_categorical("little", ["mini1", "mini2"])
    beating = study.ask()
    time.sleep(1.6)
    study_storage(study).record_heartbeat(trial_id(beating))
    fail_stale(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[silent.number] == optuna.trial.TrialState.FAIL
    assert states[beating.number] == optuna.trial.TrialState.RUNNING
    retried = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [queued_params(t) for t in retried] == [{"little": "mini2"}]


def _reference_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """2-D hypervolume by vertical strips: each strip between consecutive x values is covered from the lowest y of
    the points left of it up to the reference."""
    xs = sorted({float(x) for x in points[:, 0]} | {float(reference[0])})
    area = 0.0
    for left, right in zip(xs, xs[1:]):
        low = min((y for x, y in points if x <= left), default=reference[1])
        area += (right - left) * max(reference[1] - low, 0.0)
    return area


def test_hypervolume_equals_a_strip_by_strip_reference() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        points = rng.integers(0, 20, (int(rng.integers(1, 12)), 2)).astype(float)
        reference = np.array([21.0, 21.0])
        assert hypervolume(points, reference) == pytest.approx(_reference_hypervolume(points, reference), rel=1e-12)


def test_the_version_check_names_the_installed_and_the_supported_versions() -> None:
    check_version(optuna.__version__)
    for version in ("5.0.0", "5.9.1", "5.2.0rc1"):
        check_version(version)
    for version in ("4.9.0", "6.0.0", "6.0.0rc1"):
        with pytest.raises(OptunaVersionError, match=rf"Optuna {re.escape(version)} is installed.*Optuna >=5.0,<6"):
            check_version(version)


def test_importing_dse_with_an_untested_optuna_fails_at_import() -> None:
    code = "import optuna; optuna.__version__ = '6.0.0'\ntry:\n    import dse\nexcept Exception as exc:\n" \
           "    print(type(exc).__name__, exc)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.startswith("OptunaVersionError Optuna 6.0.0 is installed") and SUPPORTED_OPTUNA in out


def test_the_supported_range_is_the_one_pyproject_pins() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"optuna{SUPPORTED_OPTUNA}" in dependencies


# Python's namedtuple methods, which Optuna's distributions also define: not Optuna internals.
NAMEDTUPLE = {"_asdict", "_replace", "_fields", "_make"}
DEFINED = re.compile(r"^\s*(?:def|class)\s+(_[A-Za-z]\w*)|self\.(_[A-Za-z]\w*)\s*(?::[^=\n]*)?=(?!=)"
                     r"|^(_[A-Za-z]\w*)\s*(?::[^=\n]*)?=(?!=)", re.M)


def optuna_private_names() -> set[str]:
    """Every underscore name the installed Optuna defines: modules, functions, classes, attributes, constants."""
    package = Path(optuna.__file__).parent
    names = {group for path in package.rglob("*.py") for match in DEFINED.findall(path.read_text())
             for group in match if group}
    names |= {path.stem for path in package.rglob("_*")}
    return {name for name in names if not name.startswith("__")} - NAMEDTUPLE


def optuna_internals(source: str, private: set[str]) -> list[str]:
    """'line: what' for every use of an Optuna internal in `source`: a private module or name imported from Optuna,
    a private Optuna attribute read on an object (directly or through getattr), or a private method overridden in a
    subclass of an Optuna class."""
    tree = ast.parse(source)
    from_optuna = {"optuna"} | {(alias.asname or alias.name) for node in ast.walk(tree)
                                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optuna")
                                for alias in node.names}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optuna":
            names = node.module.split(".") + [alias.name for alias in node.names]
            found += [f"{node.lineno}: from {node.module} import ..."] if any(n.startswith("_") for n in names) else []
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "optuna" and any(n.startswith("_") for n in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and node.attr in private:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: .{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) > 1
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in private):
            found.append(f"{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ClassDef) and any(ast.unparse(base).split(".")[0] in from_optuna
                                                    for base in node.bases):
            found += [f"{item.lineno}: def {item.name} in {node.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef) and item.name in private]
    return found


def test_no_optuna_internal_outside_the_adapter() -> None:
    private = optuna_private_names()
    uses = [f"{path.relative_to(ROOT)}:{use}" for folder in ("dse", "reports", "benchmarks", "tests")
            for path in sorted((ROOT / folder).rglob("*.py")) if path != ADAPTER
            for use in optuna_internals(path.read_text(), private)]
    assert not uses, "Optuna internals outside dse/core/optuna_adapter.py:\n" + "\n".join(uses)


def test_the_internals_scan_finds_each_kind_of_use() -> None:
    private = optuna_private_names()
    assert len(optuna_internals(ADAPTER.read_text(), private)) >= 10  # the adapter itself: every kind below
    cases = ["from optuna.storages._rdb import models", "import optuna._hypervolume",
             "from optuna.study._constrained_optimization import _CONSTRAINTS_KEY", "study._storage.get_study_system_attrs()",
             "getattr(storage, '_backend', storage)",
             "class S(optuna.storages.RDBStorage):\n    def _get_stale_trial_ids(self, study_id): ..."]
    assert all(optuna_internals(case, private) for case in cases)
    harmless = ["self._storage = 1", "row._asdict()", "from optuna.trial import TrialState", "obj._mine_only_here"]
    assert not any(optuna_internals(case, private) for case in harmless)
