"""One unit convention for rendering: SI values in the data, one engineering prefix per column or axis."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

PREFIXES = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""), (1e3, "k"), (1e6, "M"),
            (1e9, "G")]
BINARY = [(1.0, "B"), (2.0**10, "KiB"), (2.0**20, "MiB"), (2.0**30, "GiB")]


@dataclass(frozen=True)
class Scale:
    """A prefix for one column: values divided by `factor` read in `unit`, e.g. factor 1e-6, unit "µJ"."""

    factor: float
    unit: str

    def apply(self, values: Sequence[float]) -> list[float]:
        """The values in this scale's unit."""
        return [v / self.factor for v in values]


def scale_for(values: Sequence[float], unit: str) -> Scale:
    """The largest prefix that keeps the largest magnitude of `values` at 1 or more (SI base for no values)."""
    largest = max((abs(v) for v in values if v is not None and math.isfinite(v)), default=0.0)
    if unit == "B":  # memory sizes read in binary prefixes (16 KiB, not 16.38 kB), never below bytes
        return next((Scale(f, p) for f, p in reversed(BINARY) if f <= largest), Scale(1.0, unit))
    if largest == 0:
        return Scale(1.0, unit)
    return next((Scale(f, p + unit) for f, p in reversed(PREFIXES) if f <= largest), Scale(PREFIXES[0][0],
                                                                                      PREFIXES[0][1] + unit))
