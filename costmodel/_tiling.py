"""Per-layer tiling (Zhang et al., FPGA 2015), mapping and pricing on the tile accelerator.

Every candidate tiling and mapping of a layer is evaluated at once with numpy: buffer fit, DRAM traffic, compute
cycles, SRAM accesses (`costmodel._mapping`), energy and roofline latency; the accelerator's rule then picks one.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import NamedTuple, get_args

import numpy as np

from costmodel._accelerator import Accelerator
from costmodel._cost import LayerCost
from costmodel._errors import CostModelError
from costmodel._layers import LayerKind, LayerShape
from costmodel._mapping import DIANNAO_ORDERS, STATIONARITIES, TILE_ORDERS, Accesses, TileLoops, accesses
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
    tilings = _weighted if layer.has_weights else _eltwise if layer.kind == "add" else _pooling
    candidates = tilings(layer, acc, caps)
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
    if layer.kind not in get_args(LayerKind):
        raise CostModelError(f"layer {layer.name}: unknown kind {layer.kind!r}")
    if layer.in_channels % layer.groups or layer.out_channels % layer.groups:
        raise CostModelError(
            f"layer {layer.name}: groups={layer.groups} must divide in_channels={layer.in_channels} and "
            f"out_channels={layer.out_channels}"
        )
    if not layer.has_weights and layer.out_channels != layer.in_channels:
        raise CostModelError(
            f"layer {layer.name}: {layer.kind} must keep channels, got {layer.in_channels} -> {layer.out_channels}"
        )
    same_map = (layer.in_h, layer.in_w, layer.kernel_h, layer.kernel_w, layer.stride, layer.pad) == (
        layer.out_h, layer.out_w, 1, 1, 1, 0)
    if layer.kind == "add" and not same_map:
        raise CostModelError(
            f"layer {layer.name}: add must map C x H x W to C x H x W with a 1x1 kernel, stride 1, no padding, got "
            f"{layer.in_h}x{layer.in_w} -> {layer.out_h}x{layer.out_w}, kernel {layer.kernel_h}x{layer.kernel_w}, "
            f"stride {layer.stride}, pad {layer.pad}"
        )


class _Candidates(NamedTuple):
    """Fitting tilings (T) of one layer under S stationarities and O tile-loop orders; counts broadcast to (S, O, T)."""

    tiles: np.ndarray  # (T, 4): output channels, input channels, output rows, output columns per tile
    cycles: np.ndarray  # (T,)
    counts: Accesses
    mappings: tuple[str, ...]  # (S,) stationarity names, ("diannao",) or ("streaming",) (pooling, element-wise add)
    loop_orders: np.ndarray  # loop-order names broadcastable to (O, T)


class _Tilings(NamedTuple):
    """Fitting tilings of a conv/FC layer before a mapping is chosen."""

    tiles: np.ndarray
    cycles: np.ndarray
    loops: TileLoops


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


def _input_sweep(layer: LayerShape, channels: np.ndarray | int, n_rows: np.ndarray, n_cols: np.ndarray) -> np.ndarray:
    """Input elements read from DRAM by one sweep over all spatial tiles."""
    s, p = layer.stride, layer.pad
    rows = _span(n_rows, layer.out_h, layer.in_h, layer.kernel_h, s, p)
    cols = _span(n_cols, layer.out_w, layer.in_w, layer.kernel_w, s, p)
    return channels * rows * cols


def _group_tilings(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int],
                   keep_whole: bool = True) -> _Tilings | None:
    """Tilings computing one group at a time: Tm x Tn channel tiles of the group on the tm x tn array.

    keep_whole: a buffer that can hold its operand's whole data for the group keeps it (see `costmodel._mapping`).
    """
    g = layer.groups
    m_all, n_all, k2 = layer.out_channels // g, layer.in_channels // g, layer.kernel_h * layer.kernel_w
    tm, tn, tc = (a.ravel() for a in np.meshgrid(_tile_sizes(m_all, acc.tm), _tile_sizes(n_all, acc.tn),
                                                 _tile_sizes(layer.out_w, 1), indexing="ij"))
    fits, tr, n_rows, n_cols = _spatial_fit(layer, caps, tn, tm, tc)
    fits &= tm * tn * k2 <= caps[1]
    if not fits.any():
        return None
    tm, tn, tc, tr, n_rows, n_cols = (a[fits] for a in (tm, tn, tc, tr, n_rows, n_cols))
    m_blocks, n_blocks = _lane_blocks(m_all, tm, acc.tm), _lane_blocks(n_all, tn, acc.tn)
    loops = TileLoops(nm=_ceil_div(m_all, tm), nn=_ceil_div(n_all, tn), ns=n_rows * n_cols, m_blocks=m_blocks,
                      n_blocks=n_blocks, sweep=_input_sweep(layer, n_all, n_rows, n_cols),
                      **_residency(layer, caps, 1, keep_whole))
    cycles = g * m_blocks * n_blocks * layer.out_h * layer.out_w * k2
    return _Tilings(np.stack([tm, tn, tr, tc], axis=1), cycles, loops)


def _residency(layer: LayerShape, caps: tuple[int, int, int], groups: np.ndarray | int,
               keep_whole: bool) -> dict[str, np.ndarray]:
    """TileLoops fields saying which buffers hold their operand's whole data for `groups` groups at a time."""
    g = layer.groups
    m_all, n_all, k2 = layer.out_channels // g, layer.in_channels // g, layer.kernel_h * layer.kernel_w
    whole_input = _input_sweep(layer, n_all, 1, 1)
    sizes = (groups * whole_input, groups * m_all * n_all * k2, groups * m_all * layer.out_h * layer.out_w)
    kept = (np.asarray(size <= cap) & keep_whole for size, cap in zip(sizes, caps))
    return dict(zip(("input_resident", "weight_resident", "output_resident"), kept), whole_input=whole_input)


def _packed_tilings(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Tilings | None:
    """Tilings of small groups (e.g. depthwise) packed side by side on the array's diagonal, whole groups per tile.

    p groups run at once when p x (group output channels) <= tm and p x (group input channels) <= tn; each input
    still feeds only its own group's output channels. None when fewer than two groups fit the array.
    """
    g = layer.groups
    m_all, n_all, k2 = layer.out_channels // g, layer.in_channels // g, layer.kernel_h * layer.kernel_w
    packed = min(acc.tm // m_all, acc.tn // n_all) if m_all <= acc.tm and n_all <= acc.tn else 1
    if packed < 2 or g < 2:
        return None
    tg, tc = (a.ravel() for a in np.meshgrid(_tile_sizes(g, packed), _tile_sizes(layer.out_w, 1), indexing="ij"))
    fits, tr, n_rows, n_cols = _spatial_fit(layer, caps, tg * n_all, tg * m_all, tc)
    fits &= tg * m_all * n_all * k2 <= caps[1]
    if not fits.any():
        return None
    tg, tc, tr, n_rows, n_cols = (a[fits] for a in (tg, tc, tr, n_rows, n_cols))
    one = np.ones_like(tg)
    loops = TileLoops(nm=one, nn=one, ns=n_rows * n_cols, m_blocks=one, n_blocks=one,
                      sweep=_input_sweep(layer, n_all, n_rows, n_cols), **_residency(layer, caps, tg, True))
    cycles = _lane_blocks(g, tg, packed) * layer.out_h * layer.out_w * k2
    return _Tilings(np.stack([tg * m_all, tg * n_all, tr, tc], axis=1), cycles, loops)


def _weighted(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Candidates | None:
    """Conv/FC candidates: every fitting tiling under every mapping the accelerator's dataflow allows."""
    if acc.dataflow == "diannao":
        return _diannao(layer, acc, caps)
    families = [t for t in (_group_tilings(layer, acc, caps), _packed_tilings(layer, acc, caps)) if t is not None]
    if not families:
        return None
    sizes = [len(f.cycles) for f in families]

    def cat(values: list[np.ndarray]) -> np.ndarray:
        """Concatenate per-family values, each broadcast to its family's tilings."""
        return np.concatenate([np.broadcast_to(v, (n,) + np.shape(v)[1:]) for v, n in zip(values, sizes)])

    loops = TileLoops(*(cat(list(values)) for values in zip(*(f.loops for f in families))))
    stationarities = STATIONARITIES if acc.dataflow == "auto" else (acc.dataflow,)
    counts = accesses(layer, loops, stationarities, TILE_ORDERS)
    return _Candidates(cat([f.tiles for f in families]), cat([f.cycles for f in families]), counts, stationarities,
                       np.array(TILE_ORDERS)[:, None])


def _diannao(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Candidates | None:
    """The first version's candidates: one group at a time, output-stationary, n innermost, fewer DRAM elements."""
    tilings = _group_tilings(layer, acc, caps, keep_whole=False)
    if tilings is None:
        return None
    ms, sm = (accesses(layer, tilings.loops, ("output_stationary",), (order,)) for order in DIANNAO_ORDERS)
    order_sm = sm.in_fills + sm.w_fills < ms.in_fills + ms.w_fills
    counts = Accesses(*(np.where(order_sm, b, a) for a, b in zip(ms, sm)))
    return _Candidates(tilings.tiles, tilings.cycles, counts, ("diannao",),
                       np.where(order_sm, DIANNAO_ORDERS[1], DIANNAO_ORDERS[0]).reshape(1, -1))


def _streamed(tiles: np.ndarray, cycles: np.ndarray, loop_order: str, counts: Accesses) -> _Candidates:
    """Candidates of a layer without weights: one "streaming" mapping, one loop order."""
    return _Candidates(tiles, cycles, counts, ("streaming",), np.full((1, len(cycles)), loop_order))


def _channel_column_tiles(layer: LayerShape, acc: Accelerator) -> tuple[np.ndarray, np.ndarray]:
    """Every (channels over the tm lanes, output columns) tile pair of a layer without weights."""
    grids = np.meshgrid(_tile_sizes(layer.in_channels, acc.tm), _tile_sizes(layer.out_w, 1), indexing="ij")
    return grids[0].ravel(), grids[1].ravel()


def _streaming(layer: LayerShape, in_fills: np.ndarray | int, in_reads: int,
               out_accesses: np.ndarray | int) -> Accesses:
    """Counts of a layer without weights: no weight buffer traffic, outputs written to DRAM once."""
    return Accesses(in_fills=in_fills, in_reads=in_reads, w_fills=0, w_reads=0, out_accesses=out_accesses,
                    out_dram=layer.output_count)


def _pooling(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Candidates | None:
    """Pooling candidates: channel tiles over the tm output lanes, spatial tiles; each input read once per window."""
    channels, k2 = layer.in_channels, layer.kernel_h * layer.kernel_w
    if (layer.kernel_h, layer.kernel_w, layer.pad) == (layer.in_h, layer.in_w, 0):
        return _global_chunks(layer, acc, caps)
    tch, tc = _channel_column_tiles(layer, acc)
    fits, tr, n_rows, n_cols = _spatial_fit(layer, caps, tch, tch, tc)
    if not fits.any():
        return None
    tch, tc, tr, n_rows, n_cols = (a[fits] for a in (tch, tc, tr, n_rows, n_cols))
    in_elems = _input_sweep(layer, channels, n_rows, n_cols)
    cycles = _lane_blocks(channels, tch, acc.tm) * layer.out_h * layer.out_w * k2
    return _streamed(np.stack([tch, tch, tr, tc], axis=1), cycles, "c>s",
                     _streaming(layer, in_elems, layer.pool_ops, layer.output_count))


def _global_chunks(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Candidates | None:
    """Global pool (kernel = input size): channel tiles x chunks of input rows streamed through the input buffer.

    The running max/sum of each output stays in the output buffer: one write and one read per output per chunk, so
    any buffer holding one input row of one channel fits; a single chunk is the whole window.
    """
    channels = layer.in_channels
    tch, rows = (a.ravel() for a in np.meshgrid(_tile_sizes(channels, acc.tm), _tile_sizes(layer.in_h, 1),
                                                indexing="ij"))
    fits = (tch * rows * layer.in_w <= caps[0]) & (tch <= caps[2])
    if not fits.any():
        return None
    tch, rows = tch[fits], rows[fits]
    chunks = _ceil_div(layer.in_h, rows)
    cycles = _lane_blocks(channels, tch, acc.tm) * layer.kernel_h * layer.kernel_w
    counts = _streaming(layer, channels * layer.in_h * layer.in_w, layer.pool_ops, layer.output_count * chunks)
    return _streamed(np.stack([tch, tch, rows, np.ones_like(rows)], axis=1), cycles, "c>k", counts)


def _eltwise(layer: LayerShape, acc: Accelerator, caps: tuple[int, int, int]) -> _Candidates | None:
    """Element-wise add candidates: both operands' channel tiles share the input buffer; one add per output."""
    channels = layer.in_channels
    tch, tc = _channel_column_tiles(layer, acc)
    fits, tr, _, _ = _spatial_fit(layer, caps, 2 * tch, tch, tc)
    if not fits.any():
        return None
    tch, tc, tr = tch[fits], tc[fits], tr[fits]
    cycles = _lane_blocks(channels, tch, acc.tm) * layer.out_h * layer.out_w
    return _streamed(np.stack([tch, tch, tr, tc], axis=1), cycles, "c>s",
                     _streaming(layer, 2 * layer.output_count, 2 * layer.output_count, layer.output_count))


def _select(layer: LayerShape, acc: Accelerator, tech: Technology, reads_partial_sums: bool,
            cand: _Candidates) -> LayerCost:
    """Price every candidate and keep the one the accelerator's tiling rule prefers."""
    bits, burst, outputs = acc.bits, tech.dram_burst_bytes, layer.output_count
    counts, shape = cand.counts, (len(cand.mappings), len(cand.loop_orders), len(cand.cycles))
    per_candidate = (cand.cycles, counts.in_fills, counts.w_fills, counts.in_reads, counts.w_reads,
                     counts.out_accesses + outputs * reads_partial_sums, counts.out_dram + outputs * reads_partial_sums)
    cycles, in_elems, w_elems, in_reads, w_reads, out_accesses, out_elems = (
        np.broadcast_to(a, shape).ravel() for a in per_candidate)

    def dram_bytes(elems: np.ndarray | int) -> np.ndarray:
        """Bytes moved for `elems` elements, rounded up to whole DRAM bursts."""
        return _ceil_div(_ceil_div(elems * bits, 8), burst) * burst

    in_bytes, w_bytes, out_bytes = dram_bytes(in_elems), dram_bytes(w_elems), dram_bytes(out_elems)
    total_bytes = in_bytes + w_bytes + out_bytes
    (in_r, in_w, in_leak), (w_r, w_w, w_leak), (out_r, out_w, out_leak) = (
        tech.sram_pj_per_bit(size) for size in acc.buffer_bytes
    )
    sram_in = bits * (in_reads * in_r + in_elems * in_w)
    sram_w = bits * (w_reads * w_r + w_elems * w_w)
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
    stationarity, order, tiling = np.unravel_index(best, shape)
    return LayerCost(
        name=layer.name,
        kind=layer.kind,
        tile=tuple(int(t) for t in cand.tiles[tiling]),
        mapping=cand.mappings[stationarity],
        loop_order=str(np.broadcast_to(cand.loop_orders, shape[1:])[order, tiling]),
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
        dram_output_bytes=int(out_bytes[best]),
        weight_bytes=-(-(layer.weight_count + layer.bias_count) * bits // 8),
        macs=layer.macs,
    )
