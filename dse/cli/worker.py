"""`dse worker`: join a study from any machine; and `dse run --workers K`: K such processes on this machine."""

from __future__ import annotations

import os
import socket
import sys
import time
import zlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from costmodel import UserError
from dse.cli.console import plural
from dse.cli.options import (CacheDirOption, DataOption, HeartbeatOption, JobsOption, NewOption, UntilOption,
                             check_budget, prepare, stopped)


class WorkerFailed(UserError):
    """A worker process of `dse run --workers` ended with an error."""


def default_worker_id() -> int:
    """A worker id from the host name and process id: distinct workers sample distinct streams."""
    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())


def worker(
    spec: Annotated[str, typer.Argument(help="Spec file or built-in study name (the same on every worker)")],
    storage: Annotated[str, typer.Option("--storage", help="The shared study storage (postgresql+psycopg2://… for "
                                                           "several machines, journal:///file for one)")],
    until: UntilOption = None,
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", min=0, help="Trials to add here [default: spec]")] = None,
    worker_id: Annotated[Optional[int], typer.Option("--worker-id", min=0, help="Sampling stream of this worker "
                                                                                  "[default: from host and pid]")] = None,
    data: DataOption = None,
    cache_dir: CacheDirOption = None,
    jobs: JobsOption = 1,
    heartbeat: HeartbeatOption = 10,
    new: NewOption = False,
    progress: Annotated[bool, typer.Option(help="Show the search progress bar")] = False,
) -> None:
    """Join a study: load the score cache (training what is missing), then run trials into the shared storage."""
    from dse.core.spec import load_spec
    from dse.core.storage import open_storage
    from dse.core.study import open_study, run_search
    from dse.core.workers import StopRequest

    check_budget(trials, until)
    study_spec = load_spec(spec).with_data(data)
    problem, _, study_name = prepare(study_spec, cache_dir, None, storage, jobs, new=new)
    study = open_study(study_spec, open_storage(storage, heartbeat),
                       default_worker_id() if worker_id is None else worker_id, study_name)
    n_trials = study_spec.search.n_trials if trials is None else trials
    with StopRequest() as stop:
        # a worker never certifies: `dse run` does, once, when the whole search has ended
        timing = run_search(study, problem, study_spec, n_trials, progress=progress, until=until, stop=stop,
                            certify=False)
    stopped(stop)
    typer.echo(f"worker: {plural(timing.trials, 'trial')} into '{study.study_name}' in {timing.wall_s:.1f} s")


def worker_command(spec: str, url: str, until: int, worker_id: int, data: Optional[Path],
                   cache_dir: Optional[Path], heartbeat: int) -> list[str]:
    """The command line of one local worker process."""
    command = [sys.executable, "-m", "dse.cli", "worker", spec, "--storage", url, "--until", str(until),
               "--worker-id", str(worker_id), "--jobs", "1", "--heartbeat", str(heartbeat), "--no-progress"]
    command += ["--data", str(data)] if data else []
    return command + (["--cache-dir", str(cache_dir)] if cache_dir else [])


def run_workers(spec: str, count: int, until: int, url: str, data: Optional[Path], cache_dir: Optional[Path],
                heartbeat: int, stop):  # type: ignore[no-untyped-def]
    """Run `count` worker processes until the study holds `until` trials; they die with this process."""
    from dse.core.processes import spawn_child
    from dse.core.study import SearchTiming

    start = time.perf_counter()
    children = [spawn_child(worker_command(spec, url, until, i, data, cache_dir, heartbeat)) for i in range(count)]
    try:
        while any(child.poll() is None for child in children):
            if stop.requested:
                for child in children:
                    if child.poll() is None:
                        child.terminate()  # a worker finishes its trial in flight, then stops
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    failed = [(i, child.returncode) for i, child in enumerate(children) if child.returncode not in (0, 130, 143)]
    if failed and not stop.requested:
        raise WorkerFailed(f"--workers: worker {failed[0][0]} exited with code {failed[0][1]} (its error is above)")
    done = sum(int(line.split()[1]) for child in children for line in child.stdout.read().splitlines()
               if line.startswith("worker: "))
    return SearchTiming(done, time.perf_counter() - start, 0.0, 0.0)
