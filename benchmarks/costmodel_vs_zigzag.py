"""Cross-check the cost model against ZigZag (`pip install zigzag-dse`, the `bench` extra) on LeNet conv1 and conv2.

Both models price the same DianNao-like design: a 16 x 16 MAC array (K16 x C16: 16 output channels by 16 input
channels), input buffer NBin 2 KB, weight buffer SB 32 KB, output buffer NBout 2 KB, DRAM, 8-bit data; MAC 0.25 pJ,
SRAM (10/64) * sqrt(size / 8 KB) pJ per bit read or written, DRAM 20 pJ per bit (shared/reference-numbers.md), no
leakage, DRAM traffic counted in 64-bit words on both sides. ZigZag searches loop orders for least energy (LOMA);
ours uses the "energy" rule. Known differences: ZigZag keeps 16-bit partial sums in NBout and lets a weight stay at
the SB read port while the output loops run (one SB read serves many MACs), but sends every partial sum through
NBout; our model (DianNao's dataflow) reads a weight per MAC, accumulates in the array and stores `bits`-wide
outputs.

Prints MACs, DRAM bytes and energy (MAC / SRAM / DRAM) side by side, then one JSON line {"mac_ratio": [..],
"dram_ratio": [..], "energy_ratio": [..]} with ours / ZigZag per layer. Exits with status 2 and one line if ZigZag is
not installed.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
from pathlib import Path

from costmodel import Accelerator, LayerShape, load_technology, network_cost

LAYERS = [
    LayerShape("conv1", "conv", 1, 28, 28, 20, 24, 24, 5, 5),
    LayerShape("conv2", "conv", 20, 12, 12, 50, 8, 8, 5, 5),
]
BITS, ARRAY = 8, 16
BUFFERS = {"nbin": 2048, "sb": 32768, "nbout": 2048}  # bytes
MAC_PJ, DRAM_PJ_PER_BIT, DRAM_WORD_BITS = 0.25, 20.0, 64
PSUM_BITS = 16


def sram_pj_per_bit(size_bytes: float) -> float:
    """Horowitz-style SRAM energy: 10 pJ per 64-bit access of an 8 KB array, growing with sqrt(size)."""
    return 10 / 64 * math.sqrt(size_bytes / 8192)


def our_costs() -> list[dict[str, float]]:
    """MACs, DRAM bytes and dynamic energy per layer from costmodel, on the technology above."""
    sizes = [2**k for k in range(10, 17)]
    read = ", ".join(f"{64 * sram_pj_per_bit(s):.6g}" for s in sizes)
    tiny = ", ".join(["1e-12"] * len(sizes))
    tech_toml = f"""
[mac]
preset = "bench"
[mac.presets.bench]
bits = [{BITS}]
mac_pj = [{MAC_PJ}]
[sram]
preset = "bench"
[sram.presets.bench]
size_bytes = [{", ".join(map(str, sizes))}]
read_pj = [{read}]
write_pj = [{read}]
leakage_mw = [{tiny}]
[dram]
preset = "bench"
[dram.presets.bench]
energy_pj_per_bit = {DRAM_PJ_PER_BIT}
burst_bytes = {DRAM_WORD_BITS // 8}
background_mw = 0
bandwidth_bytes_per_s = 10.67e9
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.toml"
        path.write_text(tech_toml)
        tech = load_technology(path)
    total = sum(BUFFERS.values())
    acc = Accelerator(
        tm=ARRAY, tn=ARRAY, bits=BITS, sram_bytes=total, tiling_rule="energy",
        partition=(BUFFERS["nbin"] / total, BUFFERS["sb"] / total, BUFFERS["nbout"] / total),
    )
    rows = []
    for layer in LAYERS:
        (lc,) = network_cost([layer], acc, tech).layer_costs
        rows.append({
            "macs": lc.macs, "dram_bytes": lc.dram_bytes, "energy_pj": lc.energy_pj, "mac_pj": lc.mac_pj,
            "sram_pj": lc.sram_input_pj + lc.sram_weight_pj + lc.sram_output_pj, "dram_pj": lc.dram_pj,
            "dram_bytes_i_w_o": (lc.dram_input_bytes, lc.dram_weight_bytes, lc.dram_output_bytes),
        })
    return rows


def _memory(size_bytes: int, operand: str, port_bits: int, allocations: list[str]) -> dict:
    """A ZigZag SRAM serving the whole array, with one read and one write port of port_bits."""
    cost = port_bits * sram_pj_per_bit(size_bytes)
    reads = [a for a in allocations if a.endswith(("tl", "th"))]
    writes = [a for a in allocations if a.endswith(("fh", "fl"))]
    return {
        "size": size_bytes * 8, "r_cost": cost, "w_cost": cost, "area": 0, "latency": 1, "operands": [operand],
        "ports": [
            {"name": "r_port_1", "type": "read", "bandwidth_min": port_bits, "bandwidth_max": port_bits,
             "allocation": reads},
            {"name": "w_port_1", "type": "write", "bandwidth_min": port_bits, "bandwidth_max": port_bits,
             "allocation": writes},
        ],
        "served_dimensions": ["D1", "D2"],
    }


def zigzag_inputs() -> tuple[dict, list, list]:
    """Hardware, workload and mapping in ZigZag's YAML schema (innermost memory first)."""
    hardware = {
        "name": "diannao_like",
        "memories": {
            "nbout": _memory(BUFFERS["nbout"], "O", ARRAY * PSUM_BITS, ["O, tl", "O, th", "O, fh", "O, fl"]),
            "nbin": _memory(BUFFERS["nbin"], "I1", ARRAY * BITS, ["I1, tl", "I1, fh"]),
            "sb": _memory(BUFFERS["sb"], "I2", ARRAY * ARRAY * BITS, ["I2, tl", "I2, fh"]),
            "dram": {
                "size": 10**10, "r_cost": DRAM_WORD_BITS * DRAM_PJ_PER_BIT, "w_cost": DRAM_WORD_BITS * DRAM_PJ_PER_BIT,
                "area": 0, "latency": 1, "operands": ["I1", "I2", "O"],
                "ports": [{
                    "name": "rw_port_1", "type": "read_write", "bandwidth_min": DRAM_WORD_BITS,
                    "bandwidth_max": DRAM_WORD_BITS,
                    "allocation": ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"],
                }],
                "served_dimensions": ["D1", "D2"],
            },
        },
        "operational_array": {"unit_energy": MAC_PJ, "unit_area": 1, "dimensions": ["D1", "D2"],
                              "sizes": [ARRAY, ARRAY]},
    }
    workload = [
        {
            "id": i, "name": layer.name, "operator_type": "Conv",
            "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
            "dimension_relations": [f"ix={layer.stride}*ox+1*fx", f"iy={layer.stride}*oy+1*fy"],
            "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
            "loop_sizes": [1, layer.out_channels, layer.in_channels, layer.out_h, layer.out_w, layer.kernel_h,
                           layer.kernel_w],
            "operand_precision": {"W": BITS, "I": BITS, "O": PSUM_BITS, "O_final": BITS},
            "operand_source": {"I": i, "W": i},
        }
        for i, layer in enumerate(LAYERS)
    ]
    mapping = [{"name": "default", "spatial_mapping": {"D1": [f"K, {ARRAY}"], "D2": [f"C, {ARRAY}"]},
                "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]
    return hardware, workload, mapping


def zigzag_costs() -> list[dict[str, float]]:
    """MACs, DRAM bytes and energy per layer from ZigZag's least-energy mapping."""
    import yaml
    from zigzag.api import get_hardware_performance_zigzag
    from zigzag.hardware.architecture.memory_port import DataDirection

    logging.disable(logging.CRITICAL)
    hardware, workload, mapping = zigzag_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, data in (("hardware", hardware), ("workload", workload), ("mapping", mapping)):
            paths[name] = Path(tmp) / f"{name}.yaml"
            paths[name].write_text(yaml.safe_dump(data, sort_keys=False))
        _, _, cmes = get_hardware_performance_zigzag(
            str(paths["workload"]), str(paths["hardware"]), str(paths["mapping"]), opt="energy",
            dump_folder=str(Path(tmp) / "out"), loma_show_progress_bar=False,
        )
    rows = []
    for cme, _ in cmes[0][1]:
        words = {str(op): sum(levels[-1].get(d) for d in DataDirection) for op, levels in cme.memory_word_access.items()}
        dram_bytes = {op: count * DRAM_WORD_BITS // 8 for op, count in words.items()}
        dram_pj = sum(levels[-1] for levels in cme.mem_energy_breakdown.values())
        rows.append({
            "macs": cme.layer.total_mac_count, "dram_bytes": sum(dram_bytes.values()), "energy_pj": cme.energy_total,
            "mac_pj": cme.mac_energy, "sram_pj": cme.mem_energy - dram_pj, "dram_pj": dram_pj,
            "dram_bytes_i_w_o": (dram_bytes["I"], dram_bytes["W"], dram_bytes["O"]),
        })
    return rows


def main() -> None:
    """Run both models and print the comparison."""
    try:
        import zigzag  # noqa: F401
    except ImportError as exc:
        print(f"zigzag-dse is not installed ({exc}); install it with: pip install zigzag-dse", file=sys.stderr)
        sys.exit(2)
    ours, theirs = our_costs(), zigzag_costs()
    ratios: dict[str, list[float]] = {"mac_ratio": [], "dram_ratio": [], "energy_ratio": []}
    print(f"{'layer':<6} {'quantity':<16} {'ours':>22} {'zigzag':>22} {'ratio':>7}")
    for layer, mine, peer in zip(LAYERS, ours, theirs):
        for key in ("macs", "dram_bytes", "dram_bytes_i_w_o", "energy_pj", "mac_pj", "sram_pj", "dram_pj"):
            if key == "dram_bytes_i_w_o":
                print(f"{layer.name:<6} {key:<16} {str(mine[key]):>22} {str(peer[key]):>22}")
                continue
            ratio = mine[key] / peer[key]
            print(f"{layer.name:<6} {key:<16} {mine[key]:>22,.0f} {peer[key]:>22,.0f} {ratio:>7.3f}")
        for key, label in (("macs", "mac"), ("dram_bytes", "dram"), ("energy_pj", "energy")):
            ratios[f"{label}_ratio"].append(round(mine[key] / peer[key], 4))
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
