"""The incremental mechanism's stage rule: a wider stage of the same net reuses the narrower stage's work."""

from __future__ import annotations

from dataclasses import dataclass

import costmodel
from dse.core.pricer import PriceContext
from nets import Variant


@dataclass(frozen=True)
class ReuseNarrower:
    """A stage that widens the stage before it (same net, precision and knobs, more channels) pays only for its new
    channels' work (the cost model's reuse mode); applies when the cascade asks for reuse."""

    name: str = "reuse narrower stage"
    optional: bool = True

    def applies(self, previous: Variant, variant: Variant) -> bool:
        return (previous.net == variant.net and previous.width < variant.width and previous.bits == variant.bits
                and previous.knobs == variant.knobs)

    def cost(self, previous: Variant, variant: Variant, accelerator: costmodel.Accelerator,
             context: PriceContext) -> costmodel.NetworkCost:
        return costmodel.increment_cost(list(context.shapes(previous)), list(context.shapes(variant)), accelerator,
                                        context.technology, "reuse")
