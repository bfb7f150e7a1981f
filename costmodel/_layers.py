"""Layer shapes: the cost model's workload input, derived from `nets` architectures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LayerKind = Literal["conv", "fc", "maxpool", "avgpool", "add"]


@dataclass(frozen=True)
class LayerShape:
    """One layer's geometry after width scaling, in elements (not bytes).

    A fully connected layer is a 1x1 convolution on a 1x1 map whose `in_channels` is the
    flattened input size. Pooling layers have no weights; `out_channels == in_channels`; a global pool has the kernel
    of its input's size. "add" is an element-wise residual add of two C x H x W tensors into one:
    `LayerShape(name, "add", C, H, W, C, H, W)`.
    """

    name: str
    kind: LayerKind
    in_channels: int
    in_h: int
    in_w: int
    out_channels: int
    out_h: int
    out_w: int
    kernel_h: int = 1
    kernel_w: int = 1
    stride: int = 1
    pad: int = 0
    groups: int = 1

    @property
    def has_weights(self) -> bool:
        """True for conv and FC layers, the ones the MAC array computes."""
        return self.kind in ("conv", "fc")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (0 for pooling)."""
        if not self.has_weights:
            return 0
        per_output = (self.in_channels // self.groups) * self.kernel_h * self.kernel_w
        return self.out_channels * self.out_h * self.out_w * per_output

    @property
    def weight_count(self) -> int:
        """Number of weights (biases excluded)."""
        if not self.has_weights:
            return 0
        return self.out_channels * (self.in_channels // self.groups) * self.kernel_h * self.kernel_w

    @property
    def bias_count(self) -> int:
        """Number of biases (one per output channel of a weighted layer)."""
        return self.out_channels if self.has_weights else 0

    @property
    def output_count(self) -> int:
        """Number of output activations."""
        return self.out_channels * self.out_h * self.out_w

    @property
    def pool_ops(self) -> int:
        """Comparisons/additions of a pooling or element-wise add layer (0 for weighted layers)."""
        if self.has_weights:
            return 0
        return self.output_count * self.kernel_h * self.kernel_w
