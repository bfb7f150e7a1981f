"""Jahier Pagliari et al. 2018 on full MNIST: LeNet as a precision cascade vs static 16-bit, no retraining.

Usage: python benchmarks/jahier2018.py [--data DIR] [--rounding nearest|stochastic]. Characterizes LeNet's
minimum bit-width per calibration sample (2..16 bits, §4.1), merges bars under 1% into the candidate set,
fits the smallest shared score-margin threshold meeting a 1% drop vs float on calibration (§4.2) and
reports test-split accuracy drop and energy saving vs static 16-bit, priced two ways: the tile accelerator
(any width) and Envision's Table 1 (4/8/16-bit modes only; energy = MACs x power / throughput, the
paper's normalisation). Last line: {"bitwidths": [...], "energy_saving_vs_static16_pct": ...,
"accuracy_drop_pct": ...} for the tile accelerator, with the Envision figures under "envision".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import costmodel
import nets
from dse._bitwidth import (characterize_scores, fit_shared_threshold, load_bitwidth_scores, merge_bars,
                           shared_threshold_curve)
from dse._cli_bitwidth import render_histogram

DATA = Path("/work/shared/datasets/mnist")
NET = "lenet"
TILE_BITS = tuple(range(2, 17))
ENVISION_BITS = (4, 8, 16)  # the precision modes of the Envision chip (Table 1)
CONFIG = nets.TrainingConfig(epochs=6, batch_size=64, learning_rate=1e-3, weight_decay=0.0, seed=0)
MAX_DROP_PCT = 1.0
PAPER = ("paper, CaffeNet on Envision: dynamic {8,16}: 49.2% saving at 0.89% drop; "
         "pure 8-bit: ~4% drop, 78% power reduction")

Pricing = Callable[[int], float]  # bit-width -> energy of one full LeNet inference, pJ


@dataclass(frozen=True)
class Row:
    """One cascade: its widths, fitted threshold and test-split results under one pricing."""

    pricing: str
    bitwidths: tuple[int, ...]
    threshold: float
    calib_drop_pct: float
    test_drop_pct: float
    saving_pct: float
    escalated_pct: float


def tile_pricing() -> Pricing:
    """The tile accelerator (default Accelerator and technology) at each bit-width."""
    layers = nets.architecture(NET).layer_shapes()
    return lambda bits: costmodel.network_cost(layers, costmodel.Accelerator(bits=bits)).energy_pj


def envision_pricing() -> Pricing:
    """Envision Table 1: power at a fixed 76 GOPS, so energy per inference = MACs x pJ/MAC at that width."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write('[mac]\npreset = "envision"\n')
    try:
        technology = costmodel.load_technology(handle.name)
    finally:
        os.unlink(handle.name)
    macs = nets.architecture(NET).macs()
    return lambda bits: macs * technology.mac_energy_pj(bits)


def cascade_row(scores: dict, widths: Sequence[int], pricing_name: str, pricing: Pricing,
                threshold: float | None = None) -> Row:
    """Fit the threshold on calib (unless given), then measure test drop vs float and saving vs static 16-bit."""
    stack = {split: (np.stack([scores[b].splits[split].margin for b in widths]),
                     np.stack([scores[b].splits[split].correct for b in widths])) for split in ("calib", "test")}
    float_acc = {split: scores[None].splits[split].accuracy for split in stack}
    if threshold is None:
        threshold = fit_shared_threshold(*stack["calib"], float_acc["calib"], MAX_DROP_PCT)
        threshold = np.inf if threshold is None else threshold
    energy = np.array([pricing(b) for b in widths])
    result = {split: shared_threshold_curve(*stack[split], energy, np.array([threshold])) for split in stack}
    margins_test = stack["test"][0]
    escalated = float((margins_test[0] < threshold).mean()) if len(widths) > 1 else 0.0
    return Row(pricing_name, tuple(widths), float(threshold),
               100 * (float_acc["calib"] - result["calib"][0][0]), 100 * (float_acc["test"] - result["test"][0][0]),
               100 * (1 - result["test"][1][0] / pricing(16)), 100 * escalated)


def print_rows(rows: list[Row]) -> None:
    """The comparison table."""
    print(f"{'pricing':<9} {'bit-widths':<12} {'threshold':>9} {'calib drop':>10} {'test drop':>9} "
          f"{'saving vs 16b':>13} {'escalated':>9}")
    for r in rows:
        print(f"{r.pricing:<9} {','.join(map(str, r.bitwidths)):<12} {r.threshold:>9.4f} {r.calib_drop_pct:>9.2f}% "
              f"{r.test_drop_pct:>8.2f}% {r.saving_pct:>12.1f}% {r.escalated_pct:>8.1f}%")


def main() -> None:
    """Characterize, fit and price the precision cascades; print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory of the four MNIST IDX .gz files")
    parser.add_argument("--rounding", choices=("nearest", "stochastic"), default="nearest")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"full MNIST not found at {args.data}: pass --data DIR (the four IDX .gz files)")
    dataset = nets.load_dataset("mnist", args.data)
    cache = nets.ScoreCache(os.environ.get("DSE_CACHE_DIR", "/tmp/fullcache"))
    scores = load_bitwidth_scores(dataset, NET, TILE_BITS, CONFIG, cache, args.rounding, n_jobs=1)
    pricings = {"tile": tile_pricing(), "envision": envision_pricing()}
    chosen = {}
    for name, widths in (("tile", TILE_BITS), ("envision", ENVISION_BITS)):
        restricted = {b: scores[b] for b in (None, *widths)}
        characterization = characterize_scores(restricted)
        print(f"\n{NET} minimum bit-width, calibration split, {args.rounding} rounding ({name} widths):")
        print(render_histogram(characterization, [scores[b].splits["calib"].accuracy for b in (*widths, None)]))
        chosen[name] = tuple(merge_bars(characterization.fractions, widths))
        print(f"candidate set after the 1% merge: {list(chosen[name])}")
    rows = [cascade_row(scores, chosen[name], name, pricing) for name, pricing in pricings.items()]
    rows += [cascade_row(scores, (8, 16), name, pricing) for name, pricing in pricings.items()]
    rows += [cascade_row(scores, (8,), name, pricing, threshold=0.0) for name, pricing in pricings.items()]
    print(f"\nprecision cascades on the test split ({len(dataset.labels['test'])} samples), threshold: smallest "
          f"meeting <= {MAX_DROP_PCT:g}% drop vs float on calibration; float test accuracy "
          f"{scores[None].splits['test'].accuracy:.2%}")
    print_rows(rows)
    print(PAPER)
    tile, envision = rows[0], rows[1]
    print(json.dumps({"bitwidths": list(tile.bitwidths), "energy_saving_vs_static16_pct": round(tile.saving_pct, 2),
                      "accuracy_drop_pct": round(tile.test_drop_pct, 3),
                      "envision": {"bitwidths": list(envision.bitwidths),
                                   "energy_saving_vs_static16_pct": round(envision.saving_pct, 2),
                                   "accuracy_drop_pct": round(envision.test_drop_pct, 3)}}))


if __name__ == "__main__":
    main()
