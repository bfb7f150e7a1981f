"""The facts a study records about its problem for the report: baselines, margin curves, panels, settings."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optuna

from dse.core.problem import CascadeProblem
from dse.core.results import PJ, Baseline, MarginCurve, Panel
from dse.core.smrc import smrc
from dse.core.spec import StudySpec
from dse.core.study_attrs import store_report_data


def baselines(problem: CascadeProblem, spec: StudySpec) -> list[Baseline]:
    """Every variant alone (the big net, and each other variant as the mechanism that brought it names it), then
    the mechanisms' own reference points (e.g. a paper's method at the loss limit)."""
    enabled = [(bound.mechanism, bound.section) for bound in spec.active()]
    rows = []
    for index, variant in enumerate(problem.variants):
        kinds = [m.baseline_kind(spec, config, variant) for m, config in enabled]
        kind = "big only" if index == problem.big else next((k for k in kinds if k), "single stage")
        rows.append(Baseline(kind, variant.name, problem.metrics([index], np.zeros(0), "calib"),
                             problem.metrics([index], np.zeros(0), "test")))
    for mechanism, config in enabled:
        rows += mechanism.baselines(problem, spec, config)
    return rows


def margin_curves(problem: CascadeProblem, split: str = "test", points: int = 101) -> list[MarginCurve]:
    """The score-margin classifier of every variant on `split`: AUC, a down-sampled ROC and margin histograms."""
    curves = []
    for index, name in enumerate(problem.names):
        result = smrc(problem.margin[split][index], problem.correct[split][index])
        keep = np.unique(np.linspace(0, len(result.false_positive_rate) - 1, points).astype(int))
        curves.append(MarginCurve(name, result.auc, result.false_positive_rate[keep].tolist(),
                                  result.true_positive_rate[keep].tolist(), result.bin_edges.tolist(),
                                  result.hist_correct.tolist(), result.hist_wrong.tolist()))
    return curves


def panels(problem: CascadeProblem, spec: StudySpec) -> list[Panel]:
    """Every report panel of the spec's mechanisms."""
    return [panel for bound in spec.active() for panel in bound.mechanism.panels(problem, spec, bound.section)]


def accelerator_settings(problem: CascadeProblem) -> dict[str, Any]:
    """The accelerator and technology the study prices on, in SI units with the unit in each key."""
    a, t = problem.accelerator, problem.technology
    return {"array_tm": a.tm, "array_tn": a.tn, "clock_hz": a.clock_hz, "sram_bytes": a.sram_bytes,
            "partition_input_weight_output": list(a.partition), "bits": a.bits, "tiling_rule": a.tiling_rule,
            "dataflow": a.dataflow,
            "priced_layers": problem.priced_layers, "technology_file": t.source, "mac_preset": t.mac_preset,
            "sram_preset": t.sram_preset, "dram_preset": t.dram_preset,
            "dram_energy_j_per_bit": t.dram_energy_pj_per_bit * PJ, "dram_background_w": t.dram_background_mw / 1e3,
            "dram_bandwidth_bytes_per_s": t.dram_bandwidth_bytes_per_s}


def record_study_facts(study: optuna.Study, problem: CascadeProblem, spec: StudySpec) -> None:
    """Record baselines, margin curves, panels (study system attributes: large, kept out of the user attributes
    optuna-dashboard lists), the big net, the loss limit and the settings on the study (what reports read)."""
    report_data = {"baselines": [b.to_json() for b in baselines(problem, spec)],
                   "smrc": [dataclasses.asdict(c) for c in margin_curves(problem)],
                   "panels": [p.to_json() for p in panels(problem, spec)]}
    for key, value in report_data.items():
        store_report_data(study, key, value)
    study.set_user_attr("big", problem.names[problem.big])
    study.set_user_attr("max_accuracy_loss_pct", spec.search.max_accuracy_loss_pct)
    study.set_user_attr("loss_confidence_z", spec.search.loss_confidence_z)
    guarantee = spec.search.guarantee
    study.set_user_attr("loss_guarantee", None if guarantee is None else {"alpha_pct": guarantee.alpha_pct,
                                                                          "delta": guarantee.delta})
    study.set_user_attr("settings", accelerator_settings(problem))
