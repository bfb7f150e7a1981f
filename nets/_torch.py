"""Torch side of the architectures: module building, seeded training and evaluation."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from nets._arch import FC, Architecture, Conv, Pool, ReLU
from nets._variant import TrainingConfig


def build_module(arch: Architecture, width: float = 1.0) -> nn.Sequential:
    """A torch module whose layers match `arch.layer_shapes(width)` one to one."""
    shapes = iter(arch.layer_shapes(width))
    modules: list[nn.Module] = []
    for layer in arch.scaled_layers(width):
        if isinstance(layer, ReLU):
            modules.append(nn.ReLU())
            continue
        shape = next(shapes)
        if isinstance(layer, Conv):
            modules.append(nn.Conv2d(shape.in_channels, layer.out_channels, layer.kernel, layer.stride, layer.pad,
                                     groups=layer.groups))
        elif isinstance(layer, Pool):
            pool = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
            modules.append(pool(layer.kernel, layer.stride or layer.kernel, layer.pad, ceil_mode=True))
        elif isinstance(layer, FC):
            if not any(isinstance(m, nn.Flatten) for m in modules):
                modules.append(nn.Flatten())
            modules.append(nn.Linear(shape.in_channels, layer.out_features))
    return nn.Sequential(*modules)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images to float32 in [0, 1], as Caffe's LeNet scales them (1/256)."""
    return torch.from_numpy(images.astype(np.float32) / 255.0)


def train_module(module: nn.Module, images: np.ndarray, labels: np.ndarray, config: TrainingConfig) -> float:
    """Train `module` in place with Adam and a cosine learning-rate decay, seeded and deterministic.

    Returns the seconds spent.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    inputs, targets = to_tensor(images), torch.from_numpy(labels)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(inputs) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    module.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for batch in order.split(config.batch_size):
            optimizer.zero_grad()
            loss_fn(module(inputs[batch]), targets[batch]).backward()
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


def init_module(arch: Architecture, width: float, seed: int) -> nn.Sequential:
    """A freshly initialised module with seeded weights."""
    torch.manual_seed(seed)
    return build_module(arch, width)
