"""Early-exit networks: side branches at named layers of a trunk, as architectures and as torch modules.

A branch is a small classifier on one trunk layer's output: a 1x1 conv with `channels` outputs, a ReLU, an average
pool to about a 3 x 3 map and an FC layer to the classes (on a flat output: the FC alone). The variant answering at
exit `p` runs the trunk up to `p` and branch `p`, a plain layer chain (`exit_architecture`), so scoring, quantizing
and pricing treat it like any net. Branches are trained jointly with the trunk (a weighted sum of the exits'
losses) or on a frozen, already trained trunk. Torch modules and training live in `nets._exits_torch`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from costmodel import UserError
from nets._arch import FC, Architecture, Conv, Layer, Pool, ReLU, Traced

TRAININGS = ("frozen", "joint")
GRID = 3  # a branch pools its input to about GRID x GRID positions before its FC layer  # branches on a frozen trained trunk, or trunk and branches trained together


class ExitError(UserError):
    """An exit set that cannot be built on its trunk."""


@dataclass(frozen=True)
class Exits:
    """Branches at trunk layers `points` (labels such as 'pool1', in trunk order) of `channels` 1x1-conv outputs,
    trained `training` ('frozen' or 'joint', with one loss weight per branch then the trunk's; empty: all 1);
    `answer` is the exit this variant answers at ('' : the trunk's own classifier)."""

    points: tuple[str, ...]
    answer: str = ""
    channels: int = 16
    training: str = "frozen"
    loss_weights: tuple[float, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-ready fields (part of the cache keys)."""
        return {**asdict(self), "points": list(self.points), "loss_weights": list(self.loss_weights)}

    @property
    def weights(self) -> tuple[float, ...]:
        """Loss weight of each branch, then of the trunk."""
        return self.loss_weights or (1.0,) * (len(self.points) + 1)


def tap_step(trunk: Architecture, point: str) -> Traced:
    """The traced trunk layer labelled `point`; ExitError lists the labels when there is none."""
    steps = trunk.trace()
    for step in steps[:-1]:
        if step.label == point:
            return step
    labels = [step.label for step in steps[:-1] if step.label]
    raise ExitError(f"{trunk.name}: no layer '{point}' to branch at (branchable: {', '.join(labels)})")


def branch_layers(point: str, tap: Traced, channels: int, classes: int) -> tuple[Layer, ...]:
    """The branch classifier on the output of trunk layer `point` (shape `tap.out_shape`): a 1x1 conv, a ReLU, an
    average pool down to about a GRID x GRID map (pooling the whole map loses the layout a digit needs: a frozen
    LeNet's pool1 branch reaches 48% that way) and an FC layer to the classes."""
    if tap.flat_out:
        return (FC(classes, name=f"{point}.exit.fc"),)
    _, height, wide = tap.out_shape
    if height != wide:
        raise ExitError(f"branch at '{point}': its {height}x{wide} output is not square (the branch pools it square)")
    return (Conv(channels, 1, name=f"{point}.exit.conv"), ReLU(),
            Pool(-(-height // GRID), mode="avg", name=f"{point}.exit.pool"), FC(classes, name=f"{point}.exit.fc"))


def check_exits(trunk: Architecture, exits: Exits) -> None:
    """ExitError naming the field for a trunk or exit set that cannot be built."""
    if not trunk.is_sequential:
        raise ExitError(f"{trunk.name}: branches need a plain chain of conv, pool, fc and relu layers as the trunk")
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
    for point in exits.points:
        branch_layers(point, tap_step(trunk, point), exits.channels, trunk.output_size)


def exits_key(trunk: Architecture, exits: Exits) -> dict[str, Any]:
    """What identifies a branched net in the cache keys: the exit set and every branch's layers as built."""
    branches = [Architecture(f"{point}.exit", tap_step(trunk, point).out_shape,
                             branch_layers(point, tap_step(trunk, point), exits.channels, trunk.output_size)).describe()
                for point in exits.points]
    return {**exits.describe(), "branches": branches}


def exit_architecture(trunk: Architecture, exits: Exits) -> Architecture:
    """The layer chain a variant answering at `exits.answer` runs: the trunk up to it, then its branch."""
    if not exits.answer:
        return trunk
    tap = tap_step(trunk, exits.answer)
    branch = branch_layers(exits.answer, tap, exits.channels, trunk.output_size)
    return Architecture(f"{trunk.name}>exit@{exits.answer}", trunk.input_shape, trunk.layers[:tap.index + 1] + branch)
