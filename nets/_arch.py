"""Networks as data: a layer list from which torch modules and cost-model shapes derive."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

from costmodel import LayerShape
from costmodel import UserError


class ArchitectureError(UserError):
    """An architecture or width fraction that cannot be built."""


@dataclass(frozen=True)
class Conv:
    """2-D convolution; `out_channels` scales with the width multiplier."""

    out_channels: int
    kernel: int
    stride: int = 1
    pad: int = 0
    groups: int = 1


@dataclass(frozen=True)
class Pool:
    """Max or average pooling; `stride` defaults to `kernel`. Output size uses Caffe's ceil rule."""

    kernel: int
    stride: int | None = None
    pad: int = 0
    mode: Literal["max", "avg"] = "max"


@dataclass(frozen=True)
class FC:
    """Fully connected layer (Caffe InnerProduct); the last one is the classifier."""

    out_features: int


@dataclass(frozen=True)
class ReLU:
    """Rectified linear activation (no cost in the model: folded into the datapath)."""


Layer = Union[Conv, Pool, FC, ReLU]


def scale_channels(channels: int, width: float, where: str) -> int:
    """Channels after the width multiplier, rounded half up; zero channels is an error."""
    scaled = math.floor(channels * width + 0.5)
    if scaled < 1:
        raise ArchitectureError(f"width {width:g} rounds {where} ({channels} channels) to 0 channels")
    return scaled


def pool_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe pooling output size (ceil mode, last window must start inside the padded input)."""
    out = math.ceil((size + 2 * pad - kernel) / stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True)
class Architecture:
    """A named feed-forward CNN: input shape (C, H, W), layers, number of classes."""

    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]

    def scaled_layers(self, width: float = 1.0) -> tuple[Layer, ...]:
        """The layer list with every conv/FC width scaled by `width`, except the classifier."""
        if not 0 < width <= 1:
            raise ArchitectureError(f"width fraction must be in (0, 1], got {width}")
        weighted = [i for i, layer in enumerate(self.layers) if isinstance(layer, (Conv, FC))]
        out: list[Layer] = []
        for i, layer in enumerate(self.layers):
            if i == weighted[-1] or width == 1.0 or isinstance(layer, (Pool, ReLU)):
                out.append(layer)
            elif isinstance(layer, Conv):
                channels = scale_channels(layer.out_channels, width, f"{self.name} layer {i}")
                if channels % layer.groups:
                    raise ArchitectureError(
                        f"width {width:g} gives {channels} channels in {self.name} layer {i}, "
                        f"not divisible by groups={layer.groups}"
                    )
                out.append(Conv(channels, layer.kernel, layer.stride, layer.pad, layer.groups))
            else:
                out.append(FC(scale_channels(layer.out_features, width, f"{self.name} layer {i}")))
        return tuple(out)

    def layer_shapes(self, width: float = 1.0) -> list[LayerShape]:
        """Cost-model shapes of every conv, FC and pooling layer at width fraction `width`."""
        channels, height, wide = self.input_shape
        shapes: list[LayerShape] = []
        counts = {"conv": 0, "fc": 0, "pool": 0}
        for layer in self.scaled_layers(width):
            if isinstance(layer, Conv):
                counts["conv"] += 1
                if channels % layer.groups:
                    raise ArchitectureError(f"{self.name}: {channels} input channels not divisible by groups")
                out_h = (height + 2 * layer.pad - layer.kernel) // layer.stride + 1
                out_w = (wide + 2 * layer.pad - layer.kernel) // layer.stride + 1
                if out_h < 1 or out_w < 1:
                    raise ArchitectureError(f"{self.name}: conv{counts['conv']} kernel larger than its input")
                shapes.append(LayerShape(
                    f"conv{counts['conv']}", "conv", channels, height, wide, layer.out_channels,
                    out_h, out_w, layer.kernel, layer.kernel, layer.stride, layer.pad, layer.groups,
                ))
                channels, height, wide = layer.out_channels, out_h, out_w
            elif isinstance(layer, Pool):
                counts["pool"] += 1
                stride = layer.stride or layer.kernel
                out_h = pool_out(height, layer.kernel, stride, layer.pad)
                out_w = pool_out(wide, layer.kernel, stride, layer.pad)
                shapes.append(LayerShape(
                    f"pool{counts['pool']}", "maxpool" if layer.mode == "max" else "avgpool",
                    channels, height, wide, channels, out_h, out_w,
                    layer.kernel, layer.kernel, stride, layer.pad,
                ))
                height, wide = out_h, out_w
            elif isinstance(layer, FC):
                counts["fc"] += 1
                features = channels * height * wide
                shapes.append(LayerShape(f"fc{counts['fc']}", "fc", features, 1, 1, layer.out_features, 1, 1))
                channels, height, wide = layer.out_features, 1, 1
        return shapes

    def macs(self, width: float = 1.0) -> int:
        """Multiply-accumulates of one inference at width fraction `width`."""
        return sum(shape.macs for shape in self.layer_shapes(width))

    def describe(self) -> list[dict]:
        """A JSON-ready description of the layers (part of every cache key)."""
        return [{"type": type(layer).__name__, **layer.__dict__} for layer in self.layers]
