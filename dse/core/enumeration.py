"""An enumerated structure space run as a queue: every structure is queued and completed once, whatever the
interruptions (Ctrl-C, SIGKILL, several workers, `--until`).

Whoever holds the study's queue lock fails stale trials (their structures are queued again, once, by the stale-trial
callback) and queues the structures that no trial has completed, is running or waits to run. A trial that was not
taken from the queue (another process took the last queued one first), or whose structure another trial completed
or is running under a lower number (a stale trial queued again while it was being queued anew), is pruned before it
evaluates anything.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.core.optuna_adapter import queued_params
from dse.core.study_lock import study_lock
from dse.core.workers import POLL_S, SURPLUS_ATTR, StopRequest, fail_stale

DUPLICATE_ATTR = "duplicate"  # user attribute of a trial pruned because its structure was taken


def structure_key(params: dict[str, Any]) -> str:
    """A structure's parameters as one comparable string."""
    return json.dumps(params, sort_keys=True)


@dataclass(frozen=True)
class QueueState:
    """Where an enumerated space stands: distinct structures completed, trials queued and running, and the
    structures no trial holds (in enumeration order)."""

    total: int
    complete: int
    queued: int
    running: int
    missing: list[dict[str, Any]]

    @property
    def is_complete(self) -> bool:
        """True when every structure of the space has a completed trial."""
        return self.complete >= self.total


class StructureQueue:
    """The structures of an enumerated space (in a fixed order) and the trials that hold them."""

    def __init__(self, structures: list[dict[str, Any]]) -> None:
        self.structures = structures
        self.keys = [structure_key(params) for params in structures]
        self._finished: dict[int, str] = {}  # a finished trial's structure never changes: read it once

    def key(self, trial: FrozenTrial) -> str:
        """The structure a trial runs: its parameters once complete, its queued parameters before."""
        if trial.number in self._finished:
            return self._finished[trial.number]
        fixed = queued_params(trial)
        key = structure_key(trial.params if trial.state == TrialState.COMPLETE or fixed is None else fixed)
        if trial.state.is_finished():
            self._finished[trial.number] = key
        return key

    def state(self, study: optuna.Study) -> QueueState:
        """The space's progress in `study`."""
        held: dict[TrialState, set[str]] = {TrialState.COMPLETE: set(), TrialState.RUNNING: set(),
                                             TrialState.WAITING: set()}
        counts = {TrialState.RUNNING: 0, TrialState.WAITING: 0}
        for trial in study.get_trials(deepcopy=False, states=tuple(held)):
            held[trial.state].add(self.key(trial))
            counts[trial.state] = counts.get(trial.state, 0) + 1
        taken = set().union(*held.values())
        return QueueState(len(self.keys), len(held[TrialState.COMPLETE] & set(self.keys)), counts[TrialState.WAITING],
                          counts[TrialState.RUNNING],
                          [params for params, key in zip(self.structures, self.keys) if key not in taken])

    def refill(self, study: optuna.Study, target: int) -> QueueState:
        """Under the queue lock: fail stale trials, then queue missing structures until the completed, running and
        queued ones reach `target`; returns the state after."""
        with study_lock(study):
            fail_stale(study)
            state = self.state(study)
            wanted = max(target - state.complete - state.running - state.queued, 0)
            for params in state.missing[:wanted]:
                study.enqueue_trial(params)
        added = min(wanted, len(state.missing))
        return QueueState(state.total, state.complete, state.queued + added, state.running, state.missing[added:])

    def taken(self, trial: optuna.Trial) -> bool:
        """True when another trial completed the trial's structure, or runs it under a lower number."""
        key = structure_key(queued_params(trial))
        return any(self.key(other) == key and (other.state == TrialState.COMPLETE or other.number < trial.number)
                   for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
                   if other.number != trial.number)


class _FromQueue:
    """The objective behind the queue's checks: only a queued structure nobody else holds is evaluated."""

    def __init__(self, objective: Callable[[optuna.Trial], Any], queue: StructureQueue) -> None:
        self.objective, self.queue, self.completed = objective, queue, 0

    def __call__(self, trial: optuna.Trial) -> Any:
        if queued_params(trial) is None:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise optuna.TrialPruned("another process took the last queued structure")
        if self.queue.taken(trial):
            trial.set_user_attr(DUPLICATE_ATTR, True)
            raise optuna.TrialPruned("another trial holds this structure")
        values = self.objective(trial)
        self.completed += 1
        return values


def run_queue(study: optuna.Study, objective: Callable[[optuna.Trial], Any], queue: StructureQueue, target: int,
              stop: StopRequest, callbacks: list[Callable[..., None]] | None = None) -> int:
    """Run queued structures until `target` structures of the space are complete, whoever ran them, waiting on
    structures that run elsewhere (a dead process's trial is failed once stale and its structure run here); stops
    after the trial in flight when `stop` is requested. Returns the trials this process completed."""
    counted = _FromQueue(objective, queue)
    target = min(target, len(queue.keys))
    ended: list[FrozenTrial] = []
    while not stop.requested:
        state = queue.refill(study, target)
        if state.complete >= target:
            break
        if state.queued == 0:  # the rest runs elsewhere: wait, failing stale trials
            time.sleep(POLL_S)
            continue
        study.optimize(counted, n_trials=1, callbacks=[*(callbacks or []), lambda _, trial: ended.append(trial)])
        if ended and ended[-1].state == TrialState.FAIL:  # its structure would be queued again, and fail again
            raise RuntimeError(f"trial {ended[-1].number} ({ended[-1].params}) failed without an exception")
    return counted.completed
