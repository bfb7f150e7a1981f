"""Post-training dynamic fixed point (Jahier Pagliari 2018 §4.1, after Gysel 2016): no retraining.

Every parameter tensor and every layer's output feature map (and the network input) gets its own
fixed-point format: integer bits from the largest magnitude recorded on the range images (training images, never
the calibration or test rows; for activations) or in the tensor (for weights), the rest of the word fractional.
Weights are quantized once, feature maps are fake-quantized by forward hooks while the float module runs.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from nets.training._torch import predict_logits
from nets.scores._variant import Variant
from costmodel import UserError

ROUNDINGS = ("nearest", "stochastic")
MIN_BITS, MAX_BITS = 2, 32
INPUT = "<input>"  # key of the network input in the recorded ranges
SEED = 0  # stochastic rounding is seeded: a variant's scores are reproducible


class QuantizationError(UserError):
    """A bit-width or rounding mode the quantizer cannot use."""


def check_bits(bits: int | None) -> int:
    """`bits` if it is an integer in 2..32, else QuantizationError naming the value."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise QuantizationError(f"bit-width must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    return int(bits)


def check_rounding(rounding: str) -> str:
    """`rounding` if it is 'nearest' or 'stochastic', else QuantizationError naming the value."""
    if rounding not in ROUNDINGS:
        raise QuantizationError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    return rounding


def fixed_point_format(max_abs: float, bits: int) -> tuple[int, int]:
    """(integer bits incl. sign, fractional bits) of a `bits`-wide word covering +-max_abs (Gysel 2016's rule).

    Integer bits i = ceil(log2(max_abs)) + 1, so max_abs <= 2^(i-1): the range [-2^(i-1), 2^(i-1) - 2^-f]
    covers every recorded value to within one step. i may be <= 0 (small values: all bits fractional)
    or exceed `bits` (f < 0: steps coarser than 1).
    """
    check_bits(bits)
    if not max_abs > 0:
        return 1, bits - 1
    mantissa, exponent = math.frexp(max_abs)  # max_abs = mantissa * 2^exponent, 0.5 <= mantissa < 1
    int_bits = exponent + (0 if mantissa == 0.5 else 1)
    return int_bits, bits - int_bits


def quantize(x: torch.Tensor, int_bits: int, frac_bits: int, rounding: str,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """`x` rounded to multiples of 2^-frac_bits and saturated to the format's range.

    'nearest' rounds to the nearest step (ties to even); 'stochastic' rounds up with probability equal to
    the remainder, so it is unbiased in expectation (draws from `generator`).
    """
    step = 2.0 ** -frac_bits
    scaled = x / step
    if check_rounding(rounding) == "nearest":
        scaled = torch.round(scaled)
    else:
        noise = torch.rand(scaled.shape, generator=generator, dtype=scaled.dtype, device=scaled.device)
        scaled = torch.floor(scaled + noise)
    top = 2.0 ** (int_bits - 1)
    return torch.clamp(scaled * step, -top, top - step)


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named modules without children: the layers whose outputs are feature maps."""
    return [(name, sub) for name, sub in module.named_modules() if not list(sub.children())]


@contextlib.contextmanager
def _hooks(module: nn.Module, on_input: Callable[[torch.Tensor], torch.Tensor],
           on_output: Callable[[str, torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace the network input by on_input(x) and every layer output y by on_output(name, y) while inside."""
    handles = [module.register_forward_pre_hook(lambda _m, args: (on_input(args[0]),) + tuple(args[1:]))]
    handles += [sub.register_forward_hook(lambda _m, _args, out, name=name: on_output(name, out))
                for name, sub in _leaves(module)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def calibrate_ranges(module: nn.Module, range_images: np.ndarray) -> dict[str, float]:
    """Largest magnitude of the network input (key INPUT) and of every layer output on `range_images` (training
    images)."""
    ranges: dict[str, float] = {}

    def record(name: str, value: torch.Tensor) -> torch.Tensor:
        ranges[name] = max(ranges.get(name, 0.0), float(value.abs().max()))
        return value

    with _hooks(module, lambda x: record(INPUT, x), record):
        predict_logits(module, range_images)
    return ranges


@torch.no_grad()
def quantize_weights(module: nn.Module, bits: int, rounding: str, generator: torch.Generator) -> nn.Module:
    """A copy of `module` with every parameter tensor in its own `bits`-wide dynamic fixed-point format."""
    quantized = copy.deepcopy(module)
    for parameter in quantized.parameters():
        int_bits, frac_bits = fixed_point_format(float(parameter.abs().max()), bits)
        parameter.copy_(quantize(parameter, int_bits, frac_bits, rounding, generator))
    return quantized


def quantized_module(module: nn.Module, bits: int, rounding: str) -> nn.Module:
    """A copy of `module` with its weights in `bits`-wide dynamic fixed point, drawn as `quantized_logits` draws them."""
    return quantize_weights(module, check_bits(bits), check_rounding(rounding), torch.Generator().manual_seed(SEED))


def quantized_logits(module: nn.Module, variant: Variant, images: np.ndarray, range_images: np.ndarray) -> np.ndarray:
    """Float64 logits of `module` run in `variant.bits`-bit dynamic fixed point with `variant.rounding`.

    Formats of the feature maps come from ranges recorded by the float module on `range_images`.
    """
    bits, rounding = check_bits(variant.bits), check_rounding(variant.rounding)
    ranges = calibrate_ranges(module, range_images)
    formats = {name: fixed_point_format(max_abs, bits) for name, max_abs in ranges.items()}
    generator = torch.Generator().manual_seed(SEED)
    quantized = quantize_weights(module, bits, rounding, generator)

    def fake_quantize(name: str, value: torch.Tensor) -> torch.Tensor:
        return quantize(value, *formats[name], rounding, generator)

    with _hooks(quantized, lambda x: fake_quantize(INPUT, x), fake_quantize):
        return predict_logits(quantized, images)
