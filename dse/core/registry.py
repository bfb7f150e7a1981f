"""The registry of mechanisms the core iterates over: name -> mechanism, in shaping order.

Apart from the `Mechanism` interface (`dse.core.mechanism`), whose hooks name the spec's and the problem's types, so
that the spec loader and the problem read the registry without importing the interface: the imports stay one-way.
"""

from __future__ import annotations

from typing import Any, TypeVar

M = TypeVar("M")  # a `dse.Mechanism`
_REGISTRY: dict[str, Any] = {}


def register(mechanism: M) -> M:
    """Add `mechanism` to the registry (replacing one of the same name); returns it. Order is shaping order."""
    _REGISTRY[mechanism.name] = mechanism  # type: ignore[attr-defined]
    return mechanism


def unregister(name: str) -> None:
    """Remove a mechanism from the registry (for tests that register one of their own)."""
    _REGISTRY.pop(name, None)


def registry() -> dict[str, Any]:
    """Every registered mechanism (a `dse.Mechanism`) by name, in shaping order."""
    return dict(_REGISTRY)
