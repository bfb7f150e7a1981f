"""The shipped architectures: Park 2015 Tables I-II, Tann 2016 Table 3, and a ReLU LeNet.

MNIST nets follow Caffe's LeNet recipe, which Park et al. used as their big net: the only
ReLU sits after the first InnerProduct. `lenet-relu` adds a ReLU after each convolution (the
neuron-level effort knob needs one). ImageNet and CIFAR/SVHN nets have a ReLU after every hidden
layer (LRN layers are left out: they carry no MACs the cost model prices).
"""

from __future__ import annotations

from costmodel import UserError
from nets.models._arch import FC, Architecture, Conv, Layer, Pool, ReLU

MNIST_INPUT = (1, 28, 28)
CIFAR_INPUT = (3, 32, 32)


def _mnist_two_conv(name: str, conv1: int, conv2: int, fc: int, kernel: int = 5) -> Architecture:
    """LeNet-shaped net: conv, pool, conv, pool, fc, relu, fc(10)."""
    layers = (Conv(conv1, kernel), Pool(2), Conv(conv2, kernel), Pool(2), FC(fc), ReLU(), FC(10))
    return Architecture(name, MNIST_INPUT, layers)


def _mnist_one_conv(name: str, conv1: int, fc: int, stride: int = 1) -> Architecture:
    """Single-conv mini net: conv, pool, fc, relu, fc(10)."""
    layers = (Conv(conv1, 5, stride=stride), Pool(2), FC(fc), ReLU(), FC(10))
    return Architecture(name, MNIST_INPUT, layers)


def _imagenet(name: str, body: tuple[Layer, ...], input_size: int = 224) -> Architecture:
    """An ImageNet classifier: `body` then fc 4096, 4096, 1000 with ReLUs."""
    head = (FC(4096), ReLU(), FC(4096), ReLU(), FC(1000))
    return Architecture(name, (3, input_size, input_size), body + head)


def _convs(channels: int, count: int, kernel: int = 3, pad: int = 1, groups: tuple[int, ...] = ()) -> tuple[Layer, ...]:
    """`count` same-size convolutions, each followed by ReLU."""
    out: list[Layer] = []
    for i in range(count):
        out += [Conv(channels, kernel, pad=pad, groups=groups[i] if groups else 1), ReLU()]
    return tuple(out)


def _build_zoo() -> dict[str, Architecture]:
    """All shipped architectures by lower-case name."""
    nets = [
        _mnist_two_conv("lenet", 20, 50, 500),
        _mnist_two_conv("mini1", 10, 25, 250),
        _mnist_two_conv("mini2", 7, 15, 150),
        _mnist_two_conv("mini3", 2, 5, 50),
        _mnist_two_conv("mini4", 2, 5, 50, kernel=2),
        _mnist_one_conv("mini5", 20, 500),
        _mnist_one_conv("mini6", 10, 250),
        _mnist_one_conv("mini7", 10, 250, stride=2),
        _mnist_one_conv("mini8", 10, 250, stride=4),
        Architecture("lenet-relu", MNIST_INPUT, (Conv(20, 5), ReLU(), Pool(2), Conv(50, 5), ReLU(), Pool(2),
                                                 FC(500), ReLU(), FC(10))),
        # Tann 2016 Table 3: Caffe's CIFAR-10 "full" net (their ALEXnet, LRN removed) and Sermanet's ConvNets.
        Architecture("alexnet-cifar10", CIFAR_INPUT, (Conv(32, 5, pad=2), Pool(3, 2), ReLU(), Conv(32, 5, pad=2), ReLU(),
                                                      Pool(3, 2, mode="avg"), Conv(64, 5, pad=2), ReLU(),
                                                      Pool(3, 2, mode="avg"), FC(10))),
        Architecture("convnets", CIFAR_INPUT, (Conv(16, 5), ReLU(), Pool(2, mode="avg"), Conv(512, 7), ReLU(),
                                               Conv(20, 5), ReLU(), Pool(2, mode="avg"), FC(20), ReLU(), FC(10))),
        _imagenet("verydeep19", _convs(64, 2) + (Pool(2),) + _convs(128, 2) + (Pool(2),)
                  + _convs(256, 4) + (Pool(2),) + _convs(512, 4) + (Pool(2),) + _convs(512, 4) + (Pool(2),)),
        _imagenet("vgg_s", (Conv(96, 7, stride=2), ReLU(), Pool(3), Conv(256, 5), ReLU(), Pool(2))
                  + _convs(512, 3) + (Pool(3),)),
        _imagenet("vgg_m", (Conv(96, 7, stride=2), ReLU(), Pool(3, 2), Conv(256, 5, stride=2, pad=1), ReLU(),
                            Pool(3, 2)) + _convs(512, 3) + (Pool(3, 2),)),
        _imagenet("vgg_f", (Conv(64, 11, stride=4), ReLU(), Pool(3, 2), Conv(256, 5, pad=2), ReLU(), Pool(3, 2))
                  + _convs(256, 3) + (Pool(3, 2),)),
        _imagenet("caffenet", (Conv(96, 11, stride=4), ReLU(), Pool(3, 2), Conv(256, 5, pad=2, groups=2), ReLU(),
                               Pool(3, 2), Conv(384, 3, pad=1), ReLU()) + _convs(384, 1, groups=(2,))
                  + _convs(256, 1, groups=(2,)) + (Pool(3, 2),), input_size=227),
    ]
    return {net.name: net for net in nets}


ZOO: dict[str, Architecture] = _build_zoo()


class UnknownArchitecture(UserError):
    """A network name that is not in the zoo."""

    def __str__(self) -> str:
        return str(self.args[0])


def architecture(name: str) -> Architecture:
    """The shipped architecture called `name` (case-insensitive); a spec's own models resolve through the spec."""
    try:
        return ZOO[name.lower()]
    except KeyError:
        raise UnknownArchitecture(f"unknown network '{name}'; known: {', '.join(architecture_names())}") from None


def architecture_names() -> list[str]:
    """Names of all shipped architectures."""
    return list(ZOO)
