"""`dse characterize` (the bit-width mechanism's command): minimum-bit-width histogram of a spec's big net and its merged candidate set."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

import nets
from dse.core.spec import load_spec
from dse.mechanisms.bitwidth.jahier2018 import (MIN_BAR_FRACTION, BitwidthError, characterize_scores,
                                                load_bitwidth_scores, merge_bars, render_histogram,
                                                validate_bitwidth_set)

DEFAULT_BITS = "2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"


class Rounding(str, Enum):
    """Rounding of the dynamic fixed-point quantizer (see nets.training._quant)."""

    nearest = "nearest"
    stochastic = "stochastic"


def characterize_command(
    spec: Annotated[str, typer.Argument(help="Spec file or built-in study name; its big net is characterized")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Data path (overrides data.path in the spec)")] = None,
    bits: Annotated[str, typer.Option("--bits", help="Comma-separated increasing bit-widths")] = DEFAULT_BITS,
    rounding: Annotated[Rounding, typer.Option(help="Quantizer rounding")] = Rounding.nearest,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Score cache [default: $DSE_CACHE_DIR, $XDG_CACHE_HOME/adaptive-dse, ~/.cache/adaptive-dse]")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel scoring jobs (-1: all cores)")] = -1,
) -> None:
    """Print the big net's minimum-bit-width histogram on calibration and its candidate set after the 1% merge."""
    widths = validate_bitwidth_set(_parse_bits(bits))
    study = load_spec(spec).with_data(data)
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


def _parse_bits(text: str) -> list[int]:
    """Parse "2,4,8"; validate_bitwidth_set checks range and order."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BitwidthError(f"--bits {text!r}: expected comma-separated integers, e.g. 4,8,16") from None


# What `dse` adds for this mechanism: the CLI reads `COMMANDS` of `<mechanism package>.cli` (the mechanism
# itself never imports this module, so the layers read one way).
COMMANDS = [("characterize", characterize_command)]
