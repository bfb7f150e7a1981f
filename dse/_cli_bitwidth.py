"""`dse characterize`: minimum-bit-width histogram of a spec's big net and its merged candidate set."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

import nets
from dse._bitwidth import (MIN_BAR_FRACTION, BitwidthError, Characterization, characterize_scores,
                           load_bitwidth_scores, merge_bars, validate_bitwidth_set)
from dse._spec import SpecError, load_spec

DEFAULT_BITS = "2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"
_BAR_WIDTH = 40  # characters of the longest histogram bar


class Rounding(str, Enum):
    """Rounding of the dynamic fixed-point quantizer (see nets._quant)."""

    nearest = "nearest"
    stochastic = "stochastic"


def register(app: typer.Typer) -> None:
    """Add the `characterize` command to the `dse` app."""
    app.command("characterize")(characterize)


def characterize(
    spec: Annotated[str, typer.Argument(help="Spec file or built-in study name; its big net is characterized")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Data path (overrides data.path in the spec)")] = None,
    bits: Annotated[str, typer.Option("--bits", help="Comma-separated increasing bit-widths")] = DEFAULT_BITS,
    rounding: Annotated[Rounding, typer.Option(help="Quantizer rounding")] = Rounding.nearest,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Score cache [default: $DSE_CACHE_DIR, $XDG_CACHE_HOME/adaptive-dse, ~/.cache/adaptive-dse]")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel scoring jobs (-1: all cores)")] = -1,
) -> None:
    """Print the big net's minimum-bit-width histogram on calibration and its candidate set after the 1% merge."""
    try:
        widths = validate_bitwidth_set(_parse_bits(bits))
        study = load_spec(spec).with_overrides(data={"path": str(data)} if data else {})
        dataset = nets.load_dataset(study.data.dataset, study.data.path or None, study.data.seed)
        scores = load_bitwidth_scores(dataset, study.nets.big, widths, study.training, nets.ScoreCache(cache_dir),
                                      rounding.value, jobs, log=typer.echo)
        result = characterize_scores(scores)
        typer.echo(f"{study.nets.big}, dynamic fixed point with {rounding.value} rounding, calibration split "
                   f"({len(dataset.labels['calib'])} samples)")
        typer.echo(render_histogram(result, [scores[b].splits["calib"].accuracy for b in [*widths, None]]))
        merged = merge_bars(result.fractions, widths)
        typer.echo(f"candidate bit-widths (bars < {100 * MIN_BAR_FRACTION:g}% merged upward): "
                   + ", ".join(f"{b} ({100 * share:.2f}%)" for b, share in merged.items()))
    except (BitwidthError, SpecError, nets.DatasetError, nets.ArchitectureError, nets.UnknownArchitecture) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _parse_bits(text: str) -> list[int]:
    """Parse "2,4,8"; validate_bitwidth_set checks range and order."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BitwidthError(f"--bits {text!r}: expected comma-separated integers, e.g. 4,8,16") from None


def render_histogram(result: Characterization, accuracies: list[float]) -> str:
    """One row per bar (each width, then float): accuracy there, samples whose minimum it is, share, text bar."""
    fractions = result.fractions
    scale = _BAR_WIDTH / max(float(fractions.max()), 1e-12)
    rows = [f"{'width':>6} {'accuracy':>9} {'minimum':>8} {'share':>8}"]
    for label, accuracy, count, share in zip(result.labels, accuracies, result.counts, fractions):
        rows.append(f"{label:>6} {accuracy:>9.2%} {count:>8} {share:>8.2%} {'#' * round(share * scale)}")
    return "\n".join(rows)
