"""Torch side of the architectures: module building, seeded training and evaluation."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from nets.models._arch import FC, INPUT, Add, Architecture, BatchNorm, Conv, Flatten, GlobalPool, Pool, ReLU, Traced
from nets.scores._variant import TrainingConfig


class Residual(nn.Module):
    """An Add layer: the running tensor plus the output of layer `source` (-1: the input), fed by `LayerGraph`."""

    def __init__(self, source: int) -> None:
        super().__init__()
        self.source = source

    def forward(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """The element-wise sum (a module, so hooks see its output like any layer's)."""
        return x + shortcut


class LayerGraph(nn.Module):
    """A layer chain with branches and residual adds (not a Sequential: effort knobs and incremental training refuse
    it). `reads[i]` is the earlier layer (-1: the input) that step i reads instead of the previous one."""

    def __init__(self, steps: list[nn.Module], reads: dict[int, int]) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)
        self.reads = reads
        self.kept = {step.source for step in steps if isinstance(step, Residual)} | set(reads.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the chain, keeping the outputs that later layers name."""
        saved = {-1: x}
        for i, step in enumerate(self.steps):
            if i in self.reads:
                x = saved[self.reads[i]]
            if isinstance(step, Residual):
                x = step(x, saved[step.source])
            else:
                x = step(x.flatten(1) if isinstance(step, nn.Linear) else x)
            if i in self.kept:
                saved[i] = x
        return x


def _layer_module(step: Traced, indices: dict[str, int]) -> nn.Module:
    """The torch module of one traced layer; `indices` maps layer names to their positions."""
    layer, channels = step.layer, step.in_shape[0]
    if isinstance(layer, Conv):
        return nn.Conv2d(channels, layer.out_channels, layer.kernel, layer.stride, layer.pad, groups=layer.groups)
    if isinstance(layer, Pool):
        pool = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
        return pool(layer.kernel, layer.stride or layer.kernel, layer.pad, ceil_mode=layer.ceil)
    if isinstance(layer, GlobalPool):
        return nn.AdaptiveMaxPool2d(1) if layer.mode == "max" else nn.AdaptiveAvgPool2d(1)
    if isinstance(layer, FC):
        return nn.Linear(channels * step.in_shape[1] * step.in_shape[2], layer.out_features)
    if isinstance(layer, BatchNorm):
        return nn.BatchNorm1d(channels) if step.flat_in else nn.BatchNorm2d(channels)
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, Add):
        return Residual(-1 if layer.source == INPUT else indices[layer.source])
    assert isinstance(layer, ReLU)
    return nn.ReLU()


def build_module(arch: Architecture, width: float = 1.0) -> nn.Module:
    """A torch module whose layers match `arch.layer_shapes(width)` one to one.

    The zoo's vocabulary builds an nn.Sequential (a Flatten inserted before the first FC on a C x H x W input);
    anything else (batch norm, flatten, global pool, residual add) builds a `LayerGraph`, one step per layer.
    """
    steps = arch.trace(width)
    indices = {step.layer.name: step.index for step in steps if step.layer.name}
    modules = [_layer_module(step, indices) for step in steps]
    if not arch.is_sequential:
        reads = {step.index: -1 if step.layer.input == INPUT else indices[step.layer.input]
                 for step in steps if step.layer.input}
        return LayerGraph(modules, reads)
    flattened: list[nn.Module] = []
    for step, module in zip(steps, modules):
        if isinstance(step.layer, FC) and not step.flat_in:
            flattened.append(nn.Flatten())
        flattened.append(module)
    return nn.Sequential(*flattened)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images to float32 in [0, 1], as Caffe's LeNet scales them (1/256)."""
    return torch.from_numpy(images.astype(np.float32) / 255.0)


def train_module(module: nn.Module, images: np.ndarray, labels: np.ndarray, config: TrainingConfig,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> float:
    """Train `module` in place with Adam and a cosine learning-rate decay, seeded and deterministic, on uint8 `images`
    (or a tensor of ready inputs, e.g. row numbers into a frozen trunk's activations); `loss(inputs, targets)`
    replaces the cross entropy of the module's output (e.g. a weighted sum over a branched net's exits).

    Returns the seconds spent.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    inputs = images if isinstance(images, torch.Tensor) else to_tensor(images)
    targets = torch.from_numpy(labels)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(inputs) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    cross_entropy = nn.CrossEntropyLoss()
    loss_fn = loss or (lambda batch, targets: cross_entropy(module(batch), targets))
    start = time.perf_counter()
    module.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for batch in order.split(config.batch_size):
            optimizer.zero_grad()
            loss_fn(inputs[batch], targets[batch]).backward()
            optimizer.step()
            schedule.step()
    module.eval()
    return time.perf_counter() - start


@torch.no_grad()
def predict_logits(module: nn.Module, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Logits of `module` on `images`, evaluated in batches."""
    module.eval()
    outputs = [module(to_tensor(images[i:i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs).astype(np.float64)


def init_module(arch: Architecture, width: float, seed: int) -> nn.Module:
    """A freshly initialised module with seeded weights."""
    torch.manual_seed(seed)
    return build_module(arch, width)
