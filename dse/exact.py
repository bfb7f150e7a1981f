"""Public API of the exact threshold fronts and the fast batch evaluator (see `dse.core._exact`)."""

from dse.core._exact import (BatchResult, CascadeEvaluator, ThresholdFront, allowed_extra_errors, coordinate_front,
                             exact_front_2, exact_front_3, front)

__all__ = ["BatchResult", "CascadeEvaluator", "ThresholdFront", "allowed_extra_errors", "coordinate_front",
           "exact_front_2", "exact_front_3", "front"]
