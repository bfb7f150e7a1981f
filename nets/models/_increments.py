"""Channel-fraction increments of an incrementally trained net (Tann 2016): their rules, checked without torch."""

from __future__ import annotations

from costmodel import UserError
from nets.models._arch import Architecture, ArchitectureError, Conv


class IncrementalError(UserError):
    """Increments that cannot define an incrementally trained net."""


def check_increments(arch: Architecture, increments: tuple[float, ...]) -> None:
    """Fractions strictly increasing in (0, 1], ending at 1, each giving every hidden layer >= 1 channel."""
    listed = ", ".join(f"{f:g}" for f in increments)
    if not increments:
        raise IncrementalError("increments must list at least one channel fraction")
    if any(not 0 < f <= 1 for f in increments):
        raise IncrementalError(f"every fraction must lie in (0, 1], got {listed}")
    if any(b <= a for a, b in zip(increments, increments[1:])):
        raise IncrementalError(f"fractions must increase strictly, got {listed}")
    if increments[-1] != 1:
        raise IncrementalError(f"the last fraction must be 1 (the full net), got {listed}")
    if any(isinstance(layer, Conv) and layer.groups > 1 for layer in arch.layers):
        raise IncrementalError(f"{arch.name}: incremental training needs ungrouped convolutions")
    for f in increments:
        try:
            arch.scaled_layers(f)
        except ArchitectureError as exc:
            raise IncrementalError(f"increment {f:g}: {exc}") from None
