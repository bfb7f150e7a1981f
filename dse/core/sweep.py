"""The one sweep behind every exact threshold: accept the samples whose margin reaches t, for every distinct t."""

from __future__ import annotations

import numpy as np


def accept_sweep(margin: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For t = +inf, then every distinct margin from high to low: t, how many samples have margin >= t, and
    the sum of `weight` over them. Anything that depends only on the accepted set changes only at these t."""
    margin = np.asarray(margin, dtype=np.float64)
    order = np.argsort(-margin, kind="stable")
    sorted_margin = margin[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_margin)), len(margin) - 1]
    return (np.r_[np.inf, sorted_margin[last_of_tie]], np.r_[0, last_of_tie + 1],
            np.r_[0, np.cumsum(np.asarray(weight)[order])[last_of_tie]])
