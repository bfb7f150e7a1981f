"""Network-level prices: one inference, an incremental stage, an expected cascade, SRAM partition and size sweeps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache, reduce
from operator import add
from typing import TYPE_CHECKING, Literal

from costmodel._accelerator import Accelerator
from costmodel._cost import LayerCost, NetworkCost
from costmodel._errors import CostModelError
from costmodel._layers import LayerShape
from costmodel._technology import Technology, default_technology
from costmodel._tiling import TilingError, layer_cost

if TYPE_CHECKING:
    import pandas as pd


def network_cost(layers: Sequence[LayerShape], acc: Accelerator, tech: Technology | None = None) -> NetworkCost:
    """Price one inference of `layers` on `acc` (memoised per layer list, accelerator and technology)."""
    return _network_cost(tuple(layers), acc, tech or default_technology())


@lru_cache(maxsize=1 << 14)
def _network_cost(layers: tuple[LayerShape, ...], acc: Accelerator, tech: Technology) -> NetworkCost:
    """Memoised body of network_cost."""
    return NetworkCost.from_layers(tuple(layer_cost(layer, acc, tech) for layer in layers))


def increment_cost(
    prev_layers: Sequence[LayerShape],
    layers: Sequence[LayerShape],
    acc: Accelerator,
    tech: Technology | None = None,
    mode: Literal["reuse", "recompute"] = "reuse",
) -> NetworkCost:
    """Price running `layers` (width f_i) after `prev_layers` (the same net at f_{i-1}) ran on the same input.

    "recompute" runs `layers` in full. "reuse" computes only the new channels' work (new output channels from all
    inputs; old output channels from the new input channels, starting from their stored pre-activation sums read
    back from DRAM) and, per layer, falls back to a full run where that is cheaper, so it never costs more energy.
    """
    if mode == "recompute":
        return network_cost(layers, acc, tech)
    if mode != "reuse":
        raise CostModelError(f"increment_cost: mode must be 'reuse' or 'recompute', got {mode!r}")
    tech = tech or default_technology()
    if len(prev_layers) != len(layers):
        raise CostModelError(f"increment_cost: previous stage has {len(prev_layers)} layers, this one {len(layers)}")
    parts: list[LayerCost] = []
    for prev, layer in zip(prev_layers, layers):
        full = layer_cost(layer, acc, tech)
        pieces = tuple(layer_cost(piece, acc, tech, partial) for piece, partial in _increment_pieces(prev, layer))
        parts.extend(pieces if sum(p.energy_pj for p in pieces) < full.energy_pj else (full,))
    return NetworkCost.from_layers(tuple(parts))


def _increment_pieces(prev: LayerShape, layer: LayerShape) -> list[tuple[LayerShape, bool]]:
    """Sub-layers computing what `layer` adds to `prev`, each with whether it starts from stored partial sums."""
    same = ("name", "kind", "in_h", "in_w", "out_h", "out_w", "kernel_h", "kernel_w", "stride", "pad", "groups")
    for field in same:
        if getattr(prev, field) != getattr(layer, field):
            raise CostModelError(
                f"increment_cost: layer {layer.name}: {field} differs from the previous stage "
                f"({getattr(prev, field)!r} vs {getattr(layer, field)!r})"
            )
    new_in, new_out = layer.in_channels - prev.in_channels, layer.out_channels - prev.out_channels
    if new_in < 0 or new_out < 0:
        raise CostModelError(
            f"increment_cost: layer {layer.name} shrinks from {prev.in_channels}->{prev.out_channels} to "
            f"{layer.in_channels}->{layer.out_channels} channels"
        )
    if not layer.has_weights:
        new = replace(layer, name=f"{layer.name}[new]", in_channels=new_in, out_channels=new_out)
        return [(new, False)] if new_out else []
    g = layer.groups
    pieces = []
    if new_out:
        pieces.append((replace(layer, name=f"{layer.name}[new out]", out_channels=new_out), False))
    if new_in:
        old_out = replace(layer, name=f"{layer.name}[old out]", in_channels=new_in, out_channels=prev.out_channels)
        pieces.append((old_out, True))
    if any(p.in_channels % g or p.out_channels % g for p, _ in pieces):
        return [(layer, False)]  # the new channels do not split evenly over the groups: run the layer in full
    return pieces


def cascade_cost(
    stage_costs: Sequence[NetworkCost],
    reach_fractions: Sequence[float],
    per_sample_extra_pj: Sequence[float] | None = None,
) -> NetworkCost:
    """Expected cost per input: sum over stages of (fraction of inputs reaching the stage) x (stage cost).

    per_sample_extra_pj: energies measured per input outside the accelerator model (e.g. a variant's decision
    logic); their mean is added as `extra_pj`. Weight storage is summed over stages, not weighted.
    """
    if not stage_costs or len(stage_costs) != len(reach_fractions):
        raise CostModelError(
            f"cascade_cost: need one reach fraction per stage, got {len(stage_costs)} stages and "
            f"{len(reach_fractions)} fractions"
        )
    for i, fraction in enumerate(reach_fractions):
        if not 0 <= fraction <= 1:
            raise CostModelError(f"cascade_cost: reach fraction of stage {i} must be in [0, 1], got {fraction}")
    total = reduce(add, (cost * fraction for cost, fraction in zip(stage_costs, reach_fractions)))
    if per_sample_extra_pj is None:
        return total
    extras = [float(e) for e in per_sample_extra_pj]
    if not extras or not all(math.isfinite(e) and e >= 0 for e in extras):
        raise CostModelError(
            f"cascade_cost: per_sample_extra_pj must be non-empty, finite and >= 0, got {len(extras)} values"
        )
    return replace(total, extra_pj=total.extra_pj + sum(extras) / len(extras))


def _partition_grid(grid_step: float) -> list[tuple[float, float, float]]:
    """All (input, weight, output) partitions of the whole SRAM on a grid of `grid_step`, each part >= grid_step."""
    n = round(1 / grid_step) if grid_step > 0 else 0
    if n < 3 or not math.isclose(n * grid_step, 1, rel_tol=1e-9):
        raise CostModelError(f"grid_step must divide 1 into at least 3 steps, got {grid_step}")
    return [(i / n, w / n, (n - i - w) / n) for i in range(1, n - 1) for w in range(1, n - i)]


def best_partition(
    stage_layers: Sequence[Sequence[LayerShape]],
    reach_fractions: Sequence[float],
    acc: Accelerator,
    tech: Technology | None = None,
    grid_step: float = 0.05,
) -> tuple[tuple[float, float, float], NetworkCost]:
    """The SRAM partition on a grid minimising the expected (reach-frequency weighted) energy of a cascade."""
    tech = tech or default_technology()
    tech.mac_energy_pj(acc.bits)  # a bit-width the technology cannot price is an error, not an unfit partition
    best: tuple[tuple[float, float, float], NetworkCost] | None = None
    for partition in _partition_grid(grid_step):
        trial = replace(acc, partition=partition)
        try:
            cost = cascade_cost([network_cost(layers, trial, tech) for layers in stage_layers], reach_fractions)
        except TilingError:
            continue
        if best is None or cost.energy_pj < best[1].energy_pj:
            best = partition, cost
    if best is None:
        raise CostModelError(
            f"best_partition: no partition on a {grid_step} grid fits every layer in {acc.sram_bytes} B"
        )
    return best


def sram_sweep(
    layers: Sequence[LayerShape], acc: Accelerator, sizes_bytes: Sequence[int], tech: Technology | None = None
) -> pd.DataFrame:
    """Energy breakdown, latency and DRAM traffic of one inference for each total SRAM size (Park 2015 Fig. 10)."""
    import pandas as pd

    rows = [
        {"sram_bytes": size, **network_cost(layers, replace(acc, sram_bytes=size), tech).to_row()}
        for size in sizes_bytes
    ]
    return pd.DataFrame(rows)
