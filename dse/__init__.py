"""Search: study specs, the vectorised cascade evaluator, Optuna studies, and the `dse` CLI.

Importing `dse` does not import torch or plotly.
"""

from dse._evaluate import CascadeResult, evaluate_cascade, exit_stages, reference_cascade
from dse._spec import SpecError, StudySpec, builtin_specs, load_spec, parse_spec

__all__ = ["CascadeResult", "SpecError", "StudySpec", "builtin_specs", "evaluate_cascade", "exit_stages", "load_spec",
           "parse_spec", "reference_cascade"]
