"""Many workers, crashes and signals, as a user would meet them: real `python -m dse.cli` processes.

Three `dse worker` processes on a brand-new PostgreSQL database and a cold shared cache; four first runs on one fresh
SQLite path; SIGKILL at five random moments and resume with `--until`; a killed parent leaves no child process; Ctrl-C
prints one line and exits 130.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

HEARTBEAT = ["--heartbeat", "1"]


def dse(*args: str) -> list[str]:
    """The command line of `dse ARGS` in a fresh interpreter."""
    return [sys.executable, "-m", "dse.cli", *args]


def _spec(tiny_study: dict, tmp_path: Path) -> tuple[Path, str]:
    """The tiny spec under a fresh study name."""
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "spec.toml"
    spec.write_text(tiny_study["spec"].read_text().replace('name = "tiny"', f'name = "{name}"'))
    return spec, name


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    from dse import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url, None, create=False)).get_trials()


def _states(trials: list[optuna.trial.FrozenTrial]) -> dict[TrialState, int]:
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def _assert_exact(trials: list[optuna.trial.FrozenTrial], total: int) -> None:
    """Exactly `total` completed trials, distinct numbers and distinct points, nothing left running or waiting."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == total
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in complete}) == total  # no worker repeated another's point
    assert _states(trials)[TrialState.RUNNING] == 0 and _states(trials)[TrialState.WAITING] == 0


def test_three_workers_on_a_new_database_and_a_cold_cache(postgres_url: str, tiny_study: dict,
                                                           tmp_path: Path) -> None:
    """The first processes on an empty database create its tables; each variant is trained and scored once, by
    whichever worker claimed it (counted from the cache's build log); the study holds exactly the total."""
    spec, name = _spec(tiny_study, tmp_path)
    cache = tmp_path / "cache"
    workers = [subprocess.Popen(dse("worker", str(spec), "--storage", postgres_url, "--until", "30", "--cache-dir",
                                    str(cache), *HEARTBEAT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(3)]
    outputs = [(w.wait(timeout=600), w.stdout.read()) for w in workers]  # type: ignore[union-attr]
    assert all(code == 0 for code, _ in outputs), outputs
    ran = [int(text.split("worker: ")[1].split()[0]) for _, text in outputs]
    assert sum(ran) == 30  # every completed trial was run by exactly one worker
    _assert_exact(_trials(postgres_url, name), 30)
    from nets import ScoreCache

    builds = ScoreCache(cache).builds()
    for stored in ("weights", "scores"):
        variants = [line["variant"] for line in builds if line["stored"] == stored]
        assert sorted(variants) == ["lenet", "mini7", "mini8"], (stored, builds)  # each exactly once
    front = subprocess.run(dse("pareto", name, "--storage", postgres_url, "--csv", str(tmp_path / "front.csv")),
                           capture_output=True, text=True, timeout=120)
    assert front.returncode == 0 and (tmp_path / "front.csv").is_file(), front.stderr


def test_the_recipe_for_machines_without_a_shared_filesystem(postgres_url: str, tiny_study: dict,
                                                              tmp_path: Path) -> None:
    """The guide's recipe: one worker creates the study on an empty database and builds the cache (`--trials 0`),
    the cache travels as an archive, a worker on the imported cache trains nothing and tops the study up."""
    spec, name = _spec(tiny_study, tmp_path)
    trained, imported, archive = tiny_study["root"] / "cache", tmp_path / "imported", tmp_path / "cache.tar"
    steps = [dse("worker", str(spec), "--storage", postgres_url, "--trials", "0", "--cache-dir", str(trained)),
             dse("cache", "export", str(archive), "--cache-dir", str(trained)),
             dse("cache", "import", str(archive), "--cache-dir", str(imported)),
             dse("worker", str(spec), "--storage", postgres_url, "--until", "5", "--cache-dir", str(imported))]
    outputs = [subprocess.run(step, capture_output=True, text=True, timeout=300) for step in steps]
    assert all(run.returncode == 0 for run in outputs), [run.stderr for run in outputs]
    assert "3 of 3 variants cached; 0 to train" in outputs[-1].stdout
    _assert_exact(_trials(postgres_url, name), 5)


def test_four_first_runs_on_a_fresh_sqlite_path_all_succeed(tiny_study: dict, tmp_path: Path) -> None:
    spec, name = _spec(tiny_study, tmp_path)
    out = tmp_path / "fresh" / "out"
    command = dse("run", str(spec), "--out", str(out), "--cache-dir", str(tiny_study["root"] / "cache"),
                  "--trials", "3", "--no-progress", "--jobs", "1")
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [(r.wait(timeout=300), r.stdout.read()) for r in runs]  # type: ignore[union-attr]
    assert all(code == 0 for code, _ in outputs), outputs
    _assert_exact(_trials(f"sqlite:///{out / 'study.db'}", name), 12)


def _complete(db: Path) -> int:
    """Completed trials in a study database (0 before its tables exist; integrity is checked at the end)."""
    if not db.exists():
        return 0
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.DatabaseError:  # tables not created yet, or the file is switching to WAL as we read
        return 0
    finally:
        connection.close()


def test_sigkill_at_random_moments_then_resume_until(tiny_study: dict, tmp_path: Path) -> None:
    spec, name = _spec(tiny_study, tmp_path)
    out = tmp_path / "out"
    db = out / "study.db"
    command = dse("run", str(spec), "--out", str(out), "--cache-dir", str(tiny_study["root"] / "cache"),
                  "--until", "60", "--no-progress", "--jobs", "1", *HEARTBEAT)
    rng = random.Random(14)
    kept: dict[int, tuple[float, ...]] = {}
    for _ in range(5):
        before = _complete(db)
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while _complete(db) == before and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.4))  # a random moment inside the search
        run.send_signal(signal.SIGKILL)
        run.wait()
        trials = _trials(f"sqlite:///{db}", name)
        complete = {t.number: tuple(t.values) for t in trials if t.state == TrialState.COMPLETE}
        assert kept.items() <= complete.items()  # no completed trial lost or changed
        assert len({t.number for t in trials}) == len(trials)
        kept = complete
    assert len(kept) < 60, "the kills came too late to test anything"
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    trials = _trials(f"sqlite:///{db}", name)
    _assert_exact(trials, 60)
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert kept.items() <= {t.number: tuple(t.values) for t in trials if t.state == TrialState.COMPLETE}.items()


def _descendants(pid: int) -> set[int]:
    """Every live descendant of `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """True for a process that exists and is not a zombie."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["training", "workers"])
def test_killing_the_parent_leaves_no_child(tiny_study: dict, tmp_path: Path, mode: str) -> None:
    spec, _ = _spec(tiny_study, tmp_path)
    if mode == "training":  # a fresh cache: joblib's loky workers train the nets
        extra = ["--cache-dir", str(tmp_path / "cache"), "--jobs", "2"]
    else:  # a cached problem: `--workers 2` starts worker processes
        extra = ["--cache-dir", str(tiny_study["root"] / "cache"), "--workers", "2", "--until", "100000"]
    parent = subprocess.Popen(dse("run", str(spec), "--out", str(tmp_path / "out"), "--no-progress", *extra),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(_descendants(parent.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)
    children = _descendants(parent.pid)
    assert len(children) >= 2, "the run started no child process"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)]


def test_ctrl_c_prints_one_line_and_exits_130(tiny_study: dict, tmp_path: Path) -> None:
    spec, name = _spec(tiny_study, tmp_path)
    out = tmp_path / "out"
    run = subprocess.Popen(dse("run", str(spec), "--out", str(out), "--cache-dir", str(tiny_study["root"] / "cache"),
                               "--until", "100000", "--no-progress", *HEARTBEAT),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _complete(out / "study.db") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=60) == 130
    stderr = run.stderr.read()  # type: ignore[union-attr]
    assert stderr.strip().count("\n") == 0 and stderr.startswith("interrupted") and "Traceback" not in stderr
    assert _states(_trials(f"sqlite:///{out / 'study.db'}", name))[TrialState.RUNNING] == 0


def test_journal_heartbeat_fails_a_stale_trial_and_retries_it(tmp_path: Path) -> None:
    from dse import open_storage
    from dse.core.workers import fail_stale

    url = f"journal:///{tmp_path / 'study.log'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat_s=1), study_name="s")
    with pytest.warns(UserWarning, match="Heartbeat"):  # asked outside optimize: its process "dies", no heartbeat
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    fail_stale(study)
    assert study.trials[trial.number].state == TrialState.RUNNING  # within the grace period: alive
    time.sleep(3.5)
    fail_stale(study)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.WAITING]  # failed, and its parameters queued again
    assert study.trials[1].params == study.trials[0].params


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    from nets import atomic_write_text

    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o666 & ~umask


def test_cache_export_then_import_gives_the_same_cache(tiny_study: dict, tmp_path: Path) -> None:
    from dse.cli import main

    source = tiny_study["root"] / "cache"
    for argv in (["cache", "export", str(tmp_path / "cache.tar"), "--cache-dir", str(source)],
                 ["cache", "import", str(tmp_path / "cache.tar"), "--cache-dir", str(tmp_path / "copy")]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 0
    from nets.scores._transfer import cache_members

    members = cache_members(source)
    assert members and members == cache_members(tmp_path / "copy")
    assert all((source / m).read_bytes() == (tmp_path / "copy" / m).read_bytes() for m in members)


def test_an_interrupt_python_dropped_is_raised_again_before_the_search() -> None:
    """Python drops a KeyboardInterrupt raised inside a weakref callback; `dse run` must not then search and exit 0."""
    from dse.core.workers import InterruptLatch

    with InterruptLatch() as quiet:
        quiet.check()  # no signal: nothing raised
    with InterruptLatch() as latch:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # what happens to one raised inside a weakref callback
        with pytest.raises(KeyboardInterrupt):
            latch.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler before it is back
