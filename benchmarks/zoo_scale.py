"""A model-zoo cascade study at ImageNet scale, on a seeded synthetic zoo, through the CLI.

    python benchmarks/zoo_scale.py [--samples 25000] [--classes 1000] [--models 8] [--trials 60] [--certified]

The zoo is SYNTHETIC (nothing is downloaded): logits of `--models` models on `--samples` calibration and as many test
samples of `--classes` classes, written as float32 .npy files to a temporary directory (deleted at the end), each
model with a measured price (`energy_j`, doubling from one model to the next). Every sample has a difficulty shared
by all models and a confusing class shared by all models, so errors are correlated across the zoo; a model's skill
(and so its accuracy) rises with its price. The study cascades up to 3 of the models (`[little] max_stages = 3`, the
dearest model as the big net) under a 1 % loss budget on the calibration split, searched uncertified
(`loss_guarantee = false`: the figures are the exact fronts' calibration savings; `--certified` keeps the default
certified budget: the search half of the calibration rows picks, the other half certifies), and runs twice through
`dse run` in child processes: cold (an empty score cache) and warm (the same cache, a fresh study: the logits files
are hashed, their summaries read from the cache). The last line is JSON: the warm run's ingest, search and
report seconds, its wall and CPU seconds (the machine's load, 1-minute average before and after, moves the wall
times), the cold run's ingest and total seconds, the peak resident memory of the child processes, the sizes, and the
best calibration saving of a 2-model and of a 3-model cascade among the warm run's feasible points (same budget).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
LOSS_BUDGET_PCT = 1.0


def write_zoo(root: Path, samples: int, classes: int, models: int, seed: int = 0) -> list[str]:
    """The synthetic zoo's labels.npz and one directory of calib/test logits .npy per model; returns model names."""
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(models)]
    skill = np.linspace(3.0, 5.2, models)  # rises with the price
    labels = {}
    for split in ("calib", "test"):
        label = rng.integers(0, classes, samples)
        confuser = (label + rng.integers(1, classes, samples)) % classes
        difficulty = rng.standard_normal(samples).astype(np.float32)  # shared by every model
        labels[f"{split}_labels"] = label
        for name, level in zip(names, skill):
            (root / name).mkdir(exist_ok=True)
            out = np.lib.format.open_memmap(root / name / f"{split}_logits.npy", "w+", np.float32, (samples, classes))
            for start in range(0, samples, 2048):
                rows = slice(start, min(start + 2048, samples))
                n = rows.stop - rows.start
                block = rng.standard_normal((n, classes), dtype=np.float32)
                index = np.arange(n)
                block[index, label[rows]] += level - 1.5 * difficulty[rows] + 0.7 * rng.standard_normal(n)
                block[index, confuser[rows]] += 1.0 + 1.0 * difficulty[rows] + 0.5 * rng.standard_normal(n)
                out[rows] = 1.5 * block
            out.flush()
            del out
    np.savez(root / "labels.npz", **labels)
    return names


def write_spec(root: Path, names: list[str], trials: int, certified: bool = False) -> Path:
    """The study: the dearest model as the big net, the others as candidates of cascades of up to 3 models, under
    an uncertified calibration loss budget (`certified`: the default certified budget instead)."""
    guarantee = "" if certified else "loss_guarantee = false\n"
    models = "\n".join(f'[models.{name}]\nlogits = "{root / name}"\nenergy_j = {1e-3 * 2 ** i:g}\n'
                       for i, name in enumerate(names))
    spec = (f'version = 2\nname = "zoo"\n[data]\ndataset = "labels"\npath = "{root / "labels.npz"}"\n'
            f'[nets]\nbig = "{names[-1]}"\n[little]\nnets = {json.dumps(names[:-1])}\nmax_stages = 3\n'
            f'[search]\nn_trials = {trials}\nmax_accuracy_loss_pct = {LOSS_BUDGET_PCT}\n{guarantee}'
            f'{models}')
    path = root / "zoo.toml"
    path.write_text(spec)
    return path


def dse_run(spec: Path, out: Path, cache: Path) -> dict:
    """One `dse --json run` in a child process; its JSON result with the wall seconds added."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
           "DSE_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "dse.cli", "--json", "run", str(spec), "--no-progress", "--out", str(out)]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**json.loads(done.stdout), "wall_s": seconds, "cpu_s": cpu}


def best_savings(out: Path) -> dict[int, float]:
    """The best calibration energy saving of a feasible point per cascade length (models in the chain)."""
    best: dict[int, float] = {}
    with open(out / "trials.csv") as handle:
        for row in csv.DictReader(handle):
            if row["feasible"] == "True":
                k = len(row["cascade"].split(" > "))
                best[k] = max(best.get(k, -1e9), float(row["calib_energy_saving_pct"]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=25_000, help="calibration samples (as many test samples)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--certified", action="store_true",
                        help="keep the default certified budget (the search half picks, the kept-aside half certifies)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    print(f"load before: {load_before:.2f} (1 min) on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="zoo-scale-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        names = write_zoo(root, args.samples, args.classes, args.models)
        size = sum(f.stat().st_size for f in root.rglob("*.npy"))
        print(f"synthetic zoo: {len(names)} models, {args.samples} + {args.samples} samples, {args.classes} classes, "
              f"{size / 2**30:.2f} GiB of float32 logits, written in {time.perf_counter() - start:.1f} s")
        spec = write_spec(root, names, args.trials, args.certified)
        cold = dse_run(spec, root / "cold", root / "cache")
        warm = dse_run(spec, root / "warm", root / "cache")
        best = best_savings(root / "warm")
        load_after = os.getloadavg()[0]
        print(f"load after: {load_after:.2f}")
        print(f"headline: {warm['headline']['sentence']}")
    timing = warm["timing_s"]
    print(json.dumps({
        "ingest_seconds": round(timing["ingest"], 2), "search_seconds": round(timing["search"], 2),
        "report_seconds": round(timing["report"], 2), "total_seconds": round(warm["wall_s"], 2),
        "cpu_seconds": round(warm["cpu_s"], 2), "cold_ingest_seconds": round(cold["timing_s"]["ingest"], 2),
        "cold_total_seconds": round(cold["wall_s"], 2), "load_1min": [round(load_before, 2), round(load_after, 2)],
        "peak_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "n": args.samples, "classes": args.classes, "models": len(names), "structures": warm["trials"],
        "loss_budget_pct": LOSS_BUDGET_PCT, "certified": args.certified, "best_saving_pct_k2": round(best.get(2, float("nan")), 2),
        "best_saving_pct_k3": round(best.get(3, float("nan")), 2)}))


if __name__ == "__main__":
    main()
