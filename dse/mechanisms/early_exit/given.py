"""User-given early-exit branches: the [[exits.branch]] tables of a spec, read into layer lists on its big net."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dse.core.spec import SpecError, StudySpec, check
from nets import (ArchitectureError, ExitError, Layer, architecture_from_table, check_given_branch,
                  resolve_points, tap_step)


def given_branches(spec: StudySpec, points: Sequence[str], tables: Sequence[Any]
                   ) -> tuple[tuple[str, tuple[Layer, ...]], ...]:
    """The user-given branches of [exits] (`tables`: its [[exits.branch]] entries, on the exit `points`) as (point,
    layers); SpecError naming `exits.branch[i]` and the key for a bad one."""
    trunk = spec.architecture(spec.nets.big)
    names = resolve_points(spec.models.get(spec.nets.big), points)
    out = []
    for i, table in enumerate(tables):
        where = f"{spec.source}: exits.branch[{i}]"
        check(isinstance(table, dict) and set(table) == {"at", "layers"}, where,
              "must be a table with exactly the keys at (an exit point) and layers (a list of layer tables), got "
              f"{sorted(table) if isinstance(table, dict) else repr(table)}")
        check(table["at"] in points or table["at"] in names, f"{where}.at",
              f"must be one of the points {list(points)}, got {table['at']!r}")
        (point,) = resolve_points(spec.models.get(spec.nets.big), (table["at"],))
        try:
            layers = architecture_from_table(f"{point}.exit", tap_step(trunk, point).out_shape, table["layers"],
                                             f"{where}.layers").layers
            check_given_branch(trunk, point, layers, f"{where}.layers")
        except (ArchitectureError, ExitError) as exc:
            raise SpecError(str(exc)) from None
        out.append((point, layers))
    repeated = [p for j, (p, _) in enumerate(out) if p in [q for q, _ in out[:j]]]
    check(not repeated, f"{spec.source}: exits.branch", f"gives a branch at '{repeated[0]}' twice" if repeated else "")
    return tuple(out)
