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
    channels = arch.input_shape[0]
    modules: list[nn.Module] = []
    flat = False
    shapes = [s for s in arch.layer_shapes(width)]
    shape_iter = iter(shapes)
    for layer in arch.scaled_layers(width):
        if isinstance(layer, Conv):
            shape = next(shape_iter)
            modules.append(nn.Conv2d(channels, layer.out_channels, layer.kernel, layer.stride, layer.pad,
                                     groups=layer.groups))
            channels = layer.out_channels
        elif isinstance(layer, Pool):
            next(shape_iter)
            pool = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
            modules.append(pool(layer.kernel, layer.stride or layer.kernel, layer.pad, ceil_mode=True))
        elif isinstance(layer, FC):
            shape = next(shape_iter)
            if not flat:
                modules.append(nn.Flatten())
                flat = True
            modules.append(nn.Linear(shape.in_channels, layer.out_features))
        elif isinstance(layer, ReLU):
            modules.append(nn.ReLU())
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
