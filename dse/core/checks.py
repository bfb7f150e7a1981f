"""What pricing applies to a variant, read off what it prices: checked against what scoring applied, so that what is
scored is what is priced."""

from __future__ import annotations

import dataclasses

from dse.core.pricer import Pricer
from dse.core.table import ScoreTable
from nets import Variant


def priced_transforms(pricer: Pricer, table: ScoreTable, index: int) -> tuple[str, ...]:
    """The transforms `pricer` applies to variant `index` of `table`: the layer shapes' width, the accelerator's bits,
    per-sample work (knobs), increments, and a layer list or trunk other than the net's own."""
    variant = table.variants[index]
    if variant.model is not None and variant.model.measured:
        return ()  # as measured: such a model takes no transforms (`nets.check_variant`)
    shapes = pricer.shapes(dataclasses.replace(variant, extra=()))  # a mechanism's own transforms are named below
    full = variant.architecture.layer_shapes(1.0)
    if pricer.priced_layers == "conv":
        full = [s for s in full if s.kind == "conv"]
    applied = []
    if [s.out_channels for s in shapes] != [s.out_channels for s in full]:
        applied.append("width")
    if variant.increments:
        applied.append("increments")
    if variant.bits is not None:
        applied += ["bits", "rounding"]
    if any(index in rows.work for rows in table.splits.values()):
        applied.append("knobs")
    own = Variant(variant.net, variant.width, variant.increments, model=variant.model)
    if variant.rewrites and (shapes != pricer.shapes(own) or variant.trunk != own.trunk):
        applied.append(variant.rewrites)  # a layer list or trunk weights other than the net's own
    applied += [transform.name for transform in variant.extra]  # folded into the shapes by the pricer
    return tuple(applied)
