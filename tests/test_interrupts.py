"""Interrupted and resumed studies keep their meaning: a quickstart run (trained for one epoch, so that the score
cache is warm after one session fixture) is stopped by SIGINT or SIGKILL at moments spread from the creation of its
database to the end of its search, then resumed; every resume succeeds and every enumerated structure is completed
exactly once. The same with three workers on PostgreSQL (a database made for the test and dropped after it).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import optuna
import pytest
from optuna.trial import TrialState

from dse.core.storage import CREATING_SUFFIX

POSTGRES = os.environ.get("DSE_TEST_POSTGRES_URL")
QUICKSTART = Path(__file__).resolve().parents[1] / "studies" / "quickstart.toml"
ONE_EPOCH = "[training]\nepochs = 1\nbatch_size = 128\nlearning_rate = 0.001\nseed = 0\n"  # the tiny study's training
HEARTBEAT = ["--heartbeat", "1"]  # a killed run's trial is stale after 3 s


def dse(*args: str) -> list[str]:
    """The command line of `dse ARGS` in a fresh interpreter."""
    return [sys.executable, "-m", "dse.cli", *args]


@pytest.fixture(scope="session")
def quickstart(tiny_study: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The quickstart trained for one epoch (its cache shares the tiny study's nets), its cache made warm once, and
    the structures its search enumerates."""
    from typer.testing import CliRunner

    from dse.cli import app
    from dse.core.loading import load_problem
    from dse.core.spec import load_spec
    from dse.core.study import space_queue

    root = tmp_path_factory.mktemp("quickstart")
    text = QUICKSTART.read_text()
    start, end = text.index("[training]"), text.index("[nets]")
    spec = root / "quickstart.toml"
    spec.write_text(text[:start] + ONE_EPOCH + "\n" + text[end:])
    cache = tiny_study["root"] / "cache"
    warm = CliRunner().invoke(app, ["run", str(spec), "--trials", "0", "--out", str(root / "warm"), "--cache-dir",
                                    str(cache), "--no-progress", "--jobs", "1"])
    assert warm.exit_code == 0, warm.output
    problem, _ = load_problem(load_spec(spec), str(cache), n_jobs=1)
    queue = space_queue(problem, load_spec(spec))
    assert queue is not None and len(queue.keys) == 8  # mini1..mini8, each before lenet
    return {"spec": spec, "cache": cache, "structures": sorted(queue.keys)}


def _structures(url: str) -> tuple[list[str], dict[TrialState, int]]:
    """The structure of every completed trial of the quickstart study in `url`, and the count of each state."""
    from dse import open_storage

    trials = optuna.load_study(study_name="quickstart", storage=open_storage(url, None, create=False)).get_trials()
    states = {state: sum(t.state == state for t in trials) for state in TrialState}
    return sorted(json.dumps(t.params, sort_keys=True) for t in trials if t.state == TrialState.COMPLETE), states


def _sqlite_complete(db: Path) -> int:
    """Completed trials in a study database (0 while it has no tables)."""
    if not db.exists():
        return 0
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0
    finally:
        connection.close()


def _interrupt(command: list[str], ready: Callable[[], bool], signum: int) -> tuple[int, bool]:
    """Start `command`, send `signum` as soon as `ready()` holds (polled every millisecond); return the exit code and
    whether the moment was reached before the process ended by itself."""
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ready() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    reached = run.poll() is None
    run.send_signal(signum)
    return run.wait(timeout=120), reached


# moments from the database's creation to the end of the search: (what to wait for, signal)
SQLITE_MOMENTS = [("creating", signal.SIGINT), ("creating", signal.SIGKILL), ("created", signal.SIGINT),
                  ("created", signal.SIGKILL), (1, signal.SIGKILL), (2, signal.SIGINT), (4, signal.SIGKILL),
                  (5, signal.SIGINT), (7, signal.SIGKILL), (8, signal.SIGINT)]


def test_interrupted_quickstart_resumes_with_each_structure_once(quickstart: dict, tmp_path: Path) -> None:
    reached = []
    for index, (moment, signum) in enumerate(SQLITE_MOMENTS):
        out = tmp_path / f"run{index}"
        db = out / "study.db"
        command = dse("run", str(quickstart["spec"]), "--out", str(out), "--cache-dir", str(quickstart["cache"]),
                      "--no-progress", "--jobs", "1", *HEARTBEAT)
        if moment == "creating":
            ready: Callable[[], bool] = db.with_name(db.name + CREATING_SUFFIX).exists
        elif moment == "created":
            ready = db.exists
        else:
            ready = lambda: _sqlite_complete(db) >= moment  # noqa: E731  (bound now: called before the next case)
        code, hit = _interrupt(command, ready, signum)
        assert code != 0, (moment, signum)
        reached.append(hit)
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, (moment, signum, resumed.stderr)
        completed, states = _structures(f"sqlite:///{db}")
        assert completed == quickstart["structures"], (moment, signum)  # each structure once, none missing
        assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0
        assert "-> 8 completed trials" in resumed.stdout
        assert not list(out.glob(f"*{CREATING_SUFFIX}"))
    assert sum(reached) >= 8, reached  # the moments came while the run was working, not after it ended


@pytest.fixture()
def postgres_url() -> str:
    """A fresh PostgreSQL database with the study tables, dropped after the test."""
    if POSTGRES is None:
        pytest.skip("DSE_TEST_POSTGRES_URL not set (.ci/run starts a server: bash .ci/postgres.sh)")
    import sqlalchemy

    server = sqlalchemy.make_url(POSTGRES)
    name = f"dse_interrupts_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    optuna.storages.RDBStorage(url).engine.dispose()  # the tables, as a first `dse run` on a server makes them
    yield url
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _postgres_complete(url: str) -> Callable[[], int]:
    """A reader of the completed trials in `url` (0 before the study exists)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def complete() -> int:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")).scalar()
    return complete


POSTGRES_MOMENTS = [(0, signal.SIGKILL), (0, signal.SIGINT), (1, signal.SIGINT), (2, signal.SIGKILL),
                    (3, signal.SIGINT), (4, signal.SIGKILL), (5, signal.SIGINT), (6, signal.SIGKILL),
                    (7, signal.SIGINT), (7, signal.SIGKILL)]  # completed trials to wait for (0: workers starting)


def test_three_workers_on_postgresql_resume_with_each_structure_once(quickstart: dict, postgres_url: str,
                                                                     tmp_path: Path) -> None:
    import sqlalchemy

    complete = _postgres_complete(postgres_url)
    engine = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
    for index, (moment, signum) in enumerate(POSTGRES_MOMENTS):
        storage = optuna.storages.RDBStorage(postgres_url)  # each case starts without the study
        if "quickstart" in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}:
            optuna.delete_study(study_name="quickstart", storage=storage)
        storage.engine.dispose()
        command = dse("run", str(quickstart["spec"]), "--storage", postgres_url, "--out", str(tmp_path / f"o{index}"),
                      "--cache-dir", str(quickstart["cache"]), "--workers", "3", "--no-progress", "--jobs", "1",
                      *HEARTBEAT)
        if moment == 0:  # the workers are starting: the study exists, nothing is completed yet
            def ready() -> bool:
                with engine.connect() as connection:
                    return bool(connection.execute(sqlalchemy.text("SELECT count(*) FROM trials")).scalar())
        else:
            ready = lambda: complete() >= moment  # noqa: E731
        code, hit = _interrupt(command, ready, signum)
        assert hit, (moment, code)
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, (moment, signum, resumed.stderr)
        completed, states = _structures(postgres_url)
        assert completed == quickstart["structures"], (moment, signum, completed)
        assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0
    engine.dispose()


def test_an_empty_database_left_by_an_interrupted_creation_is_replaced(tiny_study: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dse.cli import app

    out = tmp_path / "out"
    out.mkdir()
    with sqlite3.connect(out / "study.db") as connection:  # what an older version left: WAL set, no tables
        connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    result = CliRunner().invoke(app, ["run", str(tiny_study["spec"]), "--out", str(out), "--cache-dir",
                                      str(tiny_study["root"] / "cache"), "--trials", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "0 -> 1 completed trial;" in result.output
