"""The pricer: a variant's cost on the spec's accelerator, alone or right after another stage on the same input.

Layer shapes are cached by architecture and width (not by a net's name), and a stage that runs after another is
priced by the first stage rule that applies to the pair (rules come from the mechanisms: reusing a narrower stage's
work, continuing from a side exit's activations, ...); the core names none of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

import costmodel
from dse.core.results import PJ
from nets import Architecture, Variant


class PriceContext(Protocol):
    """What a stage rule may read off the pricer."""

    technology: costmodel.Technology
    priced_layers: str

    def shapes(self, variant: Variant) -> tuple[costmodel.LayerShape, ...]:
        """The layer shapes priced for `variant` (all layers, or conv layers only)."""
        ...

    def every_shape(self, variant: Variant) -> tuple[costmodel.LayerShape, ...]:
        """Every layer shape `variant` runs, priced or not."""
        ...


class StageRule(Protocol):
    """How a stage is priced when it runs right after `previous` on the same input (e.g. only its new work).

    `optional` rules apply only when the cascade asks for reuse (`Cascade.reuse`); the others whenever they apply.
    """

    name: str
    optional: bool

    def applies(self, previous: Variant, variant: Variant) -> bool:
        """True when this rule prices `variant` after `previous`."""
        ...

    def cost(self, previous: Variant, variant: Variant, accelerator: costmodel.Accelerator,
             context: PriceContext) -> costmodel.NetworkCost:
        """The cost of `variant` after `previous`, on `accelerator` (at the variant's bits)."""
        ...


@lru_cache(maxsize=4096)
def layer_shapes(architecture: Architecture, width: float) -> tuple[costmodel.LayerShape, ...]:
    """Every layer shape of `architecture` at channel fraction `width`, memoised by the architecture itself."""
    return tuple(architecture.layer_shapes(width))


def measured_cost(energy_j: float, latency_s: float | None) -> costmodel.NetworkCost:
    """A measured price per inference: its energy and latency replace the cost model's; the rest is not known (NaN:
    a model priced so cannot be asked for its storage or, without latency_s, its latency)."""
    unknown = float("nan")
    return dataclasses.replace(costmodel.NetworkCost.from_layers((), extra_pj=energy_j / PJ),
                               latency_s=unknown if latency_s is None else latency_s, weight_bytes=unknown,
                               cycles=unknown, dram_bytes=unknown, macs=unknown)


@dataclass(frozen=True)
class Pricer:
    """Prices variants on `accelerator` with `technology`, all layers or conv layers only (`priced_layers`), a
    stage after another by the first of `rules` that applies."""

    accelerator: costmodel.Accelerator
    technology: costmodel.Technology
    priced_layers: str = "all"
    rules: tuple[StageRule, ...] = ()

    def every_shape(self, variant: Variant) -> tuple[costmodel.LayerShape, ...]:
        """Every layer shape `variant` runs (none for a model known only by its logits)."""
        if variant.model is not None and variant.model.architecture is None:
            return ()
        shapes = layer_shapes(variant.architecture, variant.width)
        for transform in variant.extra:  # a mechanism's own transforms change the shapes they declare
            shapes = transform.shapes(shapes)
        return shapes

    def shapes(self, variant: Variant) -> tuple[costmodel.LayerShape, ...]:
        """The layer shapes priced for `variant`: all, or the convolutions only (as papers that price only those)."""
        shapes = self.every_shape(variant)
        return tuple(s for s in shapes if s.kind == "conv") if self.priced_layers == "conv" else shapes

    def on(self, variant: Variant, accelerator: costmodel.Accelerator | None = None) -> costmodel.Accelerator:
        """The accelerator `variant` runs on: `accelerator` (default: the pricer's) at the variant's bits."""
        acc = accelerator or self.accelerator
        return acc if variant.bits is None else dataclasses.replace(acc, bits=variant.bits)

    def rule(self, previous: Variant | None, variant: Variant, reuse: bool) -> StageRule | None:
        """The rule pricing `variant` after `previous` (None: priced alone)."""
        if previous is None:
            return None
        return next((r for r in self.rules if (reuse or not r.optional) and r.applies(previous, variant)), None)

    def price(self, variant: Variant, accelerator: costmodel.Accelerator | None = None,
              after: Variant | None = None, reuse: bool = True) -> costmodel.NetworkCost:
        """One stage's cost at its own bits, after stage `after` ran on the same input (if given); `reuse` lets
        optional rules apply. A measured model's price is as measured."""
        model = variant.model
        if model is not None and model.measured:
            return measured_cost(float(model.energy_j), model.latency_s)  # type: ignore[arg-type]
        acc = self.on(variant, accelerator)
        rule = self.rule(after, variant, reuse)
        if rule is not None:
            return rule.cost(after, variant, acc, self)  # type: ignore[arg-type]
        return costmodel.network_cost(list(self.shapes(variant)), acc, self.technology)

    def chain(self, stages: list[Variant], accelerator: costmodel.Accelerator | None = None,
              reuse: bool = False) -> list[costmodel.NetworkCost]:
        """Cost of each stage of a cascade, in order, each after the one before."""
        return [self.price(stage, accelerator, stages[i - 1] if i else None, reuse) for i, stage in enumerate(stages)]

    def stored_bytes(self, stages: list[Variant], accelerator: costmodel.Accelerator | None = None) -> float:
        """Weight bytes of a cascade: each distinct stage once, a stage priced after the one before by a rule that
        always applies (e.g. continuing a shared trunk) adding only what that rule prices."""
        return float(sum(self.price(stage, accelerator, stages[i - 1] if i else None, reuse=False).weight_bytes
                         for i, stage in enumerate(stages) if stage not in stages[:i]))

    def per_sample(self, variant: Variant, cost: costmodel.NetworkCost, work: np.ndarray,
                   accelerator: costmodel.Accelerator | None = None) -> costmodel.SampleCosts:
        """A stage whose work varies per sample, priced by the cost model's per-sample rule from its executed share
        `work` (N,) of the MACs (the mechanisms' own operations included, priced as MACs)."""
        return costmodel.per_sample_cost(cost, cost.macs * work, np.zeros(work.size), self.on(variant, accelerator),
                                         self.technology)
