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

import dse.core.study_attrs
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
    assert dse.core.study_attrs.report_data(study)["baselines"] and "baselines" not in study.user_attrs


def _tables(url: str) -> set[str]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_an_empty_server_database_gets_the_tables_and_a_foreign_one_is_refused(postgres_url: str) -> None:
    import sqlalchemy

    from dse.core.storage import StorageError, open_storage, study_exists

    assert not study_exists(postgres_url, "s")  # reading an empty database creates nothing
    with pytest.raises(StorageError, match="no study database there"):
        open_storage(postgres_url, None, create=False)
    assert _tables(postgres_url) == set()
    optuna.create_study(storage=open_storage(postgres_url), study_name="s")
    assert study_exists(postgres_url, "s") and {"studies", "trials", "version_info"} <= _tables(postgres_url)
    engine = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
    with engine.begin() as connection:  # now make it someone else's database
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public; "
                                           "CREATE TABLE orders (id integer)"))
    engine.dispose()
    before = _tables(postgres_url)
    for call in (lambda: open_storage(postgres_url), lambda: study_exists(postgres_url, "s")):
        with pytest.raises(StorageError, match="holds other tables .* not a study database"):
            call()
    assert _tables(postgres_url) == before  # left unchanged


OPEN = """
import sys, optuna
from dse.core.storage import open_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
optuna.create_study(storage=open_storage(sys.argv[1]), study_name="s", load_if_exists=True)
"""


def test_many_first_opens_of_an_empty_server_database_at_once(postgres_url: str) -> None:
    opens = [subprocess.Popen([sys.executable, "-c", OPEN, postgres_url], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(6)]
    outputs = [(process.wait(timeout=300), process.stdout.read()) for process in opens]  # type: ignore[union-attr]
    assert all(code == 0 for code, _ in outputs), outputs
    from dse.core.storage import open_storage

    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(postgres_url, None, create=False),
                                                                 include_best_trial=False)] == ["s"]
