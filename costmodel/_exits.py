"""Early-exit prices with reuse: a later exit continues from the trunk activations an earlier one left waiting.

Leaving at exit k costs the trunk up to k plus branch k (`network_cost` of that chain). Escalating from exit k to the
next stage on the same trunk costs only the layers past their common prefix (the trunk segment and the next branch),
plus writing the activations that wait at the end of the prefix and reading them back (the prefix's last output, and
on a residual trunk every earlier output a later layer still reads, e.g. a block input its add needs): in the output
buffer when they fit its share of the SRAM (SRAM write + read energy, no extra time: the accesses overlap the compute), else in
DRAM (burst-rounded bytes out and back in, their energy, the time they take at the DRAM bandwidth, and the leakage
and DRAM background power over that time).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from costmodel._accelerator import Accelerator
from costmodel._cost import LayerCost, NetworkCost
from costmodel._errors import CostModelError
from costmodel._layers import LayerShape
from costmodel._network import network_cost
from costmodel._technology import Technology, default_technology


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class WaitingTensor:
    """An activation tensor that waits for the next stage: the name of the layer that produced it and its (C, H, W)
    shape (a flat tensor is (F, 1, 1))."""

    name: str
    shape: tuple[int, int, int]

    @classmethod
    def output_of(cls, layer: LayerShape) -> "WaitingTensor":
        """The output of `layer`."""
        return cls(layer.name, (layer.out_channels, layer.out_h, layer.out_w))

    @property
    def count(self) -> int:
        """Number of activations."""
        channels, height, width = self.shape
        return channels * height * width


def waiting_cost(tensors: Sequence[WaitingTensor], acc: Accelerator, tech: Technology | None = None) -> LayerCost:
    """Writing `tensors` where they wait for the next stage and reading each back once: all in the output buffer when
    together they fit it, else all in DRAM (each rounded up to whole bursts)."""
    tech = tech or default_technology()
    if not tensors:
        raise CostModelError("waiting_cost: no tensor waits")
    bits, elems = acc.bits, sum(tensor.count for tensor in tensors)
    size_bytes = sum(_ceil_div(tensor.count * bits, 8) for tensor in tensors)
    _, _, out_buffer = acc.buffer_bytes
    leak_mw = sum(tech.sram_pj_per_bit(size)[2] for size in acc.buffer_bytes) + tech.dram_background_mw
    if size_bytes <= out_buffer:
        read_pj, write_pj, _ = tech.sram_pj_per_bit(out_buffer)
        sram, dram_bytes, latency = elems * bits * (read_pj + write_pj), 0, 0.0
    else:
        sram = 0.0
        dram_bytes = 2 * sum(_ceil_div(_ceil_div(tensor.count * bits, 8), tech.dram_burst_bytes)
                             for tensor in tensors) * tech.dram_burst_bytes
        latency = dram_bytes / tech.dram_bandwidth_bytes_per_s
    last = tensors[-1].shape
    return LayerCost(name="+".join(tensor.name for tensor in tensors) + "[waiting]", kind="wait", mapping="storage",
                     tile=(last[0], 0, last[1], last[2]), loop_order="sram" if dram_bytes == 0 else "dram",
                     mac_pj=0.0, sram_input_pj=0.0,
                     sram_weight_pj=0.0, sram_output_pj=sram, dram_pj=dram_bytes * 8 * tech.dram_energy_pj_per_bit,
                     leakage_pj=leak_mw * 1e9 * latency, latency_s=latency, cycles=0, dram_bytes=dram_bytes,
                     dram_input_bytes=dram_bytes / 2, dram_weight_bytes=0.0, dram_output_bytes=dram_bytes / 2,
                     weight_bytes=0.0, macs=0)


def shared_prefix(done: Sequence[LayerShape], layers: Sequence[LayerShape]) -> int:
    """Number of leading layers `layers` has in common with `done` (the shared trunk)."""
    count = 0
    for first, second in zip(done, layers):
        if first != second:
            break
        count += 1
    return count


def continuation_cost(done: Sequence[LayerShape], layers: Sequence[LayerShape], acc: Accelerator,
                      tech: Technology | None = None, priced_kinds: Collection[str] | None = None,
                      waiting: Sequence[WaitingTensor] | None = None) -> NetworkCost:
    """Price running `layers` after `done` ran on the same input: the layers past their common prefix, plus the
    activations that wait (`waiting`; default: the output of the prefix's last layer). Both are whole layer chains;
    `priced_kinds` limits the layers priced (e.g. {"conv"}), never which activations wait. Without a common prefix:
    `layers` in full."""
    shared = shared_prefix(done, layers)
    rest = [layer for layer in layers[shared:] if priced_kinds is None or layer.kind in priced_kinds]
    if shared == len(layers):
        raise CostModelError(f"continuation_cost: nothing left to run after '{layers[-1].name}' (already done)")
    cost = network_cost(rest, acc, tech) if rest else NetworkCost.from_layers(())
    if not shared:
        return cost
    tensors = waiting if waiting is not None else (WaitingTensor.output_of(layers[shared - 1]),)
    return cost + NetworkCost.from_layers((waiting_cost(tensors, acc, tech),))


@dataclass(frozen=True)
class ExitCost:
    """One stage of an exit cascade: its cost when it runs first, when it continues from the stage before, and the
    cumulative cost of an input answered there (every earlier stage ran)."""

    name: str
    alone: NetworkCost
    escalation: NetworkCost
    answered_here: NetworkCost


def exit_costs(stages: Sequence[tuple[str, Sequence[LayerShape]]], acc: Accelerator, tech: Technology | None = None,
               priced_kinds: Collection[str] | None = None,
               waiting: Sequence[Sequence[WaitingTensor] | None] = ()) -> list[ExitCost]:
    """Per stage of an exit cascade (each a named whole layer chain on one trunk, the last the trunk itself): alone,
    after the stage before, and the cumulative cost of answering there; `waiting[k]` are the tensors that wait after
    stage k (default: its last shared layer's output)."""
    rows: list[ExitCost] = []
    total: NetworkCost | None = None
    for i, (name, layers) in enumerate(stages):
        priced = [layer for layer in layers if priced_kinds is None or layer.kind in priced_kinds]
        alone = network_cost(priced, acc, tech)
        step = alone if i == 0 else continuation_cost(stages[i - 1][1], layers, acc, tech, priced_kinds,
                                                           waiting[i - 1] if i - 1 < len(waiting) else None)
        total = step if total is None else total + step
        rows.append(ExitCost(name, alone, step, total))
    return rows
