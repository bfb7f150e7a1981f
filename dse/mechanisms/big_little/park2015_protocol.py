"""Park 2015 §5.2 evaluation protocol: calibrate on a random half of the labelled pool, report on the other half.

Repeated over seeded random splits; per little net it runs the paper's static (lambda-sweep) and dynamic
(hill-climbing, alpha chosen on the calibration half) methods, and the search picks the best cascade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from dse.core.problem import CascadeProblem
from dse.mechanisms.big_little.park2015 import hill_climb, paper_static_choice, select_alpha


@dataclass(frozen=True)
class ProtocolSplit:
    """Indices into the pooled calib+test samples: calibration half and held-out half."""

    seed: int
    calib: np.ndarray
    held_out: np.ndarray


def protocol_splits(labels: np.ndarray, n_splits: int = 10, seed: int = 0) -> list[ProtocolSplit]:
    """`n_splits` seeded random halvings of the pool (stratified by label): disjoint halves that cover it."""
    from nets import stratified_split

    return [ProtocolSplit(seed + i, *stratified_split(labels, (0.5, 0.5), seed + i)) for i in range(n_splits)]


def _held_out_row(problem: CascadeProblem, stages: list[int], threshold: float) -> dict[str, float]:
    metrics = problem.evaluate(stages, np.array([[threshold]]), "test")
    return {"energy_reduction_pct": float(metrics.energy_saving_pct[0]),
            "accuracy_loss_pct": float(metrics.accuracy_loss_pct[0])}


def static_and_dynamic(problem: CascadeProblem, split: ProtocolSplit, max_loss_pct: float,
                       period: int = 100) -> list[dict]:
    """Per little net on one split: the paper's static threshold and dynamic method, on the held-out half."""
    rows = []
    big = problem.big
    energy_big = problem.price(big).energy_pj
    calib_m, calib_c = problem.margin["calib"], problem.correct["calib"]
    test_m, test_c = problem.margin["test"], problem.correct["test"]
    big_acc = test_c[big].mean()
    order = np.random.default_rng(split.seed).permutation(test_m.shape[1])
    for little, name in enumerate(problem.names):
        if little == big:
            continue
        choice = paper_static_choice(calib_m[little], calib_c[little], calib_c[big], max_loss_pct)
        rows.append({"split": split.seed, "little": name, "method": "static", "threshold": choice.threshold,
                     **_held_out_row(problem, [little, big], choice.threshold)})
        climb = {"period": period, "energy_little_pj": problem.price(little).energy_pj, "energy_big_pj": energy_big}
        alpha, _ = select_alpha(calib_m[little], calib_m[big], calib_c[little], calib_c[big], max_loss_pct, **climb)
        run = hill_climb(test_m[little][order], test_m[big][order], test_c[little][order], test_c[big][order],
                         alpha=alpha, **climb)
        rows.append({"split": split.seed, "little": name, "method": "dynamic", "alpha": alpha,
                     "threshold": float(run.thresholds[-1]),
                     "energy_reduction_pct": 100.0 * (1 - run.energy_pj / energy_big),
                     "accuracy_loss_pct": 100.0 * (big_acc - run.accuracy)})
    return rows


def run_protocol(problem: CascadeProblem, labels_pool: np.ndarray, max_loss_pct: float, n_splits: int = 10,
                 seed: int = 0, searches: dict[str, Callable[[CascadeProblem], tuple[list[int], float]]] | None = None
                 ) -> pd.DataFrame:
    """All splits: static and dynamic per little net, plus each named search's chosen cascade.

    A search gets the problem re-split into halves and returns stages and threshold; it must look only at
    the calibration half ("calib"); the held-out half is the problem's "test" split.
    """
    rows: list[dict] = []
    for split in protocol_splits(labels_pool, n_splits, seed):
        halves = problem.resplit(split.calib, split.held_out)
        rows += static_and_dynamic(halves, split, max_loss_pct)
        for method, search in (searches or {}).items():
            stages, threshold = search(halves)
            rows.append({"split": split.seed, "little": halves.names[stages[0]], "method": method,
                         "threshold": threshold, **_held_out_row(halves, stages, threshold)})
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over splits per (method, little), as in Park 2015 Fig. 8."""
    grouped = rows.groupby(["method", "little"], sort=False)[["energy_reduction_pct", "accuracy_loss_pct"]]
    summary = grouped.agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    return summary.reset_index()
