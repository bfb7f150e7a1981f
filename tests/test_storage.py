"""One storage contract, every backend: SQLite file, journal file, PostgreSQL server (started by .ci/run; each test
gets a new database of its own).

Each backend must resume a study and take trials from several worker processes at once.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import optuna

import dse.core.study
import pytest

@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if request.param == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    return request.getfixturevalue("postgres_url")  # a new, empty database: the first run creates the tables


def _spec(tiny_study: dict, tmp_path: Path) -> tuple[Path, str]:
    """The tiny spec under a fresh study name."""
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "spec.toml"
    spec.write_text(tiny_study["spec"].read_text().replace('name = "tiny"', f'name = "{name}"'))
    return spec, name


def _worker(spec: Path, url: str, out: Path, cache: Path, trials: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "dse.cli", "run", str(spec), "--storage", url, "--out", str(out),
               "--cache-dir", str(cache), "--trials", str(trials), "--no-progress", "--jobs", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_resume_and_parallel_workers(storage_url: str, tiny_study: dict, tmp_path: Path) -> None:
    spec, name = _spec(tiny_study, tmp_path)
    cache = tiny_study["root"] / "cache"  # trained by the tiny_study fixture: workers only load it
    first = _worker(spec, storage_url, tmp_path / "out0", cache, 4)
    assert first.wait(timeout=300) == 0, first.stdout.read()
    workers = [_worker(spec, storage_url, tmp_path / f"out{i}", cache, 6) for i in (1, 2)]
    outputs = [(w.wait(timeout=300), w.stdout.read()) for w in workers]
    assert all(code == 0 for code, _ in outputs), outputs
    assert all("0 to train" in text for _, text in outputs)
    from dse import open_storage

    storage = open_storage(storage_url)
    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 4 + 6 + 6
    assert len({t.number for t in complete}) == 16
    assert dse.core.study.report_data(study)["baselines"] and "baselines" not in study.user_attrs
