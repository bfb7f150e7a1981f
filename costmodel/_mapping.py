"""The mapping space of a conv/FC layer and the exact buffer access counts of each mapping.

A layer is cut into tiles (per group: Tm output channels, Tn input channels, Tr x Tc output positions) that fit the
three buffers. A mapping is then two choices:

- the order of the tile loops, outer to inner, over m (output-channel tiles), s (spatial tiles) and n (input-channel
  tiles), each buffer holding one tile of its operand. An operand is fetched from DRAM again whenever a loop outside
  its innermost stepping relevant loop steps (input: s, n; weights: m, n; outputs: m, s). An output tile left before
  its last input-channel tile is written to DRAM as partial sums and read back on its next visit. A buffer that can
  hold its operand's whole data (of the group tile) keeps it: fetched once, outputs written once, in every order.
- the stationarity inside a tile: which operand a register at the array's port keeps while the inner loops run.
  output_stationary: the tm accumulators keep their sums over the tile's input channels and kernel (one partial-sum
  write per output per tile); weights and inputs are read every cycle. weight_stationary: the tm x tn weights stay in
  the array while the tile's output positions run (one read per weight per spatial tile); every (input-channel pass,
  kernel position) then reads and writes each output's partial sum in the output buffer. input_stationary: the tn
  inputs stay while the tile's tm-lane output-channel passes run (one read per input element, kernel position and
  output-channel tile); partial sums as for weight_stationary.

"diannao" is output_stationary restricted to the two orders that keep n innermost, picking the one with fewer DRAM
elements whatever the rule, with no whole-operand residency: the first version of this model, kept so its figures
are reproduced exactly.
Counts are in elements; input reads cover every position the array visits (padding included, as in `macs`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from costmodel._layers import LayerShape

STATIONARITIES = ("weight_stationary", "output_stationary", "input_stationary")
TILE_ORDERS = ("m>s>n", "s>m>n", "m>n>s", "n>m>s", "s>n>m", "n>s>m")
DIANNAO_ORDERS = TILE_ORDERS[:2]
_RELEVANT = {"input": "sn", "weight": "mn", "output": "ms"}


class TileLoops(NamedTuple):
    """One group's tiling per candidate (arrays or scalars): tile trips, tm/tn-lane passes, one input sweep."""

    nm: np.ndarray  # output-channel tiles
    nn: np.ndarray  # input-channel tiles
    ns: np.ndarray  # spatial tiles
    m_blocks: np.ndarray  # tm-lane passes over all output channels (each tile padded to whole lanes)
    n_blocks: np.ndarray  # tn-lane passes over all input channels
    sweep: np.ndarray  # input elements one pass over the spatial tiles reads from DRAM (all input channels)
    whole_input: np.ndarray  # input elements of the whole map (all input channels), halos counted once
    input_resident: np.ndarray  # the buffer holds a group tile's whole operand: fetched once, whatever the order
    weight_resident: np.ndarray
    output_resident: np.ndarray


class Accesses(NamedTuple):
    """Element counts of one layer under one mapping; output-buffer reads equal its writes (drains included)."""

    in_fills: np.ndarray  # DRAM -> input buffer
    in_reads: np.ndarray  # input buffer -> array
    w_fills: np.ndarray  # DRAM -> weight buffer, biases included
    w_reads: np.ndarray  # weight buffer -> array
    out_accesses: np.ndarray  # output-buffer writes (array partial sums, DRAM reloads); as many reads
    out_dram: np.ndarray  # output-buffer <-> DRAM: final outputs and partial sums written, partial sums read back


def fetches(order: str, relevant: str, trips: dict[str, np.ndarray]) -> np.ndarray:
    """How often an operand's tiles are all fetched: the trips of irrelevant loops outside a stepping relevant loop."""
    loops = order.split(">")
    count = np.ones(np.broadcast(*trips.values()).shape, dtype=np.int64)
    for i, loop in enumerate(loops):
        inner = [trips[name] > 1 for name in loops[i + 1:] if name in relevant]
        if loop not in relevant and inner:
            count = count * np.where(np.logical_or.reduce(inner), trips[loop], 1)
    return count


def accesses(layer: LayerShape, loops: TileLoops, stationarities: tuple[str, ...],
             orders: tuple[str, ...]) -> Accesses:
    """Exact access counts of a conv/FC layer tiled as `loops` (T candidates), broadcastable to (S, O, T).

    Axis 0 runs over `stationarities`, axis 1 over the tile-loop `orders`, axis 2 over the tilings.
    """
    g, k2 = layer.groups, layer.kernel_h * layer.kernel_w
    n_all, positions, outputs = layer.in_channels // g, layer.out_h * layer.out_w, layer.output_count
    trips = {"m": loops.nm, "s": loops.ns, "n": loops.nn}

    def per_order(relevant: str) -> np.ndarray:
        """(1, O, T) fetch counts of an operand with these relevant loops."""
        return np.stack([np.broadcast_to(fetches(o, relevant, trips), np.shape(loops.ns)) for o in orders])[None]

    visits = np.where(loops.output_resident, 1, per_order(_RELEVANT["output"]))

    def per_stationarity(values: dict[str, np.ndarray | int]) -> np.ndarray:
        """(S, 1, T) counts that depend on the stationarity only."""
        return np.stack([np.broadcast_to(values[s], np.shape(loops.ns)) for s in stationarities])[:, None]

    ws, os_, is_ = STATIONARITIES
    psum_passes = outputs * loops.n_blocks * k2
    return Accesses(
        in_fills=g * np.where(loops.input_resident, loops.whole_input, loops.sweep * per_order(_RELEVANT["input"])),
        in_reads=g * per_stationarity({ws: loops.m_blocks, os_: loops.m_blocks, is_: loops.nm}) * n_all * positions
        * k2,
        w_fills=layer.weight_count * np.where(loops.weight_resident, 1, per_order(_RELEVANT["weight"]))
        + layer.bias_count,
        w_reads=per_stationarity({ws: layer.weight_count * loops.ns, os_: layer.macs, is_: layer.macs}),
        out_accesses=per_stationarity({ws: psum_passes, os_: outputs * loops.nn, is_: psum_passes})
        + outputs * (visits - 1),
        out_dram=outputs * (2 * visits - 1),
    )
