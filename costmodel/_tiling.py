"""Per-layer tiling (Zhang et al., FPGA 2015) and pricing on the tile accelerator.

Every candidate tiling of a layer is evaluated at once with numpy: buffer fit, DRAM traffic under two loop orders,
compute cycles, SRAM accesses, energy and roofline latency; the accelerator's rule then picks one.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np

from costmodel._accelerator import Accelerator
from costmodel._cost import LayerCost
from costmodel._errors import CostModelError
from costmodel._layers import LayerShape
from costmodel._technology import Technology

_MAX_SPLIT = 16  # balanced splits of a loop into 1.._MAX_SPLIT tiles are candidates


class TilingError(CostModelError):
    """No tiling of a layer fits the buffers."""


@cache
def _tile_sizes(extent: int, lanes: int) -> np.ndarray:
    """Candidate tile sizes for a loop of `extent`: balanced splits, powers of two, and both rounded up to `lanes`.

    Largest first, so that among equally good tilings the rule keeps the one with the largest tiles.
    """
    sizes = {-(-extent // k) for k in range(1, _MAX_SPLIT + 1)}
    sizes.update(1 << j for j in range(extent.bit_length()) if 1 << j < extent)
    sizes |= {min(extent, -(-s // lanes) * lanes) for s in sizes}
    return np.array(sorted(sizes, reverse=True), dtype=np.int64)


def _ceil_div(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Integer ceil(a / b) for ints and integer arrays."""
    return -(-a // b)


def _lane_blocks(extent: int, tile: np.ndarray, lanes: int) -> np.ndarray:
    """Array passes over a loop of `extent` cut into tiles of `tile`, each tile padded to whole `lanes`."""
    return (extent // tile) * _ceil_div(tile, lanes) + _ceil_div(extent % tile, lanes)


def _span(n_tiles: np.ndarray, out_len: int, in_len: int, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Input rows (or columns) read over one sweep of n_tiles output tiles: halos re-read, border padding skipped."""
    bottom_pad = max(0, (out_len - 1) * stride - pad + kernel - in_len)
    return (out_len - n_tiles) * stride + n_tiles * kernel - min(pad, kernel) - bottom_pad


def _rows_fitting(cap: int, per_row: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Most output rows whose input window ((rows - 1) * stride + kernel rows of per_row elements) fits cap."""
    return (cap // per_row - kernel) // stride + 1


@lru_cache(maxsize=1 << 16)
def layer_cost(layer: LayerShape, acc: Accelerator, tech: Technology, reads_partial_sums: bool = False) -> LayerCost:
    """Price one layer under the accelerator's tiling rule; memoised.

    reads_partial_sums: the outputs start from partial sums stored in DRAM (an incremental stage extending the
    output channels of an earlier stage), which are read back through the output buffer.
    """
    _check_layer(layer)
    caps = tuple(b * 8 // acc.bits for b in acc.buffer_bytes)  # buffer capacities in elements
    candidates = _weighted(layer, acc, caps) if layer.has_weights else _pooling(layer, acc, caps)
    if candidates is None:
        raise TilingError(
            f"layer {layer.name} ({layer.kind} {layer.in_channels}x{layer.in_h}x{layer.in_w} -> "
            f"{layer.out_channels}x{layer.out_h}x{layer.out_w}, kernel {layer.kernel_h}x{layer.kernel_w}) fits no "
            f"tiling in buffers input/weight/output = {'/'.join(map(str, acc.buffer_bytes))} B at {acc.bits}-bit"
        )
    return _select(layer, acc, tech, reads_partial_sums, candidates)


def _check_layer(layer: LayerShape) -> None:
    """Reject shapes the tiling cannot price."""
    dims = ("in_channels", "in_h", "in_w", "out_channels", "out_h", "out_w", "kernel_h", "kernel_w", "stride", "groups")
    for name in dims:
        value = getattr(layer, name)
        if not isinstance(value, int) or value < 1:
            raise CostModelError(f"layer {layer.name}: {name} must be a positive integer, got {value!r}")
    if layer.pad < 0:
        raise CostModelError(f"layer {layer.name}: pad must be non-negative, got {layer.pad}")
    if layer.kind not in ("conv", "fc", "maxpool", "avgpool"):
        raise CostModelError(f"layer {layer.name}: unknown kind {layer.kind!r}")
    if layer.in_channels % layer.groups or layer.out_channels % layer.groups:
        raise CostModelError(
            f"layer {layer.name}: groups={layer.groups} must divide in_channels={layer.in_channels} and "
            f"out_channels={layer.out_channels}"
        )
    if not layer.has_weights and layer.out_channels != layer.in_channels:
        raise CostModelError(
            f"layer {layer.name}: pooling must keep channels, got {layer.in_channels} -> {layer.out_channels}"
        )


class _Candidates(NamedTuple):
    """Fitting tilings of one layer, one entry per candidate (scalars broadcast)."""

    tiles: np.ndarray  # (n, 4): output channels, input channels, output rows, output columns per tile
    order_sm: np.ndarray | None  # True: loop order s>m>n, False: m>s>n, None: pooling
    cycles: np.ndarray
    in_elems: np.ndarray  # DRAM reads into the input buffer (= its fills)
    w_elems: np.ndarray | int  # DRAM reads into the weight buffer, biases included
    in_reads: np.ndarray | int  # input-buffer reads by the array
    w_reads: int  # weight-buffer reads by the array
    out_accesses: np.ndarray | int  # output-buffer writes, and as many reads (partial sums, final drain)


def _spatial_fit(layer: LayerShape, caps: tuple[int, int, int], chan_in: np.ndarray, chan_out: np.ndarray,
                 cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each (input channels, output channels, columns) tile: fitting mask, balanced rows, row and column tiles."""
    s, kh, kw = layer.stride, layer.kernel_h, layer.kernel_w
    in_cap, _, out_cap = caps
    rows_max = np.minimum(_rows_fitting(in_cap, chan_in * ((cols - 1) * s + kw), kh, s), out_cap // (chan_out * cols))
    rows_max = np.minimum(rows_max, layer.out_h)
    fits = rows_max >= 1
    n_rows = _ceil_div(layer.out_h, np.maximum(rows_max, 1))
    return fits, _ceil_div(layer.out_h, n_rows), n_rows, _ceil_div(layer.out_w, cols)


def _input_sweep(layer: LayerShape, channels: int, n_rows: np.ndarray, n_cols: np.ndarray) -> np.ndarray:
    """Input elements read from DRAM by one sweep over all spatial tiles."""
    s, p = layer.stride, layer.pad
    rows = _span(n_rows, layer.out_h, layer.in_h, layer.kernel_h, s, p)
    cols = _span(n_cols, layer.out_w, layer.in_w, layer.kernel_w, s, p)
    return channels * rows * cols


def _weighted(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Candidates | None:
    """Conv/FC candidates per group; loops: m (output-channel tiles), s (spatial tiles), n (input-channel tiles)."""
    g = layer.groups
    m_all, n_all, k2 = layer.out_channels // g, layer.in_channels // g, layer.kernel_h * layer.kernel_w
    r, c = layer.out_h, layer.out_w
    tm, tn, tc = (a.ravel() for a in np.meshgrid(_tile_sizes(m_all, acc.tm), _tile_sizes(n_all, acc.tn),
                                                 _tile_sizes(c, 1), indexing="ij"))
    fits, tr, n_rows, n_cols = _spatial_fit(layer, caps, tn, tm, tc)
    fits &= tm * tn * k2 <= caps[1]
    if not fits.any():
        return None
    tm, tn, tc, tr, n_rows, n_cols = (a[fits] for a in (tm, tn, tc, tr, n_rows, n_cols))
    nm, nn, ns = _ceil_div(m_all, tm), _ceil_div(n_all, tn), n_rows * n_cols
    sweep, weights = _input_sweep(layer, n_all, n_rows, n_cols), m_all * n_all * k2
    one_n = nn == 1
    # m>s>n: the weight tile stays resident across spatial tiles if a single input-channel tile exists; the input
    # stays resident across output-channel tiles only if it is a single tile altogether.
    in_ms = np.where(one_n & (ns == 1), sweep, sweep * nm)
    w_ms = np.where(one_n, weights, weights * ns)
    # s>m>n: the input tile stays resident across output-channel tiles if a single input-channel tile exists.
    in_sm = np.where(one_n, sweep, sweep * nm)
    w_sm = np.where(one_n & (nm == 1), weights, weights * ns)
    order_sm = in_sm + w_sm < in_ms + w_ms
    in_elems = g * np.where(order_sm, in_sm, in_ms)
    w_elems = g * np.where(order_sm, w_sm, w_ms) + layer.bias_count
    m_blocks = _lane_blocks(m_all, tm, acc.tm)
    cycles = g * m_blocks * _lane_blocks(n_all, tn, acc.tn) * r * c * k2
    in_reads = g * m_blocks * n_all * r * c * k2  # each input read once per pass of tm output lanes
    out_accesses = layer.output_count * nn  # one partial-sum write (and read, or final drain) per input-channel tile
    return _Candidates(np.stack([tm, tn, tr, tc], axis=1), order_sm, cycles, in_elems, w_elems, in_reads, layer.macs,
                       out_accesses)


def _pooling(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Candidates | None:
    """Pooling candidates: channel tiles over the tm output lanes, spatial tiles; each input read once per window."""
    channels, k2 = layer.in_channels, layer.kernel_h * layer.kernel_w
    tch, tc = (a.ravel() for a in np.meshgrid(_tile_sizes(channels, acc.tm), _tile_sizes(layer.out_w, 1), indexing="ij"))
    fits, tr, n_rows, n_cols = _spatial_fit(layer, caps, tch, tch, tc)
    if not fits.any():
        return None
    tch, tc, tr, n_rows, n_cols = (a[fits] for a in (tch, tc, tr, n_rows, n_cols))
    in_elems = _input_sweep(layer, channels, n_rows, n_cols)
    cycles = _lane_blocks(channels, tch, acc.tm) * layer.out_h * layer.out_w * k2
    return _Candidates(np.stack([tch, tch, tr, tc], axis=1), None, cycles, in_elems, 0, layer.pool_ops, 0,
                       layer.output_count)


def _select(layer: LayerShape, acc: Accelerator, tech: Technology, reads_partial_sums: bool,
            cand: _Candidates) -> LayerCost:
    """Price every candidate and keep the one the accelerator's tiling rule prefers."""
    bits, burst, outputs = acc.bits, tech.dram_burst_bytes, layer.output_count
    cycles, in_elems, w_elems, in_reads, out_accesses = np.broadcast_arrays(
        cand.cycles, cand.in_elems, cand.w_elems, cand.in_reads, cand.out_accesses + outputs * reads_partial_sums
    )

    def dram_bytes(elems: np.ndarray | int) -> np.ndarray:
        """Bytes moved for `elems` elements, rounded up to whole DRAM bursts."""
        return _ceil_div(_ceil_div(elems * bits, 8), burst) * burst

    in_bytes, w_bytes = dram_bytes(in_elems), dram_bytes(w_elems)
    out_bytes = int(dram_bytes(outputs * (1 + reads_partial_sums)))
    total_bytes = in_bytes + w_bytes + out_bytes
    (in_r, in_w, in_leak), (w_r, w_w, w_leak), (out_r, out_w, out_leak) = (
        tech.sram_pj_per_bit(size) for size in acc.buffer_bytes
    )
    sram_in = bits * (in_reads * in_r + in_elems * in_w)
    sram_w = bits * (cand.w_reads * w_r + w_elems * w_w)
    sram_out = bits * out_accesses * (out_r + out_w)
    if layer.has_weights:
        arith = layer.macs * tech.mac_energy_pj(bits)
    else:
        arith = layer.pool_ops * tech.pool_op_energy_pj(bits)
    dram = total_bytes * 8 * tech.dram_energy_pj_per_bit
    latency = np.maximum(cycles / acc.clock_hz, total_bytes / tech.dram_bandwidth_bytes_per_s)
    leakage = (in_leak + w_leak + out_leak + tech.dram_background_mw) * 1e9 * latency  # mW x s -> pJ
    energy = arith + sram_in + sram_w + sram_out + dram + leakage
    keys = {  # np.lexsort sorts by the last key first
        "fastest": (energy, total_bytes, cycles),
        "energy": (total_bytes, cycles, energy),
        "dram": (energy, cycles, total_bytes),
    }[acc.tiling_rule]
    best = int(np.lexsort(keys)[0])
    if cand.order_sm is None:
        loop_order = "c>s"
    else:
        loop_order = "s>m>n" if cand.order_sm[best] else "m>s>n"
    return LayerCost(
        name=layer.name,
        kind=layer.kind,
        tile=tuple(int(t) for t in cand.tiles[best]),
        loop_order=loop_order,
        mac_pj=float(arith),
        sram_input_pj=float(sram_in[best]),
        sram_weight_pj=float(sram_w[best]),
        sram_output_pj=float(sram_out[best]),
        dram_pj=float(dram[best]),
        leakage_pj=float(leakage[best]),
        latency_s=float(latency[best]),
        cycles=int(cycles[best]),
        dram_bytes=int(total_bytes[best]),
        dram_input_bytes=int(in_bytes[best]),
        dram_weight_bytes=int(w_bytes[best]),
        dram_output_bytes=out_bytes,
        weight_bytes=-(-(layer.weight_count + layer.bias_count) * bits // 8),
        macs=layer.macs,
    )
