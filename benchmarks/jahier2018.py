"""Jahier Pagliari et al. 2018 on full MNIST: LeNet as a precision cascade vs static 16-bit, no retraining.

Usage: python benchmarks/jahier2018.py [--data DIR] [--rounding nearest|stochastic] [--dataflow auto|...].
Characterizes LeNet's minimum bit-width per calibration sample (§4.1), merges bars under 1% into the candidate set,
and picks on calibration the cheapest increasing subset of it (1-4 stages), each at the smallest shared score-margin
threshold meeting a 1% drop vs float (§4.2). Reports test-split accuracy drop and energy saving vs static
16-bit, priced two ways: the tile accelerator (widths 2..16) and Envision's Table 1 (its 4/8/16-bit modes;
energy = MACs x power / throughput, the paper's normalisation). `--dataflow` maps the tile accelerator's layers
(default "diannao", the first version's mapping, so the figures stay comparable). That pick is not certified; next to
it, a certified pick on the tile accelerator: one half of the calibration split chooses the widths and the threshold
the same way, the other half certifies (`dse.risk`, alpha 1 %, delta 0.1, fixed-sequence testing of shared thresholds
from +inf down to the chosen one) the lowest threshold whose risk against float is within the drop. Last line:
{"bitwidths": [...], "energy_saving_vs_static16_pct": ..., "accuracy_drop_pct": ...} for the tile accelerator's
uncertified pick, with the Envision figures under "envision" and the certified pick under "certified".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np

import costmodel
import nets
from dse.risk import allowed_loss, fixed_sequence
from dse.mechanisms.bitwidth.jahier2018 import (characterize_scores, fit_precision_cascade, fit_shared_threshold,
                                                load_bitwidth_scores, merge_bars, render_histogram,
                                                shared_threshold_curve)

DATA = Path("/work/shared/datasets/mnist")
NET = "lenet"
TILE_BITS = tuple(range(2, 17))
ENVISION_BITS = (4, 8, 16)  # the precision modes of the Envision chip (Table 1)
CONFIG = nets.TrainingConfig(epochs=6, batch_size=64, learning_rate=1e-3, weight_decay=0.0, seed=0)
MAX_DROP_PCT = 1.0
DELTA = 0.1
CANDIDATES = 400  # shared thresholds tested in sequence by the certified pick
SPLITS = ("calib", "test")
PAPER = ("paper, CaffeNet on Envision: dynamic {8,16}: 49.2% saving at 0.89% drop; "
         "pure 8-bit: ~4% drop, 78% power reduction")

Pricing = Callable[[int], float]  # bit-width -> energy of one full LeNet inference, pJ


@dataclass(frozen=True)
class Row:
    """One cascade under one pricing: how it was chosen, its widths and threshold, and its results."""

    pricing: str
    choice: str
    bitwidths: tuple[int, ...]
    threshold: float
    calib_drop_pct: float
    test_drop_pct: float
    saving_pct: float
    escalated_pct: float


def tile_pricing(dataflow: costmodel.Dataflow) -> Pricing:
    """The tile accelerator (default Accelerator and technology, layers mapped by `dataflow`) at each bit-width."""
    layers = nets.architecture(NET).layer_shapes()
    return lambda bits: costmodel.network_cost(layers, costmodel.Accelerator(bits=bits, dataflow=dataflow)).energy_pj


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


class WidthRows:
    """Per-sample rows of every width, stacked per split, and the float reference accuracy."""

    def __init__(self, scores: dict[int | None, nets.VariantScores]) -> None:
        self.widths = [b for b in scores if b is not None]
        self.margin = {sp: np.stack([scores[b].splits[sp].margin for b in self.widths]) for sp in SPLITS}
        self.correct = {sp: np.stack([scores[b].splits[sp].correct for b in self.widths]) for sp in SPLITS}
        self.float_accuracy = {sp: scores[None].splits[sp].accuracy for sp in SPLITS}

    def take(self, split: str, widths: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(margins, correct) of `widths`, each (len(widths), N)."""
        rows = [self.widths.index(b) for b in widths]
        return self.margin[split][rows], self.correct[split][rows]

    def search(self, candidates: Sequence[int], pricing: Pricing) -> tuple[tuple[int, ...], float]:
        """Cheapest increasing subset (1-4 widths) of `candidates` meeting the drop on calibration, and its threshold."""
        best = fit_precision_cascade(*self.take("calib", candidates), [pricing(b) for b in candidates], candidates,
                                     self.float_accuracy["calib"], MAX_DROP_PCT)
        if best is None:
            sys.exit(f"no subset of {list(candidates)} meets a {MAX_DROP_PCT:g}% drop on calibration")
        return best.bitwidths, best.threshold

    def fixed(self, widths: Sequence[int]) -> tuple[tuple[int, ...], float]:
        """`widths` as given, at the smallest threshold meeting the drop on calibration (+inf if none does)."""
        threshold = fit_shared_threshold(*self.take("calib", widths), self.float_accuracy["calib"], MAX_DROP_PCT)
        return tuple(widths), math.inf if threshold is None else threshold

    def row(self, pricing_name: str, pricing: Pricing, choice: str, fitted: tuple[tuple[int, ...], float]) -> Row:
        """Accuracy drop vs float on both splits and test energy saving vs static 16-bit of a fitted cascade."""
        widths, threshold = fitted
        energy = [pricing(b) for b in widths]
        drop, cost = {}, 0.0
        for split in SPLITS:
            accuracy, cost = shared_threshold_curve(*self.take(split, widths), energy, np.array([threshold]))
            drop[split] = 100 * (self.float_accuracy[split] - accuracy[0])
        escalated = (self.take("test", widths)[0][0] < threshold).mean() if len(widths) > 1 else 0.0
        return Row(pricing_name, choice, widths, threshold, drop["calib"], drop["test"],
                   100 * (1 - cost[0] / pricing(16)), 100 * escalated)


def cascade_correct(margins: np.ndarray, correct: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) whether the cascade with one shared threshold answers each sample right (the last stage always answers)."""
    answers = np.vstack([margins[:-1] >= threshold, np.ones((1, margins.shape[1]), bool)])
    return correct[np.argmax(answers, axis=0), np.arange(margins.shape[1])]


def certified_pick(per_width: WidthRows, float_correct: np.ndarray, candidates: Sequence[int], pricing: Pricing,
                   seed: int = 0) -> tuple[tuple[int, ...], float] | None:
    """Widths and threshold chosen on half of the calibration rows, then the lowest shared threshold from +inf down
    to the chosen one whose risk against float is certified within the drop on the other half (None: not even +inf)."""
    n = per_width.margin["calib"].shape[1]
    order = np.random.default_rng(seed).permutation(n)
    choose, certify = np.sort(order[:n // 2]), np.sort(order[n // 2:])
    rows = [per_width.widths.index(b) for b in candidates]
    margins, correct = per_width.margin["calib"][rows], per_width.correct["calib"][rows]
    best = fit_precision_cascade(margins[:, choose], correct[:, choose], [pricing(b) for b in candidates], candidates,
                                 float(float_correct[choose].mean()), MAX_DROP_PCT)
    if best is None:
        return None
    margins, correct = per_width.take("calib", best.bitwidths)
    below = np.unique(margins[:-1, choose])
    below = below[below >= best.threshold][::-1]  # safe (high) to aggressive, fixed on the choosing half
    sequence = np.r_[np.inf, below[np.unique(np.linspace(0, len(below) - 1, CANDIDATES).astype(int))]] \
        if len(below) else np.array([np.inf])
    reference = float_correct[certify].astype(bool)
    right = [cascade_correct(margins[:, certify], correct[:, certify].astype(bool), t) for t in sequence]
    worse = np.array([int((reference & ~r).sum()) for r in right])
    better = np.array([int((~reference & r).sum()) for r in right])
    count = fixed_sequence(worse, better, len(certify), MAX_DROP_PCT, DELTA)
    return (best.bitwidths, float(sequence[count - 1])) if count else None


def print_rows(rows: list[Row]) -> None:
    """The comparison table."""
    print(f"{'pricing':<9} {'choice':<26} {'bit-widths':<11} {'threshold':>9} {'calib drop':>10} {'test drop':>9} "
          f"{'saving vs 16b':>13} {'escalated':>9}")
    for r in rows:
        print(f"{r.pricing:<9} {r.choice:<26} {','.join(map(str, r.bitwidths)):<11} {r.threshold:>9.4f} "
              f"{r.calib_drop_pct:>9.2f}% {r.test_drop_pct:>8.2f}% {r.saving_pct:>12.1f}% {r.escalated_pct:>8.1f}%")


def main() -> None:
    """Characterize, fit and price the precision cascades; print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="directory of the four MNIST IDX .gz files")
    parser.add_argument("--rounding", choices=("nearest", "stochastic"), default="nearest")
    parser.add_argument("--dataflow", choices=get_args(costmodel.Dataflow), default="diannao",
                        help="mapping of the tile accelerator's layers (default: the first version's)")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"full MNIST not found at {args.data}: pass --data DIR (the four IDX .gz files)")
    dataset = nets.load_dataset("mnist", args.data)
    cache = nets.ScoreCache(os.environ.get("DSE_CACHE_DIR", "/tmp/fullcache"))
    scores = load_bitwidth_scores(dataset, NET, TILE_BITS, CONFIG, cache, args.rounding, n_jobs=1)
    per_width, chosen = WidthRows(scores), []
    table: list[Row] = []
    for name, pricing, widths in (("tile", tile_pricing(args.dataflow), TILE_BITS), ("envision", envision_pricing(), ENVISION_BITS)):
        characterization = characterize_scores({b: scores[b] for b in (None, *widths)})
        print(f"\n{NET} minimum bit-width, calibration split, {args.rounding} rounding ({name} widths):")
        print(render_histogram(characterization, [scores[b].splits["calib"].accuracy for b in (*widths, None)]))
        merged = tuple(merge_bars(characterization.fractions, widths))
        print(f"candidate set after the 1% merge: {list(merged)}")
        chosen.append(per_width.row(name, pricing, "best subset of merged set", per_width.search(merged, pricing)))
        table += [chosen[-1], per_width.row(name, pricing, "merged set, all stages", per_width.fixed(merged)),
                  per_width.row(name, pricing, "best subset of all widths", per_width.search(widths, pricing)),
                  per_width.row(name, pricing, "paper's set", per_width.fixed((8, 16))),
                  per_width.row(name, pricing, "pure 8-bit", per_width.fixed((8,)))]
    print(f"\nprecision cascades, thresholds: smallest meeting <= {MAX_DROP_PCT:g}% drop vs float on calibration "
          f"({len(dataset.labels['calib'])} samples); test split {len(dataset.labels['test'])} samples; "
          f"float accuracy calib {per_width.float_accuracy['calib']:.2%}, test {per_width.float_accuracy['test']:.2%}")
    print_rows(table)
    print(PAPER)
    tile, envision = chosen
    pricing = tile_pricing(args.dataflow)
    merged = tuple(merge_bars(characterize_scores({b: scores[b] for b in (None, *TILE_BITS)}).fractions, TILE_BITS))
    fitted = certified_pick(per_width, scores[None].splits["calib"].correct, merged, pricing)
    certified = None if fitted is None else per_width.row("tile", pricing, "certified", fitted)
    test_rows = len(dataset.labels["test"])
    print(f"uncertified pick (calibration only): bit-widths {list(tile.bitwidths)}, test drop "
          f"{tile.test_drop_pct:.2f}%, saving {tile.saving_pct:.1f}%")
    if certified is None:
        print("certified pick: none certifies; static 16-bit")
    else:
        within = round(certified.test_drop_pct * test_rows / 100) <= allowed_loss(MAX_DROP_PCT, test_rows)
        print(f"certified pick (alpha {MAX_DROP_PCT:g}%, delta {DELTA:g}, on calibration rows the choice never saw): "
              f"bit-widths {list(certified.bitwidths)} (threshold {certified.threshold:.4g}), test drop "
              f"{certified.test_drop_pct:.2f}% ({'within' if within else 'over'} the bound), saving "
              f"{certified.saving_pct:.1f}%")
    print(f"tile accelerator, dataflow {args.dataflow}: picks bit-widths {list(tile.bitwidths)} (threshold "
          f"{tile.threshold:.4g}); LeNet energy at those widths / at 16 bits: "
          f"{', '.join(f'{b}b {pricing(b) / pricing(16):.3f}' for b in tile.bitwidths)}")
    print(json.dumps({"bitwidths": list(tile.bitwidths), "energy_saving_vs_static16_pct": round(tile.saving_pct, 2),
                      "accuracy_drop_pct": round(tile.test_drop_pct, 3),
                      "envision": {"bitwidths": list(envision.bitwidths),
                                   "energy_saving_vs_static16_pct": round(envision.saving_pct, 2),
                                   "accuracy_drop_pct": round(envision.test_drop_pct, 3)},
                      "certified": None if certified is None else {
                          "bitwidths": list(certified.bitwidths), "threshold": round(certified.threshold, 6),
                          "energy_saving_vs_static16_pct": round(certified.saving_pct, 2),
                          "accuracy_drop_pct": round(certified.test_drop_pct, 3)}}))


if __name__ == "__main__":
    main()
