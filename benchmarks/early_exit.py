"""Early exit on full MNIST: a branched LeNet with a searched exit set vs LeNet alone, Park 2015's protocol.

    python benchmarks/early_exit.py [--data ../shared/datasets/mnist] [--splits 10] [--trials 300]
                                    [--priced-layers conv] [--little mini7] [--training frozen|joint]
                                    [--loss-weights 1,1,1,1] [--branch 1x1|3x3] [--exit-bits 8] [--z 1.64]

Branches after pool1, pool2 and fc1 of LeNet (`--branch 1x1`: the default 1x1 conv, ReLU, average pool to about 3x3,
FC; `--branch 3x3`: user-given [[exits.branch]] layer lists, a 3x3 conv of 16 channels, ReLU, max pool to about 3x3,
FC, at pool1 and pool2), with the training settings of `studies/park2015-mnist.toml` (so its cached LeNet is the
frozen trunk): on the frozen LeNet, or trained jointly with it (`--loss-weights`: one per exit, then the trunk's),
priced on Park's accelerator (16 KiB SRAM, 16-bit, conv layers priced unless --priced-layers all); `--exit-bits 8`
lets an exit also run at 8 bits. The loss limit holds on calibration with a margin of `--z` standard errors of the
paired difference to LeNet, one value for every split. Over 10 seeded random
halvings of the 10,000 test images (`dse.papers.park2015_protocol`), the search (exit set, branch size, exit
criterion, thresholds) runs on the calibration half; the least-energy feasible point is reported on the held-out
half. `--little NET` also runs the big/little search (NET + LeNet) on the same halves, for comparison at the same
loss limit. Skips cleanly when full MNIST is absent. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import optuna

from dse import CascadeProblem, StudySpec, load_problem, load_spec, search_study, study_results
from dse.core.spec import validate
from dse.papers.park2015_protocol import protocol_splits


def conv3x3_branch(point: str, side: int) -> dict:
    """A [[exits.branch]] table: a 3x3 conv of 16 channels, ReLU, max pool of a `side` x `side` map to about 3x3, FC."""
    return {"at": point, "layers": [{"type": "conv", "out": 16, "kernel": 3, "pad": 1}, {"type": "relu"},
                                    {"type": "pool", "mode": "max", "kernel": -(-side // 3)},
                                    {"type": "fc", "out": 10}]}


def benchmark_spec(args: argparse.Namespace) -> StudySpec:
    """The built-in early-exit study on full MNIST with the Park 2015 training, accelerator and loss limit."""
    park = load_spec("park2015-mnist")
    weights = tuple(float(w) for w in args.loss_weights.split(",")) if args.loss_weights else ()
    branch = (conv3x3_branch("pool1", 12), conv3x3_branch("pool2", 4)) if args.branch == "3x3" else ()
    spec = load_spec("early-exit-mnist").with_overrides(
        data={"dataset": "mnist", "path": args.data},
        training={name: getattr(park.training, name) for name in ("epochs", "batch_size", "learning_rate", "seed")},
        accelerator={"priced_layers": args.priced_layers},
        exits={"channels": (16,), "bits": tuple(args.exit_bits), "training": args.training, "loss_weights": weights,
               "branch": branch},
        search={"max_accuracy_loss_pct": args.max_loss, "loss_confidence_z": args.z})
    return validate(spec)


def best_point(study: optuna.Study, problem: CascadeProblem) -> dict:
    """The least-calibration-energy feasible trial: stages, thresholds, criterion."""
    feasible = [t for t in study_results(study).trials if t.feasible]
    if not feasible:
        raise SystemExit("no feasible trial on a calibration half: no cascade meets loss + z s.e. <= the limit "
                         "(a jointly trained trunk alone differs from LeNet on some inputs; lower --z)")
    best = min(feasible, key=lambda t: (t.calib.energy_j, t.calib.accuracy_loss_pct))
    return {"stages": [problem.index(name) for name in best.cascade.split(" > ")],
            "thresholds": np.array(best.thresholds), "criterion": best.params.get("criterion", "margin"),
            "cascade": best.cascade}


def held_out(halves: CascadeProblem, point: dict) -> dict:
    """Energy saving, accuracy loss and first-stage fraction of `point` on the held-out half."""
    values = halves.evaluate(point["stages"], point["thresholds"][None], "test", criterion=point["criterion"])
    first = halves.confidence(point["criterion"], "test")[point["stages"][0]]
    exit1 = float(np.mean(first >= point["thresholds"][0])) if len(point["stages"]) > 1 else 1.0
    return {"energy_saving_pct": float(values["energy_saving_pct"][0]),
            "accuracy_loss_pct": float(values["accuracy_loss_pct"][0]), "exit1_fraction": exit1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/mnist")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--trials", type=int, default=300, help="search trials per split")
    parser.add_argument("--priced-layers", default="conv", choices=("conv", "all"))
    parser.add_argument("--max-loss", type=float, default=0.2, help="loss limit, percentage points")
    parser.add_argument("--little", default="mini7", help="little net of the big/little comparison ('' : none)")
    parser.add_argument("--training", default="frozen", choices=("frozen", "joint"), help="branches on the frozen "
                        "LeNet, or trunk and branches trained together")
    parser.add_argument("--loss-weights", default="", help="joint training: one weight per exit, then the trunk's")
    parser.add_argument("--branch", default="1x1", choices=("1x1", "3x3"), help="the branch at pool1 and pool2")
    parser.add_argument("--exit-bits", type=int, nargs="*", default=[], help="bit-widths an exit may also run at")
    parser.add_argument("--z", type=float, default=1.64, help="calibration margin: loss + z standard errors of "
                        "the paired difference to LeNet <= --max-loss (1.64: one-sided 95%%)")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        print(f"full MNIST not found at {args.data}; skipped")
        print(json.dumps({"skipped": True, "reason": f"no data at {args.data}"}))
        return
    spec = benchmark_spec(args)
    start = time.perf_counter()
    problem, dataset = load_problem(spec, n_jobs=1)
    print(f"scores ready in {time.perf_counter() - start:.0f} s; accuracy on all 10,000 test images:")
    for index, name in enumerate(problem.names):
        print(f"  {name}: {np.concatenate([problem.correct['calib'][index], problem.correct['test'][index]]).mean():.2%}")
    little_spec = None
    if args.little:
        little_spec = spec.with_overrides(exits={"points": ()}, little={"nets": (args.little,)},
                                          search={"criteria": ("margin",)})
        little_problem, _ = load_problem(little_spec, n_jobs=1)
    pool = np.concatenate([dataset.labels["calib"], dataset.labels["test"]])
    rows, little_rows = [], []
    for split in protocol_splits(pool, args.splits):
        halves = problem.resplit(split.calib, split.held_out)
        point = best_point(search_study(halves, spec, args.trials), halves)
        rows.append({"split": split.seed, "cascade": point["cascade"], "criterion": point["criterion"],
                     "thresholds": np.round(point["thresholds"], 4).tolist(), **held_out(halves, point)})
        print(f"split {split.seed}: {rows[-1]}", flush=True)
        if little_spec is not None:
            little_halves = little_problem.resplit(split.calib, split.held_out)
            little_point = best_point(search_study(little_halves, little_spec, args.trials), little_halves)
            little_rows.append({"cascade": little_point["cascade"], **held_out(little_halves, little_point)})
            print(f"  big/little: {little_rows[-1]}", flush=True)
    saving = np.array([r["energy_saving_pct"] for r in rows])
    loss = np.array([r["accuracy_loss_pct"] for r in rows])
    exit1 = np.array([r["exit1_fraction"] for r in rows])
    criteria = sorted({r["criterion"] for r in rows}, key=[r["criterion"] for r in rows].count, reverse=True)
    print(f"\nearly exit, {args.priced_layers} layers priced, held-out halves (mean ± std over {args.splits}): "
          f"saving {saving.mean():.1f}% ± {saving.std():.1f}, loss {loss.mean():.3f} ± {loss.std():.3f} points "
          f"(worst {loss.max():.2f}), first exit answers {100 * exit1.mean():.1f}%")
    if little_rows:
        little_saving = np.array([r["energy_saving_pct"] for r in little_rows])
        little_loss = np.array([r["accuracy_loss_pct"] for r in little_rows])
        print(f"big/little ({args.little} + lenet), same halves and limit: saving {little_saving.mean():.1f}% ± "
              f"{little_saving.std():.1f}, loss {little_loss.mean():.3f} ± {little_loss.std():.3f} points")
    print(json.dumps({"energy_saving_pct": round(float(saving.mean()), 3),
                      "accuracy_loss_pct": round(float(loss.mean()), 4),
                      "worst_split_loss_pct": round(float(loss.max()), 4),
                      "exit1_fraction": round(float(exit1.mean()), 4), "splits": args.splits,
                      "criterion": criteria[0], "priced_layers": args.priced_layers, "training": args.training,
                      "branch": args.branch, "exit_bits": args.exit_bits, "z": args.z,
                      **({"big_little_saving_pct": round(float(little_saving.mean()), 3),
                          "big_little_loss_pct": round(float(little_loss.mean()), 4)} if little_rows else {})}))


if __name__ == "__main__":
    main()
