"""Properties of the cost model over a fixed set of realistic layers: monotonicity, reuse, exact totals, speed."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from costmodel import (
    Accelerator,
    LayerShape,
    NetworkCost,
    best_partition,
    cascade_cost,
    increment_cost,
    network_cost,
    sram_sweep,
)
from costmodel._cost import ENERGY_FIELDS


def lenet(width: float = 1.0) -> list[LayerShape]:
    """Caffe LeNet with its channel counts scaled by `width`."""
    c1, c2, f1 = round(20 * width), round(50 * width), round(500 * width)
    return [
        LayerShape("conv1", "conv", 1, 28, 28, c1, 24, 24, 5, 5),
        LayerShape("pool1", "maxpool", c1, 24, 24, c1, 12, 12, 2, 2, 2),
        LayerShape("conv2", "conv", c1, 12, 12, c2, 8, 8, 5, 5),
        LayerShape("pool2", "maxpool", c2, 8, 8, c2, 4, 4, 2, 2, 2),
        LayerShape("fc1", "fc", c2 * 16, 1, 1, f1, 1, 1),
        LayerShape("fc2", "fc", f1, 1, 1, 10, 1, 1),
    ]


REALISTIC = lenet() + [
    LayerShape("mini8_conv1", "conv", 1, 28, 28, 10, 6, 6, 5, 5, 4),
    LayerShape("alexnet_conv1", "conv", 3, 227, 227, 96, 55, 55, 11, 11, 4),
    LayerShape("alexnet_pool1", "maxpool", 96, 55, 55, 96, 27, 27, 3, 3, 2),
    LayerShape("caffenet_conv2", "conv", 96, 27, 27, 256, 27, 27, 5, 5, 1, 2, 2),
    LayerShape("vgg_conv3_1", "conv", 128, 56, 56, 256, 56, 56, 3, 3, 1, 1),
    LayerShape("vgg_conv5_1", "conv", 512, 14, 14, 512, 14, 14, 3, 3, 1, 1),
    LayerShape("alexnet_fc6", "fc", 9216, 1, 1, 4096, 1, 1),
]


@pytest.mark.parametrize("rule", ["energy", "fastest"])
@pytest.mark.parametrize("sram", [16 * 1024, 128 * 1024])
def test_energy_non_increasing_as_bits_shrink(rule: str, sram: int) -> None:
    for layer in REALISTIC:
        energies = [
            network_cost([layer], Accelerator(sram_bytes=sram, bits=bits, tiling_rule=rule)).energy_pj
            for bits in (32, 16, 8, 4, 2)
        ]
        assert energies == sorted(energies, reverse=True), layer.name


@pytest.mark.parametrize("buffer", [0, 1, 2])
def test_dram_non_increasing_as_each_buffer_grows(buffer: int) -> None:
    # Under the "dram" rule by construction: a bigger buffer only adds fitting tilings.
    for layer in REALISTIC:
        traffic = []
        for size in (1 << k for k in range(8, 19, 2)):
            sizes = [4096, 16384, 4096]
            sizes[buffer] = size
            total = sum(sizes)
            acc = Accelerator(sram_bytes=total, partition=tuple(s / total for s in sizes), tiling_rule="dram")
            assert acc.buffer_bytes == tuple(sizes)
            traffic.append(network_cost([layer], acc).dram_bytes)
        assert traffic == sorted(traffic, reverse=True), layer.name


def test_energy_rule_may_trade_dram_for_cycles() -> None:
    # Why the DRAM property is stated for the "dram" rule: with a 512 B instead of 256 B weight buffer, LeNet conv1
    # can use 10 of the 16 lanes instead of 5, halving its cycles; the static power saved outweighs the 1,280 extra
    # DRAM bytes its smaller row tiles cost, so the least-energy tiling reads more DRAM. Shown with the "diannao"
    # dataflow, whose input buffer holds one tile only (the other dataflows keep the whole 784-element input on chip).
    conv1 = lenet()[0]
    costs = []
    for weight_bytes in (256, 512):
        total = 4096 + weight_bytes + 4096
        acc = Accelerator(sram_bytes=total, partition=(4096 / total, weight_bytes / total, 4096 / total),
                          tiling_rule="energy", dataflow="diannao")
        costs.append(network_cost([conv1], acc))
    assert costs[1].dram_bytes > costs[0].dram_bytes
    assert costs[1].cycles < costs[0].cycles
    assert costs[1].energy_pj < costs[0].energy_pj


GROUPED_PREV = [LayerShape("conv", "conv", 48, 27, 27, 128, 27, 27, 5, 5, 1, 2, 2)]
GROUPED_NEXT = [LayerShape("conv", "conv", 96, 27, 27, 256, 27, 27, 5, 5, 1, 2, 2)]


@pytest.mark.parametrize("rule", ["fastest", "energy"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize(
    ("prev", "layers"),
    [(lenet(0.25), lenet(0.5)), (lenet(0.5), lenet(1.0)), (lenet(0.3), lenet(0.7)), (GROUPED_PREV, GROUPED_NEXT)],
)
def test_reuse_never_costs_more_than_recompute(rule: str, bits: int, prev: list, layers: list) -> None:
    acc = Accelerator(bits=bits, tiling_rule=rule, sram_bytes=64 * 1024)
    reuse = increment_cost(prev, layers, acc, mode="reuse")
    recompute = increment_cost(prev, layers, acc, mode="recompute")
    assert recompute == network_cost(layers, acc)
    assert reuse.energy_pj <= recompute.energy_pj
    assert reuse.macs <= recompute.macs


def test_reuse_computes_only_new_channels() -> None:
    # Widening LeNet 0.5 -> 1: every MAC of the wide net not already done by the narrow one, and no other.
    reuse = increment_cost(lenet(0.5), lenet(1.0), Accelerator())
    assert reuse.macs == sum(l.macs for l in lenet(1.0)) - sum(l.macs for l in lenet(0.5))
    assert [lc.name for lc in reuse.layer_costs][:3] == ["conv1[new out]", "pool1[new]", "conv2[new out]"]
    assert increment_cost(lenet(0.5), lenet(0.5), Accelerator()).energy_pj == 0


def _check_totals(cost: NetworkCost) -> None:
    assert cost.energy_pj == sum(getattr(cost, name) for name in ENERGY_FIELDS) + cost.extra_pj
    for name in ("dram_bytes", "cycles", "macs", "weight_bytes"):
        assert getattr(cost, name) == pytest.approx(sum(getattr(lc, name) for lc in cost.layer_costs))
    assert cost.energy_pj == pytest.approx(sum(lc.energy_pj for lc in cost.layer_costs) + cost.extra_pj)
    for lc in cost.layer_costs:
        assert lc.energy_pj == sum(getattr(lc, name) for name in ENERGY_FIELDS)
        assert lc.dram_bytes == pytest.approx(lc.dram_input_bytes + lc.dram_weight_bytes + lc.dram_output_bytes)


def test_totals_equal_sum_of_breakdown() -> None:
    acc = Accelerator()
    little, big = network_cost(lenet(0.25), acc), network_cost(lenet(), acc)
    expected = cascade_cost([little, big], [1.0, 0.3], per_sample_extra_pj=[10.0, 30.0])
    for cost in (little, big, little + big, big * 0.3, expected, increment_cost(lenet(0.25), lenet(), acc)):
        _check_totals(cost)
    assert expected.energy_pj == pytest.approx(little.energy_pj + 0.3 * big.energy_pj + 20.0)
    assert expected.weight_bytes == little.weight_bytes + big.weight_bytes  # storage: summed, not weighted
    assert big.to_row()["energy_pj"] == big.energy_pj


def test_best_partition_weights_by_reach() -> None:
    acc = Accelerator()
    stages = [lenet(0.25), lenet()]
    partition, cost = best_partition(stages, [1.0, 0.2], acc, grid_step=0.125)
    assert sum(partition) == pytest.approx(1)
    default = cascade_cost([network_cost(s, acc) for s in stages], [1.0, 0.2])  # (0.25, 0.5, 0.25) is on the grid
    assert cost.energy_pj <= default.energy_pj
    little_only, _ = best_partition(stages, [1.0, 0.0], acc, grid_step=0.125)
    assert little_only == best_partition(stages[:1], [1.0], acc, grid_step=0.125)[0]


def test_sram_sweep_rows() -> None:
    sweep = sram_sweep(lenet(), Accelerator(), [4096, 16384, 65536])
    assert list(sweep["sram_bytes"]) == [4096, 16384, 65536]
    assert {"energy_pj", "dram_pj", "leakage_pj", "latency_s"} <= set(sweep.columns)


def test_warm_network_cost_is_fast() -> None:
    layers, acc = lenet(), Accelerator(sram_bytes=20000)
    network_cost(layers, acc)
    start = time.perf_counter()
    for _ in range(1000):
        network_cost(layers, acc)
    assert (time.perf_counter() - start) / 1000 < 1e-3
    assert network_cost(layers, replace(acc, bits=8)).energy_pj < network_cost(layers, acc).energy_pj
