"""Brute-force loop-nest simulator: runs a conv/FC layer tile by tile and cycle by cycle, counting buffer accesses.

The slow, obvious reference for `costmodel._mapping.accesses`. Each buffer holds one tile of its operand; a tile is
fetched from DRAM when the next tile step needs a different one (input windows clipped to the unpadded map), and an
output tile left unfinished is drained to DRAM and reloaded on its next visit; a buffer large enough for its
operand's whole data (of the groups in the tile) loads it on first use and keeps it. Inside a tile, every array cycle is
enumerated: the stationary operand sits in a per-lane register and is read only when the lane needs another value;
the others are read every cycle (output_stationary: per-lane accumulators, written back when the lane moves on).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from costmodel import LayerShape


@dataclass(frozen=True)
class Tiling:
    """One tiling: groups per tile (packed groups share the array `packed` at a time), channels and positions."""

    groups: int
    tm: int
    tn: int
    tr: int
    tc: int
    packed: int = 1


_INNER = {  # loops inside a tile pass, outer to inner: m-block, position, n-block, kernel offset
    "output_stationary": ("mb", "pos", "nb", "k"),
    "weight_stationary": ("mb", "nb", "k", "pos"),
    "input_stationary": ("nb", "k", "pos", "mb"),
}


def _chunks(start: int, stop: int, size: int) -> list[range]:
    """[start, stop) cut into consecutive ranges of at most `size`."""
    return [range(lo, min(lo + size, stop)) for lo in range(start, stop, size)]


def simulate(layer: LayerShape, array: tuple[int, int], tiling: Tiling, stationarity: str, order: str,
             caps: tuple[int, int, int] | None = None) -> Counter:
    """Access counts (elements) of `layer` on a tm x tn `array` under one tiling, stationarity and tile-loop order.

    caps: buffer capacities (input, weight, output) in elements; None never keeps a whole operand.
    """
    lanes_m, lanes_n = array
    g, s, pad = layer.groups, layer.stride, layer.pad
    m_g, n_g = layer.out_channels // g, layer.in_channels // g
    kernel = list(itertools.product(range(layer.kernel_h), range(layer.kernel_w)))
    spatial = [(rows, cols) for rows in _chunks(0, layer.out_h, tiling.tr)
               for cols in _chunks(0, layer.out_w, tiling.tc)]
    trips = {"m": _chunks(0, m_g, tiling.tm), "s": spatial, "n": _chunks(0, n_g, tiling.tn)}
    count: Counter = Counter(w_fills=layer.bias_count)
    resident: dict[str, tuple | None] = {"input": None, "weight": None, "output": None}
    in_buffer: set = set()  # outputs holding a partial sum in the output buffer
    drained: set = set()  # outputs whose partial sum was drained to DRAM

    def valid(window: range, size: int) -> int:
        """Positions of an input window inside the unpadded map."""
        return sum(0 <= i < size for i in window)

    def drain(tile_outputs: list) -> None:
        """Write the resident output tile to DRAM."""
        for out in tile_outputs:
            count["out_reads"] += 1
            count["out_dram"] += 1
            in_buffer.discard(out)
            drained.add(out)

    tile_outputs: list = []
    loop_names = order.split(">")
    all_rows = range(-pad, (layer.out_h - 1) * s - pad + layer.kernel_h)
    all_cols = range(-pad, (layer.out_w - 1) * s - pad + layer.kernel_w)
    whole = (tiling.groups * n_g * valid(all_rows, layer.in_h) * valid(all_cols, layer.in_w),
             tiling.groups * m_g * n_g * len(kernel), tiling.groups * m_g * layer.out_h * layer.out_w)
    kept = {name: caps is not None and size <= cap for name, size, cap in zip(resident, whole, caps or (0, 0, 0))}
    for groups in _chunks(0, g, tiling.groups):
        for steps in itertools.product(*(range(len(trips[name])) for name in loop_names)):
            idx = dict(zip(loop_names, steps))
            ms, (rows, cols), ns = trips["m"][idx["m"]], trips["s"][idx["s"]], trips["n"][idx["n"]]
            keys = {"input": (groups, idx["n"], idx["s"]), "weight": (groups, idx["m"], idx["n"]),
                    "output": (groups, idx["m"], idx["s"])}
            keys = {name: (groups,) if kept[name] else key for name, key in keys.items()}
            if keys["input"] != resident["input"]:
                in_rows = all_rows if kept["input"] else range(rows[0] * s - pad, rows[-1] * s - pad + layer.kernel_h)
                in_cols = all_cols if kept["input"] else range(cols[0] * s - pad, cols[-1] * s - pad + layer.kernel_w)
                channels = n_g if kept["input"] else len(ns)
                count["in_fills"] += len(groups) * channels * valid(in_rows, layer.in_h) * valid(in_cols, layer.in_w)
            if keys["weight"] != resident["weight"]:
                count["w_fills"] += len(groups) * (m_g * n_g if kept["weight"] else len(ms) * len(ns)) * len(kernel)
            if keys["output"] != resident["output"]:
                drain(tile_outputs)
                out_m, out_rows, out_cols = ((range(m_g), range(layer.out_h), range(layer.out_w)) if kept["output"]
                                             else (ms, rows, cols))
                tile_outputs = [(gr, m, y, x) for gr in groups for m in out_m for y in out_rows for x in out_cols]
                for out in tile_outputs:
                    if out in drained:
                        count["out_dram"] += 1  # partial sum read back
                        count["out_writes"] += 1
                        in_buffer.add(out)
                        drained.discard(out)
            resident.update(keys)
            for passed in _chunks(groups.start, groups.stop, tiling.packed):
                _run_tile(layer, (lanes_m, lanes_n), stationarity, passed, ms, ns, rows, cols, kernel, count,
                          in_buffer)
    drain(tile_outputs)
    return count


def _run_tile(layer: LayerShape, array: tuple[int, int], stationarity: str, groups: range, ms: range, ns: range,
              rows: range, cols: range, kernel: list, count: Counter, in_buffer: set) -> None:
    """Every array cycle of one tile pass over `groups` run side by side."""
    lanes_m, lanes_n = array
    blocks = {
        "mb": _chunks(ms.start, ms.stop, lanes_m) if len(groups) == 1 else [ms],
        "nb": _chunks(ns.start, ns.stop, lanes_n) if len(groups) == 1 else [ns],
        "pos": [(y, x) for y in rows for x in cols],
        "k": kernel,
    }
    names = _INNER[stationarity]
    registers: dict = {}
    accumulators: dict = {}

    def read_psum(out: tuple) -> None:
        """The array takes an output's running sum: from the buffer if it holds one."""
        if out in in_buffer:
            count["out_reads"] += 1

    def write_psum(out: tuple) -> None:
        """The array stores an output's running sum in the buffer."""
        count["out_writes"] += 1
        in_buffer.add(out)

    for values in itertools.product(*(blocks[name] for name in names)):
        at = dict(zip(names, values))
        (y, x), (ky, kx) = at["pos"], at["k"]
        iy, ix = y * layer.stride - layer.pad + ky, x * layer.stride - layer.pad + kx
        count["cycles"] += 1
        out_lanes = [(gr, m) for gr in groups for m in at["mb"]]
        in_lanes = [(gr, n) for gr in groups for n in at["nb"]]
        for lane, (gr, n) in enumerate(in_lanes):
            value = (gr, n, iy, ix)
            if stationarity != "input_stationary" or registers.get(("in", lane)) != value:
                count["in_reads"] += 1
                registers[("in", lane)] = value
        for lane_m, (gr, m) in enumerate(out_lanes):
            for lane_n, (gr_n, n) in enumerate(in_lanes):
                if gr_n != gr:
                    continue
                count["macs"] += 1
                weight = (gr, m, n, ky, kx)
                if stationarity != "weight_stationary" or registers.get(("w", lane_m, lane_n)) != weight:
                    count["w_reads"] += 1
                    registers[("w", lane_m, lane_n)] = weight
            out = (gr, m, y, x)
            if stationarity == "output_stationary":
                if accumulators.get(lane_m) != out:
                    if lane_m in accumulators:
                        write_psum(accumulators[lane_m])
                    read_psum(out)
                    accumulators[lane_m] = out
            else:
                read_psum(out)
                write_psum(out)
    for out in accumulators.values():
        write_psum(out)
