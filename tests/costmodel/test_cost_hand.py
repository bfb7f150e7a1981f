"""Golden numbers for a small conv, an FC and a pooling layer, derived by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from costmodel import Accelerator, LayerShape, Technology, load_technology, network_cost


def _acc(input_b: int, weight_b: int, output_b: int, **kw: object) -> Accelerator:
    """An 8-bit accelerator with the first version's dataflow (derived below) and exactly these buffer sizes."""
    total = input_b + weight_b + output_b
    acc = Accelerator(sram_bytes=total, partition=(input_b / total, weight_b / total, output_b / total), bits=8,
                      dataflow="diannao", **kw)
    assert acc.buffer_bytes == (input_b, weight_b, output_b)
    return acc


@pytest.fixture(scope="module")
def unburst(tmp_path_factory: pytest.TempPathFactory) -> Technology:
    """The default technology with 1-byte DRAM bursts, so DRAM bytes equal element counts at 8-bit."""
    path = Path(tmp_path_factory.mktemp("tech")) / "burst1.toml"
    path.write_text("[dram.presets.ddr3_streaming]\nburst_bytes = 1\n")
    return load_technology(path)


# Conv: 2 input channels 6x6, 4 output channels 3x3, stride 1, no padding -> 4x4 outputs. Array tm = tn = 2.
# Buffers at 8-bit (1 element = 1 byte): input 48, weight 36, output 32.
CONV = LayerShape("conv", "conv", 2, 6, 6, 4, 4, 4, 3, 3)
CONV_ACC = dict(tm=2, tn=2)


def test_conv_layer_by_hand(unburst: Technology) -> None:
    # MACs = 4 out x 16 positions x 2 in x 9 = 1152.
    # Weight fit Tm*Tn*9 <= 36 -> Tm*Tn <= 4. Cycles = m_blocks * n_blocks * 16 * 9 with m_blocks = 2 for Tm in {2, 4}
    # (4 for Tm = 1), n_blocks = 1 for Tn = 2 (2 for Tn = 1); the minimum, 288 (= 1152 MACs / 4 lanes), needs
    # Tm = 2, Tn = 2. Output fit 2*Tr*Tc <= 32: all 4x4. Input fit 2*(Tr+2)*(Tc+2) <= 48: Tc = 4 -> Tr = 2.
    # Tiles (2, 2, 2, 4): nm = 2, nn = 1, 2 row tiles x 1 column tile.
    # One input sweep: rows (4-2)*1 + 2*3 = 8 (the 2-row halo is read twice), columns 6 -> 2 * 8 * 6 = 96.
    # m>s>n: inputs 96 x nm = 192, weights 72 once -> 264. s>m>n: inputs 96 once, weights 72 x 2 spatial tiles = 144
    # -> 240: s>m>n wins. Weights + 4 biases = 148; outputs 4 x 16 = 64; total 96 + 148 + 64 = 308 bytes.
    cost = network_cost([CONV], _acc(48, 36, 32, **CONV_ACC), unburst)
    (layer,) = cost.layer_costs
    assert cost.macs == CONV.macs == 1152
    assert layer.tile == (2, 2, 2, 4)
    assert layer.loop_order == "s>m>n"
    assert layer.cycles == 288
    assert (layer.dram_input_bytes, layer.dram_weight_bytes, layer.dram_output_bytes) == (96, 148, 64)
    assert layer.latency_s == pytest.approx(288 / 500e6)  # compute-bound: 308 B at 10.67 GB/s take 29 ns
    # SRAM accesses, in elements: input reads 2 m-blocks x 2 x 16 x 9 = 576 (one read feeds tm = 2 lanes), fills 96;
    # weight reads one per MAC = 1152, fills 148; output: one partial-sum write and one read (the drain) per output.
    (in_r, in_w, _), (w_r, w_w, _), (out_r, out_w, _) = (unburst.sram_pj_per_bit(b) for b in (48, 36, 32))
    assert layer.sram_input_pj == pytest.approx(8 * (576 * in_r + 96 * in_w))
    assert layer.sram_weight_pj == pytest.approx(8 * (1152 * w_r + 148 * w_w))
    assert layer.sram_output_pj == pytest.approx(8 * 64 * (out_r + out_w))
    assert layer.mac_pj == pytest.approx(1152 * unburst.mac_energy_pj(8))
    assert layer.dram_pj == pytest.approx(308 * 8 * 25.0)
    assert cost.weight_bytes == 76  # 72 weights + 4 biases at one byte


def test_conv_dram_rounds_to_bursts() -> None:
    # Default 64-byte bursts, per operand: 96 -> 128, 148 -> 192, 64 -> 64.
    (layer,) = network_cost([CONV], _acc(48, 36, 32, **CONV_ACC)).layer_costs
    assert (layer.dram_input_bytes, layer.dram_weight_bytes, layer.dram_output_bytes) == (128, 192, 64)
    assert layer.dram_bytes == 384


def test_conv_buffer_fit_boundary(unburst: Technology) -> None:
    # One byte less of weight buffer (35): Tm*Tn*9 <= 35 -> Tm*Tn <= 3, so Tm = Tn = 2 no longer fits; the fastest
    # remaining tilings need 576 cycles (Tm = 2, Tn = 1: 2 x 2 blocks; Tm = 1, Tn = 2: 4 x 1 blocks).
    (layer,) = network_cost([CONV], _acc(48, 35, 32, **CONV_ACC), unburst).layer_costs
    assert layer.cycles == 576
    assert layer.tile[0] * layer.tile[1] * 9 <= 35


# FC 64 -> 32 on a 16 x 16 array, 8-bit; buffers input 32, weight 256, output 16 bytes.
FC = LayerShape("fc", "fc", 64, 1, 1, 32, 1, 1)


def test_fc_layer_by_hand(unburst: Technology) -> None:
    # MACs 2048. Fit: Tn <= 32 (input), Tm <= 16 (output), Tm*Tn <= 256 (weights). Cycles = m_blocks * n_blocks:
    # the minimum ceil(32/16) * ceil(64/16) = 8 needs Tm = 16 and Tn in {16, 32}; Tn = 32 breaks the weight buffer.
    # Tiles (16, 16, 1, 1): nm = 2, nn = 4, one spatial tile. Both loop orders read the 64 inputs once per output
    # tile (128) and the 2048 weights once; the tie keeps m>s>n. Weights + 32 biases = 2080; outputs 32.
    cost = network_cost([FC], _acc(32, 256, 16), unburst)
    (layer,) = cost.layer_costs
    assert layer.macs == 2048
    assert layer.tile == (16, 16, 1, 1)
    assert layer.loop_order == "m>s>n"
    assert layer.cycles == 8
    assert (layer.dram_input_bytes, layer.dram_weight_bytes, layer.dram_output_bytes) == (128, 2080, 32)
    assert layer.latency_s == pytest.approx(2240 / 10.67e9)  # DRAM-bound: 2240 B vs 8 cycles = 16 ns
    # Output buffer: one partial-sum write and read per output per input-channel tile: 32 x 4.
    (_, _, _), (_, _, _), (out_r, out_w, _) = (unburst.sram_pj_per_bit(b) for b in (32, 256, 16))
    assert layer.sram_output_pj == pytest.approx(8 * 128 * (out_r + out_w))


def test_fc_dram_rounds_to_bursts() -> None:
    # 128 -> 128, 2080 -> 33 bursts = 2112, 32 -> 64.
    (layer,) = network_cost([FC], _acc(32, 256, 16)).layer_costs
    assert layer.dram_bytes == 128 + 2112 + 64


def test_pooling_by_hand(unburst: Technology) -> None:
    # 2x2 max pooling, stride 2, of 3 channels 4x4 -> 3x2x2: 12 outputs x 4 comparisons = 48 operations; every input
    # read once from DRAM (48 bytes, windows do not overlap), 12 outputs written. On 16 lanes: 1 channel block x
    # 4 positions x 4 window elements = 16 cycles.
    pool = LayerShape("pool", "maxpool", 3, 4, 4, 3, 2, 2, 2, 2, 2)
    (layer,) = network_cost([pool], _acc(64, 64, 64), unburst).layer_costs
    assert (layer.dram_input_bytes, layer.dram_weight_bytes, layer.dram_output_bytes) == (48, 0, 12)
    assert layer.cycles == 16
    assert layer.macs == 0
    assert layer.mac_pj == pytest.approx(48 * 8 * 0.00375)
