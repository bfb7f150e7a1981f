"""Incremental training (Tann et al. 2016, Algorithm 1): one weight set whose channel prefixes are the stages.

Stage i runs the first round(c * f_i) channels of every hidden layer and its own output classifier. Stage 1 is
ordinary training at f_1 (the golden model of that size); each later stage starts from the golden model of its size
(§3.2), takes the previous stage's weights into its leading block, and trains with that block frozen: the frozen
values are substituted in every forward pass, so no optimizer (momentum, weight decay) can move them.

The state dict is the full net's (the last stage's classifier included) plus `classifiers.{i}.weight` and
`classifiers.{i}.bias` for every earlier stage i (0-based): with one increment it is an ordinary state dict.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from nets.models._arch import Architecture
from nets.models._increments import IncrementalError, check_increments
from nets.data._data import Dataset
from nets.training._torch import build_module, train_module
from nets.scores._variant import TrainingConfig

State = dict[str, torch.Tensor]
GoldenSource = Callable[[float], State]


def _classifier_prefix(module: nn.Sequential) -> str:
    """State-dict prefix of the output classifier (the last Linear)."""
    return f"{max(i for i, m in enumerate(module) if isinstance(m, nn.Linear))}."


def _hidden_layers(module: nn.Sequential) -> list[nn.Module]:
    """Weighted layers other than the classifier, in order."""
    weighted = [m for m in module if isinstance(m, (nn.Conv2d, nn.Linear))]
    return weighted[:-1]


def _leading(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The leading block of `tensor` with `shape`: the channels (and flattened features) of a narrower stage."""
    return tensor[tuple(slice(0, n) for n in shape)]


class _KeepLeading(nn.Module):
    """Parametrization whose leading block is a fixed tensor; only the rest of the weight is trainable."""

    def __init__(self, frozen: torch.Tensor, shape: torch.Size) -> None:
        super().__init__()
        block = tuple(slice(0, n) for n in frozen.shape)
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[block] = True
        values = torch.zeros(shape, dtype=frozen.dtype)
        values[block] = frozen
        self.register_buffer("mask", mask)
        self.register_buffer("values", values)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.values, weight)


def _freeze_leading(module: nn.Sequential, previous: nn.Sequential) -> None:
    """Copy `previous`'s hidden weights into `module`'s leading blocks and keep them fixed during training."""
    for layer, old in zip(_hidden_layers(module), _hidden_layers(previous)):
        for name in ("weight", "bias"):
            frozen = getattr(old, name).detach().clone()
            parametrize.register_parametrization(layer, name, _KeepLeading(frozen, getattr(layer, name).shape))


def _unfreeze(module: nn.Sequential) -> None:
    """Bake the frozen blocks into plain parameters again."""
    for layer in _hidden_layers(module):
        for name in ("weight", "bias"):
            parametrize.remove_parametrizations(layer, name, leave_parametrized=True)


def train_incremental(arch: Architecture, increments: tuple[float, ...], dataset: Dataset, config: TrainingConfig,
                      golden: GoldenSource) -> tuple[State, float]:
    """Algorithm 1: the incremental weight set and the seconds spent training increments 2..N.

    golden(width) gives the golden model's state at a width (§3.1), e.g. `nets.scores._build.cached_golden`.
    Stage 1 is ordinary training at f_1, so it is that golden model itself.
    """
    check_increments(arch, increments)
    images, labels = dataset.split("train")
    module = build_module(arch, increments[0])
    module.load_state_dict(golden(increments[0]))
    classifiers: State = {}
    seconds = 0.0
    for stage, width in enumerate(increments[1:]):
        head = _classifier_prefix(module)
        trained = module.state_dict()
        classifiers.update({f"classifiers.{stage}.{name}": trained[head + name] for name in ("weight", "bias")})
        previous, module = module, build_module(arch, width)
        module.load_state_dict(golden(width))
        _freeze_leading(module, previous)
        seconds += train_module(module, images, labels, config)
        _unfreeze(module)
    return {**module.state_dict(), **classifiers}, seconds


def stage_module(arch: Architecture, increments: tuple[float, ...], width: float, state: State) -> nn.Sequential:
    """The stage of an incremental weight set at `width`: the leading channels and that stage's own classifier."""
    check_increments(arch, increments)
    if width not in increments:
        raise IncrementalError(f"width {width:g} is not one of the increments "
                               f"{', '.join(f'{f:g}' for f in increments)}")
    stage = increments.index(width)
    module = build_module(arch, width)
    head = _classifier_prefix(module)
    own = {}
    for key, tensor in module.state_dict().items():
        if key.startswith(head) and stage < len(increments) - 1:
            own[key] = state[f"classifiers.{stage}.{key[len(head):]}"]
        else:
            own[key] = _leading(state[key], tensor.shape)
    module.load_state_dict(own)
    return module
