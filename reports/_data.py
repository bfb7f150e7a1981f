"""What the report shows, computed from a study's typed results before anything is drawn (testable without plotly)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dse.core.results import Baseline, MarginCurve, Panel, StudyResults, TrialResult

BIG_ONLY = "big only"


@dataclass(frozen=True)
class Series:
    """One scatter series: x = accuracy loss (pp), y = energy (nJ), hover labels."""

    name: str
    loss_pct: list[float]
    energy_nj: list[float]
    labels: list[str]


@dataclass(frozen=True)
class ReportData:
    """Everything the HTML report draws: title, front, baselines, other trials, tables, margin curves, panels."""

    title: str
    subtitle: str
    front: Series
    baselines: list[Series]
    others: Series
    table: pd.DataFrame
    baseline_table: pd.DataFrame
    smrc: list[MarginCurve]
    panels: list[Panel]
    certified_table: pd.DataFrame  # points whose held-out loss is certified (empty without a loss guarantee)


def _trial_series(name: str, trials: list[TrialResult], split: str) -> Series:
    metrics = [getattr(t, split) for t in trials]
    return Series(name, [m.accuracy_loss_pct for m in metrics], [m.energy_j * 1e9 for m in metrics],
                  [f"{t.label}: {t.cascade} θ={'/'.join(f'{x:.4f}' for x in t.thresholds) or '-'}"
                   for t in trials])


def _baseline_series(kind: str, rows: list[Baseline], split: str) -> Series:
    metrics = [getattr(b, split) for b in rows]
    return Series(kind, [m.accuracy_loss_pct for m in metrics], [m.energy_j * 1e9 for m in metrics],
                  [b.label for b in rows])


def _metric_columns(metrics, split: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The readable metric columns of one split, each in the unit its header names."""
    head = "" if split == "test" else "calib "
    return {f"{head}energy (nJ)": metrics.energy_j * 1e9, f"{head}energy saving vs big (%)": metrics.energy_saving_pct,
            f"{head}accuracy (%)": 100 * metrics.accuracy, f"{head}accuracy loss (pp)": metrics.accuracy_loss_pct,
            f"{head}last stage runs (%)": 100 * metrics.last_stage_fraction, f"{head}latency (µs)": metrics.latency_s * 1e6}


def _trial_table(trials: list[TrialResult]) -> pd.DataFrame:
    rows = [{"trial": t.label, "cascade": t.cascade, "thresholds": "/".join(f"{x:.4g}" for x in t.thresholds),
             **{k: v for k, v in t.params.items() if k in ("sram", "partition_input", "partition_weight")},
             **_metric_columns(t.test, "test"), "calib energy (nJ)": t.calib.energy_j * 1e9,
             "calib loss (pp)": t.calib.accuracy_loss_pct} for t in trials]
    return pd.DataFrame(rows).round(4)


def _baseline_table(baselines: list[Baseline]) -> pd.DataFrame:
    rows = [{"baseline": b.kind, "net": b.label, **b.params, **_metric_columns(b.test, "test")} for b in baselines]
    return pd.DataFrame(rows).round(4)


def build_report_data(results: StudyResults, split: str = "test") -> ReportData:
    """Front (calibration-Pareto trials, shown on `split`), baselines by kind, tables, margin curves and panels."""
    pareto = results.pareto
    others = [t for t in results.trials if not t.pareto]
    kinds = list(dict.fromkeys(b.kind for b in results.baselines))
    limit = "none" if results.max_accuracy_loss_pct is None else f"{results.max_accuracy_loss_pct:g} pp"
    subtitle = (f"big net: {results.big} · {len(results.trials)} trials · {len(pareto)} distinct Pareto points chosen "
                f"on the calibration split, shown on the {split} split · max accuracy loss: {limit}")
    return ReportData(
        title=f"adaptive-dse: {results.name}",
        subtitle=subtitle,
        front=_trial_series("Pareto front", pareto, split),
        baselines=[_baseline_series(kind, [b for b in results.baselines if b.kind == kind], split) for kind in kinds],
        others=_trial_series("other trials", others, split),
        table=_trial_table(pareto),
        baseline_table=_baseline_table(results.baselines),
        smrc=list(results.margins),
        panels=list(results.panels),
        certified_table=pd.DataFrame([{"trial": p.number, "cascade": p.cascade,
                                       "thresholds": "/".join(f"{x:.4g}" for x in p.thresholds),
                                       "certify-rows loss (pp)": p.certify_loss_pct,
                                       f"certified bound (pp, δ={p.delta:.3g})": p.upper_bound_pct,
                                       "test loss (pp)": p.test.accuracy_loss_pct,
                                       "test energy saving vs big (%)": p.test.energy_saving_pct}
                                      for p in results.certified]).round(4),
    )
