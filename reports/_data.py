"""What the report shows, computed from a study's typed results before anything is drawn (testable without plotly).

Values stay in SI units (J, s, bytes) in every dataclass here; `reports._units` picks one prefix per axis or column
when rendering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse import (ENERGY_PARTS, Headline, LayerMapping, MarginCurve, Panel, StudyResults, TrialResult, headline,
                 within_limit)
from reports._chains import chain_table
from reports._search import SearchData
from reports._table import Table
from reports._units import scale_for

BIG_ONLY = "big only"
POINTS_EXPLAINED = ("A trial is one cascade structure the search drew, with a threshold front of its own; trial.point "
                    "7.8 is point 8 of trial 7's front, and a trial alone is its point 0.")
FRONT_NOTE = ("Front: 'exact' for cascades of up to 3 stages; 'approximate' from 4 stages (coordinate sweeps, "
              "hypervolume ratio min 0.94, mean 0.999 against brute force on small random cases); 'sampled' when "
              "Optuna drew the thresholds.")


@dataclass(frozen=True)
class Series:
    """One scatter series on a front: x = accuracy loss (pp), y = energy per inference (J), one label per point."""

    name: str
    loss_pct: list[float]
    energy_j: list[float]
    labels: list[str]


@dataclass(frozen=True)
class Front:
    """The front on one split: the calibration-chosen Pareto points (flagged where they break the limit on this
    split, with their generalisation gap), the other trials' points (`drawn_points` of them) and the baselines."""

    split: str
    front: Series
    over_limit: list[bool]  # per front point: accuracy loss on this split above the budget
    gap_pct: list[float]  # per front point: this split's loss minus the calibration loss (pp)
    others: Series
    baselines: list[Series]
    max_accuracy_loss_pct: float | None


@dataclass(frozen=True)
class EnergyBreakdown:
    """Per Pareto point (test split): expected energy per component (J), the fraction reaching each stage, and the
    mapping each priced layer of its stages runs with, under the study's dataflow setting."""

    points: list[str]
    energy_j: dict[str, list[float]]  # component -> one value per point
    stage_reach: list[tuple[float, ...]]
    mappings: list[tuple[LayerMapping, ...]]  # one per point
    dataflow: str  # the study's [accelerator] dataflow ("auto": each layer's best mapping under the tiling rule)
    mapping_table: Table  # the mappings, one row per distinct variant and setting


@dataclass(frozen=True)
class Sweep:
    """The least calibration energy among feasible trials for each value of one searched choice."""

    name: str
    x: list[Any]
    energy_j: list[float]
    loss_pct: list[float]
    points: list[str]  # trial.point of each value's least-energy point


@dataclass(frozen=True)
class ReportData:
    """Everything the HTML report draws, section by section; an empty section is left out."""

    title: str
    subtitle: str
    headline: Headline
    configuration: Table
    fronts: list[Front]
    pareto_table: Table
    baseline_table: Table
    breakdown: EnergyBreakdown
    margins: list[MarginCurve]
    panels: list[Panel]
    sweeps: list[Sweep]
    settings: Table
    certified: Table  # points whose risk is certified (no rows without a loss guarantee)
    certificate_note: str = ""  # which certificate: computed on this front, or kept from an earlier one
    search: SearchData | None = None
    sections: list[str] = field(default_factory=list)
    chains: Table = field(default_factory=lambda: Table("", "", [], []))  # best point per cascade length
    spec: Table | None = None  # the spec the study was made from
    notes: dict[str, str] = field(default_factory=dict)  # section -> the sentence shown instead of a chart


OTHERS_PER_TRIAL = 40  # a trial's points drawn off the union front (trials.csv keeps them all)


def drawn_points(trials: list[TrialResult], per_trial: int = OTHERS_PER_TRIAL) -> list[TrialResult]:
    """At most `per_trial` points of each trial, spread evenly over its points in order (its first and last kept):
    a 3-stage trial records thousands, which a plot draws as one curve but a browser pays for each."""
    by_trial: dict[int, list[TrialResult]] = {}
    for trial in trials:
        by_trial.setdefault(trial.number, []).append(trial)
    drawn = []
    for points in by_trial.values():
        count = len(points)
        picks = sorted({round(i * (count - 1) / (per_trial - 1)) for i in range(per_trial)}) if count > per_trial \
            else range(count)
        drawn += [points[i] for i in picks]
    return drawn


def _series(name: str, trials: list[TrialResult], split: str) -> Series:
    metrics = [getattr(t, split) for t in trials]
    return Series(name, [m.accuracy_loss_pct for m in metrics], [m.energy_j for m in metrics],
                  [t.label.removeprefix("trial ") for t in trials])


def _front(results: StudyResults, split: str) -> Front:
    pareto, limit = results.pareto, results.max_accuracy_loss_pct
    kinds = list(dict.fromkeys(b.kind for b in results.baselines))
    baselines = []
    for kind in kinds:
        rows = [b for b in results.baselines if b.kind == kind]
        metrics = [getattr(b, split) for b in rows]
        baselines.append(Series(kind, [m.accuracy_loss_pct for m in metrics], [m.energy_j for m in metrics],
                                [b.label for b in rows]))
    return Front(split, _series("Pareto front", pareto, split),
                 [limit is not None and not within_limit(getattr(t, split), limit) for t in pareto],
                 [getattr(t, split).accuracy_loss_pct - t.calib.accuracy_loss_pct for t in pareto],
                 _series("other trials", drawn_points([t for t in results.trials if not t.pareto]), split), baselines,
                 limit)


def _format(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value


def metric_table(title: str, caption: str, labels: dict[str, list[Any]], rows: list[tuple[Any, Any]],
                 limit: float | None = None) -> Table:
    """Label columns, then per (calib, test) metrics pair: energy, saving, loss, gap, latency, storage, last stage."""
    calib = [r[0] for r in rows]
    test = [r[1] for r in rows]
    energy = scale_for([m.energy_j for m in calib + test], "J")
    latency = scale_for([m.latency_s for m in test], "s")
    storage = scale_for([m.storage_bytes for m in test], "B")
    columns = {
        **labels,
        f"calib energy ({energy.unit})": energy.apply([m.energy_j for m in calib]),
        f"test energy ({energy.unit})": energy.apply([m.energy_j for m in test]),
        "test saving vs big (%)": [m.energy_saving_pct for m in test],
        "calib loss (pp)": [m.accuracy_loss_pct for m in calib],
        "test loss (pp)": [m.accuracy_loss_pct for m in test],
        "gap test − calib (pp)": [t.accuracy_loss_pct - c.accuracy_loss_pct for c, t in zip(calib, test)],
        f"test latency ({latency.unit})": latency.apply([m.latency_s for m in test]),
        f"storage ({storage.unit})": storage.apply([m.storage_bytes for m in test]),
        "last stage runs, test (%)": [100 * m.last_stage_fraction for m in test],
    }
    if limit is not None:
        columns["over the limit on test"] = ["" if within_limit(m, limit) else "yes" for m in test]
    body = [[_format(columns[c][i]) for c in columns] for i in range(len(rows))]
    return Table(title, caption, list(columns), body)


def _configuration(answer: Headline) -> Table:
    """The chosen configuration, one row per stage: variant, bits, exit threshold, reach; SRAM and partition (with
    a certified budget and no cheaper point certified: the big net alone)."""
    choice = answer.choice
    if choice is None and answer.is_certified:
        return Table("Configuration", "The big net alone: no cheaper point is certified within the budget.",
                     ["stage", "variant", "exit threshold (margin)", "reached, test (%)"],
                     [[1, answer.big, "last stage", 100]])
    if choice is None:
        return Table("Configuration", "", [], [])
    reach = choice.breakdown.get("test")
    sram = scale_for([choice.sram_bytes], "B")
    partition = "/".join(f"{f:g}" for f in choice.partition)
    rows = [[i + 1, name, choice.stage_bits[i] if i < len(choice.stage_bits) else "",
             _format(choice.thresholds[i]) if i < len(choice.thresholds) else "last stage",
             _format(100 * reach.stage_reach[i]) if reach else "", _format(sram.apply([choice.sram_bytes])[0]),
             partition] for i, name in enumerate(choice.stages)]
    point = f", point {choice.point} of its threshold front" if choice.point else ""
    return Table("Configuration", f"Trial {choice.number}{point}. A stage answers when its score margin reaches its "
                 "threshold; otherwise the next stage runs.",
                 ["stage", "variant", "bits", "exit threshold (margin)", "reached, test (%)", f"SRAM ({sram.unit})",
                  "partition input/weight/output"], rows)


def _breakdown(pareto: list[TrialResult], dataflow: str) -> EnergyBreakdown:
    points = [t for t in pareto if "test" in t.breakdown]
    return EnergyBreakdown([f"{t.label.removeprefix('trial ')} {t.cascade}" for t in points],  # distinct per point
                           {part: [t.breakdown["test"].energy_j[part] for t in points] for part in ENERGY_PARTS},
                           [t.breakdown["test"].stage_reach for t in points], [t.mappings for t in points], dataflow,
                           _mapping_table(points, dataflow))


def _mapping_table(points: list[TrialResult], dataflow: str) -> Table:
    """One row per distinct (variant, SRAM, partition, its layers' mappings), listing the points that run it."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for t in points:
        setting = f"{t.sram_bytes / 1024:g} KiB, " + "/".join(f"{f:g}" for f in t.partition)
        for index, name in enumerate(t.stages):
            layers = " · ".join(f"{m.layer}: {m.mapping} {m.loop_order}" for m in t.mappings if m.stage == index)
            if layers:
                groups.setdefault((name, setting, layers), []).append(t.label.removeprefix("trial "))
    return Table("Mapping per layer", f"Study dataflow: {dataflow or 'not recorded'}. Each priced layer's dataflow "
                 "and tile loop order, outer to inner over output-channel (m), spatial (s) and input-channel (n) "
                 "tiles, as `dse cost` prints them.",
                 ["variant", "SRAM, partition input/weight/output", "layer: dataflow, loop order", "Pareto points"],
                 [[*key, ", ".join(labels)] for key, labels in groups.items()])


def _sweeps(results: StudyResults) -> list[Sweep]:
    """Per searched discrete choice (SRAM, partition, threshold mode, ...) and the exit threshold of the headline's
    cascade: the least-energy feasible trial per value."""
    feasible = [t for t in results.trials if t.feasible]
    names = [n for n in dict.fromkeys(k for t in feasible for k in t.params)
             if all(not isinstance(t.params.get(n), float) for t in feasible)]
    choice = headline(results).choice
    sweeps = []
    for name in names + (["threshold"] if choice is not None and choice.thresholds else []):
        if name == "threshold":
            groups = {round(t.thresholds[0], 4): t for t in sorted(feasible, key=lambda t: -t.calib.energy_j)
                      if (t.cascade, t.sram_bytes, t.partition)
                      == (choice.cascade, choice.sram_bytes, choice.partition)}
        else:
            groups = {}
            for trial in sorted(feasible, key=lambda t: -t.calib.energy_j):
                if name in trial.params:
                    groups[trial.params[name]] = trial
        if len(groups) < 2:
            continue
        keys = sorted(groups, key=_natural)
        title = f"exit threshold of {choice.cascade}" if name == "threshold" else name
        sweeps.append(Sweep(title, keys, [groups[k].calib.energy_j for k in keys],
                            [groups[k].calib.accuracy_loss_pct for k in keys],
                            [groups[k].label.removeprefix("trial ") for k in keys]))
    return sweeps


def _natural(value: Any) -> tuple[Any, ...]:
    """Sort key that orders "4KiB" before "16KiB" and numbers by value."""
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, *[(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(value))])


# A setting's name ends in its SI unit (`clock_hz`, `sram_bytes`); shown without it, in engineering notation
UNIT_SUFFIXES = (("_bytes_per_s", "B/s"), ("_j_per_bit", "J/bit"), ("_bytes", "B"), ("_hz", "Hz"), ("_w", "W"),
                 ("_j", "J"), ("_s", "s"))


def engineering(value: float, unit: str) -> str:
    """A value with one engineering prefix and its unit, e.g. 500 MHz, 16 KiB, 25 pJ/bit (sizes in binary prefixes)."""
    scale = scale_for([value], unit)  # only "B" takes binary prefixes: a bandwidth reads 10.67 GB/s
    return f"{value / scale.factor:.4g} {scale.unit}"


def setting_row(key: str, value: Any) -> list[str]:
    """One setting as [name, value]: the unit moved from the name into the value, a file by its name alone."""
    if key.endswith("_file") and isinstance(value, str):
        return [key.removesuffix("_file") + " file", Path(value).name]
    if isinstance(value, list):
        return [key.replace("_", " "), "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)]
    for suffix, unit in UNIT_SUFFIXES:
        if key.endswith(suffix) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return [key.removesuffix(suffix).replace("_", " "), engineering(float(value), unit)]
    return [key.replace("_", " "), str(_format(value))]


def _settings(settings: dict[str, Any]) -> Table:
    return Table("Accelerator and technology", "What every design point was priced on.", ["setting", "value"],
                 [setting_row(key, value) for key, value in settings.items()])


def _spec(spec: dict[str, Any]) -> Table:
    rows = [[key, ", ".join(map(str, value)) if isinstance(value, list) else value] for key, value in spec.items()]
    return Table("Spec", "The spec this study was made from: every key that defines its space and values (the trial "
                 "budget and the sampler's seed may differ between runs).", ["key", "value"], rows)


def point_status(point: TrialResult) -> str:
    """'recommended, certified', 'certified', 'recommended' or '' (the front tables' status column)."""
    return ", ".join(word for word, on in (("recommended", point.recommended), ("certified", point.certified)) if on)


def _certified(results: StudyResults) -> Table:
    """Per front structure, its most aggressive certified point: loss on the certifying rows, test loss, and a
    single-point upper bound labelled as the descriptive estimate it is."""
    chosen = headline(results).certified
    rows = [["yes" if p == chosen else "", p.number, p.cascade, "/".join(f"{x:.4g}" for x in p.thresholds),
             _format(p.certify_loss_pct), f"{p.delta:.3g}", _format(p.test.accuracy_loss_pct),
             _format(p.test.energy_saving_pct), _format(p.upper_bound_pct)] for p in results.certified]
    guarantee = results.guarantee
    meaning = ("" if guarantee is None else f"Certified means: with probability at least {1 - guarantee[1]:g} over "
               f"the certification rows, every point listed loses at most {guarantee[0]:g} points on new data from "
               f"the same distribution (a bound on the risk, the expected loss; a finite test split still scatters "
               f"around it). ")
    return Table("Certified loss budget", meaning + "Each front structure's most aggressive certified point (Learn "
                 "then Test, fixed-sequence testing on calibration rows the search never saw). The last column is a "
                 "descriptive estimate, not covered by the guarantee: a one-point upper confidence bound read off at "
                 "a point chosen on the same rows.",
                 ["recommended", "trial", "cascade", "thresholds", "loss on the certifying rows (pp)", "δ tested at",
                  "test loss (pp)", "test saving vs big (%)", "one-point upper bound, descriptive (pp)"], rows)


def _search_notes(search: SearchData | None) -> dict[str, str]:
    """A sentence for the importances when a chart would show next to nothing: one parameter, or none computed."""
    if search is None or search.history is None:
        return {}
    params = list(dict.fromkeys(p for values in search.importances.values() for p in values))
    if len(params) == 1:
        return {"importances": f"Every trial draws only one parameter alike ({params[0]}), so it carries all of the "
                               "importance: with nothing to compare it with, there is no chart."}
    if not params:
        return {"importances": "No parameter importances: they need at least 4 completed trials, a parameter every "
                               "trial draws alike, and an objective whose value varies."}
    return {}


def build_report_data(results: StudyResults, search: SearchData | None = None) -> ReportData:
    """Every section's data: headline, configuration, fronts on both splits, tables, breakdown, margins, panels,
    sweeps, settings and (given the study's search data) importances and history."""
    pareto, listed = results.pareto, results.listed
    answer = headline(results)
    limit = results.max_accuracy_loss_pct
    structures, points = len({t.number for t in results.trials}), len(results.trials)
    certified = ("" if limit is None else f" (certified, δ = {results.guarantee[1]:g})" if results.guarantee
                 else " (not certified)")
    subtitle = (f"big net: {results.big} · {structures} trial{'s' * (structures != 1)} ({points} threshold "
                f"point{'s' * (points != 1)}) · {len(pareto)} distinct Pareto point{'s' * (len(pareto) != 1)} "
                f"chosen on the calibration split · max accuracy loss: {'none' if limit is None else f'{limit:g} pp'}"
                f"{certified}")
    data = ReportData(
        title=f"adaptive-dse: {results.name}", subtitle=subtitle, headline=answer,
        configuration=_configuration(answer),
        fronts=[_front(results, split) for split in ("calib", "test")] if pareto else [],
        pareto_table=metric_table("Pareto points", "Chosen on the calibration split; the test split is held out. "
                                  "The recommended point is listed too when it lies beyond the front (a safer "
                                  "point the certificate reached). " + POINTS_EXPLAINED + " " + FRONT_NOTE,
                                  {"trial.point": [t.label.removeprefix("trial ") for t in listed],
                                   "status": [point_status(t) for t in listed],
                                   "front": [t.threshold_front for t in listed],
                                   "cascade": [t.cascade for t in listed],
                                   "thresholds": ["/".join(f"{x:.4g}" for x in t.thresholds) for t in listed]},
                                  [(t.calib, t.test) for t in listed], limit),
        baseline_table=metric_table("Baselines and the papers' methods", "Each variant alone, and the mechanisms' "
                                    "own reference points, on the same axes.",
                                    {"baseline": [b.kind for b in results.baselines],
                                     "net": [b.label for b in results.baselines]},
                                    [(b.calib, b.test) for b in results.baselines], limit),
        breakdown=_breakdown(pareto, str(results.settings.get("dataflow", ""))), margins=list(results.margins), panels=list(results.panels),
        sweeps=_sweeps(results), settings=_settings(results.settings), certified=_certified(results),
        certificate_note=results.certificate_note, search=search, chains=chain_table(results), spec=_spec(results.spec),
        notes=_search_notes(search))
    present = {"headline": True, "configuration": bool(data.configuration.rows), "fronts": bool(data.fronts),
               "pareto_table": bool(data.pareto_table.rows), "baselines": bool(data.baseline_table.rows),
               "breakdown": bool(data.breakdown.points), "margins": bool(data.margins), "panels": bool(data.panels),
               "sweeps": bool(data.sweeps), "settings": bool(data.settings.rows), "certified": bool(data.certified.rows),
               "spec": bool(results.spec),
               "importances": bool(search and search.importances) or "importances" in data.notes,
               "history": bool(search and search.history)}
    present["chains"] = bool(data.chains.rows)
    data.sections.extend(name for name, shown in present.items() if shown)
    return data
