"""Dynamic variable effort (DyVEDeep-style, reconstructed) on full MNIST with LeNet (ReLU convs): ops vs accuracy.

Knob ranges are fitted on training images (`nets.range_images`). Half of the calibration split chooses knobs: each
mechanism alone on its grid (dse.mechanisms.effort), then all three together on the cross product of each mechanism's
best Pareto points; the other half certifies them (`dse.risk`: fixed-sequence testing from the least to the most
reducing point, alpha 0.5 %, delta 0.1), and the most reducing certified point is the pick. The Pareto points are
scored on the test split through the score cache, as knob variants with per-sample op counts. The certified pick is
reported on the test split next to the uncertified one (most reduction at <= 0.5 % loss on the choosing half), priced
per sample on the default accelerator, and timed on one CPU thread: nets.effort.skipping_forward (which skips the work)
against the plain torch module.

Usage: python benchmarks/dyvedeep.py [--data DIR] [--top K] [--dataflow auto|...]. Cache: $DSE_CACHE_DIR, else
/tmp/fullcache. `--dataflow` maps the layers when pricing (default "diannao", the first version's mapping); the knobs
are chosen by ops, so it moves only the energy line.
Last line: {"ops_reduction_x": ..., "accuracy_loss_pct": ..., "cpu_time_ratio": ..., "certified": ...,
"within_budget_on_test": ..., "uncertified_ops_reduction_x": ..., "uncertified_accuracy_loss_pct": ...}.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, get_args

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import costmodel
from costmodel import per_sample_cost
from dse.mechanisms.effort import mechanism_grid
from dse.risk import allowed_loss, fixed_sequence
from nets import (Dataset, ScoreCache, TrainingConfig, Variant, VariantScores, build_scores, load_dataset, range_images,
                  weights_key)
from nets.effort import EffortNet, calibrate, effort_forward, skipping_forward
from nets.training import init_module, predict_logits

NET = "lenet-relu"
CONFIG = TrainingConfig(epochs=6, batch_size=64, learning_rate=1e-3, weight_decay=0.0, seed=0)
MAX_LOSS_PCT = 0.5
DELTA = 0.1
ABSTRACT = "DyVEDeep abstract: 2.47x-5.15x fewer scalar ops at comparable accuracy (six CIFAR-10/ImageNet nets)"
Knobs = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Point:
    """One knob setting on one split: ops reduction (plain MACs / mean ops) and accuracy loss (percentage points)."""

    knobs: Knobs
    reduction_x: float
    extra_errors: int  # errors beyond the plain net's on the same rows: the loss bound is compared on it, exactly
    rows: int

    @property
    def loss_pct(self) -> float:
        """Accuracy loss against the plain net, in points."""
        return 100 * self.extra_errors / self.rows

    def within(self, max_loss_pct: float) -> bool:
        """Whether the loss is within `max_loss_pct` (exact integer comparison)."""
        return self.extra_errors <= allowed_loss(max_loss_pct, self.rows)


def pareto(points: list[Point], max_loss_pct: float) -> list[Point]:
    """Points that no other point beats on ops reduction and loss at once, with loss <= max_loss_pct, by reduction."""
    def dominated(p: Point) -> bool:
        return any(q.reduction_x >= p.reduction_x and q.loss_pct <= p.loss_pct
                   and (q.reduction_x > p.reduction_x or q.loss_pct < p.loss_pct) for q in points)

    front = {(p.reduction_x, p.loss_pct): p for p in points if p.within(max_loss_pct) and not dominated(p)}
    return sorted(front.values(), key=lambda p: p.reduction_x)


def calib_points(net: EffortNet, settings: list[Knobs], images: np.ndarray, labels: np.ndarray,
                 plain_correct: np.ndarray) -> list[Point]:
    """Every knob setting evaluated on these calibration rows."""
    macs = net.architecture.macs()
    points = []
    for knobs in settings:
        logits, counts = effort_forward(net, net.resolve(knobs), images)
        right = int((logits.argmax(axis=1) == labels).sum())
        points.append(Point(knobs, macs / counts.ops.mean(), int(plain_correct.sum()) - right, len(labels)))
    return points


def certified_pick(net: EffortNet, candidates: list[Point], images: np.ndarray, labels: np.ndarray,
                   plain_correct: np.ndarray) -> Point | None:
    """The most reducing candidate certified on rows the choice never saw: candidates tested in order (least to most
    reducing, fixed beforehand) at level DELTA on the paired loss against the plain net, until one fails."""
    worse, better = [], []
    for p in candidates:
        right = effort_forward(net, net.resolve(p.knobs), images)[0].argmax(axis=1) == labels
        worse.append(int((plain_correct & ~right).sum()))
        better.append(int((~plain_correct & right).sum()))
    count = fixed_sequence(np.array(worse), np.array(better), len(labels), MAX_LOSS_PCT, DELTA)
    return candidates[count - 1] if count else None


def combined_settings(fronts: dict[str, list[Point]], top: int) -> list[Knobs]:
    """All three mechanisms on: the cross product of each one's `top` most-reducing points within the loss bound."""
    best = [[p.knobs for p in front if p.within(MAX_LOSS_PCT)][-top:] for front in fronts.values()]
    return [tuple(sorted(sum(parts, ()))) for parts in itertools.product(*best)]


def cpu_seconds(run: Callable[[], object], repeats: int) -> float:
    """Least process CPU time of `repeats` calls (one thread)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def load_module(dataset: Dataset, cache: ScoreCache) -> torch.nn.Sequential:
    """The trained lenet-relu module from the score cache."""
    state = torch.load(io.BytesIO(cache.load_weights(weights_key(dataset, Variant(NET), CONFIG))), weights_only=True)
    module = init_module(Variant(NET).architecture, 1.0, CONFIG.seed)
    module.load_state_dict(state)
    return module.eval()


def test_point(scores: VariantScores, plain: VariantScores, macs: int) -> Point:
    """A cached knob variant's test-split point."""
    rows = scores.splits["test"]
    return Point(scores.variant.knobs, macs / rows.ops.mean(),
                 int(plain.splits["test"].correct.sum()) - int(rows.correct.sum()), len(rows.correct))


def main() -> None:
    """Search knobs on calib, report fronts on test, price and time the chosen point; print the JSON line last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"))
    parser.add_argument("--top", type=int, default=2, help="points per mechanism combined into 'all three'")
    parser.add_argument("--dataflow", choices=get_args(costmodel.Dataflow), default="diannao",
                        help="mapping of every layer when pricing (default: the first version's)")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"dyvedeep benchmark: full MNIST not found at {args.data} (the four IDX .gz files); use --data DIR")
    torch.set_num_threads(1)
    dataset = load_dataset("mnist", args.data)
    cache = ScoreCache(os.environ.get("DSE_CACHE_DIR", "/tmp/fullcache"))
    plain = build_scores(dataset, [Variant(NET)], CONFIG, cache, n_jobs=1)[Variant(NET)]
    module = load_module(dataset, cache)
    calib_images, calib_labels = dataset.split("calib")
    net = calibrate(module, Variant(NET).architecture, 1.0, range_images(dataset))  # never the calibration rows
    macs = net.architecture.macs()
    order = np.random.default_rng(0).permutation(len(calib_labels))
    choose, certify = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    plain_correct = plain.splits["calib"].correct.astype(bool)

    start = time.perf_counter()
    half = (calib_images[choose], calib_labels[choose], plain_correct[choose])
    fronts = {m: pareto(calib_points(net, mechanism_grid(m), *half), 1.0) for m in ("neuron", "feature", "layer")}
    fronts["all three"] = pareto(calib_points(net, combined_settings(fronts, args.top), *half), 1.0)
    print(f"calibration search: {time.perf_counter() - start:.0f} s")
    variants = [Variant(NET, knobs=p.knobs) for front in fronts.values() for p in front]
    scored = build_scores(dataset, variants, CONFIG, cache, n_jobs=1, log=lambda line: None)

    print(f"\n{NET} on full MNIST: plain test accuracy {plain.splits['test'].accuracy:.2%}, {macs:,} MACs/inference")
    print(f"{'front':<10} {'knobs':<96} {'calib':>15} {'test':>15}")
    for name, front in fronts.items():
        for p in front:
            t = test_point(scored[Variant(NET, knobs=p.knobs)], plain, macs)
            knobs = " ".join(f"{k}={v:g}" for k, v in p.knobs)
            print(f"{name:<10} {knobs:<96} {p.reduction_x:5.2f}x {p.loss_pct:+5.2f}%  "
                  f"{t.reduction_x:5.2f}x {t.loss_pct:+5.2f}%")
    print(ABSTRACT)

    feasible = sorted({p.knobs: p for front in fronts.values() for p in front if p.within(MAX_LOSS_PCT)}.values(),
                      key=lambda p: (p.reduction_x, p.knobs))  # safe to aggressive, fixed before the other half
    uncertified = feasible[-1] if feasible else None
    chosen = certified_pick(net, feasible, calib_images[certify], calib_labels[certify], plain_correct[certify])
    plain_point = Point((), 1.0, 0, len(dataset.labels["test"]))
    picks = {"certified": chosen, "uncertified": uncertified}
    tested = {name: plain_point if p is None else test_point(scored[Variant(NET, knobs=p.knobs)], plain, macs)
              for name, p in picks.items()}
    for name, p in picks.items():
        t = tested[name]
        knobs = "none (the plain net)" if p is None else " ".join(f"{k}={v:g}" for k, v in p.knobs)
        print(f"\n{name} pick (most reduction at <= {MAX_LOSS_PCT}% loss"
              + (f", certified at delta {DELTA} on {len(certify)} rows the choice never saw): " if name == "certified"
                 else f" on the {len(choose)} choosing rows alone, not certified): ") + knobs)
        print(f"  test: {t.reduction_x:.2f}x fewer scalar ops, {t.loss_pct:.2f} points accuracy loss "
              f"({'meets' if t.within(MAX_LOSS_PCT) else 'misses'} the {MAX_LOSS_PCT}% bound)")
    best = tested["certified"]
    chosen = chosen or Point((), 1.0, 0, 1)

    test_images = dataset.split("test")[0]
    efforts = net.resolve(chosen.knobs)
    _, counts = effort_forward(net, efforts, test_images)
    acc = costmodel.Accelerator(dataflow=args.dataflow)
    full = costmodel.network_cost(net.architecture.layer_shapes(), acc)
    priced = per_sample_cost(full, counts.macs, counts.extra_ops, acc, skipped_weights=counts.skipped_weights)
    print(f"energy on the default accelerator (16 KiB, 16-bit, dataflow {args.dataflow}): {priced.energy_pj.mean() / 1e6:.1f} uJ vs "
          f"{full.energy_pj / 1e6:.1f} uJ plain ({full.energy_pj / priced.energy_pj.mean():.2f}x); "
          + ", ".join(f"{name} {getattr(priced, name).mean() / getattr(full, name):.2f}x"
                      for name in ("mac_pj", "sram_input_pj", "sram_weight_pj", "dram_pj", "leakage_pj"))
          + " of plain")

    with threadpool_limits(limits=1):
        plain_s = cpu_seconds(lambda: predict_logits(module, test_images), 3)
        numpy_s = cpu_seconds(lambda: effort_forward(net, net.resolve(()), test_images), 2)
        skip_s = cpu_seconds(lambda: skipping_forward(net, efforts, test_images), 2)
    print(f"CPU time, 5,000 test images, one thread: torch plain {plain_s:.2f} s, numpy plain {numpy_s:.2f} s, "
          f"numpy skipping {skip_s:.2f} s: {plain_s / skip_s:.2f}x vs torch, {numpy_s / skip_s:.2f}x vs numpy")
    print(json.dumps({"ops_reduction_x": round(best.reduction_x, 3), "accuracy_loss_pct": round(best.loss_pct, 3),
                      "cpu_time_ratio": round(plain_s / skip_s, 3), "certified": picks["certified"] is not None,
                      "within_budget_on_test": best.within(MAX_LOSS_PCT),
                      "uncertified_ops_reduction_x": round(tested["uncertified"].reduction_x, 3),
                      "uncertified_accuracy_loss_pct": round(tested["uncertified"].loss_pct, 3)}))


if __name__ == "__main__":
    main()
