"""Many processes on one study: trials up to an exact total, a clean stop on Ctrl-C or SIGTERM, stale-trial cleanup.

`--until N` is exact under any number of workers: a worker asks for a trial only while the completed plus running
trials are below N, and a trial that loses a race (more earlier-numbered trials completed or running than N allows)
is marked pruned, with user attribute `surplus`, before it samples anything.
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

POLL_S = 0.5  # how often a worker waiting on other workers' running trials looks again
SURPLUS_ATTR = "surplus"


def trial_counts(study: optuna.Study) -> tuple[int, int]:
    """(completed, running) trials of the study."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


@dataclass(frozen=True)
class TrialCounts:
    """A study's trials that count: completed, queued (waiting to run) and running."""

    complete: int
    queued: int
    running: int

    def to_json(self) -> dict[str, int]:
        """The counts under their names."""
        return {"complete": self.complete, "queued": self.queued, "running": self.running}


def study_counts(study: optuna.Study) -> TrialCounts:
    """How many of the study's trials are completed, queued and running (failed and pruned ones are not counted)."""
    states = [t.state for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.WAITING,
                                                                         TrialState.RUNNING))]
    return TrialCounts(states.count(TrialState.COMPLETE), states.count(TrialState.WAITING),
                       states.count(TrialState.RUNNING))


def claimed_before(study: optuna.Study, number: int) -> int:
    """Trials that count towards the total ahead of trial `number`: all completed ones, and running ones numbered
    below it."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    return sum(t.state == TrialState.COMPLETE or t.number < number for t in trials if t.number != number)


def fail_stale(study: optuna.Study) -> None:
    """Fail trials whose process stopped sending heartbeats (their parameters are retried)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class StopRequest:
    """While active, SIGINT and SIGTERM ask the search to stop after the trial in flight; a second SIGINT stops now."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *_: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signal is not None


class InterruptLatch:
    """While active, SIGINT raises KeyboardInterrupt as usual and is also remembered: Python drops a KeyboardInterrupt
    raised inside a weakref callback or `__del__`, so `check` re-raises it at a safe point (a run that was told to stop
    must not go on to search and exit 0)."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.interrupted = True
        raise KeyboardInterrupt

    def __enter__(self) -> "InterruptLatch":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def check(self) -> None:
        """Raise KeyboardInterrupt when a SIGINT arrived while active, even one whose exception Python dropped."""
        if self.interrupted:
            raise KeyboardInterrupt


class _Counted:
    """The objective behind a claim check: a surplus trial fails before sampling; completed trials are counted."""

    def __init__(self, objective: Callable[[optuna.Trial], Any], until: int | None) -> None:
        self.objective, self.until, self.completed = objective, until, 0

    def __call__(self, trial: optuna.Trial) -> Any:
        if self.until is not None and claimed_before(trial.study, trial.number) >= self.until:
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise optuna.TrialPruned(f"the study already holds its {self.until} trials")
        values = self.objective(trial)
        self.completed += 1
        return values


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], Any], n_trials: int | None,
               until: int | None, stop: StopRequest, progress: bool = False,
               callbacks: list[Callable[..., None]] | None = None) -> int:
    """Run `n_trials` trials here, or (with `until`) until the study holds `until` completed trials, whoever ran
    them; stop early when `stop` is requested. Returns the trials this process completed."""
    from tqdm import tqdm

    counted = _Counted(objective, until)
    total = n_trials if until is None else max(until - trial_counts(study)[0], 0)
    with tqdm(total=total, disable=not progress or not total, leave=False) as bar:
        while not stop.requested:
            if until is None:
                if counted.completed >= (n_trials or 0):
                    break
            else:
                complete, running = trial_counts(study)
                if complete >= until:
                    break
                if complete + running >= until:  # the rest is running elsewhere: wait, failing stale trials
                    time.sleep(POLL_S)
                    fail_stale(study)
                    continue
            before = counted.completed
            study.optimize(counted, n_trials=1, callbacks=callbacks)
            bar.update(counted.completed - before)
    return counted.completed
