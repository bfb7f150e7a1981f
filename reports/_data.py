"""What the report shows, computed from result tables before anything is drawn (testable without plotly)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

PARAM_COLUMNS = {
    "cascade": "cascade",
    "threshold_mode": "threshold mode",
    "applied_threshold": "threshold",
    "sram": "SRAM",
    "partition_input": "input buf (steps)",
    "partition_weight": "weight buf (steps)",
}
METRIC_COLUMNS = {
    "test_energy_pj": "energy (nJ)",
    "test_energy_saving_pct": "energy saving vs big (%)",
    "test_accuracy": "accuracy (%)",
    "test_accuracy_loss_pct": "accuracy loss (pp)",
    "test_big_fraction": "big-net runs (%)",
    "test_latency_s": "latency (µs)",
    "calib_energy_pj": "calib energy (nJ)",
    "calib_accuracy_loss_pct": "calib loss (pp)",
}
SCALE = {"test_energy_pj": 1e-3, "calib_energy_pj": 1e-3, "test_accuracy": 100.0, "test_big_fraction": 100.0,
         "test_latency_s": 1e6}
BASELINE_KINDS = ("big only", "little only", "single stage", "lambda sweep (Park 2015)")


@dataclass(frozen=True)
class Series:
    """One scatter series: x = accuracy loss (pp), y = energy (nJ), hover labels."""

    name: str
    loss_pct: list[float]
    energy_nj: list[float]
    labels: list[str]


@dataclass(frozen=True)
class SMRCCurve:
    """One variant's score-margin classifier: ROC, AUC and margin histograms (Park 2015 Fig. 1-2)."""

    net: str
    auc: float
    fpr: list[float]
    tpr: list[float]
    bin_edges: list[float]
    hist_correct: list[int]
    hist_wrong: list[int]


@dataclass(frozen=True)
class ReportData:
    """Everything the HTML report draws: title, front, baselines, other trials, tables, SMRC curves."""

    title: str
    subtitle: str
    front: Series
    baselines: list[Series]
    others: Series
    table: pd.DataFrame
    baseline_table: pd.DataFrame
    smrc: list[SMRCCurve]
    panels: list[dict]  # mechanism panels: {"kind": "bar" | "line" | "table", "title", "caption", ...data}


def _series(name: str, frame: pd.DataFrame, split: str, labels: list[str]) -> Series:
    if frame.empty:
        return Series(name, [], [], [])
    return Series(name, frame[f"{split}_accuracy_loss_pct"].tolist(), (frame[f"{split}_energy_pj"] / 1000.0).tolist(),
                  labels)


def _trial_labels(frame: pd.DataFrame) -> list[str]:
    return [f"trial {row.trial}: {row.cascade} θ₁={row.applied_threshold:.4f}" for row in frame.itertuples()]


def _readable(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Scale units and rename the columns that are present."""
    present = [c for c in columns if c in frame]
    table = frame[present].copy()
    for column, factor in SCALE.items():
        if column in table:
            table[column] = table[column] * factor
    return table.rename(columns=columns).round(4).reset_index(drop=True)


def build_report_data(study_name: str, trials: pd.DataFrame, baselines: pd.DataFrame, big: str,
                      max_loss_pct: float | None, smrc: list[dict] | None = None, panels: list[dict] | None = None,
                      split: str = "test") -> ReportData:
    """Front (calibration-Pareto trials, shown on `split`), baselines, tables and SMRC, ready to draw."""
    empty = trials.empty
    pareto = trials if empty else trials[trials["pareto"]].sort_values("calib_energy_pj")
    others = trials if empty else trials[~trials["pareto"]]
    baseline_series = []
    for kind in BASELINE_KINDS:
        rows = baselines[baselines["kind"] == kind] if len(baselines) else baselines
        if len(rows):
            baseline_series.append(_series(kind, rows, split, rows["net"].astype(str).tolist()))
    limit = "none" if max_loss_pct is None else f"{max_loss_pct:g} pp"
    subtitle = (f"big net: {big} · {len(trials)} trials · {len(pareto)} distinct Pareto points chosen on the "
                f"calibration split, shown on the {split} split · max accuracy loss: {limit}")
    return ReportData(
        title=f"adaptive-dse: {study_name}",
        subtitle=subtitle,
        front=_series("Pareto front", pareto, split, [] if empty else _trial_labels(pareto)),
        baselines=baseline_series,
        others=_series("other trials", others, split, [] if empty else _trial_labels(others)),
        table=_readable(pareto, {**PARAM_COLUMNS, **METRIC_COLUMNS}),
        baseline_table=_readable(baselines, {"kind": "baseline", "net": "net", "threshold": "threshold",
                                             "lambda": "λ", **METRIC_COLUMNS}),
        smrc=[SMRCCurve(**row) for row in smrc or []],
        panels=list(panels or []),
    )
