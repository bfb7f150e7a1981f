"""Networks as data: a layer list from which torch modules and cost-model shapes derive."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Union

from costmodel import LayerShape, UserError


class ArchitectureError(UserError):
    """An architecture or width fraction that cannot be built."""


@dataclass(frozen=True)
class Conv:
    """2-D convolution; `out_channels` scales with the width multiplier. `groups` equal to the input channels is
    depthwise (its groups then follow the scaled channels)."""

    out_channels: int
    kernel: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    name: str = ""
    input: str = ""  # the layer it reads, if not the previous one (a branch, e.g. a projection shortcut)


@dataclass(frozen=True)
class Pool:
    """Max or average pooling; `stride` defaults to `kernel`. Output size: Caffe's ceil rule, or floor if not `ceil`."""

    kernel: int
    stride: int | None = None
    pad: int = 0
    mode: Literal["max", "avg"] = "max"
    ceil: bool = True
    name: str = ""
    input: str = ""


@dataclass(frozen=True)
class GlobalPool:
    """Average or max over each whole feature map (output C x 1 x 1)."""

    mode: Literal["avg", "max"] = "avg"
    name: str = ""
    input: str = ""


@dataclass(frozen=True)
class FC:
    """Fully connected layer (Caffe InnerProduct); the last one is the classifier. A C x H x W input is flattened."""

    out_features: int
    name: str = ""
    input: str = ""


@dataclass(frozen=True)
class ReLU:
    """Rectified linear activation (no cost in the model: folded into the datapath)."""

    name: str = ""
    input: str = ""


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation right after a conv or FC layer, folded into it for pricing (no shape of its own)."""

    name: str = ""
    input: str = ""


@dataclass(frozen=True)
class Flatten:
    """C x H x W to C*H*W features (free: a change of view)."""

    name: str = ""
    input: str = ""


@dataclass(frozen=True)
class Add:
    """Residual add: the running tensor plus the output of the earlier layer named `source` ("input": the image)."""

    source: str
    name: str = ""
    input: str = ""


Layer = Union[Conv, Pool, GlobalPool, FC, ReLU, BatchNorm, Flatten, Add]
ZOO_LAYERS = (Conv, Pool, FC, ReLU)  # the vocabulary effort knobs and incremental training walk as a torch Sequential
INPUT = "input"  # the name an Add uses for the network input
# Fields added after the zoo's cache keys were fixed: left out of describe() at these defaults so the keys stay.
_LATER_DEFAULTS = {"name": "", "input": "", "ceil": True}


def scale_channels(channels: int, width: float, where: str) -> int:
    """Channels after the width multiplier, rounded half up; zero channels is an error."""
    scaled = math.floor(channels * width + 0.5)
    if scaled < 1:
        raise ArchitectureError(f"width {width:g} rounds {where} ({channels} channels) to 0 channels")
    return scaled


def pool_out(size: int, kernel: int, stride: int, pad: int, ceil: bool = True) -> int:
    """Pooling output size: Caffe's ceil rule (the last window must start inside the padded input), or floor."""
    if not ceil:
        return (size + 2 * pad - kernel) // stride + 1
    out = math.ceil((size + 2 * pad - kernel) / stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def layer_type(layer: Layer) -> str:
    """The spec's name for a layer's type (conv, pool, fc, ...), used in messages."""
    return {Conv: "conv", Pool: "pool", GlobalPool: "pool", FC: "fc", ReLU: "relu", BatchNorm: "batchnorm",
            Flatten: "flatten", Add: "add"}[type(layer)]


@dataclass(frozen=True)
class Traced:
    """One layer after width scaling, with its input and output shapes (C, H, W); a flat tensor is (F, 1, 1)."""

    index: int
    layer: Layer
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    flat_in: bool
    flat_out: bool
    label: str  # the layer's name, else kind and number (conv1, pool1, fc1, add1); "" for unnamed free layers


@dataclass(frozen=True)
class Architecture:
    """A named CNN: input shape (C, H, W) and a layer chain; each layer reads the previous one's output unless its
    `input` names an earlier layer, and an Add sums the running tensor with a named earlier layer's output."""

    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]

    @property
    def is_sequential(self) -> bool:
        """True for a plain chain of the zoo's vocabulary (conv, max/avg pool, FC, ReLU): a torch Sequential."""
        return all(isinstance(layer, ZOO_LAYERS) and not layer.input for layer in self.layers)

    def trace(self, width: float = 1.0, where: str = "") -> list[Traced]:
        """Every layer scaled to `width` with its shapes; ArchitectureError names `where` (default: the net),
        the layer index and the key at fault."""
        if not 0 < width <= 1:
            raise ArchitectureError(f"width fraction must be in (0, 1], got {width}")
        where = where or self.name
        if not self.layers:
            raise ArchitectureError(f"{where}: the layer list is empty")
        weighted = [i for i, layer in enumerate(self.layers) if isinstance(layer, (Conv, FC))]
        classifier = weighted[-1] if weighted else -1
        full_in = [step.in_shape[0] for step in self.trace(1.0, where)] if width != 1.0 else []
        shape, flat = self.input_shape, False
        outputs: dict[str, tuple[tuple[int, int, int], bool]] = {INPUT: (shape, flat)}
        names = {layer.name for layer in self.layers}
        counts = {"conv": 0, "fc": 0, "pool": 0, "add": 0}
        steps: list[Traced] = []
        for i, layer in enumerate(self.layers):
            def fail(key: str, problem: str) -> ArchitectureError:
                return ArchitectureError(f"{where}: layer {i} ({layer_type(layer)}), '{key}': {problem}")

            scale = width != 1.0 and i != classifier
            if layer.input:
                if layer.input not in outputs:
                    known = "a later layer" if layer.input in names else "no layer"
                    raise fail("input", f"'{layer.input}' names {known}; a layer can read only an earlier one")
                shape, flat = outputs[layer.input]
            in_shape, flat_in, scaled = shape, flat, layer
            channels, height, wide = shape
            if isinstance(layer, (Conv, Pool, GlobalPool)) and flat:
                raise fail("type", "needs a C x H x W input, but the previous layer's output is flat")
            if isinstance(layer, Conv):
                out = scale_channels(layer.out_channels, width, f"{where} layer {i}") if scale else layer.out_channels
                depthwise = scale and layer.groups > 1 and layer.groups == full_in[i]
                groups = channels if depthwise else layer.groups
                if channels % groups or out % groups:
                    raise fail("groups", f"{groups} groups do not divide {channels} input and {out} output channels"
                               + (f" at width {width:g}" if scale else ""))
                out_h = (height + 2 * layer.pad - layer.kernel) // layer.stride + 1
                out_w = (wide + 2 * layer.pad - layer.kernel) // layer.stride + 1
                if out_h < 1 or out_w < 1:
                    raise fail("kernel", f"kernel {layer.kernel} is larger than its padded {height}x{wide} input")
                scaled = replace(layer, out_channels=out, groups=groups) if scale else layer
                shape = (out, out_h, out_w)
            elif isinstance(layer, Pool):
                stride = layer.stride or layer.kernel
                if 2 * layer.pad > layer.kernel:
                    raise fail("pad", f"padding {layer.pad} is more than half the kernel {layer.kernel}")
                if layer.kernel > min(height, wide) + 2 * layer.pad:
                    raise fail("kernel", f"kernel {layer.kernel} is larger than its padded {height}x{wide} input")
                shape = (channels, pool_out(height, layer.kernel, stride, layer.pad, layer.ceil),
                         pool_out(wide, layer.kernel, stride, layer.pad, layer.ceil))
            elif isinstance(layer, GlobalPool):
                shape = (channels, 1, 1)
            elif isinstance(layer, FC):
                out = scale_channels(layer.out_features, width, f"{where} layer {i}") if scale else layer.out_features
                scaled = replace(layer, out_features=out) if scale else layer
                shape, flat = (out, 1, 1), True
            elif isinstance(layer, BatchNorm):
                if i == 0 or layer.input or not isinstance(self.layers[i - 1], (Conv, FC)):
                    raise fail("type", "batch norm must directly follow a conv or fc layer (it is folded into it)")
            elif isinstance(layer, Flatten):
                shape, flat = (channels * height * wide, 1, 1), True
            elif isinstance(layer, Add):
                if layer.source not in outputs:
                    known = "a later layer" if layer.source in names else "no layer"
                    raise fail("from", f"'{layer.source}' names {known}; an add needs an earlier layer's name")
                if outputs[layer.source] != (shape, flat):
                    raise fail("from", f"'{layer.source}' outputs {_shape_text(*outputs[layer.source])}, "
                                       f"the running tensor is {_shape_text(shape, flat)}"
                                       + (f" at width {width:g}" if width != 1.0 else ""))
            if layer.name:
                if layer.name in outputs:
                    raise fail("name", f"'{layer.name}' is used twice" if layer.name != INPUT
                               else f"'{INPUT}' is reserved for the network input")
                outputs[layer.name] = (shape, flat)
            kind = layer_type(layer)
            counts[kind] = counts.get(kind, 0) + 1
            label = layer.name or (f"{kind}{counts[kind]}" if kind in ("conv", "fc", "pool", "add") else "")
            steps.append(Traced(i, scaled, in_shape, shape, flat_in, flat, label))
        clashes = [step for step in steps if step.layer.name and step.layer.name in
                   {other.label for other in steps if not other.layer.name}]
        if clashes:
            raise ArchitectureError(f"{where}: layer {clashes[0].index} ({layer_type(clashes[0].layer)}), 'name': "
                                    f"'{clashes[0].layer.name}' is another layer's automatic name")
        return steps

    def scaled_layers(self, width: float = 1.0) -> tuple[Layer, ...]:
        """The layer list with every conv/FC width scaled by `width`, except the classifier."""
        return tuple(step.layer for step in self.trace(width))

    def layer_shapes(self, width: float = 1.0) -> list[LayerShape]:
        """Cost-model shapes of every conv, FC, pooling and residual-add layer at width fraction `width`.

        Batch norm is folded into the conv/FC before it; global pooling is a pool whose kernel is its input.
        A layer's name, if given, names its shape; others are numbered per kind (conv1, pool1, fc1, add1).
        """
        shapes: list[LayerShape] = []
        for step in self.trace(width):
            layer, (channels, height, wide), (out_c, out_h, out_w) = step.layer, step.in_shape, step.out_shape
            name = step.label
            if isinstance(layer, Conv):
                shapes.append(LayerShape(name, "conv", channels, height, wide, out_c, out_h, out_w,
                                         layer.kernel, layer.kernel, layer.stride, layer.pad, layer.groups))
            elif isinstance(layer, Pool):
                shapes.append(LayerShape(name, "maxpool" if layer.mode == "max" else "avgpool", channels, height,
                                         wide, out_c, out_h, out_w, layer.kernel, layer.kernel,
                                         layer.stride or layer.kernel, layer.pad))
            elif isinstance(layer, GlobalPool):
                shapes.append(LayerShape(name, "maxpool" if layer.mode == "max" else "avgpool", channels, height,
                                         wide, channels, 1, 1, height, wide))
            elif isinstance(layer, FC):
                shapes.append(LayerShape(name, "fc", channels * height * wide, 1, 1, out_c, 1, 1))
            elif isinstance(layer, Add):
                shapes.append(LayerShape(name, "add", channels, height, wide, channels, height, wide))
        return shapes

    @property
    def output_size(self) -> int:
        """Values per sample of the network's output (the class count, for a classifier)."""
        channels, height, wide = self.trace()[-1].out_shape
        return channels * height * wide

    def macs(self, width: float = 1.0) -> int:
        """Multiply-accumulates of one inference at width fraction `width`."""
        return sum(shape.macs for shape in self.layer_shapes(width))

    def describe(self) -> list[dict]:
        """A JSON-ready description of the layers (part of every cache key)."""
        return [{"type": type(layer).__name__,
                 **{key: value for key, value in layer.__dict__.items()
                    if not (key in _LATER_DEFAULTS and value == _LATER_DEFAULTS[key])}}
                for layer in self.layers]


def _shape_text(shape: tuple[int, int, int], flat: bool) -> str:
    """A tensor shape for messages: '16x8x8', or '160 features' when flat."""
    return f"{shape[0]} features" if flat else "x".join(map(str, shape))


# Spec keys per layer type: (required, optional); every size is a positive int, `pad` may be 0.
_TABLE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "conv": (("out", "kernel"), ("stride", "pad", "groups", "name", "input")),
    "pool": (("mode",), ("kernel", "stride", "pad", "ceil", "name", "input")),
    "fc": (("out",), ("name", "input")),
    "batchnorm": ((), ("name", "input")),
    "relu": ((), ("name", "input")),
    "flatten": ((), ("name", "input")),
    "add": (("from",), ("name", "input")),
}
_POOL_MODES = ("max", "avg", "global", "global_max")


def architecture_from_table(name: str, input_shape: tuple[int, int, int], layers: list[dict],
                            where: str) -> Architecture:
    """An architecture from spec-style inline tables ({type = "conv", out = 16, kernel = 3, ...}), checked whole.

    ArchitectureError names `where`, the layer index and the key: unknown type or key, a missing or non-positive
    size, groups not dividing the channels, an add from an unknown or later layer or with mismatched shapes.
    """
    if not isinstance(layers, list) or not layers:
        raise ArchitectureError(f"{where}: needs a non-empty list of layer tables")
    built = tuple(_layer_from_table(i, table, where) for i, table in enumerate(layers))
    arch = Architecture(name, input_shape, built)
    steps = arch.trace(1.0, where)
    if not steps[-1].flat_out:
        raise ArchitectureError(f"{where}: layer {len(built) - 1} ({layer_type(built[-1])}), 'type': the network "
                                "must end in a flat output (an fc or flatten layer) holding the class scores")
    return arch


def _layer_from_table(i: int, table: object, where: str) -> Layer:
    """One layer from its inline table, every key checked."""
    if not isinstance(table, dict):
        raise ArchitectureError(f"{where}: layer {i} must be a table like {{type = \"conv\", ...}}")
    kind = table.get("type")
    if kind not in _TABLE_KEYS:
        raise ArchitectureError(f"{where}: layer {i}, 'type': unknown layer type {kind!r}; "
                                f"known: {', '.join(_TABLE_KEYS)}")
    required, optional = _TABLE_KEYS[kind]

    def fail(key: str, problem: str) -> ArchitectureError:
        return ArchitectureError(f"{where}: layer {i} ({kind}), '{key}': {problem}")

    unknown = sorted(set(table) - {"type", *required, *optional})
    if unknown:
        raise fail(unknown[0], f"unknown key; {kind} takes {', '.join((*required, *optional))}")
    missing = [key for key in required if key not in table]
    if missing:
        raise fail(missing[0], "is required")

    def size(key: str, default: int, minimum: int = 1) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return value

    for key in ("name", "input"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise fail(key, f"must be a non-empty string, got {table[key]!r}")
    name, reads = table.get("name", ""), table.get("input", "")
    if kind == "conv":
        return Conv(size("out", 0), size("kernel", 0), size("stride", 1), size("pad", 0, 0), size("groups", 1), name,
                    reads)
    if kind == "pool":
        mode = table["mode"]
        if mode not in _POOL_MODES:
            raise fail("mode", f"must be one of {', '.join(_POOL_MODES)}, got {mode!r}")
        if mode.startswith("global"):
            extra = sorted(set(table) & {"kernel", "stride", "pad", "ceil"})
            if extra:
                raise fail(extra[0], "a global pool takes no window keys (its kernel is its input)")
            return GlobalPool("max" if mode == "global_max" else "avg", name, reads)
        if "kernel" not in table:
            raise fail("kernel", "is required")
        ceil = table.get("ceil", True)
        if not isinstance(ceil, bool):
            raise fail("ceil", f"must be true or false, got {ceil!r}")
        kernel = size("kernel", 0)
        stride = size("stride", kernel) if "stride" in table else None
        return Pool(kernel, stride, size("pad", 0, 0), mode, ceil, name, reads)
    if kind == "fc":
        return FC(size("out", 0), name, reads)
    if kind == "add":
        if not isinstance(table["from"], str) or not table["from"]:
            raise fail("from", f"must name an earlier layer, got {table['from']!r}")
        return Add(table["from"], name, reads)
    return {"batchnorm": BatchNorm, "relu": ReLU, "flatten": Flatten}[kind](name, reads)
