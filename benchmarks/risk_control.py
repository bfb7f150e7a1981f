"""Certified loss budget on full MNIST: plain, z = 1.64 and certified (Learn then Test) thresholds over 100 halvings.

    DSE_CACHE_DIR=/work/bench/cache python benchmarks/risk_control.py [--data ../shared/datasets/mnist] [--halvings 100]

The Park 2015 spec's variants (LeNet big, Mini 1-8 little), training and accelerator (16 KiB SRAM, 16-bit,
conv layers priced), read from `studies/park2015-mnist.toml`; the networks come from the score cache (trained
once). The 10,000 test images are pooled and halved at random (stratified) 100 times. On each calibration half
every method picks the little net and threshold of least calibration energy among those it accepts: "plain"
(calibration loss <= alpha), "z" (calibration loss + z standard errors of the paired difference <= alpha) and
"certified" (Learn then Test at level delta; Bonferroni over the little nets, and the split variant). A cascade
costs E_little + reach_big * E_big. Reported per method, on the held-out halves: the fraction whose loss exceeds
alpha and the mean energy saving vs LeNet alone; and against the risk, taken as the loss on the whole pool of
10,000 rows the halvings are drawn from: the fraction of picks whose pool loss exceeds alpha (exact counts), which is
what the certificate bounds (goal <= delta for the certified methods). Ends with one JSON line (`skipped` when the
data is absent).
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import costmodel
from dse import accept_sweep
from dse.risk import Structure, allowed_loss, select_certified
from nets import ScoreCache, TrainingConfig, Variant, architecture, build_scores, load_dataset, stratified_split

SPEC = Path(__file__).resolve().parents[1] / "studies" / "park2015-mnist.toml"
# candidate thresholds for the certified method, safe to aggressive, fixed before any data is seen
GRID = np.unique(np.r_[np.linspace(0.0, 1.0, 1001), 1 - np.logspace(-6, -3, 61)])[::-1]


@dataclass(frozen=True)
class Pool:
    """Every variant's rows over the pooled 10,000 test images, and each net's energy per inference (pJ)."""

    names: list[str]  # big first
    margin: np.ndarray  # (V, N)
    correct: np.ndarray  # (V, N) bool
    labels: np.ndarray  # (N,)
    energy_pj: np.ndarray  # (V,)


def load_pool(spec: dict, dataset_name: str, data: str, epochs: int | None) -> Pool:
    """Scores of the spec's nets (through $DSE_CACHE_DIR) and their conv-layer energy on the spec's accelerator."""
    t, a = spec["training"], spec["accelerator"]
    config = TrainingConfig(epochs=epochs or t["epochs"], batch_size=t["batch_size"],
                            learning_rate=t["learning_rate"], seed=t["seed"])
    dataset = load_dataset(dataset_name, data, spec["data"]["seed"])
    names = [spec["nets"]["big"], *spec["little"]["nets"]]
    scores = build_scores(dataset, [Variant(name) for name in names], config, ScoreCache(), n_jobs=1)
    rows = [scores[Variant(name)].splits for name in names]
    accelerator = costmodel.Accelerator(tm=a["tm"], tn=a["tn"], clock_hz=a["clock_hz"],
                                        sram_bytes=costmodel.parse_bytes(a["sram"]), partition=tuple(a["partition"]),
                                        bits=a["bits"], tiling_rule=a["tiling_rule"],
                                        dataflow=a.get("dataflow", "auto"))
    technology = costmodel.load_technology()
    if a["priced_layers"] != "conv":
        raise SystemExit(f"{SPEC}: accelerator.priced_layers: expected 'conv' (Park 2015), got {a['priced_layers']!r}")
    energy = [costmodel.network_cost([s for s in architecture(name).layer_shapes() if s.kind == "conv"],
                                     accelerator, technology).energy_pj for name in names]
    return Pool(names, np.stack([np.r_[r["calib"].margin, r["test"].margin] for r in rows]),
                np.stack([np.r_[r["calib"].correct, r["test"].correct] for r in rows]),
                np.r_[dataset.labels["calib"], dataset.labels["test"]], np.array(energy))


def structures(pool: Pool, rows: np.ndarray) -> list[Structure]:
    """Each little net cascaded into the big one, on `rows`."""
    big = pool.correct[0, rows]
    return [Structure(pool.names[v], pool.margin[v, rows], pool.correct[v, rows], big,
                      float(pool.energy_pj[v]), float(pool.energy_pj[0])) for v in range(1, len(pool.names))]


def least_energy(cascades: list[Structure], alpha_pct: float, z: float | None) -> tuple[int, float]:
    """Little net index and threshold of least calibration energy whose calibration loss is <= alpha (exact
    integer count) or, with `z`, whose loss + z standard errors of the paired difference is <= alpha."""
    best: tuple[float, int, float] = (np.inf, -1, np.inf)
    for index, s in enumerate(cascades):
        n = s.rows
        worse = ~s.first_correct & s.reference_correct
        better = s.first_correct & ~s.reference_correct
        thresholds, kept, loss = accept_sweep(s.margin, worse.astype(np.int64) - better)
        if z is None:
            feasible = loss <= allowed_loss(alpha_pct, n)
        else:
            _, _, discordant = accept_sweep(s.margin, (worse | better).astype(np.int64))
            mean = loss / n
            feasible = mean + z * np.sqrt(np.maximum(discordant / n - mean**2, 0.0) / n) <= alpha_pct / 100
        last = np.flatnonzero(feasible)[-1]  # t = +inf (nothing kept) is always feasible
        energy = s.first_energy_pj + (1 - kept[last] / n) * s.second_energy_pj
        best = min(best, (energy, index, float(thresholds[last])))
    return best[1], best[2]


def net_loss(cascade: Structure, threshold: float) -> int:
    """Kept rows the little net gets wrong and the big net right, less the reverse (an integer count)."""
    kept = cascade.margin >= threshold
    return int(np.sum(kept & ~cascade.first_correct & cascade.reference_correct)
               - np.sum(kept & cascade.first_correct & ~cascade.reference_correct))


def held_out(cascade: Structure | None, whole: Structure | None, threshold: float, alpha_pct: float,
             second_energy_pj: float) -> dict:
    """Loss (%), whether it exceeds alpha (exact count), and energy saving (%) of a choice on the held-out rows, and
    whether its loss on the whole pool (the risk) exceeds alpha; no choice means the big net alone."""
    if cascade is None or whole is None:
        return {"loss_pct": 0.0, "violated": False, "risk_violated": False, "saving_pct": 0.0}
    count = net_loss(cascade, threshold)
    return {"loss_pct": 100.0 * count / cascade.rows, "violated": count > allowed_loss(alpha_pct, cascade.rows),
            "risk_violated": net_loss(whole, threshold) > allowed_loss(alpha_pct, whole.rows),
            "saving_pct": 100.0 * (1 - cascade.energy_pj(threshold) / second_energy_pj), "little": cascade.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/mnist")
    parser.add_argument("--dataset", default="mnist", help="mnist (full, the benchmark) or mnist5k (development)")
    parser.add_argument("--epochs", type=int, default=None, help="override the spec's epochs (development only)")
    parser.add_argument("--halvings", type=int, default=100)
    parser.add_argument("--alpha-pct", type=float, default=0.3)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--z", type=float, default=1.64)
    args = parser.parse_args()
    if args.dataset == "mnist" and not Path(args.data).is_dir():
        print(f"full MNIST not found at {args.data} (give --data DIR with the four IDX .gz files); skipped")
        print(json.dumps({"skipped": f"no MNIST at {args.data}", "halvings": 0}))
        return
    pool = load_pool(tomllib.loads(SPEC.read_text()), args.dataset, args.data, args.epochs)
    print("conv-layer energy per inference (nJ): "
          + ", ".join(f"{n} {e / 1e3:.2f}" for n, e in zip(pool.names, pool.energy_pj)))
    start = time.perf_counter()
    results: dict[str, list[dict]] = {m: [] for m in ("plain", "z", "certified", "certified_split")}
    whole = structures(pool, np.arange(pool.labels.size))
    for halving in range(args.halvings):
        calib, test = stratified_split(pool.labels, (0.5, 0.5), seed=halving)
        cal, held = structures(pool, calib), structures(pool, test)
        for method, z in (("plain", None), ("z", args.z)):
            index, threshold = least_energy(cal, args.alpha_pct, z)
            results[method].append(held_out(held[index], whole[index], threshold, args.alpha_pct, pool.energy_pj[0]))
        for method, composition in (("certified", "bonferroni"), ("certified_split", "split")):
            point = select_certified(cal, GRID, args.alpha_pct, args.delta, composition, seed=halving)
            row = held_out(None if point is None else held[point.structure],
                           None if point is None else whole[point.structure], point.threshold if point else 0.0,
                           args.alpha_pct, pool.energy_pj[0])
            row.update(calib_loss_pct=point.calib_loss_pct if point else 0.0,
                       upper_bound_pct=point.upper_bound_pct if point else 0.0)
            results[method].append(row)
    seconds = time.perf_counter() - start
    print(f"{args.halvings} halvings of {pool.labels.size} images, alpha {args.alpha_pct}%, delta {args.delta}, "
          f"z {args.z} [{seconds:.1f} s]; held-out halves:")
    figures: dict[str, float | int] = {}
    for method, rows in results.items():
        violation = float(np.mean([r["violated"] for r in rows]))
        risk_violation = float(np.mean([r["risk_violated"] for r in rows]))
        saving = float(np.mean([r["saving_pct"] for r in rows]))
        losses = np.array([r["loss_pct"] for r in rows])
        picks: dict[str, int] = {}
        for r in rows:
            picks[r.get("little", "lenet only")] = picks.get(r.get("little", "lenet only"), 0) + 1
        extra = (f"; calib loss {np.mean([r['calib_loss_pct'] for r in rows]):.3f}%, one-point upper bound "
                 f"(descriptive) "
                 f"{np.mean([r['upper_bound_pct'] for r in rows]):.3f}%" if "upper_bound_pct" in rows[0] else "")
        print(f"  {method:>15}: violations {violation:.2f} (held-out half), {risk_violation:.2f} (risk: whole pool), "
              f"saving {saving:.2f}%, test loss {losses.mean():.3f}% "
              f"± {losses.std():.3f} (max {losses.max():.3f}%), picks {picks}{extra}")
        figures[f"violation_rate_{method}"] = round(violation, 4)
        figures[f"risk_violation_rate_{method}"] = round(risk_violation, 4)
        figures[f"saving_pct_{method}"] = round(saving, 3)
    print(json.dumps({**figures, "halvings": args.halvings}))


if __name__ == "__main__":
    main()
