"""Dynamic effort knobs: plain equivalence, the safe bound, hand-counted operations, errors, pricing and search."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch

import costmodel
from costmodel._effort import per_sample_cost
from dse.core.space import ScopedChooser
from dse.mechanisms.effort import EFFORT_GRID, Effort, mechanism_grid, suggest_knobs
from nets import FC, Architecture, Conv, ReLU, Variant, architecture
from nets.effort._effort import (KNOBS, EffortError, calibrate, effort_forward, effort_logits, resolve_knobs,
                                 skipping_forward)
from nets.training._torch import build_module, init_module, predict_logits

OFF = (("chunk_fraction", 1.0), ("sample_stride", 1.0), ("uniformity", 0.0))


def _images(shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """Random uint8 images."""
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def _tiny(arch: Architecture, *weights: tuple[list, list]) -> torch.nn.Sequential:
    """A module for `arch` with hand-set (weight, bias) per conv/FC layer."""
    module = build_module(arch)
    layers = [m for m in module if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for layer, (weight, bias) in zip(layers, weights):
            layer.weight.copy_(torch.tensor(weight, dtype=torch.float32).reshape(layer.weight.shape))
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return module.eval()


def _run(module: torch.nn.Sequential, arch: Architecture, knobs: tuple, images: np.ndarray,
         calib: np.ndarray) -> tuple[np.ndarray, object]:
    """Logits and counts of `module` with `knobs`, ranges calibrated on `calib`."""
    net = calibrate(module, arch, 1.0, calib)
    return effort_forward(net, net.resolve(knobs), images)


@pytest.mark.parametrize("net", ["lenet-relu", "lenet", "mini7", "alexnet-cifar10"])
def test_knobs_off_equal_the_plain_network(net: str) -> None:
    arch = architecture(net)
    module = init_module(arch, 1.0, seed=0).eval()
    images, calib = _images(arch.input_shape, 12, 1), _images(arch.input_shape, 12, 2)
    logits, ops = effort_logits(module, Variant(net, knobs=OFF), images, calib)
    np.testing.assert_allclose(logits, predict_logits(module, images), rtol=1e-4, atol=1e-5)
    assert ops.tolist() == [arch.macs()] * len(images)


def test_safe_bound_never_changes_an_output() -> None:
    arch = architecture("lenet-relu")
    module = init_module(arch, 1.0, seed=0).eval()
    with torch.no_grad():  # negative biases, so that many neurons end up at 0 and termination has work to do
        module[3].bias -= 0.3
        module[7].bias -= 0.3
    images = _images(arch.input_shape, 24, 3)
    logits, counts = _run(module, arch, (("chunk_fraction", 0.1), ("confidence", 1.0)), images, images)
    np.testing.assert_allclose(logits, predict_logits(module, images), rtol=1e-4, atol=1e-5)
    assert counts.macs.sum(axis=1).max() < arch.macs()  # every sample had dot products that stopped early


NEURON_ARCH = Architecture("tiny-fc", (4, 1, 1), (FC(3), ReLU(), FC(1)))
NEURON_WEIGHTS = ([[-4, 1, 1, 1], [1, 1, 1, 1], [-2, 1, 1, 1]], [0, 0, 0]), ([[1, 1, 1]], [0])


@pytest.mark.parametrize(("confidence", "macs", "checks", "logit"), [(1.0, 9, 7, 5.0), (0.5, 6, 5, 4.0)])
def test_neuron_level_hand_count(confidence: float, macs: int, checks: int, logit: float) -> None:
    # Input x = (1, 1, 1, 1); calibrated input range [0, 1], so the most a remaining weight w can add is max(w, 0).
    # chunk_fraction 0.25: four chunks of one feature, a check after chunks 1-3 (stop if partial < -confidence x R_j).
    # A = (-4, 1, 1, 1): R = 3, 2, 1. After chunk 1, -4 < -3 (and < -1.5): stops. 1 MAC, 1 check, output 0.
    # B = (1, 1, 1, 1): partial sums 1, 2, 3 never stop. 4 MACs, 3 checks, output 4.
    # C = (-2, 1, 1, 1): confidence 1: -2 >= -3, -1 >= -2, 0 >= -1: 4 MACs, 3 checks, output 1.
    #                    confidence 0.5: -2 < -1.5 stops: 1 MAC, 1 check, output 0 (exact: 1; the aggressive error).
    # fc1: 1 + 4 + 4 = 9 MACs, 7 checks (confidence 1); 1 + 4 + 1 = 6 MACs, 5 checks (0.5). fc2 (no ReLU): 3 MACs.
    module = _tiny(NEURON_ARCH, *NEURON_WEIGHTS)
    calib = np.array([np.zeros((4, 1, 1)), np.full((4, 1, 1), 255)], dtype=np.uint8)
    knobs = (("chunk_fraction", 0.25), ("confidence", confidence))
    logits, counts = _run(module, NEURON_ARCH, knobs, calib[1:], calib)
    assert counts.macs.tolist() == [[macs, 3]]
    assert counts.extra_ops.tolist() == [[checks, 0]]
    assert logits[0, 0] == logit


FEATURE_ARCH = Architecture("tiny-map", (1, 5, 5), (Conv(1, 1), ReLU(), FC(1)))


def test_feature_level_hand_count() -> None:
    # conv1 is the identity (1x1 kernel, weight 1): 1 MAC per output. Its calibrated output range is 1 (0 to 255/255).
    # Stride 2 on 5x5: grid rows and columns {0, 2, 4}, 9 grid points. Skipped: 6 on grid rows (columns 1, 3),
    # 6 on grid columns (rows 1, 3), 4 inside cells. Checks per map: 12 edges with a skipped index (3 grid rows x 2
    # gaps + 3 grid columns x 2 gaps) x 2 ops, + 4 cells with interior positions x 3 ops = 36.
    # Image 1, all 255: every edge is flat, all 16 filled: 9 MACs; 6 x 2 + 6 x 2 + 4 x 4 = 40 interpolation ops.
    # Image 2, column 4 at 255: edges between grid columns 2 and 4 differ by 1 >= 0.1. Filled: column 1 on grid rows
    # (3, x 2 ops), the 6 on grid columns (vertical edges flat, x 2), the cells left of column 2 (2, x 4) = 26 ops;
    # computed: 9 + column 3 on grid rows (3) + the right cells (2) = 14 MACs. Exact output: logit 5.
    # Image 3, one pixel at (1, 1), inside a cell: the grid sees only zeros, all filled with 0: the pixel is lost.
    # fc1 has no ReLU after it and no maps: 25 MACs, no extra ops.
    module = _tiny(FEATURE_ARCH, ([1], [0]), (np.ones(25), [0]))
    images = np.zeros((3, 1, 5, 5), np.uint8)
    images[0], images[1, 0, :, 4], images[2, 0, 1, 1] = 255, 255, 255
    calib = np.array([np.zeros((1, 5, 5)), np.full((1, 5, 5), 255)], dtype=np.uint8)
    logits, counts = _run(module, FEATURE_ARCH, (("sample_stride", 2), ("tolerance", 0.1)), images, calib)
    assert counts.macs.tolist() == [[9, 25], [14, 25], [9, 25]]
    assert counts.extra_ops.tolist() == [[76, 0], [62, 0], [76, 0]]
    np.testing.assert_allclose(logits[:, 0], [25, 5, 0], atol=1e-5)


LAYER_ARCH = Architecture("tiny-uniform", (2, 4, 4), (Conv(1, 3), ReLU(), FC(1)))


def test_layer_level_hand_count() -> None:
    # conv1: 2 input maps 4x4, one 3x3 kernel per map, 2x2 outputs: 4 x 2 x 9 = 72 MACs plain.
    # Map 0 is constant (variance 0 < 0.01 x 1^2): uniform, 1 MAC per output (mean x kernel sum), exact here.
    # Map 1 is a 0/255 checkerboard (variance 0.25): computed. 4 x (1 + 9) = 40 MACs.
    # Variance test: 2 maps x (2 x 16 + 3) = 70 ops. Skipped weights: 1 map x 1 output channel x (9 - 1) = 8.
    module = _tiny(LAYER_ARCH, (np.arange(18) / 10 - 0.5, [0.1]), (np.ones(4), [0]))
    image = np.zeros((1, 2, 4, 4), np.uint8)
    image[0, 0] = 128
    image[0, 1] = 255 * (np.indices((4, 4)).sum(axis=0) % 2)
    calib = np.array([np.zeros((2, 4, 4)), np.full((2, 4, 4), 255)], dtype=np.uint8)
    logits, counts = _run(module, LAYER_ARCH, (("uniformity", 0.01),), image, calib)
    assert counts.macs.tolist() == [[40, 4]]
    assert counts.extra_ops.tolist() == [[70, 0]]
    assert counts.skipped_weights.tolist() == [[8, 0]]
    np.testing.assert_allclose(logits, predict_logits(module, image), rtol=1e-5)


@pytest.mark.parametrize(("net", "knobs"), [
    ("lenet-relu", (("chunk_fraction", 0.25), ("confidence", 0.1), ("conv2.sample_stride", 3),
                    ("conv2.tolerance", 0.3), ("sample_stride", 2), ("tolerance", 0.2), ("uniformity", 0.02))),
    ("alexnet-cifar10", (("chunk_fraction", 0.5), ("confidence", 0.0), ("sample_stride", 2), ("tolerance", 0.2),
                         ("uniformity", 0.05))),
])
def test_skipping_implementation_matches_the_reference(net: str, knobs: tuple) -> None:
    arch = architecture(net)
    module = init_module(arch, 1.0, seed=0).double().eval()
    with torch.no_grad():  # dead maps, for the layer-level mechanism to find
        module[0].bias[::2] -= 10.0
    images = _images(arch.input_shape, 6, 4)
    net_ = calibrate(module, arch, 1.0, _images(arch.input_shape, 6, 5))
    efforts = net_.resolve(knobs)
    logits, counts = effort_forward(net_, efforts, images)
    skip_logits, skip_macs = skipping_forward(net_, efforts, images)
    np.testing.assert_allclose(skip_logits, logits, rtol=1e-9, atol=1e-9)
    assert skip_macs.tolist() == counts.macs.sum(axis=1).tolist()
    assert (counts.skipped_weights[:, 1] > 0).all() and counts.macs.sum(axis=1).max() < arch.macs()


def test_scopes_resolve_most_specific_first() -> None:
    knobs = (("chunk_fraction", 0.5), ("confidence", 0.5), ("conv.confidence", 0.2), ("conv2.confidence", 0.1))
    efforts = resolve_knobs(architecture("lenet-relu"), 1.0, knobs)
    assert [efforts[name].confidence for name in ("conv1", "conv2", "fc1", "fc2")] == [0.2, 0.1, 0.5, 1.0]
    assert efforts["fc2"].chunk_fraction == 1.0  # fc2 has no ReLU: a global knob skips it


@pytest.mark.parametrize(("net", "knobs", "message"), [
    ("lenet-relu", (("speed", 1.0),), "unknown effort knob 'speed'; known: chunk_fraction"),
    ("lenet-relu", (("confidence", 1.5),), r"'confidence' must be in \[0, 1\], got 1.5"),
    ("lenet-relu", (("chunk_fraction", 0.0),), r"'chunk_fraction' must be in \(0, 1\], got 0"),
    ("lenet-relu", (("sample_stride", 1.5),), "'sample_stride' must be an integer >= 1, got 1.5"),
    ("lenet-relu", (("conv3.tolerance", 0.1),), "lenet-relu has no layer 'conv3'"),
    ("lenet-relu", (("tolerance", 0.1), ("tolerance", 0.2)), "effort knob 'tolerance' is given twice"),
    ("lenet-relu", (("fc1.sample_stride", 2),), "fc1: only convolutions have feature maps"),
    ("lenet", (("conv1.chunk_fraction", 0.5),), "conv1: it is not followed by a ReLU"),
    ("lenet", (("conv.confidence", 0.5),), "neuron-level effort does not apply .conv1: .*; conv2: "),
    ("caffenet", (("confidence", 0.5),), "effort knobs need ungrouped convolutions; caffenet conv2 is grouped"),
])
def test_bad_knobs_are_one_line_errors(net: str, knobs: tuple, message: str) -> None:
    with pytest.raises(EffortError, match=message) as caught:
        resolve_knobs(architecture(net), 1.0, knobs)
    assert "\n" not in str(caught.value)


def test_effort_logits_validates_before_calibrating() -> None:
    with pytest.raises(EffortError, match="fc2: it is not followed by a ReLU"):
        effort_logits(None, Variant("lenet-relu", knobs=(("fc2.chunk_fraction", 0.5),)), np.zeros(0), np.zeros(0))


@pytest.fixture(scope="module")
def lenet_cost() -> tuple[costmodel.NetworkCost, costmodel.Accelerator]:
    """The plain lenet-relu priced on the default accelerator."""
    acc = costmodel.Accelerator()
    return costmodel.network_cost(architecture("lenet-relu").layer_shapes(), acc), acc


def test_pricing_without_savings_is_the_network_cost(lenet_cost: tuple) -> None:
    cost, acc = lenet_cost
    priced = per_sample_cost(cost, np.full(3, cost.macs), np.zeros(3), acc)
    for name in ("mac_pj", "sram_input_pj", "sram_weight_pj", "sram_output_pj", "dram_pj", "leakage_pj", "latency_s"):
        np.testing.assert_allclose(getattr(priced, name), getattr(cost, name), rtol=1e-12)
    np.testing.assert_allclose(priced.energy_pj, cost.energy_pj, rtol=1e-12)


def test_pricing_follows_executed_work(lenet_cost: tuple) -> None:
    cost, acc = lenet_cost
    fractions = np.array([1.0, 0.75, 0.5, 0.25])
    priced = per_sample_cost(cost, fractions * cost.macs, np.zeros(4), acc)
    assert (np.diff(priced.energy_pj) < 0).all() and (np.diff(priced.mac_pj) < 0).all()
    np.testing.assert_allclose(priced.dram_pj, cost.dram_pj)  # DRAM traffic does not shrink with skipped MACs
    np.testing.assert_allclose(priced.sram_output_pj, cost.sram_output_pj)
    layer_macs = np.array([[lc.macs for lc in cost.layer_costs if lc.kind in ("conv", "fc")]]) * fractions[:, None]
    np.testing.assert_allclose(per_sample_cost(cost, layer_macs, np.zeros((4, 4)), acc).energy_pj, priced.energy_pj)
    with_extra = per_sample_cost(cost, fractions * cost.macs, np.full(4, 1000.0), acc)
    assert (with_extra.energy_pj > priced.energy_pj).all()


def test_pricing_credits_weights_of_skipped_maps(lenet_cost: tuple) -> None:
    cost, acc = lenet_cost
    layer_macs = np.array([[lc.macs for lc in cost.layer_costs if lc.kind in ("conv", "fc")]], dtype=float)
    skipped = np.array([[0.0, 5000.0, 0.0, 0.0]])
    priced = per_sample_cost(cost, layer_macs, np.zeros((1, 4)), acc, skipped_weights=skipped)
    assert priced.dram_pj[0] < cost.dram_pj and priced.sram_weight_pj[0] < cost.sram_weight_pj
    with pytest.raises(costmodel.CostModelError, match=r"must be \(N,\) or \(N, 4\) for the conv/FC layers"):
        per_sample_cost(cost, layer_macs[:, :3], np.zeros(1), acc)


def test_search_grid_and_suggestions() -> None:
    assert set(EFFORT_GRID) == set(KNOBS)
    arch = architecture("lenet-relu")
    for mechanism in ("neuron", "feature", "layer"):
        for knobs in mechanism_grid(mechanism, "conv"):
            resolve_knobs(arch, 1.0, knobs)
    def chooser(params: dict) -> ScopedChooser:  # what the effort mechanism draws with: names stored as effort.*
        return ScopedChooser(optuna.trial.FixedTrial(params), "effort", Effort().param_name, {})

    off = chooser({"effort.chunk_fraction": 1.0, "effort.sample_stride": 1})
    assert suggest_knobs(off, ["neuron", "feature"]) == ()
    on = chooser({"effort.conv2.chunk_fraction": 0.25, "effort.conv2.confidence": 0.1})
    assert suggest_knobs(on, ["neuron"], ["conv2"]) == (("conv2.chunk_fraction", 0.25), ("conv2.confidence", 0.1))
    big = chooser({"effort.big.uniformity": 0.01})
    assert suggest_knobs(big, ["layer"], prefix="big.") == (("uniformity", 0.01),)


def test_search_and_pricing_do_not_import_torch() -> None:
    code = "import sys, dse, costmodel, dse.mechanisms.effort, costmodel._effort, nets.effort._effort; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
