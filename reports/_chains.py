"""The best point of each cascade length (how many models a chain runs) at the study's budget: does a longer chain
pay? One row per length: the chain, each stage's threshold and how often it runs, and what it saves."""

from __future__ import annotations

from dse import StudyResults, TrialResult
from reports._table import Table


def best_per_length(results: StudyResults) -> dict[int, TrialResult]:
    """The least-calibration-energy feasible point of each cascade length (stages in the chain)."""
    best: dict[int, TrialResult] = {}
    for point in results.trials:
        length = len(point.stages)
        if point.feasible and (length not in best or point.calib.energy_j < best[length].calib.energy_j):
            best[length] = point
    return dict(sorted(best.items()))


def chain_table(results: StudyResults) -> Table:
    """The best point of each cascade length, when the study ran chains of more than one length (else no rows)."""
    best = best_per_length(results)
    if len(best) < 2:
        return Table("", "", [], [])
    rows = []
    for length, point in best.items():
        reach = point.breakdown.get("test")
        rows.append([length, point.cascade, "/".join(f"{t:.4g}" for t in point.thresholds) or "none",
                     "/".join(f"{100 * r:.3g}" for r in reach.stage_reach) if reach else "",
                     f"{point.calib.energy_saving_pct:.4g}", f"{point.test.energy_saving_pct:.4g}",
                     f"{point.test.accuracy_loss_pct:.4g}", point.threshold_front, point.label.removeprefix("trial ")])
    budget = results.max_accuracy_loss_pct
    return Table("Best point per cascade length",
                 "The cheapest feasible point (calibration split" + ("" if budget is None else f", loss budget "
                 f"{budget:g} pp") + ") of each chain length: its models in order, each stage's exit threshold, how "
                 "often each stage runs on the test split, the energy it saves against the big net alone, and whether its chain's "
                 "threshold front was solved exactly (up to 3 stages) or approximately.",
                 ["models", "cascade", "thresholds", "stage reach, test (%)", "calib saving (%)", "test saving (%)",
                  "test loss (pp)", "threshold front", "trial"], rows)
