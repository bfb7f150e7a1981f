"""Architectures as data: torch modules and cost-model shapes agree; hand-checked MAC counts."""

from __future__ import annotations

import pytest
import torch

from nets import ArchitectureError, architecture, architecture_names
from nets.training._torch import build_module

MNIST_NETS = ["lenet"] + [f"mini{i}" for i in range(1, 9)] + ["lenet-relu", "alexnet-cifar10", "convnets"]


def test_lenet_macs_by_hand() -> None:
    shapes = {s.name: s for s in architecture("lenet").layer_shapes()}
    assert shapes["conv1"].macs == 20 * 24 * 24 * (1 * 5 * 5)  # 288,000
    assert shapes["conv2"].macs == 50 * 8 * 8 * (20 * 5 * 5)  # 1,600,000
    assert shapes["fc1"].macs == 800 * 500 and shapes["fc1"].in_channels == 50 * 4 * 4
    assert shapes["fc2"].macs == 500 * 10
    assert architecture("lenet").macs() == 2_293_000


@pytest.mark.parametrize("name", MNIST_NETS)
@pytest.mark.parametrize("width", [1.0, 0.5, 0.25])
def test_torch_module_matches_layer_shapes(name: str, width: float) -> None:
    arch = architecture(name)
    module = build_module(arch, width)
    shapes = iter(arch.layer_shapes(width))
    x = torch.zeros(2, *arch.input_shape)
    macs = 0
    for layer in module:
        before = x
        x = layer(x)
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.Linear)):
            shape = next(shapes)
            assert tuple(before.shape[1:]) == ((shape.in_channels,) if shape.kind == "fc"
                                              else (shape.in_channels, shape.in_h, shape.in_w))
            assert x.shape[1:].numel() == shape.output_count
            if shape.has_weights:
                assert layer.weight.numel() == shape.weight_count
                macs += shape.macs
    assert x.shape == (2, 10)
    assert macs == arch.macs(width)


def test_width_scales_all_but_classifier() -> None:
    half = architecture("lenet").layer_shapes(0.5)
    assert [s.out_channels for s in half if s.has_weights] == [10, 25, 250, 10]


def test_width_rounding_to_zero_is_an_error() -> None:
    with pytest.raises(ArchitectureError, match="rounds .* to 0 channels"):
        architecture("mini3").layer_shapes(0.2)
    with pytest.raises(ArchitectureError, match="width fraction"):
        architecture("lenet").layer_shapes(1.5)


def test_imagenet_nets_have_sane_sizes() -> None:
    assert {"verydeep19", "vgg_s", "vgg_m", "vgg_f", "caffenet"} <= set(architecture_names())
    # VGG-19 is quoted at 19.6 G multiply-accumulates (Simonyan & Zisserman 2014); AlexNet/CaffeNet at 0.72 G.
    assert architecture("verydeep19").macs() == pytest.approx(19.6e9, rel=0.01)
    assert architecture("caffenet").macs() == pytest.approx(0.72e9, rel=0.02)
    assert architecture("caffenet").layer_shapes()[-1].out_channels == 1000
