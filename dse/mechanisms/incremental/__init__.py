"""Runtime-configurable DNN (Tann et al. 2016): channel fractions f1 < ... < 1 of the big net as stages.

Section [incremental]: golden widths below 1 and the range of increment counts. A trial's big stage becomes the
chosen increments, each priced in reuse mode (only its new channels). Brings the storage and runtime-controller
panels and `dse train-incremental` / `dse simulate-controller` (`dse.mechanisms.incremental.tann2016`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.core.mechanism import Cascade, Chooser, Mechanism, Place
from dse.core.problem import CascadeProblem
from dse.core.results import Panel
from dse.core.space import increasing_subsets
from dse.core.spec import StudySpec, check
from dse.mechanisms.incremental.tann2016 import (DEFAULT_SCHEDULE, budget_schedule, simulate_controller,
                                                 storage_comparison)
from dse.core.pricer import StageRule
from dse.mechanisms.incremental.rules import ReuseNarrower
from nets import Variant

NONE = "none"  # the big net without increments (offered when other mechanisms provide stages)


@dataclass(frozen=True)
class IncrementalSpec:
    """[incremental]: golden widths below 1 whose increasing subsets, then the full net, are the stages. Off when empty."""

    widths: tuple[float, ...] = ()
    n_increments: tuple[int, ...] = (2, 5)


class Incremental(Mechanism[IncrementalSpec]):
    """Tann 2016: one net, run at increasing channel fractions, each stage reusing the one before."""

    name = "incremental"
    Section = IncrementalSpec
    place = Place.BIG
    legacy_names = {"fractions": "fractions"}
    example = {"widths": [0.5], "n_increments": [2, 2]}

    def enabled(self, config: IncrementalSpec) -> bool:
        return bool(config.widths)

    def validate(self, spec: StudySpec, config: IncrementalSpec) -> None:
        src, widths, low_high = spec.source, config.widths, config.n_increments
        check(all(isinstance(w, (int, float)) and 0 < w < 1 for w in widths) and list(widths) == sorted(set(widths)),
              f"{src}: incremental.widths", f"must be increasing fractions in (0, 1) (1 is the full net), got {list(widths)}")
        check(len(low_high) == 2 and 2 <= low_high[0] <= low_high[1], f"{src}: incremental.n_increments",
              f"must be [min, max] with 2 <= min <= max, got {list(low_high)}")
        check(low_high[0] <= len(widths) + 1, f"{src}: incremental.n_increments",
              f"{low_high[0]} increments need {low_high[0] - 1} golden widths below 1, only {len(widths)} given")

    def variants(self, spec: StudySpec, config: IncrementalSpec) -> list[Variant]:
        return [spec.variant(spec.nets.big, width=width) for width in config.widths]

    def _choices(self, spec: StudySpec, config: IncrementalSpec) -> list[str]:
        low, high = config.n_increments
        sets = increasing_subsets(config.widths, range(low - 1, min(high - 1, len(config.widths)) + 1))
        return sets + ([NONE] if len(spec.enabled()) > 1 else [])

    def shape(self, chooser: Chooser, spec: StudySpec, config: IncrementalSpec, cascade: Cascade) -> Cascade:
        """The `fractions` parameter: an increasing set of widths below 1 whose stages run before the big net's last
        stage, each reusing the one before (or none)."""
        chosen = chooser.suggest_categorical("fractions", self._choices(spec, config))
        if chosen == NONE:
            return cascade
        last = cascade.stages[-1]
        narrower = tuple(Variant(last.net, width=float(f), model=last.model) for f in chosen.split("/"))
        return Cascade(cascade.stages[:-1] + narrower + (last,), reuse=True)

    def panels(self, problem: CascadeProblem, spec: StudySpec, config: IncrementalSpec) -> list[Panel]:
        """Storage of incremental vs golden models, and the runtime controller on the test split."""
        big = spec.nets.big
        fractions = [*config.widths, 1.0]
        arch = problem.variants[problem.big].architecture
        storage = storage_comparison(lambda f: arch.layer_shapes(f), fractions, problem.accelerator, problem.technology)
        rows = [problem.ensure(spec.variant(big, width=f)) for f in fractions]
        energy = np.array([problem.price(row).energy_pj for row in rows])
        levels = [round(k * (len(energy) - 1) / max(DEFAULT_SCHEDULE)) for k in DEFAULT_SCHEDULE]  # Table 4 levels
        trace = simulate_controller(energy, problem.correct["test"][rows], budget_schedule(energy, levels, segment=250))
        step = max(1, len(trace.budget_pj) // 300)
        return [
            Panel("table", "Weight storage: incremental net vs golden models (Tann 2016 Table 6)",
                  f"Fractions {fractions}; full net {storage.full_bytes / 1024:.1f} KiB.",
                  columns=["design", "extra weight storage (% of the full net)"],
                  rows=[["incremental (one classifier per earlier increment)", round(storage.incremental_extra_pct, 2)],
                        ["golden models stored separately (big/little style)", round(storage.golden_extra_pct, 2)]]),
            Panel("line", "Runtime controller (Tann 2016 Algorithm 2) over the test stream",
                  f"Budget steps through Table 4's levels every 250 inputs; {trace.violations} budget violations, "
                  f"accuracy {100 * trace.accuracy:.2f}%.",
                  x=list(range(0, len(trace.budget_pj), step)),
                  series={"budget (nJ)": (trace.budget_pj[::step] / 1e3).round(3).tolist(),
                          "energy used (nJ)": (trace.energy_pj[::step] / 1e3).round(3).tolist()},
                  y_title="energy per input (nJ)"),
        ]

    def stage_rules(self) -> tuple[StageRule, ...]:
        return (ReuseNarrower(),)
