"""Mechanism-specific report panels, computed at run time and stored on the study (plain JSON-ready dicts).

Bit-width: the big net's minimum-bit-width histogram and the 1% merged candidate set (Jahier Pagliari 2018
§4.1). Increments: weight storage of an incremental net vs golden models (Tann 2016 Table 6) and the
runtime controller over a stream with a stepped energy budget (Algorithm 2, Table 4 levels).
"""

from __future__ import annotations


import numpy as np

from dse._bitwidth import characterize, merge_bars
from dse._incremental import DEFAULT_SCHEDULE, budget_schedule, simulate_controller, storage_comparison
from dse._problem import CascadeProblem
from dse._spec import StudySpec
from nets import Variant


def bitwidth_panel(problem: CascadeProblem, spec: StudySpec) -> dict:
    """Minimum bit-width histogram of the big net on the calibration split, with the merged candidate set."""
    b = spec.bitwidth
    rows = [problem.index(Variant(spec.nets.big, bits=bits, rounding=b.rounding).name) for bits in b.bitwidths]
    found = characterize(problem.correct["calib"][rows], problem.correct["calib"][problem.big], b.bitwidths)
    merged = merge_bars(found.fractions, b.bitwidths)
    return {"kind": "bar", "title": f"Minimum bit-width of each sample ({spec.nets.big}, calibration split)",
            "caption": f"Share of float-correct samples whose smallest width that stays correct at every larger "
                       f"width is b. Candidate set after the 1% merge: {sorted(merged)}.",
            "x": found.labels, "y": (100.0 * found.fractions).round(3).tolist(), "y_title": "% of samples"}


def incremental_panels(problem: CascadeProblem, spec: StudySpec) -> list[dict]:
    """Storage of incremental vs golden models, and the runtime controller on the test split."""
    big = spec.nets.big
    fractions = [*spec.incremental.widths, 1.0]
    arch = problem.variants[problem.big].architecture
    storage = storage_comparison(lambda f: arch.layer_shapes(f), fractions, problem.accelerator, problem.technology)
    rows = [problem.index(Variant(big, width=f).name) for f in fractions]
    energy = np.array([problem.price(row).energy_pj for row in rows])
    levels = [round(k * (len(energy) - 1) / max(DEFAULT_SCHEDULE)) for k in DEFAULT_SCHEDULE]  # Table 4 on our capacities
    trace = simulate_controller(energy, problem.correct["test"][rows], budget_schedule(energy, levels, segment=250))
    step = max(1, len(trace.budget_pj) // 300)
    return [
        {"kind": "table", "title": "Weight storage: incremental net vs golden models (Tann 2016 Table 6)",
         "caption": f"Fractions {fractions}; full net {storage.full_bytes / 1024:.1f} KiB.",
         "columns": ["design", "extra weight storage (% of the full net)"],
         "rows": [["incremental (one classifier per earlier increment)", round(storage.incremental_extra_pct, 2)],
                  ["golden models stored separately (big/little style)", round(storage.golden_extra_pct, 2)]]},
        {"kind": "line", "title": "Runtime controller (Tann 2016 Algorithm 2) over the test stream",
         "caption": f"Budget steps through Table 4's levels every 250 inputs; {trace.violations} budget violations, "
                    f"accuracy {100 * trace.accuracy:.2f}%.",
         "x": list(range(0, len(trace.budget_pj), step)),
         "series": {"budget (nJ)": (trace.budget_pj[::step] / 1e3).round(3).tolist(),
                    "energy used (nJ)": (trace.energy_pj[::step] / 1e3).round(3).tolist()},
         "y_title": "energy per input (nJ)"},
    ]


def mechanism_panels(problem: CascadeProblem, spec: StudySpec) -> list[dict]:
    """Every panel the spec's mechanisms call for."""
    panels = []
    if spec.bitwidth.bitwidths:
        panels.append(bitwidth_panel(problem, spec))
    if spec.incremental.widths:
        panels += incremental_panels(problem, spec)
    return panels


