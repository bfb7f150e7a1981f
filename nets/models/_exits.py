"""Early-exit networks: side branches at named layers of a trunk, as architectures and as torch modules.

A branch is a small classifier on one trunk layer's output: by default a 1x1 conv with `channels` outputs, a ReLU, an
average pool to about a 3 x 3 map and an FC layer to the classes (on a flat output: the FC alone), or a user-given
layer list (conv, max/avg pool, fc and relu layers ending in the class scores). The variant answering at
exit `p` runs the trunk up to `p` and branch `p` (`exit_architecture`), so scoring and pricing treat it like any net.
A trunk is a plain chain or a residual net (adds, batch norm, global pooling, an ONNX model's graph); an exit may sit
after any layer whose output the net materialises (not a conv or fc whose batch norm is folded into it), and the
trunk outputs a later layer still reads (a residual add's shortcut) wait with the exit's (`waiting_tensors`).
Branches are trained jointly with the trunk (a weighted sum of the exits' losses) or on a frozen, already trained
trunk (an ONNX trunk: on its activations read by onnxruntime). Torch modules and training live in
`nets.training._exits_torch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from costmodel import UserError, WaitingTensor
from nets.models._arch import (FC, INPUT, ZOO_LAYERS, Add, Architecture, ArchitectureError, BatchNorm, Conv, Layer,
                               Pool, ReLU, Traced, layer_type)
from nets.models._models import Model

TRAININGS = ("frozen", "joint")
GRID = 3  # a default branch pools its input to about GRID x GRID positions before its FC layer


class ExitError(UserError):
    """An exit set that cannot be built on its trunk."""


@dataclass(frozen=True)
class Exits:
    """Branches at trunk layers `points` (labels such as 'pool1', in trunk order) of `channels` 1x1-conv outputs,
    trained `training` ('frozen' or 'joint', with one loss weight per branch then the trunk's; empty: all 1);
    `answer` is the exit this variant answers at ('' : the trunk's own classifier); `given` holds user-given branch
    layer lists as (point, layers) pairs, which replace the default branch at those points."""

    points: tuple[str, ...]
    answer: str = ""
    channels: int = 16
    training: str = "frozen"
    loss_weights: tuple[float, ...] = ()
    given: tuple[tuple[str, tuple[Layer, ...]], ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-ready fields (part of the cache keys; the given layers are in `exits_key`'s built branches)."""
        fields = {**asdict(self), "points": list(self.points), "loss_weights": list(self.loss_weights)}
        del fields["given"]
        return {**fields, "given": [point for point, _ in self.given]} if self.given else fields

    @property
    def weights(self) -> tuple[float, ...]:
        """Loss weight of each branch, then of the trunk."""
        return self.loss_weights or (1.0,) * (len(self.points) + 1)


def branch_points(trunk: Architecture) -> list[str]:
    """Labels of the trunk layers an exit may follow: every labelled layer but the last whose output the net
    materialises (a conv or fc directly followed by its batch norm is not: the batch norm is folded into it)."""
    steps = trunk.trace()
    return [step.label for step in steps[:-1]
            if step.label and not isinstance(steps[step.index + 1].layer, BatchNorm)]


def tap_step(trunk: Architecture, point: str) -> Traced:
    """The traced trunk layer labelled `point`; ExitError lists the labels when it is not a branch point."""
    valid = branch_points(trunk)
    if point in valid:
        return next(step for step in trunk.trace() if step.label == point)
    raise ExitError(f"{trunk.name}: no layer '{point}' to branch at (branchable: {', '.join(valid)})")


def resolve_points(model: Model | None, points: Sequence[str]) -> tuple[str, ...]:
    """Exit points as layer names: on a declared ONNX model a point may also name a node's output tensor."""
    onnx = model.onnx if model is not None else None
    return tuple(onnx.layer_of(point) if onnx is not None else point for point in points)


def waiting_tensors(trunk: Architecture, point: str) -> tuple[WaitingTensor, ...]:
    """The trunk tensors that wait while an exit after `point` answers: every output of a layer up to `point` (or
    the input) that a later trunk layer reads, in trunk order; on a chain, the output of `point` alone."""
    steps = trunk.trace()
    cut = tap_step(trunk, point).index
    index = {step.layer.name: step.index for step in steps if step.layer.name} | {INPUT: -1}
    read: set[int] = set()
    for step in steps[cut + 1:]:
        layer = step.layer
        read.add(index[layer.input] if layer.input else step.index - 1)
        if isinstance(layer, Add):
            read.add(index[layer.source])
    live = sorted(i for i in read if i <= cut)
    return tuple(WaitingTensor(INPUT, trunk.input_shape) if i < 0
                 else WaitingTensor(steps[i].label or f"layer{i}", steps[i].out_shape) for i in live)


def branch_layers(point: str, tap: Traced, exits: Exits, classes: int) -> tuple[Layer, ...]:
    """The branch classifier on the output of trunk layer `point` (shape `tap.out_shape`): the user-given layers, else
    a 1x1 conv of `exits.channels`, a ReLU, an average pool down to about a GRID x GRID map (pooling the whole map
    loses the layout a digit needs: a frozen LeNet's pool1 branch reaches 48% that way) and an FC to the classes."""
    given = dict(exits.given)
    if point in given:
        return _named(point, given[point])
    channels = exits.channels
    if tap.flat_out:
        return (FC(classes, name=f"{point}.exit.fc"),)
    _, height, wide = tap.out_shape
    if height != wide:
        raise ExitError(f"branch at '{point}': its {height}x{wide} output is not square (the branch pools it square)")
    return (Conv(channels, 1, name=f"{point}.exit.conv"), ReLU(),
            Pool(-(-height // GRID), mode="avg", name=f"{point}.exit.pool"), FC(classes, name=f"{point}.exit.fc"))


def check_exits(trunk: Architecture, exits: Exits) -> None:
    """ExitError naming the field for a trunk or exit set that cannot be built."""
    if not exits.points or len(set(exits.points)) != len(exits.points):
        raise ExitError(f"exit points must be distinct trunk layers, got {list(exits.points)}")
    order = [tap_step(trunk, point).index for point in exits.points]
    if order != sorted(order):
        raise ExitError(f"exit points must be in trunk order, got {list(exits.points)}")
    if exits.answer and exits.answer not in exits.points:
        raise ExitError(f"the answering exit '{exits.answer}' is not one of {list(exits.points)}")
    if isinstance(exits.channels, bool) or not isinstance(exits.channels, int) or exits.channels < 1:
        raise ExitError(f"branch channels must be an integer >= 1, got {exits.channels!r}")
    if exits.training not in TRAININGS:
        raise ExitError(f"training must be one of {', '.join(TRAININGS)}, got {exits.training!r}")
    if exits.loss_weights and (len(exits.loss_weights) != len(exits.points) + 1 or min(exits.loss_weights) < 0
                               or sum(exits.loss_weights) <= 0):
        raise ExitError(f"loss_weights must be one weight >= 0 per exit, then the trunk's ({len(exits.points) + 1} in "
                        f"all, not all 0), got {list(exits.loss_weights)}")
    given = [point for point, _ in exits.given]
    if len(set(given)) != len(given) or not set(given) <= set(exits.points):
        raise ExitError(f"given branches must be at distinct exit points of {list(exits.points)}, got {given}")
    for point, layers in exits.given:
        check_given_branch(trunk, point, layers, f"branch at '{point}'")
    for point in exits.points:
        branch_layers(point, tap_step(trunk, point), exits, trunk.output_size)  # a default branch: a square map


def _named(point: str, layers: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """A given branch with its conv, pool and fc layers named '<point>.exit.<name or kind and number>', so that they
    never pass for trunk layers in the reuse pricing (names change neither scores nor prices)."""
    counts: dict[str, int] = {}
    named = []
    for layer in layers:
        kind = layer_type(layer)
        if kind in ("conv", "pool", "fc"):
            counts[kind] = counts.get(kind, 0) + 1
            layer = replace(layer, name=f"{point}.exit.{layer.name or kind + str(counts[kind])}")
        named.append(layer)
    return tuple(named)


def check_given_branch(trunk: Architecture, point: str, layers: tuple[Layer, ...], where: str) -> None:
    """ExitError naming `where` unless the user-given branch `layers` is a chain of conv, max/avg pool, fc and relu
    layers that runs on the output of trunk layer `point` and ends in one score per class."""
    odd = [(i, layer) for i, layer in enumerate(layers) if not isinstance(layer, ZOO_LAYERS) or layer.input]
    if odd:
        i, layer = odd[0]
        raise ExitError(f"{where}: layer {i} ({layer_type(layer)}): a branch is a plain chain of conv, pool (max or "
                        "avg), fc and relu layers" + (" (no 'input')" if isinstance(layer, ZOO_LAYERS) else ""))
    try:
        steps = Architecture(f"{point}.exit", tap_step(trunk, point).out_shape, layers).trace(1.0, where)
        exit_architecture(trunk, Exits((point,), point, given=((point, layers),))).trace(1.0, where)
    except ArchitectureError as exc:
        raise ExitError(str(exc)) from None
    if not steps[-1].flat_out or steps[-1].out_shape[0] != trunk.output_size:
        last = steps[-1]
        got = f"{last.out_shape[0]} outputs" if last.flat_out else "a " + "x".join(map(str, last.out_shape)) + " map"
        raise ExitError(f"{where}: must end in an fc layer with one output per class ({trunk.output_size}), got {got}")


def exits_key(trunk: Architecture, exits: Exits) -> dict[str, Any]:
    """What identifies a branched net in the cache keys: the exit set and every branch's layers as built."""
    branches = [Architecture(f"{point}.exit", tap_step(trunk, point).out_shape,
                             branch_layers(point, tap_step(trunk, point), exits, trunk.output_size)).describe()
                for point in exits.points]
    return {**exits.describe(), "branches": branches}


def exit_architecture(trunk: Architecture, exits: Exits) -> Architecture:
    """The layer chain a variant answering at `exits.answer` runs: the trunk up to it, then its branch."""
    if not exits.answer:
        return trunk
    tap = tap_step(trunk, exits.answer)
    branch = branch_layers(exits.answer, tap, exits, trunk.output_size)
    return Architecture(f"{trunk.name}>exit@{exits.answer}", trunk.input_shape, trunk.layers[:tap.index + 1] + branch)
