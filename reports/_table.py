"""The table every report section renders: plain data, computed before anything is drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Table:
    """A rendered table: headers carry the unit of their column, cells are already scaled and formatted."""

    title: str
    caption: str
    columns: list[str]
    rows: list[list[Any]]
