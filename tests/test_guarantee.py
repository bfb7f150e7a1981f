"""The certified loss budget in a study: rows kept aside, the search's front certified on them, results exported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import dse
from dse.cli import app

GUARANTEE = '[search]\nloss_guarantee = { alpha_pct = 3.0, delta = 0.1 }\n'


def test_guarantee_certifies_the_front_on_rows_the_search_never_saw(tiny_study: dict, tmp_path: Path) -> None:
    text = tiny_study["spec"].read_text().split("[search]")[0].replace('name = "tiny"', 'name = "certified"')
    spec = dse.parse_spec(text + GUARANTEE, "g.toml")
    assert spec.search.max_accuracy_loss_pct == 3.0  # the search is held to the guaranteed budget
    problem, _ = dse.load_problem(spec, str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    search_rows, certify_rows = problem.rows["calib"][1], problem.rows["certify"][1]
    assert len(search_rows) == len(certify_rows) == 500 and not set(search_rows) & set(certify_rows)
    study = dse.open_study(spec, dse.open_storage(dse.sqlite_url(tmp_path / "s.db")))
    dse.run_search(study, problem, spec, 10, progress=False)
    results = dse.study_results(study)
    assert results.certified and results.best_certified is not None
    fronts = {t.number: {p.thresholds for p in results.trials if p.number == t.number} for t in results.trials}
    for point in results.certified:
        assert point.thresholds in fronts[point.number]  # a candidate fixed by the search half
        assert point.certify_loss_pct <= point.upper_bound_pct <= 3.0 + 1e-9
        assert point.certify_rows == 500 and 0 < point.delta <= 0.1  # delta / (structures on the front)
        stages = [problem.index(name) for name in point.cascade.split(" > ")]
        values = problem.evaluate(stages, np.array([point.thresholds]), "certify")
        assert 100 * int(values.extra_errors[0]) / 500 == pytest.approx(point.certify_loss_pct)


def test_guarantee_is_exported_and_reported(tiny_study: dict, tmp_path: Path) -> None:
    spec = tmp_path / "g.toml"
    text = tiny_study["spec"].read_text().split("[search]")[0].replace('name = "tiny"', 'name = "exported"')
    spec.write_text(text + GUARANTEE)
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "--cache-dir",
                                      str(tiny_study["root"] / "cache"), "--no-progress", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    certified = pd.read_csv(tmp_path / "out" / "certified.csv")
    assert {"certify_loss_pct", "upper_bound_pct", "test_accuracy_loss_pct"} <= set(certified.columns)
    assert "Certified loss budget" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize("extra, message", [
    ("loss_guarantee = { alpha_pct = 0.0, delta = 0.1 }", r"loss_guarantee\.alpha_pct: must be in \(0, 100\)"),
    ("loss_guarantee = { alpha_pct = 0.3, delta = 1.5 }", r"loss_guarantee\.delta: must be in \(0, 1\)"),
    ("loss_guarantee = { alpha_pct = 0.3, delta = 0.1, beta = 2 }", r"loss_guarantee\.beta: unknown key"),
    ("loss_guarantee = { alpha_pct = 0.3, delta = 0.1 }\nloss_confidence_z = 1.64",
     r"loss_confidence_z: cannot be combined with loss_guarantee"),
    ("loss_guarantee = { alpha_pct = 0.3, delta = 0.1 }\nmax_accuracy_loss_pct = 0.5",
     r"max_accuracy_loss_pct: must equal loss_guarantee\.alpha_pct"),
])
def test_guarantee_spec_errors(extra: str, message: str) -> None:
    text = 'version = 2\nname = "g"\n[little]\nnets = ["mini7"]\n[search]\n' + extra + "\n"
    with pytest.raises(dse.SpecError, match=message):
        dse.parse_spec(text, "g.toml")
