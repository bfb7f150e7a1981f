"""Post-training dynamic fixed point (nets.training._quant): formats, rounding, coverage and fidelity on LeNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nets import Dataset, TrainingConfig, Variant
from nets.training._quant import (QuantizationError, calibrate_ranges, check_bits, fixed_point_format, quantize,
                                  quantized_logits)
from nets.training._torch import init_module, predict_logits, train_module


@pytest.fixture(scope="module")
def lenet(mnist5k: Dataset) -> nn.Module:
    """LeNet after one epoch on 1,500 random mnist5k training digits (about 90% calibration accuracy)."""
    torch.set_num_threads(1)
    images, labels = mnist5k.split("train")
    subset = np.random.default_rng(0).permutation(len(labels))[:1500]  # the split is ordered by class
    module = init_module(Variant("lenet").architecture, 1.0, 0)
    train_module(module, images[subset], labels[subset], TrainingConfig(epochs=1, batch_size=16, learning_rate=2e-3))
    return module


@pytest.mark.parametrize(("max_abs", "bits", "expected"), [
    (1.0, 8, (1, 7)),  # exactly 2^0: sign bit only, 1.0 saturates to 1 - 2^-7
    (0.3, 8, (0, 8)),  # below 0.5: every bit fractional
    (3.9, 8, (3, 5)),
    (4.0, 16, (3, 13)),
    (300.0, 4, (10, -6)),  # steps of 64
    (0.0, 8, (1, 7)),
])
def test_fixed_point_format_golden(max_abs: float, bits: int, expected: tuple[int, int]) -> None:
    assert fixed_point_format(max_abs, bits) == expected


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12, 16, 24, 32])
def test_format_covers_the_recorded_range(bits: int) -> None:
    """max_abs <= 2^(i-1) with no spare integer bit, and quantizing never errs by more than one step."""
    rng = np.random.default_rng(bits)
    for scale in (1e-3, 0.37, 1.0, 5.0, 1234.5):
        values = torch.from_numpy(rng.uniform(-scale, scale, 4000))
        max_abs = float(values.abs().max())
        int_bits, frac_bits = fixed_point_format(max_abs, bits)
        assert 2.0 ** (int_bits - 2) < max_abs <= 2.0 ** (int_bits - 1)
        error = (quantize(values, int_bits, frac_bits, "nearest") - values).abs().max()
        assert float(error) <= 2.0 ** -frac_bits


def test_no_overflow_on_calibration_feature_maps(mnist5k: Dataset) -> None:
    """Every layer output recorded on the calibration images fits its format to within one step."""
    module = nn.Sequential(nn.Conv2d(1, 4, 5), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 12 * 12, 10))
    images = mnist5k.split("calib")[0][:300]
    ranges = calibrate_ranges(module, images)
    assert set(ranges) == {"<input>", "0", "1", "2", "3"} and ranges["<input>"] == 1.0
    outputs = {"<input>": torch.from_numpy(images.astype(np.float32) / 255.0)}
    for index, layer in enumerate(module):
        outputs[str(index)] = layer(outputs[str(index - 1) if index else "<input>"]).detach()
    for name, value in outputs.items():
        int_bits, frac_bits = fixed_point_format(ranges[name], 8)
        assert float(value.abs().max()) <= 2.0 ** (int_bits - 1)
        assert float((quantize(value, int_bits, frac_bits, "nearest") - value).abs().max()) <= 2.0 ** -frac_bits


def test_stochastic_rounding_is_unbiased() -> None:
    """E[q(x)] = x for stochastic rounding (mean error within 4 standard errors); nearest is biased here."""
    generator = torch.Generator().manual_seed(0)
    values = torch.full((200_000,), 0.3, dtype=torch.float64)
    stochastic = quantize(values, 1, 2, "stochastic", generator)
    assert set(stochastic.unique().tolist()) == {0.25, 0.5}
    standard_error = float(stochastic.std()) / len(values) ** 0.5
    assert abs(float(stochastic.mean()) - 0.3) < 4 * standard_error
    assert float(quantize(values, 1, 2, "nearest").mean()) == 0.25
    spread = torch.from_numpy(np.random.default_rng(1).uniform(-0.9, 0.9, 200_000))
    assert abs(float((quantize(spread, 1, 3, "stochastic", generator) - spread).mean())) < 4 * 0.125 / 200_000 ** 0.5


def test_16_bit_keeps_lenet_predictions(lenet: nn.Module, mnist5k: Dataset) -> None:
    """16-bit dynamic fixed point changes fewer than 0.5% of a trained LeNet's predictions."""
    images, _ = mnist5k.split("calib")
    reference = predict_logits(lenet, images).argmax(axis=1)
    logits = quantized_logits(lenet, Variant("lenet", bits=16), images, images)
    assert logits.dtype == np.float64 and logits.shape == (len(images), 10)
    assert (logits.argmax(axis=1) != reference).mean() < 0.005


def test_stochastic_variant_is_reproducible_and_leaves_module_intact(lenet: nn.Module, mnist5k: Dataset) -> None:
    images = mnist5k.split("calib")[0][:200]
    before = [p.clone() for p in lenet.parameters()]
    variant = Variant("lenet", bits=6, rounding="stochastic")
    first = quantized_logits(lenet, variant, images, images)
    np.testing.assert_array_equal(first, quantized_logits(lenet, variant, images, images))
    assert all(torch.equal(a, b) for a, b in zip(before, lenet.parameters()))
    assert not lenet._forward_hooks and not any(m._forward_hooks for m in lenet.modules())


@pytest.mark.parametrize(("bits", "match"), [(0, "got 0"), (1, "got 1"), (33, "got 33"), (None, "got None")])
def test_bad_bit_width(bits: int | None, match: str) -> None:
    with pytest.raises(QuantizationError, match=rf"bit-width must be an integer in 2\.\.32, {match}"):
        check_bits(bits)
    with pytest.raises(QuantizationError, match=match):
        quantized_logits(nn.Flatten(), Variant("lenet", bits=bits), np.zeros((1, 1, 2, 2), np.uint8),
                         np.zeros((1, 1, 2, 2), np.uint8))


def test_bad_rounding() -> None:
    with pytest.raises(QuantizationError, match="rounding must be one of nearest, stochastic, got 'up'"):
        quantize(torch.zeros(3), 1, 7, "up")
