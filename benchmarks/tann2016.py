"""Tann et al. 2016 on full MNIST with LeNet: golden models, increment search (§4.2), incremental training
(Algorithm 1), and the test-split result beside the paper's Tables 6-9.

Usage: python benchmarks/tann2016.py [--data DIR] [--widths 0.125,0.25,0.375,0.5] [--dataflow auto|...]
Golden widths and the range of N come from studies/tann2016-mnist.toml ([incremental]). Weights and scores go to
$DSE_CACHE_DIR (default /tmp/fullcache), shared with park2015-mnist (same data and training). The last line is one
JSON object. `--dataflow` maps the layers when pricing (default: the spec's "diannao", the first version's mapping,
so the figures stay comparable); a different price can choose other increments, which are then trained.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np

from costmodel import Dataflow
from dse import load_spec
from dse.mechanisms.incremental.tann2016 import IncrementPoint, increment_energy_table, search_increments
from dse.mechanisms.incremental.tann2016_trained import (build_rows, compare_incremental, echo_comparison,
                                                         setup_from_spec, stage_rows, storage_for, weights_seconds)
from nets import TrainingConfig, Variant

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")
BRIEF_CONFIG = TrainingConfig(epochs=6, batch_size=64, learning_rate=1e-3, weight_decay=0.0, seed=0)
PAPER = {  # Tables 6-9, custom accelerator
    "LeNet": {"fractions": "0.25/0.30/1", "thresholds": "0.90/0.85", "stage_acc": "97.60/98.66/98.85",
              "drop": 0.60, "saving": 95.53, "storage": "0.58% vs 30.71%"},
    "ALEXnet": {"fractions": "0.25/1", "thresholds": "0.70", "stage_acc": "72.40/80.88",
                "drop": 0.29, "saving": 32.61, "storage": "17.39% vs 96.43%"},
}


def _finite(values: tuple[float, ...]) -> list[float | None]:
    """Thresholds for JSON: a stage that accepts nothing (+inf) becomes null."""
    return [v if math.isfinite(v) else None for v in values]


def _joined(values: tuple[float, ...] | np.ndarray, scale: float = 1.0, digits: int = 2) -> str:
    return "/".join(f"{v * scale:.{digits}f}" if math.isfinite(v) else "inf" for v in values)


def _print_search(points: list[IncrementPoint], top: int = 8) -> None:
    """The best configurations on the calibration split, with the Eq. 1-3 estimates beside the simulation."""
    print(f"\nincrement search on golden models (calibration split), best {top} of {len(points)}:")
    print(f"{'fractions':<30} {'thresholds':<30} {'saving %':>8} {'loss %':>7} {'E ideal':>8} {'E Eq.1':>8} "
          f"{'E sim':>8} {'acc Eq.3':>9} {'acc sim':>8}")
    for p in points[:top]:
        print(f"{_joined(p.fractions, digits=3):<30} {_joined(p.thresholds, digits=4):<30} {p.energy_saving_pct:>8.2f} "
              f"{p.accuracy_loss_pct:>7.2f} {p.ideal_fraction:>8.4f} {p.analytic_fraction:>8.4f} "
              f"{p.simulated_fraction:>8.4f} {100 * p.analytic_accuracy:>9.2f} {100 * p.accuracy:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the four MNIST IDX .gz files")
    parser.add_argument("--widths", help="golden-model channel fractions below 1, increasing [default: the spec's]")
    parser.add_argument("--jobs", type=int, default=1, help="parallel training jobs")
    parser.add_argument("--dataflow", choices=get_args(Dataflow), default="diannao",
                        help="mapping of every layer when pricing (default: the spec's, the first version's)")
    args = parser.parse_args()
    missing = [name for name in MNIST_FILES if not (args.data / name).is_file()]
    if missing:
        sys.exit(f"full MNIST not found: {args.data} lacks {', '.join(missing)} (pass --data DIR)")
    cache_dir = os.environ.setdefault("DSE_CACHE_DIR", "/tmp/fullcache")  # incremental training finds its goldens
    spec = load_spec("tann2016-mnist").with_overrides(data={"path": str(args.data)},
                                                      accelerator={"dataflow": args.dataflow})
    below = tuple(float(w) for w in args.widths.split(",")) if args.widths else spec.section("incremental").widths
    widths = (*below, 1.0)
    setup = setup_from_spec(spec, cache_dir)
    if setup.config != BRIEF_CONFIG:
        sys.exit(f"tann2016-mnist trains with {setup.config}, expected {BRIEF_CONFIG} (shared with park2015-mnist)")
    start = time.perf_counter()

    golden_variants = [Variant(setup.net, w) for w in widths]
    golden = build_rows(setup, golden_variants, args.jobs, print)
    table = increment_energy_table(setup.layers_at, widths, setup.accelerator, setup.technology)
    points = search_increments(widths, *stage_rows(golden, golden_variants, "calib"), table, setup.max_loss_pct,
                               tuple(spec.section("incremental").n_increments))
    _print_search(points)
    best = points[0]
    print(f"\nchosen on calibration: increments {_joined(best.fractions, digits=3)}, thresholds "
          f"{_joined(best.thresholds, digits=4)}; training it incrementally")
    comparison = compare_incremental(setup, best.fractions, np.asarray(best.thresholds), n_jobs=args.jobs, log=print)
    wall = time.perf_counter() - start
    print()
    echo_comparison(comparison)

    result = comparison.incremental
    golden_seconds = [weights_seconds(setup, v) for v in golden_variants]
    storage_four, storage_chosen = storage_for(setup, (0.25, 0.5, 0.75, 1.0)), storage_for(setup, best.fractions)
    ours = {"fractions": _joined(result.fractions, digits=3), "thresholds": _joined(result.thresholds, digits=4),
            "stage_acc": _joined(comparison.incremental_stage_accuracy, 100),
            "drop": result.accuracy_loss_pct, "saving": result.energy_saving_pct,
            "storage": f"{storage_four.incremental_extra_pct:.2f}% vs {storage_four.golden_extra_pct:.2f}%"}
    print(f"\n{'(test split)':<38} {'paper LeNet':>18} {'ours LeNet':>30} {'paper ALEXnet':>17}")
    rows = [("increments (Table 7)", "fractions"), ("margin thresholds (Table 7)", "thresholds"),
            ("stage accuracy % (Table 8)", "stage_acc"), ("accuracy drop % (Table 9)", "drop"),
            ("accelerator energy saving % (Table 9)", "saving"), ("extra storage, 4 incr. (Table 6)", "storage")]
    for label, key in rows:
        cells = [PAPER["LeNet"][key], ours[key], PAPER["ALEXnet"][key]]
        print(f"{label:<38} " + " ".join(f"{c:>{w}.2f}" if isinstance(c, float) else f"{c:>{w}}"
                                         for c, w in zip(cells, (18, 30, 17))))
    print(f"chosen increments' extra storage: incremental {storage_chosen.incremental_extra_pct:.2f}%, "
          f"golden models {storage_chosen.golden_extra_pct:.2f}%")
    print(f"golden test accuracy of the full LeNet {100 * comparison.golden_stage_accuracy[-1]:.2f}%; energy priced "
          f"on {setup.accelerator.tm}x{setup.accelerator.tn}, {setup.accelerator.sram_bytes} B SRAM, "
          f"{setup.accelerator.bits}-bit, dataflow {setup.accelerator.dataflow}, reuse-mode increments")
    recorded = ", ".join(f"{w:g}: {s:.0f} s" if s is not None else f"{w:g}: ?" for w, s in zip(widths, golden_seconds))
    print(f"training on this machine (one thread each): golden models {recorded}; incremental stages 2..N "
          f"{comparison.train_seconds or 0:.0f} s; this run's wall time {wall:.0f} s (cached parts not retrained)")
    print(json.dumps({"fractions": list(result.fractions), "thresholds": _finite(result.thresholds),
                      "energy_saving_pct": round(result.energy_saving_pct, 3),
                      "accuracy_drop_pct": round(result.accuracy_loss_pct, 3), "trained_incrementally": True}))


if __name__ == "__main__":
    main()
