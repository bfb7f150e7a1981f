"""Torch side of early-exit networks: the branched module, every exit's logits from one trunk pass, the Sequential
of one exit, and seeded joint or frozen-trunk training."""

from __future__ import annotations

from nets._arch import FC, Architecture
from nets._exits import Exits, branch_layers, tap_step


def _child_positions(trunk: Architecture) -> list[int]:
    """Position of each trunk layer among the children of its torch Sequential (a Flatten precedes a first FC)."""
    positions, position = [], 0
    for step in trunk.trace():
        position += isinstance(step.layer, FC) and not step.flat_in
        positions.append(position)
        position += 1
    return positions


def branched_module(trunk: Architecture, exits: Exits):  # type: ignore[no-untyped-def]
    """A torch ModuleDict {'trunk': Sequential, 'branches': one Sequential per exit point, keyed '0', '1', ...}."""
    from torch import nn

    from nets._torch import build_module

    branches = {}
    for i, point in enumerate(exits.points):
        tap = tap_step(trunk, point)
        layers = branch_layers(point, tap, exits, trunk.output_size)
        branches[str(i)] = build_module(Architecture(f"{point}.exit", tap.out_shape, layers))
    return nn.ModuleDict({"trunk": build_module(trunk), "branches": nn.ModuleDict(branches)})


def all_exit_logits(module, trunk: Architecture, exits: Exits, inputs):  # type: ignore[no-untyped-def]
    """Logits of every branch, in point order, then of the trunk, from one pass through the trunk."""
    positions = _child_positions(trunk)
    taps = {positions[tap_step(trunk, point).index]: str(i) for i, point in enumerate(exits.points)}
    outputs, x = [], inputs
    for position, child in enumerate(module["trunk"]):
        x = child(x)
        if position in taps:
            outputs.append(module["branches"][taps[position]](x))
    return outputs + [x]


def exit_module(module, trunk: Architecture, exits: Exits):  # type: ignore[no-untyped-def]
    """The Sequential of the exit `exits.answer` (the trunk up to it, then its branch), sharing `module`'s weights;
    its layers match `exit_architecture(trunk, exits).layer_shapes()`."""
    from torch import nn

    if not exits.answer:
        return module["trunk"]
    position = _child_positions(trunk)[tap_step(trunk, exits.answer).index]
    branch = module["branches"][str(exits.points.index(exits.answer))]
    return nn.Sequential(*list(module["trunk"])[:position + 1], *branch)


def train_branched(trunk: Architecture, exits: Exits, images, labels, config, trunk_state: dict | None):  # type: ignore[no-untyped-def]
    """Train the branches (seeded, deterministic): with the trunk on a weighted sum of every exit's loss ('joint'),
    or alone on `trunk_state`, frozen ('frozen'). Returns (state dict, seconds)."""
    import torch
    from torch import nn

    from nets._torch import init_module, train_module

    torch.manual_seed(config.seed)
    module = branched_module(trunk, exits)
    if exits.training == "joint":
        module["trunk"] = init_module(trunk, 1.0, config.seed)
    else:
        module["trunk"].load_state_dict(trunk_state)
        module["trunk"].requires_grad_(False)
        module["trunk"].eval()
    cross_entropy, weights = nn.CrossEntropyLoss(), exits.weights
    if exits.training == "frozen":
        weights = weights[:-1] + (0.0,)  # the trunk's loss cannot change a frozen trunk

    def loss(batch, targets):  # type: ignore[no-untyped-def]
        logits = all_exit_logits(module, trunk, exits, batch)
        return sum(w * cross_entropy(out, targets) for w, out in zip(weights, logits) if w)

    trained = module if exits.training == "joint" else module["branches"]
    seconds = train_module(trained, images, labels, config, loss)
    module.eval()
    return module.state_dict(), seconds
