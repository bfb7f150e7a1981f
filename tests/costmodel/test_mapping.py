"""Every mapping's analytical access counts equal a brute-force loop-nest simulation on tiny layers."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel import Accelerator, LayerShape
from costmodel._mapping import STATIONARITIES, TILE_ORDERS, accesses
from costmodel._tiling import _group_tilings, _packed_tilings
from tests.costmodel.loopnest import Tiling, simulate

TINY = [
    LayerShape("conv_pad", "conv", 3, 6, 6, 5, 6, 6, 3, 3, 1, 1),
    LayerShape("conv_stride", "conv", 2, 9, 9, 3, 4, 4, 3, 3, 2),
    LayerShape("conv_stride_gt_kernel", "conv", 2, 7, 7, 3, 3, 3, 1, 1, 3),
    LayerShape("fc", "fc", 7, 1, 1, 5, 1, 1),
    LayerShape("grouped", "conv", 6, 5, 5, 4, 3, 3, 3, 3, 1, 0, 2),
    LayerShape("depthwise", "conv", 5, 5, 5, 5, 5, 5, 3, 3, 1, 1, 5),
    LayerShape("pointwise", "conv", 5, 4, 4, 6, 4, 4),
]
ARRAY = (2, 2)
# Buffers at 8-bit (elements = bytes), small enough that most layers need several tiles on every loop.
ACCELERATORS = [(40, 18, 12), (120, 36, 40)]


def _tilings(layer: LayerShape, buffers: tuple[int, int, int], keep_whole: bool) -> list[tuple[Tiling, object, int]]:
    """Every candidate tiling of the cost model as (simulator tiling, its tilings, index in them)."""
    total = sum(buffers)
    acc = Accelerator(tm=ARRAY[0], tn=ARRAY[1], bits=8, sram_bytes=total, partition=tuple(b / total for b in buffers))
    assert acc.buffer_bytes == buffers
    out = []
    m_g, n_g = layer.out_channels // layer.groups, layer.in_channels // layer.groups
    group = _group_tilings(layer, acc, buffers, keep_whole)
    packed = _packed_tilings(layer, acc, buffers) if keep_whole else None
    for family, is_packed in ((group, False), (packed, True)):
        if family is None:
            continue
        for i, (tm, tn, tr, tc) in enumerate(family.tiles.tolist()):
            if is_packed:
                lanes = min(ARRAY[0] // m_g, ARRAY[1] // n_g)
                tiling = Tiling(tm // m_g, m_g, n_g, tr, tc, lanes)
            else:
                tiling = Tiling(1, tm, tn, tr, tc)
            out.append((tiling, family, i))
    return out


@pytest.mark.parametrize("keep_whole", [True, False], ids=["keep_whole", "diannao_buffers"])
@pytest.mark.parametrize("buffers", ACCELERATORS)
@pytest.mark.parametrize("layer", TINY, ids=lambda layer: layer.name)
def test_every_mapping_matches_the_loop_nest(layer: LayerShape, buffers: tuple[int, int, int],
                                             keep_whole: bool) -> None:
    # keep_whole=False: buffers hold one tile only, as in the "diannao" dataflow (output_stationary, n innermost).
    tilings = _tilings(layer, buffers, keep_whole)
    assert tilings, "the test needs at least one fitting tiling"
    rng = np.random.default_rng(len(layer.name))
    chosen = rng.choice(len(tilings), size=min(6, len(tilings)), replace=False)
    for t in chosen:
        tiling, family, i = tilings[t]
        counts = accesses(layer, family.loops, STATIONARITIES, TILE_ORDERS)
        shape = (len(STATIONARITIES), len(TILE_ORDERS), len(family.cycles))
        for si, stationarity in enumerate(STATIONARITIES):
            for oi, order in enumerate(TILE_ORDERS):
                sim = simulate(layer, ARRAY, tiling, stationarity, order, buffers if keep_whole else None)
                mine = {name: int(np.broadcast_to(value, shape)[si, oi, i]) for name, value in counts._asdict().items()}
                where = f"{layer.name} {tiling} {stationarity} {order}"
                assert sim["macs"] == layer.macs, where
                assert sim["cycles"] == family.cycles[i], where
                for name in ("in_fills", "in_reads", "w_fills", "w_reads", "out_dram"):
                    assert sim[name] == mine[name], f"{where}: {name} simulated {sim[name]}, analytical {mine[name]}"
                assert sim["out_writes"] == mine["out_accesses"], f"{where}: output-buffer writes"
                assert sim["out_reads"] == mine["out_accesses"], f"{where}: output-buffer reads"
