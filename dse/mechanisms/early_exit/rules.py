"""The early-exit mechanism's stage rule: a stage continues from the activations a side exit left waiting."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import costmodel
from dse.core.pricer import PriceContext
from nets import Variant


@lru_cache(maxsize=4096)
def _waiting(variant: Variant) -> tuple[costmodel.WaitingTensor, ...]:
    """The activations that wait when a stage continues from `variant`, memoised (by the variant and its model)."""
    return variant.waiting


@dataclass(frozen=True)
class ContinueFromExit:
    """A stage on the same trunk weights, precision and knobs as a side exit before it runs only the layers past the
    shared ones, plus the waiting activations' traffic; always applies."""

    name: str = "continue from exit"
    optional: bool = False

    def applies(self, previous: Variant, variant: Variant) -> bool:
        return variant.continues(previous)

    def cost(self, previous: Variant, variant: Variant, accelerator: costmodel.Accelerator,
             context: PriceContext) -> costmodel.NetworkCost:
        kinds = {"conv"} if context.priced_layers == "conv" else None
        return costmodel.continuation_cost(context.every_shape(previous), context.every_shape(variant), accelerator,
                                           context.technology, kinds, _waiting(previous))
