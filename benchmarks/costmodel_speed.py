"""Network evaluations per second of the cost model, cold (unseen accelerator) and warm (memoised).

Usage: python benchmarks/costmodel_speed.py [--rounds N] [--dataflow auto]. Prints per-network figures, then one
JSON line {"dataflow": ..., "evals_per_s_cold": ..., "evals_per_s_warm": ..., "target_warm": 1e4,
"meets_target": ...} over LeNet and Mini 1-8 (Park 2015 Table II). The search needs at least 1e4 warm evaluations/s.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import nets
from costmodel import Accelerator, network_cost

NETS = ["lenet"] + [f"mini{i}" for i in range(1, 9)]
TARGET_WARM = 1e4  # network evaluations per second the search's inner loop needs


def main() -> None:
    """Time cold and warm evaluations and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="evaluations per network and mode")
    parser.add_argument("--dataflow", default="auto", help="Accelerator.dataflow to time")
    args = parser.parse_args()
    rounds = args.rounds
    shapes = {name: nets.architecture(name).layer_shapes() for name in NETS}
    base = Accelerator(dataflow=args.dataflow)
    network_cost(shapes["lenet"], base)  # load the technology file and numpy code paths once
    # Cold: every evaluation sees an SRAM size never priced before, so every layer is tiled afresh (as a search
    # trial proposing a new partition or size would). Warm: the same evaluations again, answered from the memo.
    accs = [replace(base, sram_bytes=16384 + 64 * i) for i in range(rounds)]
    totals = {"cold": [0.0, 0], "warm": [0.0, 0]}
    for name, layers in shapes.items():
        line = []
        for mode in ("cold", "warm"):
            start = time.perf_counter()
            for acc in accs:
                network_cost(layers, acc)
            elapsed = time.perf_counter() - start
            totals[mode][0] += elapsed
            totals[mode][1] += len(accs)
            line.append(f"{mode} {1e6 * elapsed / len(accs):9.1f} us/eval")
        print(f"{name:<6} {len(layers)} layers: " + ", ".join(line))
    rates = {f"evals_per_s_{mode}": round(count / seconds, 1) for mode, (seconds, count) in totals.items()}
    print(json.dumps({"dataflow": args.dataflow, **rates, "target_warm": TARGET_WARM,
                      "meets_target": rates["evals_per_s_warm"] >= TARGET_WARM}))


if __name__ == "__main__":
    main()
