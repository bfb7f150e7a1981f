"""Shared fixtures: small real datasets, a throwaway cache directory and a PostgreSQL database of each test's own."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from nets import Dataset, load_dataset

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


@pytest.fixture(scope="session")
def mnist5k() -> Dataset:
    """The embedded 5,000 MNIST digits, default split."""
    return load_dataset("mnist5k")


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh score cache, also exported as $DSE_CACHE_DIR."""
    path = tmp_path / "cache"
    monkeypatch.setenv("DSE_CACHE_DIR", str(path))
    return path


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database (random name) on the server of $DSE_TEST_POSTGRES_URL, dropped after the
    test, so that no test sees another's tables; skips when the variable is not set."""
    server = os.environ.get("DSE_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("DSE_TEST_POSTGRES_URL not set (.ci/run starts a server and sets it: bash .ci/postgres.sh)")
    import sqlalchemy

    url = sqlalchemy.engine.make_url(server)
    name = f"dse_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:  # FORCE: the test's own pooled connections may still be open
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


TINY_SPEC = """
version = 2
name = "tiny"
description = "two little nets, one epoch"
[data]
dataset = "mnist5k"
[training]
epochs = 1
batch_size = 128
[nets]
big = "lenet"
[little]
nets = ["mini7", "mini8"]
max_stages = 2  # one little net before the big one (Park's big/little), never alone
alone = false
[search]
n_trials = 12
sampler = "random"
max_accuracy_loss_pct = 5.0
enumerate_limit = 0
thresholds = "sampled"
"""


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run `dse run` twice on a tiny spec (one epoch, two little nets); return paths and outputs."""
    from typer.testing import CliRunner

    from dse.cli import app

    root = tmp_path_factory.mktemp("tiny")
    spec = root / "tiny.toml"
    spec.write_text(TINY_SPEC)
    out = root / "out"
    args = ["run", str(spec), "--out", str(out), "--cache-dir", str(root / "cache"), "--no-progress", "--jobs", "1"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    first_trials = (out / "trials.csv").read_text() if (out / "trials.csv").exists() else ""
    second = runner.invoke(app, args)
    return {"root": root, "spec": spec, "out": out, "first": first, "second": second, "args": args,
            "first_trials_csv": first_trials}


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI output as written to a file (whole lines) unless a test sets $COLUMNS itself, whatever the shell exports
    (set empty, not deleted: a library may have set COLUMNS in the process environment behind os.environ's back, and
    child processes would inherit it)."""
    monkeypatch.setenv("COLUMNS", "")
