"""The `dse` CLI end to end on real data: run, resume, pareto, report, studies, and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from dse.cli import app

runner = CliRunner()


def test_run_writes_study_report_and_csvs(tiny_study: dict) -> None:
    first = tiny_study["first"]
    assert first.exit_code == 0, first.output
    out: Path = tiny_study["out"]
    assert "0 of 3 variants cached; 3 to train, 3 to score" in first.output
    assert "0 -> 12 completed trials" in first.output
    assert f"report: {(out / 'report.html').resolve()}" in first.output
    trials = pd.read_csv(io.StringIO(tiny_study["first_trials_csv"]))
    assert len(trials) == 12 and set(trials["little"]) <= {"mini7", "mini8"}
    pareto = trials[trials["pareto"]]
    assert len(pareto) >= 1 and pareto["feasible"].all()
    # every Pareto point is non-dominated on the calibration objectives
    for _, row in pareto.iterrows():
        dominated = ((trials["calib_energy_j"] <= row["calib_energy_j"])
                     & (trials["calib_accuracy_loss_pct"] <= row["calib_accuracy_loss_pct"])
                     & ((trials["calib_energy_j"] < row["calib_energy_j"])
                        | (trials["calib_accuracy_loss_pct"] < row["calib_accuracy_loss_pct"])) & trials["feasible"])
        assert not dominated.any()


def test_second_run_reuses_cache_and_resumes(tiny_study: dict) -> None:
    second = tiny_study["second"]
    assert second.exit_code == 0, second.output
    assert "3 of 3 variants cached; 0 to train, 0 to score" in second.output
    assert "12 -> 24 completed trials" in second.output
    assert len(pd.read_csv(tiny_study["out"] / "trials.csv")) == 24


def test_pareto_and_report_commands(tiny_study: dict, tmp_path: Path) -> None:
    out = tiny_study["out"]
    result = runner.invoke(app, ["pareto", "tiny", "--out", str(out), "--csv", str(tmp_path / "front.csv")])
    assert result.exit_code == 0, result.output
    assert "cascade" in result.output and (tmp_path / "front.csv").is_file()
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and "report.html" in result.output
    by_file = runner.invoke(app, ["report", str(out / "study.db")])  # by its database file: the same study
    assert by_file.exit_code == 0 and by_file.output == result.output
    result = runner.invoke(app, ["report", "nosuch", "--out", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no study database" in result.output


def test_specs_lists_builtins() -> None:
    for args in (["specs"], ["studies", "--builtin"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "quickstart" in result.output and "park2015-mnist" in result.output


def test_studies_lists_the_studies_of_a_storage(tiny_study: dict, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tiny_study["out"]
    listed = runner.invoke(app, ["studies", "--out", str(out)])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith("tiny "))
    trials = len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}").trials)
    assert row.split()[:2] == ["tiny", str(trials)] and "minimize energy_pj" in listed.output
    as_json = json.loads(runner.invoke(app, ["--json", "studies", "--storage", f"sqlite:///{out / 'study.db'}"]).stdout)
    assert as_json["studies"][0]["study"] == "tiny" and as_json["studies"][0]["directions"] == ["minimize"] * 2
    monkeypatch.chdir(tmp_path)  # no ./dse-out here: one line saying so
    empty = runner.invoke(app, ["studies"])
    assert empty.exit_code == 0 and "no study databases under dse-out/" in empty.output


@pytest.mark.parametrize("change, message", [
    (('dataset = "mnist5k"', 'dataset = "mnist"\npath = "/nonexistent/mnist"'), "MNIST data directory /nonexistent/mnist does not exist"),
    (('nets = ["mini7", "mini8"]', 'nets = ["mini7", "mini99"]'), "unknown network 'mini99'"),
    (("[search]", "[search]\nthreshold_range = [-0.5, 1.0]"), "threshold_range: 0 <= low < high <= 1"),
    (("[search]", "[search]\nfoo = 3"), "search.foo: unknown key"),
    (("[nets]", "[accelerator]\nsram = \"-4KiB\"\n[nets]"), "accelerator"),
    (("[search]", "[search]\nsram_choices = [\"4KiB\", \"lots\"]"), "search.sram_choices[1]"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny_study: dict, tmp_path: Path, change: tuple[str, str],
                                                  message: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(tiny_study["spec"].read_text().replace(*change))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(spec), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                                 "--no-progress"])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.strip().count("\n") == 0 and result.output.startswith("error: ")
    assert "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_the_console_front_shows_every_point_that_fits_and_spreads_the_rest() -> None:
    from dse.cli.study import spread

    for count in range(0, 40):
        shown = spread(count)
        assert shown == sorted(set(shown)) and len(shown) == min(count, 10)
        if count:
            assert shown[0] == 0 and shown[-1] == count - 1
            assert max(b - a for a, b in zip(shown, shown[1:] or [count - 1])) <= -(-(count - 1) // 9) + 1


def test_the_verbose_trial_line_counts_recorded_points_not_characters() -> None:
    import json

    import optuna

    from dse.cli.study import trial_line
    from dse.core.study_attrs import RECORD

    points = [{"thresholds": [0.1 * i]} for i in range(3)]
    trial = optuna.trial.create_trial(values=[1.0], user_attrs={RECORD: json.dumps(points), "cascade": "a > b"})
    assert trial_line(trial).endswith("a > b, 3 threshold points")


@pytest.mark.parametrize("verbose", [False, True])
def test_a_progress_message_given_as_a_function_is_made_only_when_shown(verbose: bool, monkeypatch,
                                                                        capsys) -> None:  # type: ignore[no-untyped-def]
    from dse.cli import console

    monkeypatch.setattr(console, "SETTINGS", console.Settings(verbose=verbose))
    made = []
    with console.progress_bar("search", total=2, enabled=False) as step:
        step(lambda: made.append(1) or "trial 0 complete")
        step("trial 1 complete")
    printed = capsys.readouterr()
    assert made == ([1] if verbose else [])
    assert ("trial 0 complete" in printed.out + printed.err) == verbose
    assert ("trial 1 complete" in printed.out + printed.err) == verbose
