"""Torch side of early-exit networks: the branched module, every exit's logits from one trunk pass, the module of
one exit, seeded joint or frozen-trunk training, and branches on an ONNX trunk's activations (read by onnxruntime)."""

from __future__ import annotations

from nets.models._arch import FC, Architecture
from nets.models._exits import Exits, branch_layers, tap_step
from nets.models._models import Model


def _child_positions(trunk: Architecture) -> list[int]:
    """Position of each trunk layer among the children of its torch Sequential (a Flatten precedes a first FC)."""
    positions, position = [], 0
    for step in trunk.trace():
        position += isinstance(step.layer, FC) and not step.flat_in
        positions.append(position)
        position += 1
    return positions


def _layer_modules(trunk_module, trunk: Architecture) -> list:  # type: ignore[no-untyped-def]
    """The torch module computing each trunk layer (a Sequential's children, or a `LayerGraph`'s steps)."""
    if trunk.is_sequential:
        children = list(trunk_module)
        return [children[position] for position in _child_positions(trunk)]
    return list(trunk_module.steps)


def _branch_architecture(trunk: Architecture, exits: Exits, point: str) -> Architecture:
    """The branch at `point` as a network on that layer's output."""
    tap = tap_step(trunk, point)
    return Architecture(f"{point}.exit", tap.out_shape, branch_layers(point, tap, exits, trunk.output_size))


def branch_modules(trunk: Architecture, exits: Exits):  # type: ignore[no-untyped-def]
    """A torch ModuleDict of one Sequential per exit point, keyed '0', '1', ... in point order."""
    from torch import nn

    from nets.training._torch import build_module

    return nn.ModuleDict({str(i): build_module(_branch_architecture(trunk, exits, point))
                          for i, point in enumerate(exits.points)})


def branched_module(trunk: Architecture, exits: Exits):  # type: ignore[no-untyped-def]
    """A torch ModuleDict {'trunk': the trunk's module, 'branches': `branch_modules`}."""
    from torch import nn

    from nets.training._torch import build_module

    return nn.ModuleDict({"trunk": build_module(trunk), "branches": branch_modules(trunk, exits)})


def all_exit_logits(module, trunk: Architecture, exits: Exits, inputs):  # type: ignore[no-untyped-def]
    """Logits of every branch, in point order, then of the trunk, from one pass through the trunk (the exit points'
    outputs are caught by forward hooks)."""
    layers = _layer_modules(module["trunk"], trunk)
    taps: dict[int, object] = {}
    hooks = [layers[tap_step(trunk, point).index].register_forward_hook(
        lambda _module, _args, output, i=i: taps.__setitem__(i, output)) for i, point in enumerate(exits.points)]
    try:
        final = module["trunk"](inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return [module["branches"][str(i)](taps[i]) for i in range(len(exits.points))] + [final]


def exit_module(module, trunk: Architecture, exits: Exits):  # type: ignore[no-untyped-def]
    """The module of the exit `exits.answer` (the trunk up to it, then its branch), sharing `module`'s weights;
    its layers match `exit_architecture(trunk, exits).layer_shapes()`."""
    from torch import nn

    from nets.training._torch import LayerGraph

    if not exits.answer:
        return module["trunk"]
    index = tap_step(trunk, exits.answer).index
    branch = module["branches"][str(exits.points.index(exits.answer))]
    if trunk.is_sequential:
        return nn.Sequential(*list(module["trunk"])[:_child_positions(trunk)[index] + 1], *branch)
    graph = module["trunk"]
    prefix = LayerGraph(list(graph.steps)[:index + 1], {k: v for k, v in graph.reads.items() if k <= index})
    return nn.Sequential(prefix, *branch)


def train_branched(trunk: Architecture, exits: Exits, images, labels, config, trunk_state: dict | None):  # type: ignore[no-untyped-def]
    """Train the branches (seeded, deterministic): with the trunk on a weighted sum of every exit's loss ('joint'),
    or alone on `trunk_state`, frozen ('frozen'). Returns (state dict, seconds)."""
    import torch
    from torch import nn

    from nets.training._torch import init_module, train_module

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


def _activations(model: Model, points: tuple[str, ...], images):  # type: ignore[no-untyped-def]
    """float32 activations of the ONNX trunk `model` at `points`, as torch tensors (n, C, H, W)."""
    import torch

    from nets.models._onnx import onnx_activations

    assert model.onnx is not None
    arrays = onnx_activations(model.onnx, points, images, model.input_mean, model.input_std)
    return [torch.from_numpy(array.reshape(len(array), *tap_step(model.onnx.architecture, point).out_shape))
            for array, point in zip(arrays, points)]


def train_onnx_branches(model: Model, exits: Exits, images, labels, config):  # type: ignore[no-untyped-def]
    """Train the branches of `exits` on the frozen ONNX trunk `model` (seeded, deterministic): on its activations at
    the exit points, read once by onnxruntime, with the exits' weighted losses. Returns (state dict, seconds)."""
    import torch
    from torch import nn

    from nets.training._torch import train_module

    assert model.onnx is not None
    trunk = model.onnx.architecture
    torch.manual_seed(config.seed)
    branches = branch_modules(trunk, exits)
    features = _activations(model, exits.points, images)
    cross_entropy, weights = nn.CrossEntropyLoss(), exits.weights[:-1]

    def loss(rows, targets):  # type: ignore[no-untyped-def]
        return sum(w * cross_entropy(branches[str(i)](f[rows]), targets)
                   for i, (w, f) in enumerate(zip(weights, features)) if w)

    # the inputs are row numbers: each batch's activations are taken from every point's array (never copied whole)
    seconds = train_module(branches, torch.arange(len(labels)), labels, config, loss)
    return branches.state_dict(), seconds


def onnx_exit_logits(model: Model, exits: Exits, state: dict, images):  # type: ignore[no-untyped-def]
    """Logits (n, classes) float64 of the exit `exits.answer` on the ONNX trunk `model`: its branch (weights from
    `state`, as `train_onnx_branches` returns it) on the trunk's activations at that point."""
    import torch

    assert model.onnx is not None
    branches = branch_modules(model.onnx.architecture, exits)
    branches.load_state_dict(state)
    branches.eval()
    branch = branches[str(exits.points.index(exits.answer))]
    (features,) = _activations(model, (exits.answer,), images)
    with torch.no_grad():
        logits = [branch(features[i:i + 1000]) for i in range(0, len(features), 1000)]
    return torch.cat(logits).numpy().astype("float64")
