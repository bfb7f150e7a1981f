"""A study with every registered mechanism on renders every report section, and its energy breakdown agrees with
a slow per-sample reference."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import dse
from contract.test_mechanisms import check_mechanisms, contract_spec
from reports import build_report_data, render_html, search_data

EVERY_SECTION = ["headline", "configuration", "fronts", "pareto_table", "baselines", "breakdown", "margins", "panels",
                 "sweeps", "settings", "certified", "spec", "importances", "history", "chains"]
DATA_DEPENDENT = {"certified", "chains"}  # shown when a point certifies / when cascades of several lengths ran


def _reference_breakdown(problem: dse.CascadeProblem, point: dse.core.space.CascadePoint,
                         split: str) -> dict[str, float]:
    """Per sample, add every component of each stage it ran (its own per-sample cost where its work varies)."""
    import costmodel

    costs = problem.stage_costs(point.stages, point.accelerator, point.reuse)
    n = problem.margin[split].shape[1]
    totals = dict.fromkeys(dse.core.results.ENERGY_PARTS, 0.0)
    for i in range(n):
        for row, (stage, cost) in enumerate(zip(point.stages, costs)):
            parts = {p: getattr(cost, f"{p}_pj") for p in totals}
            if stage in problem.work.get(split, {}):
                bits = problem.variants[stage].bits or point.accelerator.bits
                sample = costmodel.per_sample_cost(cost, np.array([cost.macs * problem.work[split][stage][i]]),
                                                   np.zeros(1), dataclasses.replace(point.accelerator, bits=bits),
                                                   problem.technology)
                parts = {p: float(getattr(sample, f"{p}_pj")[0]) for p in totals}
            for part, value in parts.items():
                totals[part] += value / n * 1e-12
            if row == len(point.stages) - 1 or problem.margin[split][stage, i] >= point.thresholds[row]:
                break
    return totals


def test_every_mechanism_renders_every_section(tiny_study: dict, tmp_path: Path) -> None:
    names = tuple(dse.registry())
    results = check_mechanisms(names, tiny_study["root"] / "cache", tmp_path)
    study, _ = dse.load_existing_study(results.name, tmp_path, dse.sqlite_url(tmp_path / "study.db"))
    data = build_report_data(results, search_data(study))
    expected = [s for s in EVERY_SECTION if s not in DATA_DEPENDENT
                or (s == "certified" and results.certified)
                or (s == "chains" and len({len(t.stages) for t in results.trials if t.feasible}) > 1)]
    assert data.sections == expected
    assert len(data.breakdown.points) == len(results.pareto)
    assert [p.title for p in data.panels] == [p.title for p in results.panels] and len(data.panels) >= 3
    assert data.settings.rows and any(row[0] == "sram" and row[1].endswith("iB") for row in data.settings.rows)
    html = render_html(data)
    for div in ("front-calib", "front-test", "breakdown", "margins", "history", "sweep-0"):
        assert f'id="{div}"' in html

    spec = dse.parse_spec(contract_spec(results.name, {n: dse.registry()[n].example for n in names}), "c.toml")
    problem, _ = dse.load_problem(spec, str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    space = dse.CascadeSpace(problem, spec)
    knobs = [t for t in results.trials if "=" in t.cascade]  # a stage whose work varies per sample
    assert knobs
    for trial in (knobs[0], results.trials[0], results.trials[-1]):
        structure = dse.replay_structure(space, trial.params)
        point = dse.core.space.CascadePoint(space.stages(structure), np.array(trial.thresholds), structure.accelerator,
                                            structure.cascade.reuse)
        for split in ("calib", "test"):
            expected = _reference_breakdown(problem, point, split)
            assert trial.breakdown[split].energy_j == pytest.approx(expected, rel=1e-9, abs=1e-18)
            assert sum(expected.values()) == pytest.approx(getattr(trial, split).energy_j, rel=1e-9)
