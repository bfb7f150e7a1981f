"""The extended layer vocabulary: spec tables, cost-model shapes, torch modules, and the zoo left exactly as it was."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F

from nets import (FC, Add, Architecture, ArchitectureError, BatchNorm, Conv, Flatten, GlobalPool, Pool, ReLU,
                  architecture, architecture_from_table, architecture_names)
from nets.training._torch import LayerGraph, build_module, init_module

# A ResNet-style basic block (identity shortcut) and a MobileNet-style depthwise-separable block, 8x8 maps.
BLOCKS = [
    {"type": "conv", "out": 8, "kernel": 3, "pad": 1, "name": "stem"},
    {"type": "batchnorm"},
    {"type": "relu", "name": "stem_relu"},
    {"type": "conv", "out": 8, "kernel": 3, "pad": 1, "name": "res_conv1"},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "conv", "out": 8, "kernel": 3, "pad": 1, "name": "res_conv2"},
    {"type": "batchnorm"},
    {"type": "add", "from": "stem_relu", "name": "res_add"},
    {"type": "relu"},
    {"type": "conv", "out": 8, "kernel": 3, "pad": 1, "groups": 8, "name": "dw"},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "conv", "out": 16, "kernel": 1, "name": "pw"},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "pool", "mode": "max", "kernel": 2},
    {"type": "pool", "mode": "global"},
    {"type": "flatten"},
    {"type": "fc", "out": 10, "name": "classifier"},
]


def blocks() -> Architecture:
    """The two blocks on a 3 x 8 x 8 input."""
    return architecture_from_table("blocks", (3, 8, 8), BLOCKS, "spec.toml [models.blocks].layers")


def test_zoo_descriptions_shapes_and_initial_weights_unchanged() -> None:
    """Golden digests taken before the vocabulary grew: cache keys and reproduced figures depend on them."""
    described = {name: architecture(name).describe() for name in architecture_names()}
    assert hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest() == (
        "49bbff34c19b0f2131f12ca8ff9133ec62fd7d8825aec342724378e8d9c217dc")
    shapes = {name: [str(s) for s in architecture(name).layer_shapes()] for name in architecture_names()}
    assert hashlib.sha256(json.dumps(shapes, sort_keys=True).encode()).hexdigest() == (
        "89e3ab481885b641dbc44e2f73c7344a36d0e321ca91f589e7280e68cd839566")
    golden = {("lenet", 1.0): "1b8b4efedb40e4c2", ("lenet", 0.5): "24c8cd98beec60fd",
              ("mini8", 0.5): "464026f2fdb844db", ("lenet-relu", 1.0): "a3e6ad338e818aaa",
              ("alexnet-cifar10", 0.5): "59ce853410ba66b9", ("convnets", 1.0): "c5743155b40b2acb"}
    for (name, width), expected in golden.items():
        module = init_module(architecture(name), width, 0)
        assert isinstance(module, torch.nn.Sequential)
        digest = hashlib.sha256()
        for key, value in module.state_dict().items():
            digest.update(key.encode())
            digest.update(value.numpy().tobytes())
        digest.update(repr(module).encode())
        assert digest.hexdigest()[:16] == expected, (name, width)


def test_blocks_shapes_and_macs_by_hand() -> None:
    shapes = {s.name: s for s in blocks().layer_shapes()}
    assert list(shapes) == ["stem", "res_conv1", "res_conv2", "res_add", "dw", "pw", "pool1", "pool2", "classifier"]
    assert shapes["stem"].macs == 8 * 8 * 8 * (3 * 3 * 3)  # 13,824
    assert shapes["res_conv1"].macs == shapes["res_conv2"].macs == 8 * 8 * 8 * (8 * 3 * 3)  # 36,864
    assert shapes["dw"].macs == 8 * 8 * 8 * (1 * 3 * 3) and shapes["dw"].groups == 8  # 4,608
    assert shapes["dw"].weight_count == 8 * 1 * 3 * 3
    assert shapes["pw"].macs == 16 * 8 * 8 * 8  # 8,192
    assert shapes["classifier"].macs == 16 * 10 and shapes["classifier"].in_channels == 16
    add = shapes["res_add"]
    assert (add.kind, add.in_channels, add.in_h, add.in_w, add.out_channels, add.out_h, add.out_w, add.macs) == (
        "add", 8, 8, 8, 8, 8, 8, 0)
    assert add.pool_ops == 8 * 8 * 8  # one addition per element
    gap = shapes["pool2"]
    assert (gap.kind, gap.in_h, gap.in_w, gap.kernel_h, gap.kernel_w, gap.out_h, gap.out_w) == ("avgpool", 4, 4, 4, 4,
                                                                                               1, 1)
    assert blocks().macs() == 13_824 + 2 * 36_864 + 4_608 + 8_192 + 160
    assert blocks().output_size == 10


def _reference_forward(module: LayerGraph, x: torch.Tensor) -> torch.Tensor:
    """The blocks written out by hand with torch.nn.functional on the module's own weights (batch norm in eval)."""
    conv, bn = [m for m in module.steps if isinstance(m, torch.nn.Conv2d)], [m for m in module.steps
                                                                              if isinstance(m, torch.nn.BatchNorm2d)]
    fc = next(m for m in module.steps if isinstance(m, torch.nn.Linear))

    def conv_bn(i: int, y: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(y, conv[i].weight, conv[i].bias, conv[i].stride, conv[i].padding, groups=conv[i].groups)
        return F.batch_norm(y, bn[i].running_mean, bn[i].running_var, bn[i].weight, bn[i].bias, False, 0.0, bn[i].eps)

    stem = F.relu(conv_bn(0, x))
    block = F.relu(conv_bn(2, F.relu(conv_bn(1, stem))) + stem)
    separable = F.relu(conv_bn(4, F.relu(conv_bn(3, block))))
    pooled = F.max_pool2d(separable, 2).mean(dim=(2, 3))
    return F.linear(pooled, fc.weight, fc.bias)


def test_blocks_module_matches_hand_written_forward() -> None:
    torch.manual_seed(0)
    module = build_module(blocks())
    assert isinstance(module, LayerGraph)
    for bn in (m for m in module.steps if isinstance(m, torch.nn.BatchNorm2d)):  # non-trivial folded statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    module.eval()
    x = torch.rand(5, 3, 8, 8)
    torch.testing.assert_close(module(x), _reference_forward(module, x))
    weighted = [m for m in module.steps if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    shapes = [s for s in blocks().layer_shapes() if s.has_weights]
    assert [m.weight.numel() for m in weighted] == [s.weight_count for s in shapes]


@pytest.mark.parametrize("width", [0.5, 0.25])
def test_width_scales_depthwise_groups_and_keeps_adds_consistent(width: float) -> None:
    shapes = {s.name: s for s in blocks().layer_shapes(width)}
    channels = round(8 * width)
    assert shapes["dw"].groups == shapes["dw"].in_channels == shapes["dw"].out_channels == channels
    assert shapes["res_add"].in_channels == channels and shapes["classifier"].out_channels == 10
    module = build_module(blocks(), width).eval()
    assert module(torch.rand(2, 3, 8, 8)).shape == (2, 10)


def test_add_from_the_input_and_floor_pooling() -> None:
    arch = Architecture("skip", (4, 5, 5), (Conv(4, 3, pad=1), Add("input"), Pool(2, ceil=False), Flatten(), FC(3)))
    assert [s.out_h for s in arch.layer_shapes() if s.kind == "maxpool"] == [2]
    ceil = Architecture("ceil", (4, 5, 5), (Pool(2), Flatten(), FC(3)))
    assert ceil.layer_shapes()[0].out_h == 3
    module = build_module(arch).eval()
    x = torch.rand(2, 4, 5, 5)
    conv, fc = module.steps[0], module.steps[4]
    torch.testing.assert_close(module(x), fc(F.max_pool2d(conv(x) + x, 2).flatten(1)))


def test_zoo_vocabulary_stays_sequential_and_describe_names_only_when_given() -> None:
    plain = Architecture("plain", (1, 8, 8), (Conv(4, 3), ReLU(), Pool(2), FC(10)))
    assert plain.is_sequential and isinstance(build_module(plain), torch.nn.Sequential)
    assert plain.describe()[0] == {"type": "Conv", "out_channels": 4, "kernel": 3, "stride": 1, "pad": 0, "groups": 1}
    named = Architecture("named", (1, 8, 8), (Conv(4, 3, name="c"), BatchNorm(), GlobalPool(), Flatten(), FC(10)))
    assert not named.is_sequential
    assert named.describe()[0]["name"] == "c" and named.describe()[2] == {"type": "GlobalPool", "mode": "avg"}


WHERE = "spec.toml [models.m].layers"
CONV = {"type": "conv", "out": 4, "kernel": 3}
FLAT_FC = [{"type": "flatten"}, {"type": "fc", "out": 10}]


@pytest.mark.parametrize(("layers", "match"), [
    ([], "needs a non-empty list"),
    (["conv"], r"layer 0 must be a table"),
    ([{"type": "dense", "out": 3}], r"layer 0, 'type': unknown layer type 'dense'"),
    ([{**CONV, "padding": 1}], r"layer 0 \(conv\), 'padding': unknown key"),
    ([{"type": "conv", "kernel": 3}], r"layer 0 \(conv\), 'out': is required"),
    ([{**CONV, "out": 0}], r"layer 0 \(conv\), 'out': must be an integer >= 1, got 0"),
    ([{**CONV, "kernel": 2.5}], r"'kernel': must be an integer >= 1, got 2.5"),
    ([{**CONV, "stride": True}], r"'stride': must be an integer >= 1, got True"),
    ([{**CONV, "pad": -1}], r"'pad': must be an integer >= 0, got -1"),
    ([{**CONV, "groups": 2}] + FLAT_FC, r"layer 0 \(conv\), 'groups': 2 groups do not divide 3 input and 4 output"),
    ([{**CONV, "kernel": 9}] + FLAT_FC, r"layer 0 \(conv\), 'kernel': kernel 9 is larger than its padded 8x8 input"),
    ([{"type": "pool", "kernel": 2}], r"layer 0 \(pool\), 'mode': is required"),
    ([{"type": "pool", "mode": "mean", "kernel": 2}], r"'mode': must be one of max, avg, global, global_max"),
    ([{"type": "pool", "mode": "max"}], r"layer 0 \(pool\), 'kernel': is required"),
    ([{"type": "pool", "mode": "global", "kernel": 2}], r"'kernel': a global pool takes no window keys"),
    ([{"type": "pool", "mode": "avg", "kernel": 2, "pad": 2}] + FLAT_FC, r"'pad': padding 2 is more than half"),
    ([{"type": "pool", "mode": "max", "kernel": 2, "ceil": 1}], r"'ceil': must be true or false"),
    ([{"type": "batchnorm"}] + FLAT_FC, r"layer 0 \(batchnorm\), 'type': batch norm must directly follow"),
    ([CONV, {"type": "relu"}, {"type": "batchnorm"}] + FLAT_FC, r"layer 2 \(batchnorm\)"),
    ([CONV, {"type": "add", "from": "nowhere"}] + FLAT_FC, r"layer 1 \(add\), 'from': 'nowhere' names no layer"),
    ([CONV, {"type": "add", "from": "later"}, {"type": "relu", "name": "later"}] + FLAT_FC,
     r"layer 1 \(add\), 'from': 'later' names a later layer"),
    ([CONV, {"type": "add", "from": "input"}] + FLAT_FC, r"layer 1 \(add\), 'from': 'input' outputs 3x8x8, the "
                                                         r"running tensor is 4x6x6"),
    ([{"type": "add"}], r"layer 0 \(add\), 'from': is required"),
    ([{**CONV, "name": "a"}, {"type": "relu", "name": "a"}] + FLAT_FC, r"layer 1 \(relu\), 'name': 'a' is used twice"),
    ([{**CONV, "name": "input"}] + FLAT_FC, r"'name': 'input' is reserved"),
    ([{**CONV, "name": ""}], r"'name': must be a non-empty string"),
    ([{**CONV, "name": "conv2"}, CONV] + FLAT_FC, r"layer 0 \(conv\), 'name': 'conv2' is another layer's automatic"),
    ([{"type": "flatten"}, CONV, {"type": "fc", "out": 10}], r"layer 1 \(conv\), 'type': needs a C x H x W input"),
    ([CONV], r"layer 0 \(conv\), 'type': the network must end in a flat output"),
    ([CONV, {**CONV, "input": "nowhere"}] + FLAT_FC, r"layer 1 \(conv\), 'input': 'nowhere' names no layer"),
    ([{**CONV, "input": "c"}, {**CONV, "name": "c"}] + FLAT_FC, r"layer 0 \(conv\), 'input': 'c' names a later"),
    ([{**CONV, "input": 3}] + FLAT_FC, r"layer 0 \(conv\), 'input': must be a non-empty string, got 3"),
    ([{**CONV, "name": "c"}, {"type": "batchnorm", "input": "c"}] + FLAT_FC,
     r"layer 1 \(batchnorm\), 'type': batch norm must directly follow"),
])
def test_table_errors_name_where_layer_and_key(layers: list, match: str) -> None:
    with pytest.raises(ArchitectureError, match=match) as caught:
        architecture_from_table("m", (3, 8, 8), layers, WHERE)
    assert str(caught.value).startswith(WHERE) and "\n" not in str(caught.value)


def test_width_that_breaks_an_add_or_groups_is_an_error() -> None:
    skip = Architecture("skip", (3, 8, 8), (Conv(3, 3, pad=1), Add("input"), Flatten(), FC(10)))
    assert skip.macs() == 3 * 8 * 8 * 27 + 192 * 10
    with pytest.raises(ArchitectureError, match=r"'from': 'input' outputs 3x8x8, the running tensor is 2x8x8 at "
                                                r"width 0.5"):
        skip.layer_shapes(0.5)
    grouped = Architecture("grouped", (4, 8, 8), (Conv(6, 3, groups=2), Flatten(), FC(10)))
    with pytest.raises(ArchitectureError, match=r"'groups': 2 groups do not divide 4 input and 3 output channels at"):
        grouped.layer_shapes(0.5)


def test_a_projection_shortcut_reads_an_earlier_layer() -> None:
    """A downsampling residual block: the shortcut branch (strided 1x1 conv) reads the block input by name."""
    table = [{"type": "conv", "out": 8, "kernel": 3, "pad": 1}, {"type": "relu", "name": "block_in"},
             {"type": "conv", "out": 16, "kernel": 3, "stride": 2, "pad": 1}, {"type": "batchnorm"},
             {"type": "relu"}, {"type": "conv", "out": 16, "kernel": 3, "pad": 1, "name": "main"},
             {"type": "conv", "out": 16, "kernel": 1, "stride": 2, "input": "block_in", "name": "proj"},
             {"type": "add", "from": "main"}, {"type": "relu"}, {"type": "pool", "mode": "global_max"},
             {"type": "flatten"}, {"type": "fc", "out": 10}]
    arch = architecture_from_table("down", (4, 8, 8), table, "test")
    shapes = {s.name: s for s in arch.layer_shapes()}
    assert (shapes["proj"].in_channels, shapes["proj"].in_h, shapes["proj"].out_h) == (8, 8, 4)
    assert shapes["proj"].macs == 16 * 4 * 4 * 8 and shapes["conv2"].macs == 16 * 4 * 4 * (8 * 9)
    assert shapes["pool1"].kind == "maxpool" and shapes["pool1"].kernel_h == 4
    assert not arch.is_sequential and arch.describe()[6]["input"] == "block_in"
    torch.manual_seed(0)
    module = build_module(arch).eval()
    conv = [m for m in module.steps if isinstance(m, torch.nn.Conv2d)]
    bn = next(m for m in module.steps if isinstance(m, torch.nn.BatchNorm2d))
    fc = next(m for m in module.steps if isinstance(m, torch.nn.Linear))
    x = torch.rand(3, 4, 8, 8)
    block_in = F.relu(conv[0](x))
    main = conv[2](F.relu(bn(conv[1](block_in))))
    out = F.relu(main + conv[3](block_in)).amax(dim=(2, 3))
    torch.testing.assert_close(module(x), fc(out))
    half = {s.name: s for s in arch.layer_shapes(0.5)}
    assert half["proj"].in_channels == 4 and half["proj"].out_channels == half["main"].out_channels == 8
