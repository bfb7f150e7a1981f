"""The HTML report: its data (tested without drawing) and its rendering in a real headless browser."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dse import Breakdown, Headline, Metrics, StudyResults, TrialResult, headline
from dse.cli import app
from dse.core.results import ENERGY_PARTS
from reports import build_report_data, render_html, search_data
from reports._units import scale_for


def _results(tiny_study: dict) -> StudyResults:
    from dse import load_existing_study, study_results

    study, _ = load_existing_study("tiny", tiny_study["out"], None)
    return study_results(study)


def test_report_data_has_fronts_tables_and_baselines(tiny_study: dict) -> None:
    results = _results(tiny_study)
    data = build_report_data(results)
    trials = pd.read_csv(tiny_study["out"] / "trials.csv")
    calib, test = data.fronts
    assert (calib.split, test.split) == ("calib", "test")
    assert len(test.front.energy_j) == int(trials["pareto"].sum()) >= 1
    assert len(data.pareto_table.rows) == len(results.listed) == int((trials["pareto"] | trials["recommended"]).sum())
    assert [s.name for s in test.baselines] == ["big only", "little only", "lambda sweep (Park 2015)"]
    big = next(b for b in results.baselines if b.kind == "big only")
    assert test.baselines[0].energy_j == [big.test.energy_j] and big.test.accuracy_loss_pct == 0.0
    assert len(test.others.energy_j) == len(trials) - len(test.front.energy_j)
    assert test.front.labels == [t.label.removeprefix("trial ") for t in results.pareto]  # trial.point on the plot
    assert test.gap_pct == pytest.approx([t.test.accuracy_loss_pct - t.calib.accuracy_loss_pct for t in results.pareto])
    energy_column = next(c for c in data.pareto_table.columns if c.startswith("calib energy ("))
    values = [float(row[data.pareto_table.columns.index(energy_column)]) for row in data.pareto_table.rows]
    assert values == sorted(values)
    assert {"headline", "configuration", "fronts", "pareto_table", "baselines", "breakdown", "margins",
            "settings"} <= set(data.sections)


def _metrics(extra_errors: int, energy_j: float, samples: int = 1000) -> Metrics:
    errors = 50 + extra_errors
    return Metrics(1 - errors / samples, errors, extra_errors, samples, 100 * extra_errors / samples, 0.1, energy_j,
                   100 * (1 - energy_j / 1e-6), 1e-6, 1e3, 0.5)


def _trial(number: int, calib: tuple[int, float], test: tuple[int, float], feasible: bool = True) -> TrialResult:
    return TrialResult(number, "a > big", (0.5,), {}, _metrics(*calib), _metrics(*test), feasible, pareto=feasible)


def test_headline_picks_least_energy_feasible_and_flags_test_overshoot() -> None:
    over = _trial(3, (10, 2e-7), (14, 2.1e-7))  # 1.0 pp on calibration (meets 1 pp), 1.4 pp on test
    safe = _trial(5, (2, 5e-7), (3, 5.2e-7))
    results = StudyResults("s", "big", 1.0, [over, safe, _trial(7, (30, 1e-7), (30, 1e-7), False)], [], [], [])
    answer = headline(results)
    assert answer.choice is over and answer.over_limit_on_test
    text = answer.sentence()
    assert text.startswith("Under an accuracy-loss budget of 1 point, the best configuration is trial 3")
    assert "It saves 80.0 % energy against the big net alone (79.0 % on the held-out split, loss 1.40 " in text
    assert "over the budget" in text
    costly = headline(StudyResults("s", "big", 1.0, [_trial(2, (0, 2e-6), (0, 2e-6))], [], [], [])).sentence()
    assert "It costs 100.0 % more energy against the big net alone" in costly
    assert "The big net alone is the better choice until a trial saves energy." in costly
    assert costly.endswith("(the spec turns the loss guarantee off).")  # no guarantee in these results: said so
    assert Headline(1.0, "big", None).sentence().endswith("no trial is feasible yet: run more trials or relax the "
                                                          "budget.")
    flags = build_report_data(results).fronts[1].over_limit
    assert flags == [t.test.extra_errors > 10 for t in results.pareto] and any(flags)  # 1.0 % of 1,000: 10


def test_one_prefix_per_column() -> None:
    assert scale_for([1.5e-4, 2e-6], "J").unit == "µJ" and scale_for([16384], "B").unit == "KiB"
    assert scale_for([3e-3, 9e-4], "s").apply([3e-3]) == pytest.approx([3.0])
    assert scale_for([], "J").unit == "J"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(report: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--enable-logging=stderr", "--v=0", "--hide-scrollbars", f"--user-data-dir={profile}",
               "--virtual-time-budget=10000", *extra, report.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_report_renders_offline_in_headless_chromium(tiny_study: dict, tmp_path: Path) -> None:
    report = tiny_study["out"] / "report.html"
    assert "<script src=\"http" not in report.read_text()  # plotly.js is inlined, nothing to fetch
    run = _browser(report, tmp_path / "profile", "--window-size=1100,900", "--dump-dom")
    dom = run.stdout
    assert "Uncaught" not in run.stderr and not re.search(r"CONSOLE\(\d+\)\].*[Ee]rror", run.stderr)
    check = json.loads(re.search(r'<pre id="report-check">(.*?)</pre>', dom, re.S).group(1))
    assert check["errors"] == []  # window.onerror and console.error, recorded by the page itself
    assert check["plots"] and all(points > 0 for points in check["plots"].values()), check["plots"]
    assert {"front-calib", "front-test", "margins"} <= set(check["plots"])
    assert check["tables"] and max(check["tables"]) <= check["viewport"]
    front = json.loads(CliRunner().invoke(app, ["pareto", str(tiny_study["out"]), "--json"]).stdout)["headline"]
    paragraph = re.search(r'<p class="headline" id="headline">(.*?)</p>', dom, re.S).group(1)
    assert paragraph == front["sentence"].replace("&", "&amp;").replace(">", "&gt;")
    if front["trial"] is None:  # certified, and nothing cheaper than the big net alone certifies
        assert front["certified"] and f"the big net alone ({front['cascade']})" in paragraph
    else:
        assert f"trial {front['trial']}" in paragraph and f" {abs(front['calib_energy_saving_pct']):.1f} %" in paragraph
        assert f"({front['test_energy_saving_pct']:.1f} % on the held-out split" in paragraph
        assert f"loss {front['test_accuracy_loss_pct']:.2f} points" in paragraph
    shot = tmp_path / "report.png"  # the docs' screenshot is the quickstart's: benchmarks/quickstart_report.py
    _browser(report, tmp_path / "profile2", "--window-size=1000,1100", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_search_data_history_and_importances(tiny_study: dict) -> None:
    from dse import load_existing_study

    study, _ = load_existing_study("tiny", tiny_study["out"], None)
    search = search_data(study)
    history = search.history
    assert history is not None and history.objectives == ["energy_pj", "accuracy_loss_pct"]
    assert len(history.trials) == len(history.hypervolume) == len(study.trials)
    assert all(a <= b for a, b in zip(history.hypervolume, history.hypervolume[1:]))  # only grows
    assert history.hypervolume[-1] > 0
    for values in search.importances.values():
        assert sum(values.values()) == pytest.approx(1.0)


def test_breakdown_names_each_priced_layers_mapping(tiny_study: dict) -> None:
    import html

    from dse import load_problem, parse_spec
    from dse.core.results import LayerMapping

    results = _results(tiny_study)
    assert results.settings["dataflow"] == "auto"  # the tiny spec leaves the default
    data = build_report_data(results)
    pareto = [t for t in results.pareto if "test" in t.breakdown]
    assert data.breakdown.dataflow == "auto" and data.breakdown.mappings == [t.mappings for t in pareto]
    problem, _ = load_problem(parse_spec(tiny_study["spec"].read_text(), "tiny.toml"),
                              str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    for trial in pareto:  # what the report names is what the cost model prices at the trial's SRAM and partition
        acc = dataclasses.replace(problem.accelerator, sram_bytes=trial.sram_bytes, partition=trial.partition)
        costs = problem.stage_costs([problem.index(name) for name in trial.stages], acc)
        assert trial.mappings == LayerMapping.of_stages(costs) and trial.mappings
        assert {m.mapping for m in trial.mappings} <= {"weight_stationary", "output_stationary", "input_stationary",
                                                       "streaming"}  # auto never falls back to the fixed order
    table = data.breakdown.mapping_table
    assert table.rows and sum(len(row[-1].split(", ")) for row in table.rows) == sum(len(t.stages) for t in pareto)
    page = render_html(data)
    assert "Mapping per layer" in page and "Study dataflow: auto." in page
    for mapping in {m for t in pareto for m in t.mappings}:
        assert html.escape(f"{mapping.layer}: {mapping.mapping} {mapping.loop_order}") in page
    assert ["dataflow", "auto"] in data.settings.rows


def test_mapping_table_groups_points_by_variant_setting_and_mapping() -> None:
    from dse.core.results import LayerMapping

    fixed = (LayerMapping(0, "conv1", "diannao", "m>s>n"), LayerMapping(1, "conv1", "diannao", "s>m>n"))
    other = (LayerMapping(0, "conv1", "weight_stationary", "n>m>s"), *fixed[1:])
    points = [dataclasses.replace(_trial(n, (0, 2e-7 * n), (0, 2e-7 * n)), sram_bytes=16384, partition=(0.25, 0.5, 0.25),
                                  breakdown={"test": Breakdown(dict.fromkeys(ENERGY_PARTS, 2e-7 * n / 7), (1.0, 0.5))},
                                  mappings=mappings) for n, mappings in ((1, fixed), (2, fixed), (3, other))]
    results = StudyResults("s", "big", 1.0, points, [], [], [], settings={"dataflow": "diannao"})
    table = build_report_data(results).breakdown.mapping_table
    assert table.rows == [["a", "16 KiB, 0.25/0.5/0.25", "conv1: diannao m>s>n", "1, 2"],
                          ["big", "16 KiB, 0.25/0.5/0.25", "conv1: diannao s>m>n", "1, 2, 3"],
                          ["a", "16 KiB, 0.25/0.5/0.25", "conv1: weight_stationary n>m>s", "3"]]
    assert table.caption.startswith("Study dataflow: diannao.")
    restored = TrialResult.from_user_attrs(1, {}, points[0].user_attrs(), True, True, 0,
                                           LayerMapping.all_from_json([m.to_json() for m in fixed]))
    assert restored.mappings == fixed and "mappings" not in points[0].user_attrs()  # stored once per trial


@pytest.mark.parametrize("seed", range(5))
def test_drawn_points_spread_each_trials_points_and_keep_its_ends(seed: int) -> None:
    from reports._data import drawn_points

    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 120, 6)
    trials = [SimpleNamespace(number=number, point=point) for number, count in enumerate(counts)
              for point in range(count)]
    per_trial = int(rng.integers(2, 50))
    drawn = drawn_points(trials, per_trial)  # type: ignore[arg-type]
    for number, count in enumerate(counts):
        mine = [t.point for t in drawn if t.number == number]
        assert mine == sorted(set(mine)) and len(mine) == min(count, per_trial)
        assert mine[0] == 0 and mine[-1] == count - 1
        if count > per_trial:  # evenly spread: no gap over twice the even step
            assert max(b - a for a, b in zip(mine, mine[1:])) <= 2 * (count - 1) / (per_trial - 1)
