"""The quickstart as a new user sees it: `dse run`, its answer, and a screenshot of its report (for the docs).

    python benchmarks/quickstart_report.py [--out DIR] [--screenshot docs/images/quickstart-report.png]
                                           [--window-size 1200,1100]

Runs the built-in quickstart study with the console script's module (`python -m dse.cli run`) into a fresh output
directory (score cache: $DSE_CACHE_DIR, else the usual one), reads its answer back with `dse --json pareto`, and
screenshots the top of `report.html` with headless Chromium (`chromium` on PATH). Rerun it whenever the report or
the quickstart changes: the front page's screenshot and the guide's worked reading come from it. The last line is
one JSON object: the headline as `dse --json pareto` gives it, and the front rows the guide's reading quotes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dse(*args: str) -> str:
    """Run the `dse` command line of this tree and return its stdout; any failure stops the benchmark."""
    done = subprocess.run([sys.executable, "-m", "dse.cli", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"dse {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def screenshot(report: Path, image: Path, window: str) -> None:
    """The top of the report, rendered offline by headless Chromium, written atomically to IMAGE."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("headless Chromium not found (chromium on PATH)")
    image.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        partial = Path(profile) / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}/user", "--virtual-time-budget=10000",
                        f"--window-size={window}", f"--screenshot={partial}", report.as_uri()],
                       capture_output=True, text=True, timeout=120, check=True)
        if not partial.is_file() or partial.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            sys.exit("Chromium wrote no PNG")
        shutil.move(partial, image)


def reading(pareto: list[dict], limit: float) -> dict:
    """The front rows the guide's worked reading quotes: the first that keeps the budget on both splits, and the
    cheapest that loses nothing on either."""
    keeps = [row for row in pareto if row["calib_accuracy_loss_pct"] <= limit and row["test_accuracy_loss_pct"] <= limit]
    lossless = [row for row in pareto if row["calib_extra_errors"] <= 0 and row["test_extra_errors"] <= 0]
    fields = ("trial", "point", "cascade", "test_energy_saving_pct", "test_accuracy_loss_pct",
              "test_last_stage_fraction")
    return {"over_limit_on_test_rows": sum(row["test_accuracy_loss_pct"] > limit for row in pareto),
            "first_within_limit_on_both": {key: keeps[0][key] for key in fields} if keeps else None,
            "cheapest_lossless": {key: lossless[0][key] for key in fields} if lossless else None}


def main() -> None:
    """Run the quickstart, take the screenshot, print the answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output directory [default: a fresh temporary one]")
    parser.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "images" / "quickstart-report.png")
    parser.add_argument("--window-size", default="1200,1100", help="Chromium's window, WIDTH,HEIGHT in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "quickstart"
        dse("run", "quickstart", "--out", str(out), "--no-progress")
        study_dir = next(out.rglob("report.html")).parent  # the study's own directory, wherever --out puts it
        answer = json.loads(dse("--json", "pareto", str(study_dir)))
        screenshot(study_dir / "report.html", args.screenshot, args.window_size)
    headline, pareto = answer["headline"], answer["pareto"]
    print(headline["sentence"])
    print(f"screenshot: {args.screenshot}")
    print(json.dumps({"headline": headline, "front_points": len(pareto),
                      **reading(pareto, headline["max_accuracy_loss_pct"])}))


if __name__ == "__main__":
    main()
