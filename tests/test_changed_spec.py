"""A changed spec against an existing study: the refusal names each changed key with both values, `--new` starts a
study of the changed spec beside the old one in the same storage, and each report shows its own spec. A complete
enumerated space says so, and the counts of `dse --json run` are those of the storage."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import optuna
from typer.testing import CliRunner

from dse.cli import app


def _run(*args: str) -> tuple[int, str, str]:
    """`dse ARGS` in this process: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _spec_row(report: Path, key: str) -> str:
    """The value the report's Spec table shows for `key`."""
    html = report.read_text()
    start = html.index(f"<td>{key}</td><td>") + len(f"<td>{key}</td><td>")
    return html[start:html.index("</td>", start)]


def test_changed_key_is_named_and_new_starts_a_study_beside(tiny_study: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_study["out"], out)  # the tiny study: max_accuracy_loss_pct = 5.0
    changed = tmp_path / "changed.toml"
    changed.write_text(tiny_study["spec"].read_text().replace("max_accuracy_loss_pct = 5.0",
                                                               "max_accuracy_loss_pct = 2.5"))
    common = ["--out", str(out), "--cache-dir", str(tiny_study["root"] / "cache"), "--no-progress", "--jobs", "1",
              "--trials", "2"]
    with contextlib.closing(sqlite3.connect(out / "study.db")) as connection:  # the copied WAL, into the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db_before = (out / "study.db").read_bytes()
    code, _, err = _run("run", str(changed), *common)
    assert code == 2 and err.count("\n") == 1
    assert "search.max_accuracy_loss_pct: 5.0 -> 2.5" in err and "--new" in err
    assert (out / "study.db").read_bytes() == db_before

    code, stdout, err = _run("run", str(changed), *common, "--new")
    assert code == 0, err
    assert "study 'tiny-2'" in stdout and "0 -> 2 completed trials" in stdout
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}", skip_table_creation=True)
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)) == [
        "tiny", "tiny-2"]
    assert _spec_row(out / "report.html", "search.max_accuracy_loss_pct") == "5.0"
    assert _spec_row(out / "tiny-2" / "report.html", "search.max_accuracy_loss_pct") == "2.5"

    code, stdout, err = _run("run", str(changed), *common)  # the changed spec now resumes its own study
    assert code == 0 and "study 'tiny-2'" in stdout and "2 -> 4 completed trials" in stdout, err
    code, stdout, err = _run("run", str(tiny_study["spec"]), *common)  # and the old spec its own
    assert code == 0 and "study 'tiny'" in stdout and "-> 26 completed trials" in stdout, err
    code, _, err = _run("report", "tiny-2", "--out", str(out))
    assert code == 0 and _spec_row(out / "tiny-2" / "report.html", "spec name") == "tiny", err


def test_complete_space_says_so_and_json_counts_the_storage(tiny_study: dict, tmp_path: Path) -> None:
    spec = tmp_path / "exact.toml"
    text = tiny_study["spec"].read_text().replace('name = "tiny"', 'name = "exact"')
    spec.write_text(text.replace("enumerate_limit = 0\n", "").replace('thresholds = "sampled"\n', ""))
    common = [str(spec), "--out", str(tmp_path / "out"), "--cache-dir", str(tiny_study["root"] / "cache"),
              "--no-progress", "--jobs", "1"]
    code, stdout, err = _run("--json", "run", *common, "--trials", "1")
    assert code == 0, err
    counts = json.loads(stdout)
    assert (counts["trials"], counts["trials_before"], counts["queued"], counts["running"]) == (1, 0, 0, 0)
    assert (counts["structures"], counts["structures_complete"]) == (2, 1)
    code, stdout, err = _run("run", *common, "--trials", "5")
    assert code == 0 and "1 -> 2 completed trials" in stdout
    assert "space of 2 structures is complete: 1 added, not 5" in stdout, stdout
    for budget in (["--trials", "5"], ["--until", "3"]):
        code, stdout, err = _run("run", *common, *budget)
        assert code == 0 and "2 -> 2 completed trials" in stdout
        assert "space of 2 structures was already complete: nothing was added" in stdout, stdout
