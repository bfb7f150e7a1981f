"""Search: study specs, the mechanisms, the cascade evaluator, Optuna studies, typed results, and the `dse` CLI.

This module is the public API (notebooks, `reports` and the benchmarks import only what `__all__` lists, plus the
papers' methods in their mechanism's home, e.g. `dse.mechanisms.incremental.tann2016`). Importing `dse` registers
the built-in mechanisms; it does not import torch or plotly.
"""

from costmodel import UserError
from dse import mechanisms
from dse.core.evaluate import CascadeResult, evaluate_cascade, exit_stages, reference_cascade
from dse.core.loading import load_problem, make_accelerator
from dse.core.mechanism import Cascade, Chooser, Mechanism
from dse.core.output import StudyNotFound, export_tables, load_existing_study, pareto_frame, trials_frame
from dse.core.problem import CascadeProblem
from dse.core.registry import Bound, Place, register, registry, unregister
from dse.core.results import (ENERGY_PARTS, Baseline, Breakdown, Certificate, CertifiedPoint, Headline, LayerMapping,
                               MarginCurve, Metrics, Panel, StudyResults, TrialResult, headline, within_limit)
from dse.core.space import CascadeSpace, enumerate_structures, replay_structure, shape_cascade
from dse.core.sweep import accept_sweep
from dse.core.spec import SpecError, StudySpec, builtin_specs, check, load_spec, parse_spec
from dse.core.storage import open_storage, sqlite_url
from dse.core.study import best_feasible, is_feasible, open_study, run_search, search_study, study_results

__all__ = [
    "ENERGY_PARTS", "Baseline", "Bound", "Breakdown", "Cascade", "Chooser", "Certificate", "CertifiedPoint",
    "CascadeProblem", "CascadeResult", "CascadeSpace", "Headline", "LayerMapping", "MarginCurve",
    "Mechanism", "Metrics", "Panel", "Place", "SpecError", "StudyNotFound", "StudyResults", "StudySpec", "TrialResult",
    "UserError", "accept_sweep", "best_feasible", "builtin_specs", "check", "enumerate_structures", "evaluate_cascade",
    "exit_stages", "export_tables", "headline", "is_feasible", "load_existing_study", "load_problem", "load_spec",
    "make_accelerator", "mechanisms", "open_storage", "open_study", "pareto_frame", "parse_spec", "reference_cascade",
    "register", "registry", "replay_structure", "run_search", "search_study", "shape_cascade", "sqlite_url", "study_results",
    "trials_frame", "unregister", "within_limit",
]
