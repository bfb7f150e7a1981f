"""Early exit on full MNIST, picked with a certified loss budget: exits on LeNet or on an exported residual ONNX trunk,
against big/little and the two combined.

    python benchmarks/early_exit.py [--trunk lenet|onnx] [--data ../shared/datasets/mnist] [--splits 10]
                                    [--trials 300] [--priced-layers all|conv] [--little mini7] [--training frozen|joint]
                                    [--loss-weights 1,1,1,1] [--branch 1x1|3x3] [--exit-bits 8]
                                    [--alpha 0.3] [--delta 0.1] [--certify-fraction 0.5]

`--trunk lenet` (default): branches after pool1, pool2 and fc1 of LeNet (`--branch 1x1`: the default 1x1 conv, ReLU,
average pool to about 3x3, FC; `--branch 3x3`: user-given [[exits.branch]] layer lists, a 3x3 conv of 16 channels,
ReLU, max pool to about 3x3, FC, at pool1 and pool2), with the training settings of `studies/park2015-mnist.toml`
(so its cached LeNet is the frozen trunk): on the frozen LeNet, or trained jointly with it (`--loss-weights`: one
per exit, then the trunk's); `--exit-bits 8` lets an exit also run at 8 bits. `--trunk onnx`: a residual CNN with
batch norm (stem, two residual stages, global average pooling) is trained here (seeded, the same settings), exported
with torch.onnx and declared as an ONNX model; frozen 1x1 branches train on its activations after each block
boundary (three points, read by onnxruntime), and big/little (`--little`, default Mini 7: the best of Park's Mini 1-8
in front of LeNet with every layer priced) and both together (a little net in front of the exited trunk) run on the
same trunk and data. `--little` also runs the comparison on LeNet. Each exit picks its criterion (margin, max softmax, entropy).

Priced on Park's accelerator (16 KiB SRAM, 16-bit, every layer priced unless `--priced-layers conv`). Over 10 seeded
random halvings of the 10,000 test images (`dse.mechanisms.big_little.park2015_protocol`), each calibration half is
split again (`--certify-fraction` kept aside): the search (exit set, branch size, criteria, thresholds, exactly per
structure) runs on the rest with the loss limit alpha on calibration, and the point is picked with the certificate
(`dse.risk`, Learn then Test at level delta: the `--structures` K structures of the front whose cheapest points the same
test certifies on the searched rows are tested on the kept-aside rows, each at delta / K, from every input escalating
towards and along its recorded front): the cheapest point certified to
lose at most alpha on new data with probability >= 1 - delta; when none certifies, the trunk alone. Reported per split on the
held-out half and against the risk, i.e. the loss on the whole pool of 10,000 images the halvings are drawn from.
Skips cleanly when full MNIST is absent. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from dse import CascadeProblem, CascadeSpace, StudySpec, load_problem, load_spec, parse_spec, replay_structure
from dse import search_study, study_results
from dse.mechanisms.big_little.park2015_protocol import protocol_splits
from dse.risk import allowed_loss, fixed_sequence
from nets import default_cache_dir

CERTIFY = "certify"  # the calibration rows kept aside for the certificate
CRITERIA = ("margin", "max_softmax", "entropy")
ESCALATE = 1.01  # a threshold above every confidence (each criterion's is in [0, 1]): nobody exits there
SAFETY_STEPS = 20
TRAINING = {"epochs": 6, "batch_size": 64, "learning_rate": 0.001, "seed": 0}  # Park 2015's (studies/park2015-mnist)
ONNX_POINTS = ("/block1_relu/Relu", "/down_relu/Relu", "/block2_relu/Relu")  # after each block boundary
TRUNK_EPOCHS = 3  # the exported trunk's training (the rest as TRAINING)


def conv3x3_branch(point: str, side: int) -> dict:
    """A [[exits.branch]] table: a 3x3 conv of 16 channels, ReLU, max pool of a `side` x `side` map to about 3x3, FC."""
    return {"at": point, "layers": [{"type": "conv", "out": 16, "kernel": 3, "pad": 1}, {"type": "relu"},
                                    {"type": "pool", "mode": "max", "kernel": -(-side // 3)},
                                    {"type": "fc", "out": 10}]}


def search_settings(args: argparse.Namespace) -> dict:
    """The [search] section: the loss limit alpha on the searched calibration rows, every criterion; no certificate
    of the study's own (this benchmark carves and certifies its rows itself, after re-drawing the splits)."""
    return {"max_accuracy_loss_pct": args.alpha, "loss_confidence_z": 0.0, "criteria": CRITERIA, "seed": 0,
            "loss_guarantee": None}


def lenet_spec(args: argparse.Namespace) -> StudySpec:
    """The built-in early-exit study on full MNIST with the Park 2015 training, accelerator and a criterion per exit;
    with `--little`, that little net may also run in front (the combined space)."""
    weights = tuple(float(w) for w in args.loss_weights.split(",")) if args.loss_weights else ()
    branch = (conv3x3_branch("pool1", 12), conv3x3_branch("pool2", 4)) if args.branch == "3x3" else ()
    return load_spec("early-exit-mnist").with_overrides(
        data={"dataset": "mnist", "path": args.data}, training=TRAINING,
        accelerator={"priced_layers": args.priced_layers},
        exits={"channels": (16,), "bits": tuple(args.exit_bits), "training": args.training, "loss_weights": weights,
               "branch": branch, "criteria": CRITERIA},
        little={"nets": tuple(args.little.split(",")) if args.little else ()}, search=search_settings(args))


class ResidualTrunk:
    """The residual CNN the ONNX comparison exports: conv 16 + batch norm + ReLU on 28x28, max pool to 14x14, a
    residual block of two 3x3 convs (16), a stride-2 conv to 32 x 7 x 7, a residual block (32), global average
    pooling, FC to 10 (2.1 M MACs and 57 KB of 16-bit weights; LeNet: 2.3 M MACs, 862 KB)."""

    @staticmethod
    def module():  # type: ignore[no-untyped-def]
        """The torch module (its attribute names become the ONNX node names, e.g. '/block1_relu/Relu')."""
        import torch
        from torch import nn

        def conv_bn(cin: int, cout: int, stride: int = 1):  # type: ignore[no-untyped-def]
            return nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout)

        class Trunk(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.stem, self.stem_bn = conv_bn(1, 16)
                self.stem_relu, self.stem_pool = nn.ReLU(), nn.MaxPool2d(2)
                self.b1c1, self.b1n1 = conv_bn(16, 16)
                self.b1r1 = nn.ReLU()
                self.b1c2, self.b1n2 = conv_bn(16, 16)
                self.block1_relu = nn.ReLU()
                self.down, self.down_bn = conv_bn(16, 32, 2)
                self.down_relu = nn.ReLU()
                self.b2c1, self.b2n1 = conv_bn(32, 32)
                self.b2r1 = nn.ReLU()
                self.b2c2, self.b2n2 = conv_bn(32, 32)
                self.block2_relu = nn.ReLU()
                self.gap, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(32, 10)

            def forward(self, x):  # type: ignore[no-untyped-def]
                x = self.stem_pool(self.stem_relu(self.stem_bn(self.stem(x))))
                x = self.block1_relu(self.b1n2(self.b1c2(self.b1r1(self.b1n1(self.b1c1(x))))) + x)
                x = self.down_relu(self.down_bn(self.down(x)))
                x = self.block2_relu(self.b2n2(self.b2c2(self.b2r1(self.b2n1(self.b2c1(x))))) + x)
                return self.fc(torch.flatten(self.gap(x), 1))

        return Trunk()


def exported_trunk(data: str) -> Path:
    """The residual trunk trained on the MNIST train split (seeded, deterministic, Park's settings for TRUNK_EPOCHS
    epochs) and exported to ONNX with its batch norms, kept under the score cache (trained once)."""
    path = default_cache_dir() / "benchmark-trunks" / "early-exit-residual.onnx"
    if path.exists():
        return path
    import torch

    from nets import TrainingConfig, load_dataset
    from nets.training import train_module

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(TRAINING["seed"])
    module = ResidualTrunk.module()
    start = time.perf_counter()
    train_module(module, *load_dataset("mnist", data, 0).split("train"),
                 TrainingConfig(**{**TRAINING, "epochs": TRUNK_EPOCHS}))
    print(f"residual trunk trained in {time.perf_counter() - start:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice (the new one needs onnxscript)
        torch.onnx.export(module.eval(), (torch.zeros(1, 1, 28, 28),), str(partial), dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    partial.replace(path)
    return path


def onnx_spec(args: argparse.Namespace, trunk: Path) -> StudySpec:
    """The combined study on the exported trunk: frozen 1x1 exits at ONNX_POINTS, the little nets, Park's training
    and accelerator."""
    little = ", ".join(f'"{net}"' for net in args.little.split(",")) if args.little else ""
    points = ", ".join(f'"{point}"' for point in ONNX_POINTS)
    text = f"""version = 2
name = "early-exit-onnx"
[data]
dataset = "mnist"
path = "{args.data}"
[training]
epochs = {TRAINING["epochs"]}
batch_size = {TRAINING["batch_size"]}
learning_rate = {TRAINING["learning_rate"]}
seed = {TRAINING["seed"]}
[models.resnet]
onnx = "{trunk}"
[nets]
big = "resnet"
[exits]
points = [{points}]
channels = [16]
criteria = ["margin", "max_softmax", "entropy"]
[little]
nets = [{little}]
[accelerator]
sram = "16KiB"
partition = [0.25, 0.5, 0.25]
bits = 16
priced_layers = "{args.priced_layers}"
"""
    return parse_spec(text, "early-exit-onnx").with_overrides(search=search_settings(args))


def mechanism_specs(spec: StudySpec) -> dict[str, StudySpec]:
    """The spec of each compared mechanism: exits alone, big/little alone, and both (a little net, exits or both)."""
    specs = {"exits": spec.with_overrides(little={"nets": ()})}
    if spec.section("little").nets:
        specs |= {"big_little": spec.with_overrides(exits={"points": ()}), "combined": spec}
    return specs


def certified_point(carved: CascadeProblem, spec: StudySpec, trials: int, alpha: float, delta: float,
                    structures: int) -> dict:
    """Search on the carved problem's calibration rows, then certify on the rows kept aside (Learn then Test): the
    `structures` structures of the union front whose cheapest points the same test certifies on the searched rows
    (chosen before the kept-aside rows are read; 0: every front structure), each along `towards_safety` of its
    recorded threshold front, by fixed-sequence testing at delta / K (K structures, Bonferroni). The cheapest
    certified point (on the kept-aside rows), else the trunk alone."""
    study = search_study(carved, spec, trials)
    points = study_results(study).trials
    space = CascadeSpace(carved, spec)
    candidates = []
    for number in sorted({p.number for p in points if p.pareto}):
        front = sorted((p for p in points if p.number == number), key=lambda p: -p.calib.energy_j)
        structure = replay_structure(space, front[0].params)
        recorded = np.array([p.thresholds for p in front], dtype=np.float64).reshape(len(front), -1)
        candidates.append((front[0].cascade, structure, space.stages(structure), towards_safety(recorded)))
    if structures:
        searched = certified_energy(carved, candidates, "calib", alpha, delta)
        ranked = sorted((energy, i) for i, (energy, _) in enumerate(searched) if energy < np.inf)
        candidates = [candidates[i] for _, i in ranked[:structures]]
    kept_aside = certified_energy(carved, candidates, CERTIFY, alpha, delta / max(len(candidates), 1))
    if not kept_aside or min(energy for energy, _ in kept_aside) == np.inf:
        return {"cascade": carved.names[carved.big], "stages": [carved.big], "thresholds": np.zeros(0),
                "criterion": "margin", "certified": False}
    best = min(range(len(candidates)), key=lambda i: kept_aside[i][0])
    cascade, structure, stages, thresholds = candidates[best]
    return {"cascade": cascade, "stages": stages, "thresholds": thresholds[kept_aside[best][1]],
            "criterion": structure.criterion, "certified": True}


def towards_safety(recorded: np.ndarray, steps: int = SAFETY_STEPS) -> np.ndarray:
    """The threshold vectors a structure is tested at, safe to aggressive: from every input escalating (thresholds
    above any confidence) in `steps` even steps to its recorded front's safest point, then the recorded front. The
    front's safest point on the searched rows is often already aggressive (a point escalating more loses more there
    by chance, so it is dominated), and the fixed sequence stops at the first point it cannot certify."""
    safest = np.clip(recorded[0], 0.0, ESCALATE)  # an infinite threshold (all exit, or none) as a finite one
    path = ESCALATE + np.linspace(0.0, 1.0, steps, endpoint=False)[:, None] * (safest - ESCALATE)
    return np.vstack([path, recorded])


def certified_energy(problem: CascadeProblem, candidates: list, split: str, alpha: float,
                     delta: float) -> list[tuple[float, int]]:
    """Per candidate (cascade, structure, stages, thresholds from safe to aggressive): the energy on `split` of its
    cheapest point that fixed-sequence testing at `delta` certifies there, and that point's index (inf, -1: none)."""
    n, out = problem.margin[split].shape[1], []
    for _, structure, stages, thresholds in candidates:
        values = problem.evaluate(stages, thresholds, split, structure.accelerator, structure.cascade.reuse,
                                  structure.criterion)
        count = fixed_sequence(values.worse, values.better, n, alpha, delta)
        out.append((float(values.energy_j[count - 1]), count - 1) if count else (np.inf, -1))
    return out


def outcome(problem: CascadeProblem, point: dict, split: str) -> dict:
    """Energy saving and accuracy loss of a picked point on `split`, and the fraction of inputs its first stage
    answers."""
    values = problem.evaluate(point["stages"], point["thresholds"][None], split, criterion=point["criterion"])
    first = problem.stage_confidence(point["stages"], point["criterion"], split)[0]
    exit1 = float(np.mean(first >= point["thresholds"][0])) if len(point["stages"]) > 1 else 1.0
    return {"energy_saving_pct": float(values.energy_saving_pct[0]),
            "accuracy_loss_pct": float(values.accuracy_loss_pct[0]), "exit1_fraction": exit1}


def summary(rows: list[dict], allowed: int) -> dict:
    """Means over the splits, the worst split and how many splits broke the budget on the risk (more extra errors
    on the pool than `allowed`)."""
    column = {key: np.array([row[key] for row in rows]) for key in ("energy_saving_pct", "accuracy_loss_pct",
                                                                      "risk_loss_pct", "exit1_fraction")}
    return {"energy_saving_pct": round(float(column["energy_saving_pct"].mean()), 3),
            "energy_saving_std": round(float(column["energy_saving_pct"].std()), 3),
            "accuracy_loss_pct": round(float(column["accuracy_loss_pct"].mean()), 4),
            "worst_split_loss_pct": round(float(column["accuracy_loss_pct"].max()), 4),
            "risk_loss_pct": round(float(column["risk_loss_pct"].mean()), 4),
            "worst_split_risk_pct": round(float(column["risk_loss_pct"].max()), 4),
            "risk_over_budget_splits": sum(row["risk_extra_errors"] > allowed for row in rows),
            "certified_splits": sum(row["certified"] for row in rows),
            "exit1_fraction": round(float(column["exit1_fraction"].mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunk", default="lenet", choices=("lenet", "onnx"))
    parser.add_argument("--data", default="../shared/datasets/mnist")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--trials", type=int, default=300, help="search trials per split and mechanism")
    parser.add_argument("--priced-layers", default="all", choices=("conv", "all"))
    parser.add_argument("--little", default="mini7", help="little nets of big/little, comma-separated ('' : none; "
                        "mini7: the best of Park's Mini 1-8 in front of LeNet with every layer priced)")
    parser.add_argument("--training", default="frozen", choices=("frozen", "joint"), help="branches on the frozen "
                        "LeNet, or trunk and branches trained together (LeNet only)")
    parser.add_argument("--loss-weights", default="", help="joint training: one weight per exit, then the trunk's")
    parser.add_argument("--branch", default="1x1", choices=("1x1", "3x3"), help="the branch at pool1 and pool2")
    parser.add_argument("--exit-bits", type=int, nargs="*", default=[], help="bit-widths an exit may also run at")
    parser.add_argument("--alpha", type=float, default=0.3, help="loss budget, percentage points")
    parser.add_argument("--delta", type=float, default=0.1, help="the certificate fails with probability <= delta")
    parser.add_argument("--certify-fraction", type=float, default=0.5, help="share of each calibration half kept "
                        "aside for the certificate")
    parser.add_argument("--structures", type=int, default=3, help="certify the K front structures the searched rows "
                        "certify cheapest, each at delta / K (0: every front structure)")
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        print(f"full MNIST not found at {args.data}; skipped")
        print(json.dumps({"skipped": True, "reason": f"no data at {args.data}"}))
        return
    spec = lenet_spec(args) if args.trunk == "lenet" else onnx_spec(args, exported_trunk(args.data))
    start = time.perf_counter()
    problem, dataset = load_problem(spec, n_jobs=1)
    print(f"scores ready in {time.perf_counter() - start:.0f} s; accuracy on all 10,000 test images:")
    for index, name in enumerate(problem.names):
        print(f"  {name}: {np.concatenate([problem.correct['calib'][index], problem.correct['test'][index]]).mean():.2%}")
    pool = np.concatenate([dataset.labels["calib"], dataset.labels["test"]])
    everything = problem.resplit(np.arange(len(pool)), np.arange(len(pool)))  # the risk: the loss on the whole pool
    rows: dict[str, list[dict]] = defaultdict(list)
    for split in protocol_splits(pool, args.splits):
        carved = problem.resplit(split.calib, split.held_out).carve(CERTIFY, args.certify_fraction, split.seed)
        for mechanism, mechanism_spec in mechanism_specs(spec).items():
            point = certified_point(carved, mechanism_spec, args.trials, args.alpha, args.delta, args.structures)
            on_pool = [everything.index(carved.names[stage]) for stage in point["stages"]]
            risk = everything.evaluate(on_pool, point["thresholds"][None], "test", criterion=point["criterion"])
            rows[mechanism].append({"split": split.seed, "cascade": point["cascade"], "criterion": point["criterion"],
                                    "thresholds": np.round(point["thresholds"], 4).tolist(),
                                    "certified": point["certified"], **outcome(carved, point, "test"),
                                    "risk_loss_pct": float(risk.accuracy_loss_pct[0]),
                                    "risk_extra_errors": int(risk.extra_errors[0])})
            print(f"split {split.seed} {mechanism}: {rows[mechanism][-1]}", flush=True)
    allowed = allowed_loss(args.alpha, len(pool))  # extra errors on the pool within the budget (exact)
    results = {mechanism: summary(mechanism_rows, allowed) for mechanism, mechanism_rows in rows.items()}
    for mechanism, result in results.items():
        print(f"\n{mechanism}, {args.priced_layers} layers priced, certified at alpha {args.alpha}% / delta "
              f"{args.delta} ({result['certified_splits']} of {args.splits} splits certified): held-out saving "
              f"{result['energy_saving_pct']:.1f}% ± {result['energy_saving_std']:.1f}, loss "
              f"{result['accuracy_loss_pct']:.3f} (worst {result['worst_split_loss_pct']:.2f}); risk "
              f"{result['risk_loss_pct']:.3f} (worst {result['worst_split_risk_pct']:.3f}, "
              f"{result['risk_over_budget_splits']} splits over {args.alpha})")
    ranked = sorted(results, key=lambda m: -results[m]["energy_saving_pct"])
    comparison = {**{m: {key: results[m][key] for key in ("energy_saving_pct", "accuracy_loss_pct", "risk_loss_pct",
                                                         "worst_split_risk_pct", "risk_over_budget_splits",
                                                         "certified_splits")} for m in ranked},
                  "winner": ranked[0],
                  "margin_pct": round(results[ranked[0]]["energy_saving_pct"]
                                      - results[ranked[1]]["energy_saving_pct"], 3) if len(ranked) > 1 else None}
    if "big_little" in results:  # the two mechanisms alone, and how often the combined pick used both
        comparison["exits_minus_big_little_pct"] = round(results["exits"]["energy_saving_pct"]
                                                         - results["big_little"]["energy_saving_pct"], 3)
        comparison["combined_with_both_splits"] = sum(" > " in r["cascade"] and "@exit:" in r["cascade"]
                                                      and not r["cascade"].startswith(spec.nets.big)
                                                      for r in rows["combined"])
    print(f"winner: {ranked[0]}" + (f", by {comparison['margin_pct']:.1f} points of energy saving over {ranked[1]}"
                                    if len(ranked) > 1 else ""))
    if "big_little" in results:
        print(f"exits vs big/little: {comparison['exits_minus_big_little_pct']:+.1f} points of energy saving; the "
              f"combined pick put a little net in front of exits on {comparison['combined_with_both_splits']} of "
              f"{args.splits} splits")
    exits = results["exits"]
    picked = [r["criterion"] for r in rows["exits"]]  # the most common; a tie goes to the earliest split's
    criteria = sorted(dict.fromkeys(picked), key=picked.count, reverse=True)
    print(json.dumps({"energy_saving_pct": exits["energy_saving_pct"], "accuracy_loss_pct": exits["accuracy_loss_pct"],
                      "worst_split_loss_pct": exits["worst_split_loss_pct"], "exit1_fraction": exits["exit1_fraction"],
                      "splits": args.splits, "criterion": criteria[0], "priced_layers": args.priced_layers,
                      "training": args.training, "branch": args.branch, "exit_bits": args.exit_bits, "z": 0.0,
                      **({"big_little_saving_pct": results["big_little"]["energy_saving_pct"],
                          "big_little_loss_pct": results["big_little"]["accuracy_loss_pct"]}
                         if "big_little" in results else {}),
                      "trunk": args.trunk, "alpha_pct": args.alpha, "delta": args.delta,
                      "structures": args.structures, "certify_fraction": args.certify_fraction,
                      "risk_loss_pct": exits["risk_loss_pct"], "worst_split_risk_pct": exits["worst_split_risk_pct"],
                      "risk_over_budget_splits": exits["risk_over_budget_splits"],
                      "certified_splits": exits["certified_splits"],
                      "goal_70pct_certified": bool(exits["energy_saving_pct"] >= 70.0
                                                   and exits["risk_over_budget_splits"] == 0),
                      "per_split": {m: [{k: r[k] for k in ("split", "cascade", "certified", "energy_saving_pct",
                                                           "accuracy_loss_pct", "risk_loss_pct")} for r in rows[m]]
                                    for m in rows},
                      "comparison": comparison}))


if __name__ == "__main__":
    main()
