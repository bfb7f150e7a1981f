"""One unit convention through the report: the history in joules with its hypervolume's unit named, settings in
engineering notation, and a sentence where a chart would have too little to show."""

from __future__ import annotations

import re

import pytest

from dse.core.results import Metrics, StudyResults, TrialResult
from reports import History, SearchData, build_report_data, render_html, search_data
from reports._data import engineering, setting_row
from reports._html import _history_figure


def _metrics(extra_errors: int, energy_j: float) -> Metrics:
    return Metrics(1 - (10 + extra_errors) / 1000, 10 + extra_errors, extra_errors, 1000, extra_errors / 10, 0.1,
                   energy_j, 100 * (1 - energy_j / 1e-6), 1e-6, 1e3, 0.5)


def _results(settings: dict | None = None) -> StudyResults:
    trials = [TrialResult(n, "a > big", (0.5,), {"little": "a"}, _metrics(n, 3e-7 - n * 1e-8),
                          _metrics(n, 3e-7 - n * 1e-8), True, pareto=True) for n in range(3)]
    return StudyResults("s", "big", 1.0, trials, [], [], [], settings=settings or {})


def test_settings_read_in_engineering_notation_with_units() -> None:
    settings = {"array_tm": 16, "clock_hz": 5e8, "sram_bytes": 16384, "partition_input_weight_output": [0.25, 0.5, 0.25],
                "technology_file": "/somewhere/deep/technology.toml", "dram_energy_j_per_bit": 2.5e-11,
                "dram_background_w": 0.54, "dram_bandwidth_bytes_per_s": 1.067e10, "tiling_rule": "fastest"}
    rows = dict(build_report_data(_results(settings)).settings.rows)
    assert rows == {"array tm": "16", "clock": "500 MHz", "sram": "16 KiB", "partition input weight output":
                    "0.25/0.5/0.25", "technology file": "technology.toml", "dram energy": "25 pJ/bit",
                    "dram background": "540 mW", "dram bandwidth": "10.67 GB/s", "tiling rule": "fastest"}
    assert not any(re.search(r"\de[+-]\d", value) for value in rows.values())  # no 5e+08
    assert engineering(3.3e-6, "J") == "3.3 µJ" and setting_row("x_s", 2.5e-3) == ["x", "2.5 ms"]


def _history(n: int) -> History:
    return History(["energy_pj", "accuracy_loss_pct"], list(range(n)), [[6e-5] * n, [0.5] * n], [True] * n,
                   [1e-6 * (i + 1) for i in range(n)], [7e-5, 1.0], ["J", "pp"],
                   ["calibration energy per inference", "calibration accuracy loss"])


def test_one_parameter_importance_is_a_sentence_not_a_chart() -> None:
    search = SearchData({"energy_pj": {"little": 1.0}, "accuracy_loss_pct": {"little": 1.0}}, _history(5), "exact")
    data = build_report_data(_results(), search)
    assert "importances" in data.sections and "only one parameter alike (little)" in data.notes["importances"]
    page = render_html(data)
    assert data.notes["importances"] in page and 'id="importances"' not in page
    two = SearchData({"energy_pj": {"little": 0.7, "sram": 0.3}}, _history(5), "exact")
    data = build_report_data(_results(), two)
    assert "importances" not in data.notes and 'id="importances"' in render_html(data)
    none = build_report_data(_results(), SearchData({}, _history(2), ""))
    assert "at least 4 completed trials" in none.notes["importances"]


def test_history_is_in_joules_and_names_the_hypervolume_unit(tiny_study: dict) -> None:
    from dse import load_existing_study

    study, _ = load_existing_study("tiny", tiny_study["out"], None)
    history = search_data(study).history
    assert history is not None and history.units == ["J", "pp"] and history.hypervolume_unit == "J·pp"
    for number, energy in zip(history.trials, history.values[0]):  # the energy objective, in joules
        assert energy == pytest.approx(study.trials[number].values[0] * 1e-12)
    figure = _history_figure(search_data(study))
    assert re.fullmatch(r"hypervolume \([fpnµm]?J·pp\)", figure.layout.yaxis2.title.text)
    assert re.fullmatch(r"calibration energy per inference \([fpnµm]?J\)", figure.layout.yaxis.title.text)


def test_every_pareto_point_has_its_own_label_and_bar(tiny_study: dict) -> None:
    from dse import load_existing_study
    from dse.core.readback import study_results

    study, _ = load_existing_study("tiny", tiny_study["out"], None)
    results = study_results(study)
    data = build_report_data(results)
    labels = data.fronts[0].front.labels
    assert labels == [t.label.removeprefix("trial ") for t in results.pareto] and len(set(labels)) == len(labels)
    # one bar per point: points of one trial do not stack into one category
    assert len(set(data.breakdown.points)) == len(data.breakdown.points) == len(results.pareto)
    assert "trial.point 7.8 is point 8 of trial 7's front" in data.pareto_table.caption
    assert data.pareto_table.columns[0] == "trial.point"
