"""Dynamic variable effort: DyVEDeep's three mechanisms (Ganapathy et al.), reconstructed from its abstract only.

Per input, a network with effort knobs skips or approximates work at three granularities:

- neuron level (`chunk_fraction`, `confidence`): a conv/FC neuron followed by ReLU accumulates its dot product in
  chunks of input channels (FC: input features); after each chunk but the last it stops, output 0, when the partial
  sum plus `confidence` x (the most the remaining terms can add: the sum over the remaining weights w of
  max(w * lo, w * hi), [lo, hi] the layer's calibrated input range widened to include 0) is below zero.
  `confidence` = 1 is safe for inputs inside the calibrated range; smaller is aggressive.
- feature level (`sample_stride`, `tolerance`): each output map is computed on a grid of stride `sample_stride`
  (last row and column included). A skipped position on a grid row (column) is linearly interpolated from its two
  grid neighbours if they differ by less than `tolerance` x the map's calibrated output range; one inside a grid
  cell is bilinearly interpolated if all four cell edges pass that test. Every other position is computed exactly.
- layer level (`uniformity`): an input map whose variance is below `uniformity` x (its calibrated range)^2 is
  replaced by its mean, so its convolution costs one multiply per output (mean x kernel sum) instead of k x k.

Knob names: "<knob>" applies to every layer that can take it; "conv.<knob>" / "fc.<knob>" to every such conv / FC
layer; "<layer>.<knob>" (e.g. "conv2.confidence") to that layer, which must be able to take it. The most specific
name wins. Ops per sample: the multiply-accumulates executed plus the mechanisms' own operations: one comparison per
neuron-level check, the `_EDGE_CHECK_OPS` / `_CELL_CHECK_OPS` smoothness tests and one multiply-add per interpolation
weight, and the `_VARIANCE_OPS_*` variance test of every input map. `effort_forward` computes densely and masks (the
exact reference and the fast path of the search); `skipping_forward` executes only the counted MACs, to time it.
Numpy only (importing this module does not import torch); pooling layers run through the torch module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nets.models._arch import FC, Architecture, Conv, Pool, ReLU
from nets.scores._variant import Variant
from costmodel import UserError

_EDGE_CHECK_OPS = 2  # |a - b| then a comparison with the tolerance, per grid edge that has skipped positions
_CELL_CHECK_OPS = 3  # AND of a cell's four edge flags, per cell that has interior positions
_VARIANCE_OPS_PER_PIXEL = 2  # one add for the sum, one multiply-add for the sum of squares
_VARIANCE_OPS_PER_MAP = 3  # n * sum_sq - sum^2 (a multiply, a multiply-subtract) and a comparison


class EffortError(UserError):
    """Effort knobs that cannot be applied: unknown name, value out of range, or a layer that cannot take them."""


@dataclass(frozen=True)
class Knob:
    """An effort knob: the mechanism it tunes, its allowed range, and whether it must be whole."""

    mechanism: str
    low: float
    high: float
    integer: bool = False
    low_open: bool = False

    def check(self, name: str, value: float) -> None:
        """Raise EffortError unless `value` is in range (and whole, for integer knobs)."""
        inside = (value > self.low if self.low_open else value >= self.low) and value <= self.high
        if self.integer and not (inside and float(value).is_integer()):
            raise EffortError(f"effort knob '{name}' must be an integer >= {self.low:g}, got {value:g}")
        if not inside:
            bracket = "(" if self.low_open else "["
            raise EffortError(f"effort knob '{name}' must be in {bracket}{self.low:g}, {self.high:g}], got {value:g}")


KNOBS: dict[str, Knob] = {
    "chunk_fraction": Knob("neuron", 0.0, 1.0, low_open=True),
    "confidence": Knob("neuron", 0.0, 1.0),
    "sample_stride": Knob("feature", 1, math.inf, integer=True),
    "tolerance": Knob("feature", 0.0, 1.0),
    "uniformity": Knob("layer", 0.0, 1.0),
}


@dataclass(frozen=True)
class LayerEffort:
    """Resolved knob values of one conv/FC layer (defaults: every mechanism off)."""

    chunk_fraction: float = 1.0
    confidence: float = 1.0
    sample_stride: int = 1
    tolerance: float = 0.0
    uniformity: float = 0.0


@dataclass(frozen=True)
class _Site:
    """A conv/FC layer as the knobs see it: name, kind, and why each mechanism cannot apply ("" if it can)."""

    name: str
    kind: str
    refusals: dict[str, str]


def _relu_after(layers: Sequence[object], i: int) -> bool:
    """Whether layer i is immediately followed by a ReLU (what neuron-level termination needs)."""
    return i + 1 < len(layers) and isinstance(layers[i + 1], ReLU)


def _sites(arch: Architecture, width: float) -> list[_Site]:
    """The conv/FC layers of `arch` in order, with the mechanisms each one refuses; grouped convolutions are refused."""
    layers = arch.scaled_layers(width)
    shapes = [s for s in arch.layer_shapes(width) if s.has_weights]
    grouped = [s.name for s in shapes if s.groups > 1]
    if grouped:
        raise EffortError(f"effort knobs need ungrouped convolutions; {arch.name} {grouped[0]} is grouped")
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, (Conv, FC))]
    sites = []
    for i, shape in zip(weighted, shapes):
        maps = "" if shape.kind == "conv" else "only convolutions have feature maps"
        relu = "" if _relu_after(layers, i) else "it is not followed by a ReLU"
        sites.append(_Site(shape.name, shape.kind, {"neuron": relu, "feature": maps, "layer": maps}))
    return sites


def resolve_knobs(arch: Architecture, width: float, knobs: Sequence[tuple[str, float]]) -> dict[str, LayerEffort]:
    """Validate `knobs` for `arch` at `width` and resolve them into each conv/FC layer's settings.

    Raises EffortError (one line) for an unknown knob or layer, a value out of range, a layer-specific knob on a layer
    that cannot take its mechanism, or a global/group knob that applies to no layer.
    """
    sites = _sites(arch, width)
    names = [s.name for s in sites]
    chosen: dict[tuple[str, str], tuple[int, float]] = {}  # (layer, knob) -> (specificity, value)
    names_given = [full for full, _ in knobs]
    twice = sorted({full for full in names_given if names_given.count(full) > 1})
    if twice:
        raise EffortError(f"effort knob '{twice[0]}' is given twice")
    for full, value in knobs:
        scope, _, base = full.rpartition(".")
        if base not in KNOBS:
            raise EffortError(f"unknown effort knob '{full}'; known: {', '.join(KNOBS)}")
        if scope not in ("", "conv", "fc", *names):
            raise EffortError(f"effort knob '{full}': {arch.name} has no layer '{scope}' "
                              f"(layers: {', '.join(names)}; groups: conv, fc)")
        knob = KNOBS[base]
        knob.check(full, float(value))
        targets = [s for s in sites if scope in ("", s.kind, s.name)]
        able = [s for s in targets if not s.refusals[knob.mechanism]]
        if not able or (scope in names and len(able) < len(targets)):
            reasons = "; ".join(f"{s.name}: {s.refusals[knob.mechanism]}" for s in targets)
            raise EffortError(f"effort knob '{full}': {knob.mechanism}-level effort does not apply ({reasons})")
        rank = 2 if scope in names else int(bool(scope))
        for site in able:
            if chosen.get((site.name, base), (-1, 0.0))[0] < rank:
                chosen[(site.name, base)] = (rank, float(value))
    return {s.name: LayerEffort(**{base: int(v) if KNOBS[base].integer else v
                                   for (name, base), (_, v) in chosen.items() if name == s.name})
            for s in sites}


@dataclass(frozen=True)
class EffortCounts:
    """Per-sample operation counts of one forward pass, per conv/FC layer (columns follow `layers`)."""

    layers: tuple[str, ...]
    macs: np.ndarray  # (N, L) multiply-accumulates executed
    extra_ops: np.ndarray  # (N, L) the mechanisms' own comparisons, interpolations and variance sums
    skipped_weights: np.ndarray  # (N, L) weights no executed MAC needs: kernels of input maps replaced by their mean

    @property
    def ops(self) -> np.ndarray:
        """(N,) scalar operations per sample: MACs plus the mechanisms' own operations."""
        return (self.macs + self.extra_ops).sum(axis=1)


@dataclass(frozen=True)
class _Weighted:
    """A conv/FC layer in numpy form, with its calibration (input range, per-channel input and output ranges)."""

    name: str
    kind: str
    weight: np.ndarray  # (M, C, K), K = kernel * kernel (1 for FC)
    bias: np.ndarray  # (M,)
    kernel: int
    stride: int
    pad: int
    out_hw: tuple[int, int]
    relu: bool
    input_range: tuple[float, float] = (0.0, 0.0)  # calibrated min and max of any input, widened to include 0
    input_span: np.ndarray | None = None  # (C,) calibrated max - min of each input map
    output_span: np.ndarray | None = None  # (M,) calibrated max - min of each output map (after its ReLU)


@dataclass(frozen=True)
class _Step:
    """A layer without weights: pooling (through the torch module), flatten, or a ReLU not fused into a conv/FC."""

    name: str
    run: Callable[[np.ndarray], np.ndarray]


Quantizer = Callable[[int, np.ndarray], np.ndarray]  # (step index, -1 for the input; array) -> quantized array


@dataclass(frozen=True)
class EffortNet:
    """A trained network in numpy form, calibrated, to run with any effort knobs."""

    architecture: Architecture
    width: float
    steps: tuple[_Weighted | _Step, ...]
    quantize: Quantizer | None = None  # fake quantization of the input (step -1) and of every step's output

    @property
    def layers(self) -> tuple[_Weighted, ...]:
        """The conv/FC layers in order."""
        return tuple(s for s in self.steps if isinstance(s, _Weighted))

    def resolve(self, knobs: Sequence[tuple[str, float]]) -> dict[str, LayerEffort]:
        """Validated per-layer settings of `knobs` on this network."""
        return resolve_knobs(self.architecture, self.width, knobs)


def _torch_step(child: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Run one torch layer (pooling) on a numpy batch: pooling is not where effort is spent."""
    def run(x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return child(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    return run


def _numpy_steps(module: Any, arch: Architecture, width: float) -> tuple[_Weighted | _Step, ...]:
    """The layers of a `nets.training._torch.build_module` module as numpy steps; a ReLU after a conv/FC is fused into it."""
    layers = arch.scaled_layers(width)
    shapes = iter(s for s in arch.layer_shapes(width) if s.has_weights)
    children = iter(module)
    steps: list[_Weighted | _Step] = []
    first_fc = next(i for i, layer in enumerate(layers) if isinstance(layer, FC))
    for i, layer in enumerate(layers):
        if i == first_fc:
            next(children)  # build_module's Flatten before the first FC
            steps.append(_Step("flatten", lambda x: x.reshape(len(x), -1)))
        child = next(children)
        if isinstance(layer, (Conv, FC)):
            shape = next(shapes)
            weight = child.weight.detach().cpu().numpy()
            steps.append(_Weighted(
                shape.name, shape.kind, weight.reshape(shape.out_channels, shape.in_channels, -1),
                child.bias.detach().cpu().numpy(), shape.kernel_h, shape.stride, shape.pad,
                (shape.out_h, shape.out_w), _relu_after(layers, i)))
        elif isinstance(layer, ReLU):
            if not isinstance(layers[i - 1], (Conv, FC)):
                steps.append(_Step("relu", lambda x: np.maximum(x, 0)))
        elif isinstance(layer, Pool):
            steps.append(_Step("pool", _torch_step(child)))
    return tuple(steps)


LayerFn = Callable[[_Weighted, np.ndarray], tuple[np.ndarray, tuple[np.ndarray, ...]]]


def _run_steps(steps: Sequence[_Weighted | _Step], images: np.ndarray, layer_fn: LayerFn,
               quantize: Quantizer | None = None) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Final outputs of uint8 `images` (scaled to [0, 1] as nets.training._torch.to_tensor does) and each conv/FC's counts;
    with `quantize`, the input and every step's output are fake-quantized (a variant with bits and knobs)."""
    dtype = next(s for s in steps if isinstance(s, _Weighted)).weight.dtype
    x = images.astype(dtype) / dtype.type(255.0)
    if quantize is not None:
        x = quantize(-1, x)
    counts = []
    for index, step in enumerate(steps):
        if isinstance(step, _Weighted):
            x, layer_counts = layer_fn(step, x)
            counts.append(layer_counts)
        else:
            x = step.run(x)
        if quantize is not None:
            x = quantize(index, x)
    return x, counts


def _patches(layer: _Weighted, x: np.ndarray) -> np.ndarray:
    """(B, P, C, K): the input window of every output position (FC: one position, K = 1)."""
    if layer.kind == "fc":
        return x.reshape(len(x), 1, -1, 1)
    if layer.pad:
        x = np.pad(x, ((0, 0), (0, 0), (layer.pad,) * 2, (layer.pad,) * 2))
    windows = sliding_window_view(x, (layer.kernel, layer.kernel), axis=(2, 3))[:, :, ::layer.stride, ::layer.stride]
    batch, channels, out_h, out_w = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(batch, out_h * out_w, channels, -1)


def _uniform_maps(layer: _Weighted, effort: LayerEffort, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer level: inputs with near-constant maps replaced by their mean, the (B, C) uniform mask, the means."""
    if effort.uniformity == 0:
        return x, np.zeros(x.shape[:2], bool), np.zeros(x.shape[:2], x.dtype)
    mean = x.mean(axis=(2, 3))
    uniform = x.var(axis=(2, 3)) < effort.uniformity * layer.input_span ** 2
    return np.where(uniform[:, :, None, None], mean[:, :, None, None], x), uniform, mean


def _variance_ops(layer: _Weighted, effort: LayerEffort, x: np.ndarray) -> int:
    """Operations per sample of the layer-level variance test on every input map."""
    if effort.uniformity == 0:
        return 0
    return x.shape[1] * (_VARIANCE_OPS_PER_PIXEL * x.shape[2] * x.shape[3] + _VARIANCE_OPS_PER_MAP)


def _chunks(channels: int, fraction: float) -> list[slice]:
    """Neuron level: consecutive input-channel chunks of ceil(fraction x channels) channels."""
    size = max(1, math.ceil(round(fraction * channels, 9)))
    return [slice(start, min(start + size, channels)) for start in range(0, channels, size)]


def _stop_below(layer: _Weighted, chunks: list[slice], confidence: float) -> np.ndarray:
    """(J-1, M): after chunk j a neuron stops if its partial sum is below row j (-confidence x what may remain)."""
    low, high = layer.input_range
    reach = np.maximum(layer.weight * low, layer.weight * high).sum(axis=2)  # (M, C): most each input map can add
    per_chunk = np.stack([reach[:, part].sum(axis=1) for part in chunks])
    remaining = np.cumsum(per_chunk[::-1], axis=0)[::-1][1:]
    return (-confidence * remaining).astype(layer.weight.dtype)


def _chunk_macs(chunks: list[slice], channel_macs: np.ndarray) -> np.ndarray:
    """(B, J): MACs of one neuron after its first j+1 chunks, given each input map's cost per output (B, C)."""
    return np.cumsum(np.stack([channel_macs[:, part].sum(axis=1) for part in chunks], axis=1), axis=1)


def _accumulate(layer: _Weighted, effort: LayerEffort, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neuron level on every output: (B, P, M) outputs (terminated ones 0) and chunks executed per output."""
    batch, positions = patches.shape[:2]
    outputs = layer.weight.shape[0]
    chunks = _chunks(patches.shape[2], effort.chunk_fraction)
    stops = _stop_below(layer, chunks, effort.confidence)
    z = np.broadcast_to(layer.bias, (batch, positions, outputs)).copy()
    executed = np.full(z.shape, len(chunks), np.int32)
    alive = np.ones(z.shape, bool)
    for j, part in enumerate(chunks):
        rows = patches[:, :, part].reshape(batch * positions, -1)  # 2-D: numpy's stacked matmul is slow here
        z += (rows @ layer.weight[:, part].reshape(outputs, -1).T).reshape(z.shape)
        if j < len(stops):
            stop = alive & (z < stops[j])
            executed[stop] = j + 1
            alive &= ~stop
    z[~alive] = 0
    return z, executed


@dataclass(frozen=True)
class _Fill:
    """Skipped positions of one kind: their smoothness flag, and the grid neighbours and weights interpolating them."""

    ys: np.ndarray  # (n,) rows of the positions
    xs: np.ndarray  # (n,) columns
    flag_rows: np.ndarray  # (n,) index of each position's flag in this kind's flag array
    flag_cols: np.ndarray
    grid_rows: np.ndarray  # (T, n) grid indices of the T neighbours (T = 2 on a grid line, 4 inside a cell)
    grid_cols: np.ndarray
    weights: np.ndarray  # (T, n) interpolation weights


@dataclass(frozen=True)
class _Grid:
    """Feature-level geometry of one map size and stride: grid points and the three kinds of skipped position."""

    rows: np.ndarray  # grid row indices: 0, s, 2s, ... and the last row
    cols: np.ndarray
    fills: tuple[_Fill, _Fill, _Fill]  # on a grid row, on a grid column, inside a cell
    check_ops: int  # smoothness-test operations per map


def _axis(size: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Grid points along one axis, the grid point at or before each index, the fraction of the way to the next one
    (0 on the grid), and the number of gaps that skip at least one index."""
    points = np.unique(np.r_[np.arange(0, size, stride), size - 1])
    index = np.searchsorted(points, np.arange(size), side="right") - 1
    gap = points[np.minimum(index + 1, len(points) - 1)] - points[index]
    fraction = (np.arange(size) - points[index]) / np.maximum(gap, 1)
    return points, index, fraction, int((np.diff(points) >= 2).sum())


@lru_cache(maxsize=64)
def _grid(height: int, width: int, stride: int) -> _Grid:
    """The sampling grid of a height x width map at `stride`."""
    rows, row_index, ty, wide_rows = _axis(height, stride)
    cols, col_index, tx, wide_cols = _axis(width, stride)
    ys, xs = (a.ravel() for a in np.meshgrid(np.arange(height), np.arange(width), indexing="ij"))
    iy, ix, wy, wx = row_index[ys], col_index[xs], ty[ys], tx[xs]

    def fill(mask: np.ndarray, offsets: list[tuple[int, int]], weights: list[np.ndarray]) -> _Fill:
        return _Fill(ys[mask], xs[mask], iy[mask], ix[mask], np.stack([iy[mask] + dy for dy, _ in offsets]),
                     np.stack([ix[mask] + dx for _, dx in offsets]), np.stack([w[mask] for w in weights]))

    on_row, on_col = wy == 0, wx == 0
    fills = (fill(on_row & ~on_col, [(0, 0), (0, 1)], [1 - wx, wx]),
             fill(~on_row & on_col, [(0, 0), (1, 0)], [1 - wy, wy]),
             fill(~on_row & ~on_col, [(0, 0), (0, 1), (1, 0), (1, 1)],
                  [(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx]))
    edges = len(rows) * wide_cols + len(cols) * wide_rows
    return _Grid(rows, cols, fills, _EDGE_CHECK_OPS * edges + _CELL_CHECK_OPS * wide_rows * wide_cols)


def _interpolate(layer: _Weighted, effort: LayerEffort,
                 grid_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature level from the (B, M, GY, GX) grid outputs: the (B, M, H, W) mask of skipped positions to fill,
    their interpolated values (0 elsewhere), and the interpolation multiply-adds of the filled ones per sample.
    Vectorised over every skipped position of a kind, filled or not: at most 4 multiply-adds each, small next to
    the MACs a skipped position saves."""
    grid = _grid(*layer.out_hw, effort.sample_stride)
    g = grid_values
    limit = (effort.tolerance * layer.output_span).astype(g.dtype)[:, None, None]
    flat_h = np.abs(np.diff(g, axis=3)) < limit
    flat_v = np.abs(np.diff(g, axis=2)) < limit
    flat_cell = flat_h[:, :, :-1] & flat_h[:, :, 1:] & flat_v[:, :, :, :-1] & flat_v[:, :, :, 1:]
    filled = np.zeros((*g.shape[:2], *layer.out_hw), bool)
    estimates = np.zeros(filled.shape, g.dtype)
    ops = np.zeros(len(g), np.int64)
    for fill, flags in zip(grid.fills, (flat_h, flat_v, flat_cell)):
        chosen = flags[:, :, fill.flag_rows, fill.flag_cols]  # (B, M, n)
        values = sum(g[:, :, rows, cols] * weights
                     for rows, cols, weights in zip(fill.grid_rows, fill.grid_cols, fill.weights.astype(g.dtype)))
        filled[:, :, fill.ys, fill.xs] = chosen
        estimates[:, :, fill.ys, fill.xs] = np.where(chosen, values, 0)
        ops += len(fill.weights) * chosen.sum(axis=(1, 2))
    return filled, estimates, ops


def _maps(layer: _Weighted, rows: np.ndarray) -> np.ndarray:
    """(B, P, M) per-position outputs as (B, M, H, W) maps (FC: 1 x 1)."""
    return rows.transpose(0, 2, 1).reshape(len(rows), -1, *layer.out_hw)


def _dense_layer(layer: _Weighted, effort: LayerEffort, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """One conv/FC layer (and its ReLU) with all three mechanisms, computed densely and masked; per-sample
    (MACs, extra ops, skipped weights) of what an implementation that skips the work would execute."""
    batch, outputs, kernel_area = len(x), layer.weight.shape[0], layer.weight.shape[2]
    extra = np.full(batch, _variance_ops(layer, effort, x), np.int64)
    x, uniform, _ = _uniform_maps(layer, effort, x)
    z, executed = _accumulate(layer, effort, _patches(layer, x))
    maps, executed = _maps(layer, np.maximum(z, 0) if layer.relu else z), _maps(layer, executed)
    computed = np.ones(maps.shape, bool)
    if effort.sample_stride > 1:
        grid = _grid(*layer.out_hw, effort.sample_stride)
        filled, estimates, interpolation_ops = _interpolate(layer, effort, maps[:, :, grid.rows][:, :, :, grid.cols])
        maps, computed = np.where(filled, estimates, maps), ~filled
        extra += interpolation_ops + outputs * grid.check_ops
    chunks = _chunks(layer.weight.shape[1], effort.chunk_fraction)
    chunk_macs = _chunk_macs(chunks, np.where(uniform, 1, kernel_area))
    macs = sum((computed & (executed == j + 1)).sum(axis=(1, 2, 3)) * chunk_macs[:, j] for j in range(len(chunks)))
    extra += (computed * np.minimum(executed, len(chunks) - 1)).sum(axis=(1, 2, 3))
    skipped = uniform.sum(axis=1) * outputs * (kernel_area - 1)
    out = maps if layer.kind == "conv" else maps[:, :, 0, 0]
    return out, (macs, extra, skipped)


def _compute_rows(layer: _Weighted, effort: LayerEffort, patches: np.ndarray, means: np.ndarray, positions: np.ndarray,
                  uniform: np.ndarray, sums: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs marked in `need` (R, M) of R (sample, position) rows that share one set of `uniform` input maps, chunk
    by chunk: one matrix product while all are live, else per output channel over its live rows only. Returns the
    (R, M) outputs after the ReLU (0 where terminated or not needed) and the MACs executed per row."""
    rows, outputs, kernel_area = len(patches), layer.weight.shape[0], layer.weight.shape[2]
    chunks = _chunks(layer.weight.shape[1], effort.chunk_fraction)
    stops = _stop_below(layer, chunks, effort.confidence)
    z = np.where(need, layer.bias, 0).astype(layer.weight.dtype)
    alive = need.copy()
    macs = np.zeros(rows, np.int64)
    for j, part in enumerate(chunks):
        channels = np.arange(layer.weight.shape[1])[part]
        exact, approx = channels[~uniform[part]], channels[uniform[part]]
        inputs, weight = patches[:, exact].reshape(rows, -1), layer.weight[:, exact].reshape(outputs, -1)
        row_means, kernel_sums = means[:, approx], sums[:, approx][:, :, positions]  # (R, A), (M, A, R)
        if alive.all():
            z += inputs @ weight.T
            if len(approx):
                z += np.einsum("ra,mar->rm", row_means, kernel_sums)
        else:
            for m in np.flatnonzero(alive.any(axis=0)):
                live = np.flatnonzero(alive[:, m])
                z[live, m] += inputs[live] @ weight[m]
                if len(approx):
                    z[live, m] += np.einsum("ra,ar->r", row_means[live], kernel_sums[m][:, live])
        macs += alive.sum(axis=1) * (len(exact) * kernel_area + len(approx))
        if j < len(stops):
            alive &= ~(z < stops[j])
    return np.where(alive, np.maximum(z, 0) if layer.relu else z, 0), macs


def _compute_needed(layer: _Weighted, effort: LayerEffort, patches: np.ndarray, uniform: np.ndarray,
                    means: np.ndarray, sums: np.ndarray, need: np.ndarray, z: np.ndarray, macs: np.ndarray) -> None:
    """Compute the outputs marked in `need` (B, P, M) into `z`, samples grouped by their set of uniform input maps;
    add the MACs executed to `macs` (B,)."""
    patterns, group = (np.unique(uniform, axis=0, return_inverse=True) if uniform.any()
                       else (uniform[:1], np.zeros(len(uniform), np.int64)))
    for index, pattern in enumerate(patterns):
        b, p = np.nonzero(need[group == index].any(axis=2))
        if not len(b):
            continue
        b = np.flatnonzero(group == index)[b]
        values, row_macs = _compute_rows(layer, effort, patches[b, p], means[b], p, pattern, sums, need[b, p])
        z[b, p] = np.where(need[b, p], values, z[b, p])
        np.add.at(macs, b, row_macs)


def _skipping_layer(layer: _Weighted, effort: LayerEffort, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray]]:
    """One conv/FC layer (and its ReLU) computing only the outputs and chunks the mechanisms keep: the grid first,
    then the skipped positions that are not interpolated. Returns outputs and the MACs executed per sample."""
    batch, outputs = len(x), layer.weight.shape[0]
    x, uniform, means = _uniform_maps(layer, effort, x)
    patches = _patches(layer, x)
    ones = _patches(layer, np.ones_like(x[:1]))[0]
    sums = np.einsum("pck,mck->mcp", ones, layer.weight)  # a uniform map's contribution is mean x sums[m, c, p]
    z = np.zeros((batch, patches.shape[1], outputs), x.dtype)
    macs = np.zeros(batch, np.int64)
    if effort.sample_stride == 1:
        _compute_needed(layer, effort, patches, uniform, means, sums, np.ones(z.shape, bool), z, macs)
        maps = _maps(layer, z)
    else:
        grid = _grid(*layer.out_hw, effort.sample_stride)
        on_grid = np.zeros(layer.out_hw, bool)
        on_grid[np.ix_(grid.rows, grid.cols)] = True
        _compute_needed(layer, effort, patches, uniform, means, sums,
                        np.broadcast_to(on_grid.reshape(1, -1, 1), z.shape), z, macs)
        filled, estimates, _ = _interpolate(layer, effort, _maps(layer, z)[:, :, grid.rows][:, :, :, grid.cols])
        pending = (~filled & ~on_grid).reshape(batch, outputs, -1).transpose(0, 2, 1)
        _compute_needed(layer, effort, patches, uniform, means, sums, pending, z, macs)
        maps = np.where(filled, estimates, _maps(layer, z))
    out = maps if layer.kind == "conv" else maps[:, :, 0, 0]
    return out, (macs,)


def calibrate(module: Any, arch: Architecture, width: float, range_images: np.ndarray,
              batch_size: int = 500) -> EffortNet:
    """Numpy copy of a trained `module`, with every conv/FC layer's input and output ranges measured, knobs off,
    on `range_images` (the ranges the neuron, feature and layer tests are relative to)."""
    _sites(arch, width)
    steps = _numpy_steps(module, arch, width)
    ranges: dict[str, list[np.ndarray]] = {}  # per channel: input low, input high, output low, output high

    def record(layer: _Weighted, x: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        out, counts = _dense_layer(layer, LayerEffort(), x)
        seen = [reduce(a, axis=(0, 2, 3) if a.ndim == 4 else 0) for a in (x, out) for reduce in (np.min, np.max)]
        previous = ranges.get(layer.name, seen)
        ranges[layer.name] = [np.minimum(p, n) if i % 2 == 0 else np.maximum(p, n)
                              for i, (p, n) in enumerate(zip(previous, seen))]
        return out, counts

    for start in range(0, len(range_images), batch_size):
        _run_steps(steps, range_images[start:start + batch_size], record)
    calibrated = tuple(
        replace(s, input_range=(min(0.0, float(ranges[s.name][0].min())), max(0.0, float(ranges[s.name][1].max()))),
                input_span=ranges[s.name][1] - ranges[s.name][0], output_span=ranges[s.name][3] - ranges[s.name][2])
        if isinstance(s, _Weighted) else s for s in steps)
    return EffortNet(arch, width, calibrated)


def effort_forward(net: EffortNet, efforts: dict[str, LayerEffort], images: np.ndarray,
                   batch_size: int = 250) -> tuple[np.ndarray, EffortCounts]:
    """Logits (N, classes) float64 of uint8 `images` with per-layer `efforts`, and exact per-sample op counts."""
    logits, counts = [], []
    for start in range(0, len(images), batch_size):
        out, layer_counts = _run_steps(net.steps, images[start:start + batch_size],
                                       lambda layer, x: _dense_layer(layer, efforts[layer.name], x), net.quantize)
        logits.append(out)
        counts.append(np.array(layer_counts, dtype=np.float64))  # (L, 3, B)
    table = np.concatenate(counts, axis=2)
    return (np.concatenate(logits).astype(np.float64),
            EffortCounts(tuple(layer.name for layer in net.layers), table[:, 0].T, table[:, 1].T, table[:, 2].T))


def effort_logits(module: Any, variant: Variant, images: np.ndarray,
                  range_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, classes) float64 and scalar ops per sample (N,) float64 of `variant` (with knobs) on `images`;
    ranges calibrated on `range_images`. The entry point of nets.scores._build.evaluate_split.

    A variant that also has `bits` runs in dynamic fixed point, as `nets.training._quant` does without knobs: its weights
    quantized (same formats and rounding), the input and every step's output fake-quantized in formats from the
    ranges the quantized-weight network reaches on `range_images` (a fused conv/FC + ReLU is one step here).
    """
    efforts = resolve_knobs(variant.architecture, variant.width, variant.knobs)
    if variant.bits is not None:
        from nets.training._quant import quantized_module

        module = quantized_module(module, variant.bits, variant.rounding)
    net = calibrate(module, variant.architecture, variant.width, range_images)
    if variant.bits is not None:
        net = replace(net, quantize=_step_quantizer(net, variant.bits, variant.rounding, range_images))
    logits, counts = effort_forward(net, efforts, images)
    return logits, counts.ops


def _step_quantizer(net: EffortNet, bits: int, rounding: str, range_images: np.ndarray) -> Quantizer:
    """Fake quantization per step in its own `bits`-wide format, from the largest magnitude seen on calibration."""
    from nets.training._quant import SEED, fixed_point_format

    largest: dict[int, float] = {}

    def record(index: int, x: np.ndarray) -> np.ndarray:
        largest[index] = max(largest.get(index, 0.0), float(np.abs(x).max()))
        return x

    for start in range(0, len(range_images), 250):
        _run_steps(net.steps, range_images[start:start + 250], lambda layer, x: _dense_layer(layer, LayerEffort(), x),
                   record)
    formats = {index: fixed_point_format(value, bits) for index, value in largest.items()}
    rng = np.random.default_rng(SEED)

    def quantize(index: int, x: np.ndarray) -> np.ndarray:
        int_bits, frac_bits = formats[index]
        step = x.dtype.type(2.0 ** -frac_bits)
        scaled = x / step
        scaled = np.round(scaled) if rounding == "nearest" else np.floor(scaled + rng.random(x.shape, dtype=x.dtype))
        top = 2.0 ** (int_bits - 1)
        return np.clip(scaled * step, -top, top - step).astype(x.dtype)
    return quantize


def skipping_forward(net: EffortNet, efforts: dict[str, LayerEffort], images: np.ndarray,
                     batch_size: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, classes) and MACs executed per sample (N,) of an implementation that skips the work it does not
    count, to measure whether fewer operations take less CPU time. Same outputs and MACs as `effort_forward`."""
    logits, macs = [], []
    for start in range(0, len(images), batch_size):
        out, layer_macs = _run_steps(net.steps, images[start:start + batch_size],
                                     lambda layer, x: _skipping_layer(layer, efforts[layer.name], x), net.quantize)
        logits.append(out)
        macs.append(np.sum([m for (m,) in layer_macs], axis=0))
    return np.concatenate(logits).astype(np.float64), np.concatenate(macs).astype(np.float64)
