"""Public API of the certified loss budget (see `dse.core._risk` for the test and why it is valid)."""

from dse.core._risk import (RiskError, RiskPoint, Structure, allowed_loss, assess, certifies, certify, critical_worse,
                            fixed_sequence, loss_counts, loss_upper_bound, select_certified)

__all__ = ["RiskError", "RiskPoint", "Structure", "allowed_loss", "assess", "certifies", "certify", "critical_worse",
           "fixed_sequence", "loss_counts", "loss_upper_bound", "select_certified"]
