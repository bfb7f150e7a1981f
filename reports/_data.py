"""What the report shows, computed from result tables before anything is drawn (testable without plotly)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

TABLE_COLUMNS = {
    "little": "little net",
    "threshold": "threshold",
    "test_energy_pj": "energy (nJ)",
    "test_energy_saving_pct": "energy saving vs big (%)",
    "test_accuracy": "accuracy (%)",
    "test_accuracy_loss_pct": "accuracy loss (pp)",
    "test_big_fraction": "big-net runs (%)",
    "calib_energy_pj": "calib energy (nJ)",
    "calib_accuracy_loss_pct": "calib loss (pp)",
}


@dataclass(frozen=True)
class Series:
    """One scatter series: x = accuracy loss (pp), y = energy (nJ), hover labels."""

    name: str
    loss_pct: list[float]
    energy_nj: list[float]
    labels: list[str]


@dataclass(frozen=True)
class ReportData:
    """Everything the HTML report draws: title, front, baselines, other trials, and the Pareto table."""

    title: str
    subtitle: str
    front: Series
    baselines: list[Series]
    others: Series
    table: pd.DataFrame


def _series(name: str, frame: pd.DataFrame, split: str, label: pd.Series) -> Series:
    return Series(name, frame[f"{split}_accuracy_loss_pct"].tolist(),
                  (frame[f"{split}_energy_pj"] / 1000.0).tolist(), label.astype(str).tolist())


def build_report_data(study_name: str, trials: pd.DataFrame, baselines: pd.DataFrame, big: str,
                      max_loss_pct: float | None, split: str = "test") -> ReportData:
    """Front (calibration-Pareto trials, shown on `split`), baselines and table, ready to draw."""
    pareto = trials[trials["pareto"]].sort_values("calib_energy_pj") if len(trials) else trials
    others = trials[~trials["pareto"]] if len(trials) else trials

    def trial_label(frame: pd.DataFrame) -> pd.Series:
        return "trial " + frame["trial"].astype(str) + ": " + frame["little"] + " θ=" + frame["threshold"].round(3).astype(str)

    baseline_series = [
        _series(kind, baselines[baselines["kind"] == kind], split, baselines[baselines["kind"] == kind]["net"])
        for kind in ("big only", "little only") if len(baselines)
    ]
    table = pareto[list(TABLE_COLUMNS)].copy() if len(pareto) else pd.DataFrame(columns=list(TABLE_COLUMNS))
    table["test_energy_pj"] /= 1000.0
    table["calib_energy_pj"] /= 1000.0
    table["test_accuracy"] *= 100.0
    table["test_big_fraction"] *= 100.0
    limit = "none" if max_loss_pct is None else f"{max_loss_pct:g} pp"
    subtitle = (f"big net: {big} · {len(trials)} trials · {len(pareto)} Pareto points chosen on the calibration split, "
                f"shown on the {split} split · max accuracy loss: {limit}")
    return ReportData(
        title=f"adaptive-dse: {study_name}",
        subtitle=subtitle,
        front=_series("Pareto front", pareto, split, trial_label(pareto)) if len(pareto) else Series("Pareto front", [], [], []),
        baselines=baseline_series,
        others=_series("other trials", others, split, trial_label(others)) if len(others) else Series("other trials", [], [], []),
        table=table.rename(columns=TABLE_COLUMNS).round(4).reset_index(drop=True),
    )
