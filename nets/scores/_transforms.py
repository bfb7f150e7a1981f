"""Transforms a mechanism brings of its own: one change to a trained network, declared once for scoring, pricing,
naming and caching, so that a new mechanism needs no branch in the score cache or the core.

A transform runs on the trained weights (post-training, like bits or knobs): the net is trained once without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from costmodel import LayerShape


@runtime_checkable
class Transform(Protocol):
    """One post-training change to a network. Implement it as a frozen dataclass (hashable, compared by value)."""

    name: str  # what it is called in the transforms scoring and pricing applied (e.g. "prune")

    def name_part(self) -> str:
        """Its part of the variant's display name, e.g. 'prune0.5'."""
        ...

    def key_part(self) -> dict[str, Any]:
        """Its part of the scores' cache key: JSON-ready, everything that changes the scores."""
        ...

    def shapes(self, shapes: tuple[LayerShape, ...]) -> tuple[LayerShape, ...]:
        """The layer shapes the cost model prices once it is applied (given them without it)."""
        ...

    def module(self, module: torch.nn.Module) -> torch.nn.Module:
        """The torch module that is scored once it is applied (given the trained module, in eval mode)."""
        ...
