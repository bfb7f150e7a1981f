"""The union front's flags (`dse.core.readback._front`) against the definition, on random values with many ties."""

from __future__ import annotations

import numpy as np
import pytest

from dse.core.readback import _front


def definition(values: np.ndarray, order: list[int], feasible: list[bool]) -> set[int]:
    """Visiting rows in order: a feasible row is flagged unless a row flagged before is no worse on every value."""
    flagged: list[int] = []
    for i in order:
        if feasible[i] and not any(all(values[j][k] <= values[i][k] for k in range(values.shape[1]))
                                   for j in flagged):
            flagged.append(i)
    return set(flagged)


@pytest.mark.parametrize("objectives", [1, 2, 3])
def test_front_flags_match_the_definition(objectives: int) -> None:
    rng = np.random.default_rng(objectives)
    for _ in range(30):
        rows = int(rng.integers(1, 300))
        values = rng.integers(0, 12, (rows, objectives)).astype(np.float64) * rng.choice([1.0, 0.25])
        feasible = list(rng.random(rows) < 0.8)
        order = sorted(range(rows), key=lambda i: (tuple(values[i]), int(rng.integers(0, 3))))
        assert _front(values, order, feasible) == definition(values, order, feasible)
