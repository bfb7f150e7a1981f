"""Dataflows: "diannao" pins the first version's figures bit for bit; "auto" chooses the rule's best mapping."""

from __future__ import annotations

import pytest

import nets
from costmodel import Accelerator, CostModelError, LayerShape, network_cost
from costmodel._mapping import STATIONARITIES
from costmodel._technology import default_technology

PARK_NETS = ["lenet"] + [f"mini{i}" for i in range(1, 9)]

# network_cost(..., Accelerator(sram_bytes=16384, bits=16)).energy_pj of the cost model before mappings existed
# (commit 87af751, all layers priced, default "fastest" rule), printed with repr(): the Park 2015 reproduction's prices.
GOLDEN_PJ = {
    "lenet": 294072184.6433196,
    "mini1": 86437961.6944201,
    "mini2": 45993774.53999835,
    "mini3": 23434762.95681804,
    "mini4": 14715475.01281165,
    "mini5": 791798085.6439432,
    "mini6": 210586673.53240207,
    "mini7": 54237501.90434021,
    "mini8": 15120454.150706187,
}


@pytest.mark.parametrize("net", PARK_NETS)
def test_diannao_reproduces_the_first_version_bit_for_bit(net: str) -> None:
    cost = network_cost(nets.architecture(net).layer_shapes(), Accelerator(sram_bytes=16384, bits=16,
                                                                            dataflow="diannao"))
    assert cost.energy_pj == GOLDEN_PJ[net]
    assert {lc.mapping for lc in cost.layer_costs} <= {"diannao", "streaming"}


@pytest.mark.parametrize("rule", ["fastest", "energy", "dram"])
@pytest.mark.parametrize("net", ["lenet", "mini1", "mini7", "alexnet-cifar10", "caffenet"])
def test_auto_is_never_worse_than_any_fixed_dataflow_under_its_rule(rule: str, net: str) -> None:
    # "auto" searches a superset of every fixed dataflow's candidates, so under the rule's lexicographic key its choice
    # is at least as good per layer; under the "energy" rule that means no more energy.
    layers = nets.architecture(net).layer_shapes()
    acc = Accelerator(sram_bytes=32768, bits=8, tiling_rule=rule)
    best = network_cost(layers, acc)
    for dataflow in ("diannao", *STATIONARITIES):
        fixed = network_cost(layers, Accelerator(sram_bytes=32768, bits=8, tiling_rule=rule, dataflow=dataflow))
        for mine, other in zip(best.layer_costs, fixed.layer_costs):
            key = {"fastest": ("cycles", "dram_bytes", "energy_pj"), "energy": ("energy_pj",),
                   "dram": ("dram_bytes", "cycles", "energy_pj")}[rule]
            assert [getattr(mine, k) for k in key] <= [getattr(other, k) for k in key], (net, mine.name, dataflow)
    if rule == "energy":
        assert best.energy_pj <= network_cost(layers, Accelerator(sram_bytes=32768, bits=8, tiling_rule=rule,
                                                                  dataflow="diannao")).energy_pj


def test_weight_stationary_reads_each_weight_once_per_spatial_tile() -> None:
    # A 3x3 conv, 16 -> 16 channels on 8x8 outputs, buffers large enough for one tile of everything: every weight is
    # read from the weight buffer once (2,304) instead of once per MAC (147,456), and each output's partial sum is
    # written once per (input-channel pass, kernel offset): 16 x 64 outputs x 1 pass x 9 = 9,216 writes and reads.
    layer = LayerShape("conv", "conv", 16, 10, 10, 16, 8, 8, 3, 3)
    acc = Accelerator(sram_bytes=64 * 1024, bits=8, tiling_rule="energy", dataflow="weight_stationary")
    (lc,) = network_cost([layer], acc).layer_costs
    assert lc.mapping == "weight_stationary" and lc.tile == (16, 16, 8, 8)
    (_, _, _), (w_r, w_w, _), (o_r, o_w, _) = (default_technology().sram_pj_per_bit(b) for b in acc.buffer_bytes)
    assert lc.sram_weight_pj == pytest.approx(8 * (2304 * w_r + (2304 + 16) * w_w))
    assert lc.sram_output_pj == pytest.approx(8 * 9216 * (o_r + o_w))


def test_depthwise_has_no_input_reuse_across_channels() -> None:
    # Depthwise 3x3 on 32 channels: every input-buffer read feeds one MAC (no broadcast to other output channels),
    # so input reads equal MACs; 16 groups share the 16 x 16 array's diagonal, so cycles are MACs / 16.
    layer = LayerShape("dw", "conv", 32, 16, 16, 32, 16, 16, 3, 3, 1, 1, 32)
    acc = Accelerator(sram_bytes=64 * 1024, bits=8, tiling_rule="fastest", dataflow="output_stationary")
    (lc,) = network_cost([layer], acc).layer_costs
    assert lc.cycles == layer.macs // 16
    (in_r, in_w, _), _, _ = (default_technology().sram_pj_per_bit(b) for b in acc.buffer_bytes)
    fills = lc.dram_input_bytes  # 8-bit elements, whole input read once (8,192 B is a whole number of bursts)
    assert fills == 32 * 16 * 16
    assert lc.sram_input_pj == pytest.approx(8 * (layer.macs * in_r + fills * in_w))
    diannao = network_cost([layer], Accelerator(sram_bytes=64 * 1024, bits=8, dataflow="diannao"))
    assert diannao.cycles == layer.macs  # the first version ran one group at a time on one lane


def test_global_pool_streams_any_input_size() -> None:
    # A 64 x 56 x 56 global average pool does not fit a 4 KiB input buffer as one window per channel tile (3,136
    # elements per channel at 16-bit = 6,272 B), but streams in row chunks: every input read once from DRAM.
    pool = LayerShape("gap", "avgpool", 64, 56, 56, 64, 1, 1, 56, 56)
    (lc,) = network_cost([pool], Accelerator(sram_bytes=16384, bits=16)).layer_costs
    assert lc.dram_input_bytes == 64 * 56 * 56 * 2
    assert lc.dram_output_bytes == 128
    assert lc.loop_order == "c>k" and lc.mapping == "streaming"
    assert lc.mac_pj > 0 and lc.macs == 0


def test_residual_add_is_data_movement() -> None:
    # Two 8 x 4 x 4 tensors in (256 elements = 256 B at 8-bit), one out (128 B), 128 additions on 16 lanes.
    add = LayerShape("res", "add", 8, 4, 4, 8, 4, 4)
    (lc,) = network_cost([add], Accelerator(sram_bytes=4096, bits=8)).layer_costs
    assert (lc.dram_input_bytes, lc.dram_weight_bytes, lc.dram_output_bytes) == (256, 0, 128)
    assert lc.macs == 0 and lc.weight_bytes == 0 and lc.sram_weight_pj == 0
    assert lc.cycles == 4 * 4  # one pass of 8 channels over 16 lanes per position
    assert lc.mac_pj == pytest.approx(128 * 8 * default_technology().pool_op_pj_per_bit)


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (LayerShape("res", "add", 8, 4, 4, 8, 2, 2), r"layer res: add must map C x H x W to C x H x W"),
        (LayerShape("res", "add", 8, 4, 4, 4, 4, 4), r"layer res: add must keep channels, got 8 -> 4"),
        (LayerShape("res", "mul", 8, 4, 4, 8, 4, 4), r"layer res: unknown kind 'mul'"),  # type: ignore[arg-type]
    ],
)
def test_bad_add_layer(layer: LayerShape, match: str) -> None:
    with pytest.raises(CostModelError, match=match):
        network_cost([layer], Accelerator())


def test_bad_dataflow() -> None:
    with pytest.raises(CostModelError, match=r"Accelerator: dataflow must be one of \('auto', 'weight_stationary'.*"
                                             r"got 'row_stationary'"):
        Accelerator(dataflow="row_stationary")  # type: ignore[arg-type]
