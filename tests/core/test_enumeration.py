"""The structure queue on a toy objective: a structure queued twice completes once, a stale trial's structure is
queued again once and completed, and a trial the sampler would draw is pruned before it samples."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dse.core.enumeration import DUPLICATE_ATTR, StructureQueue, run_queue
from dse.core.storage import GRACE_FACTOR, open_storage, sqlite_url
from dse.core.workers import SURPLUS_ATTR, StopRequest

STRUCTURES = [{"x": i} for i in range(4)]


def _objective(trial: optuna.Trial) -> float:
    return float(trial.suggest_int("x", 0, 3))


def _study(tmp_path: Path, heartbeat_s: int | None = None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=open_storage(sqlite_url(tmp_path / "s.db"), heartbeat_s), study_name="toy")


def _complete(study: optuna.Study) -> list[int]:
    return sorted(t.params["x"] for t in study.get_trials(states=(TrialState.COMPLETE,)))


def test_a_structure_queued_twice_completes_once(tmp_path: Path) -> None:
    study = _study(tmp_path)
    study.enqueue_trial({"x": 1})
    study.enqueue_trial({"x": 1})  # as when a stale trial is queued again while another process queues it anew
    assert run_queue(study, _objective, StructureQueue(STRUCTURES), 10, StopRequest()) == 4
    assert _complete(study) == [0, 1, 2, 3]
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert [t.user_attrs for t in pruned] == [{DUPLICATE_ATTR: True}]
    assert StructureQueue(STRUCTURES).state(study).is_complete


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the dead process asked for its trial without optimize
def test_a_stale_trial_is_failed_and_its_structure_run_once(tmp_path: Path) -> None:
    study = _study(tmp_path, heartbeat_s=1)
    study.enqueue_trial({"x": 2})
    dead = study.ask()  # taken from the queue by a process that then died: RUNNING, no heartbeat
    assert dead.params == {} and StructureQueue(STRUCTURES).state(study).running == 1
    time.sleep(GRACE_FACTOR * 1 + 0.5)
    assert run_queue(study, _objective, StructureQueue(STRUCTURES), 4, StopRequest()) == 4
    assert _complete(study) == [0, 1, 2, 3]
    assert [t.number for t in study.get_trials(states=(TrialState.FAIL,))] == [dead.number]
    assert len(study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))) == 0


def test_budget_counts_distinct_structures_and_leaves_the_rest_unqueued(tmp_path: Path) -> None:
    study = _study(tmp_path)
    queue = StructureQueue(STRUCTURES)
    assert run_queue(study, _objective, queue, 2, StopRequest()) == 2
    assert _complete(study) == [0, 1] and queue.state(study).queued == 0
    assert run_queue(study, _objective, queue, 3, StopRequest()) == 1 and _complete(study) == [0, 1, 2]


def test_a_trial_not_from_the_queue_is_pruned_before_it_samples(tmp_path: Path) -> None:
    from dse.core.enumeration import _FromQueue

    study = _study(tmp_path)
    study.optimize(_FromQueue(_objective, StructureQueue(STRUCTURES)), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.PRUNED and trial.params == {} and trial.user_attrs == {SURPLUS_ATTR: True}
