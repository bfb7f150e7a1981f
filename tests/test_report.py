"""The HTML report: its data (tested without drawing) and its rendering in a real headless browser."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

from reports import build_report_data


def test_report_data_has_front_and_baselines(tiny_study: dict) -> None:
    from dse import load_existing_study, study_results

    study, _ = load_existing_study("tiny", tiny_study["out"], None)
    results = study_results(study)
    data = build_report_data(results)
    trials = pd.read_csv(tiny_study["out"] / "trials.csv")
    assert len(data.front.energy_nj) == int(trials["pareto"].sum()) == len(data.table) >= 1
    assert [s.name for s in data.baselines] == ["big only", "little only", "lambda sweep (Park 2015)"]
    big = next(b for b in results.baselines if b.kind == "big only")
    assert data.baselines[0].energy_nj == [big.test.energy_j * 1e9] and big.test.accuracy_loss_pct == 0.0
    assert len(data.others.energy_nj) == len(trials) - len(data.front.energy_nj)
    assert list(data.table["calib energy (nJ)"]) == sorted(data.table["calib energy (nJ)"])


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_report_renders_offline_in_headless_chromium(tiny_study: dict, tmp_path) -> None:
    report = tiny_study["out"] / "report.html"
    html = report.read_text()
    assert "<script src=\"http" not in html  # plotly.js is inlined, nothing to fetch
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
               report.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "main-svg" in dom  # plotly drew the figure, so its embedded JS ran
    for legend in ("Pareto front", "big only", "little only"):
        assert f">{legend}<" in dom
    assert dom.count('class="point"') >= len(pd.read_csv(tiny_study["out"] / "trials.csv")) + 3
