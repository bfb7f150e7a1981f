"""Exports and the machine-readable CLI: `dse trials --csv/--parquet`, `dse pareto --json`, root flags."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from dse.cli import app

runner = CliRunner()


def test_trials_export_is_trials_csv_in_the_same_units(tiny_study: dict, tmp_path: Path) -> None:
    out = tiny_study["out"]
    runner.invoke(app, ["report", str(out)])  # trials.csv as this study's storage holds it now
    result = runner.invoke(app, ["trials", str(out), "--csv", str(tmp_path / "t.csv"),
                                 "--parquet", str(tmp_path / "t.parquet")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.csv").read_text() == (out / "trials.csv").read_text()  # same columns, units and rows
    csv = pd.read_csv(tmp_path / "t.csv")
    parquet = pd.read_parquet(tmp_path / "t.parquet")
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet)
    assert len(set(csv["trial"])) == 24
    assert csv["calib_energy_j"].to_numpy() == pytest.approx(parquet["calib_energy_j"].to_numpy(), rel=1e-9)
    for column in ("little", "threshold_0", "test_energy_j", "test_latency_s", "test_storage_bytes",
                   "test_accuracy_loss_pct", "test_energy_dram_j", "test_reach_stage0", "feasible"):
        assert column in csv, column
    assert not [c for c in csv if c.endswith("_pj")]  # energies in joules, in every export
    parts = [c for c in csv if c.startswith("test_energy_") and c.endswith("_j") and c != "test_energy_j"]
    assert len(parts) == 7 and csv[parts].sum(axis=1).to_numpy() == pytest.approx(csv["test_energy_j"].to_numpy())
    printed = runner.invoke(app, ["trials", str(out)])
    assert printed.exit_code == 0 and printed.stdout == (out / "trials.csv").read_text()


def test_pareto_json_matches_the_front(tiny_study: dict) -> None:
    for args in (["pareto", str(tiny_study["out"]), "--json"], ["--json", "pareto", str(tiny_study["out"])]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        front = pd.read_csv(tiny_study["out"] / "pareto.csv")
        assert [row["trial"] for row in data["pareto"]] == list(front["trial"])
        recommended = front[front["recommended"]]  # the CSV flags the point the headline recommends
        if data["headline"]["trial"] is None:  # certified: nothing cheaper than the big net alone
            assert recommended.empty and data["headline"]["certified"] and data["headline"]["cascade"] == "lenet"
        else:
            assert [(data["headline"]["trial"], data["headline"]["point"])] == list(
                zip(recommended["trial"], recommended["point"]))
            assert data["headline"]["test_energy_saving_pct"] == pytest.approx(
                recommended["test_energy_saving_pct"].iloc[0])
            assert bool(recommended["certified"].iloc[0]) == data["headline"]["certified"]
        assert data["headline"]["sentence"].startswith("Under an accuracy-loss budget of 5 points")


def test_json_run_quiet_and_version(tiny_study: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_study["out"], out)
    args = ["run", str(tiny_study["spec"]), "--out", str(out), "--cache-dir", str(tiny_study["root"] / "cache"),
            "-n", "2", "--jobs", "1"]
    result = runner.invoke(app, ["--json", *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout is only the JSON document
    assert data["trials"] == 26 and data["report"] == str((out / "report.html").resolve())
    flagged = [(row["trial"], row["point"]) for row in data["pareto"] if row["recommended"]]
    assert flagged == ([] if data["headline"]["trial"] is None else [(data["headline"]["trial"],
                                                                      data["headline"]["point"])])
    quiet = runner.invoke(app, ["--quiet", *args])
    assert quiet.exit_code == 0 and quiet.output == ""
    normal = runner.invoke(app, args)
    assert normal.output.startswith("cache ") and "Under an accuracy-loss budget of 5 points" in normal.output
    assert "calib energy (µJ)" in normal.output and "search:" not in normal.output
    assert "search: 2 trials" in runner.invoke(app, ["--verbose", *args]).output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("adaptive-dse ")


def test_study_is_readable_by_optuna_dashboard_conventions(tiny_study: dict) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tiny_study['out'] / 'study.db'}")
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert study.metric_names == ["energy_pj", "accuracy_loss_pct"]
    trial = study.trials[0]
    assert trial.system_attrs["constraints"] == [trial.constraints["accuracy_loss"]]
    assert {"cascade", "test_energy_j", "test_accuracy_loss_pct", "calib_energy_j"} <= set(trial.user_attrs)
    small = (key for key in trial.user_attrs if not key.endswith("breakdown") and key != "front")  # front: every point
    assert all(len(json.dumps(trial.user_attrs[key])) < 200 for key in small)
