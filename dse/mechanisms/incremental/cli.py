"""`dse train-incremental` and `dse simulate-controller` (the incremental mechanism's commands): Tann 2016's
runtime-configurable net on a study spec."""

from __future__ import annotations

import math

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

import costmodel
import nets
from dse.core.output import load_existing_study
from dse.core.spec import StudySpec, load_spec
from dse.mechanisms.incremental.tann2016 import (DEFAULT_SCHEDULE, IncrementSearchError, budget_schedule,
                                                 simulate_controller)
from dse.mechanisms.incremental.tann2016_trained import (build_rows, compare_incremental, echo_comparison, echo_storage,
                                                         setup_from_spec, stage_rows, storage_for)

_UJ = 1e-6  # pJ -> uJ

def parse_numbers(text: str, option: str) -> tuple[float, ...]:
    """Comma-separated finite numbers, e.g. "0.25,0.5,1"."""
    try:
        numbers = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise IncrementSearchError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0.25,0.5,1") from None
    if not all(math.isfinite(n) for n in numbers):
        raise IncrementSearchError(f"{option} {text!r}: every number must be finite")
    return numbers


def parse_whole(text: str, option: str) -> list[int]:
    """Comma-separated whole numbers, e.g. "4,2,0": a fraction is an error, never truncated."""
    numbers = parse_numbers(text, option)
    if any(n != int(n) for n in numbers):
        raise IncrementSearchError(f"{option} {text!r}: expected whole numbers, e.g. 4,2,0")
    return [int(n) for n in numbers]


def point_settings(spec: StudySpec, trial_number: int, out: Path | None,
                   storage: str | None) -> tuple[tuple[float, ...], np.ndarray | None]:
    """Fractions and thresholds of a study trial: param `fractions` ("0.25/0.5", the full net implied) and params
    `threshold_0`, `threshold_1`, ... as the search space writes them."""
    study, _ = load_existing_study(spec.name, out, storage)
    trials = {t.number: t for t in study.trials}
    if trial_number not in trials:
        raise IncrementSearchError(f"--point {trial_number}: no such trial in study '{study.study_name}' "
                                   f"(trials 0..{len(trials) - 1})")
    params = trials[trial_number].params
    if "fractions" not in params:
        raise IncrementSearchError(f"--point {trial_number}: trial has no 'fractions' (it is not an increments "
                                   f"point; pass --fractions instead)")
    fractions = parse_numbers(str(params["fractions"]).replace("/", ","), f"trial {trial_number} fractions")
    fractions += () if fractions[-1] == 1 else (1.0,)
    names = [f"threshold_{i}" for i in range(len(fractions) - 1)]
    thresholds = np.array([params[n] for n in names], dtype=np.float64) if all(n in params for n in names) else None
    return fractions, thresholds


SpecArgument = Annotated[str, typer.Argument(help="Spec file or built-in study name (see `dse specs`)")]
DataOption = Annotated[Optional[Path], typer.Option("--data", help="Data path (overrides data.path in the spec)")]
CacheOption = Annotated[Optional[Path], typer.Option("--cache-dir", help="Score cache [default: $DSE_CACHE_DIR, ...]")]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", help="Parallel training jobs (-1: all cores)")]
FractionsHelp = "Channel fraction of each increment, increasing, ending at 1"


def _load(spec: str, data: Path | None) -> StudySpec:
    return load_spec(spec).with_data(data)


def train_incremental_command(
    spec: SpecArgument,
    point: Annotated[Optional[int], typer.Option("--point", help="Trial number of the spec's study")] = None,
    fractions: Annotated[Optional[str], typer.Option("--fractions", help=FractionsHelp + ", e.g. 0.25,0.5,1")] = None,
    thresholds: Annotated[Optional[str], typer.Option(
        "--thresholds", help="Margin threshold of each increment but the last [default: tuned on calibration]")] = None,
    max_loss_pct: Annotated[Optional[float], typer.Option(
        "--max-loss-pct", help="Calibration accuracy-loss limit for tuning [default: spec's, else 1]")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Study output directory [default: ./dse-out/<study>]")] = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL of the study")] = None,
    data: DataOption = None,
    cache_dir: CacheOption = None,
    jobs: JobsOption = 1,
) -> None:
    """Train the incremental net of a configuration and compare it with its golden-model estimate."""
    study_spec = _load(spec, data)
    if (point is None) == (fractions is None):
        raise IncrementSearchError("give exactly one of --point and --fractions")
    if point is not None:
        chosen, given = point_settings(study_spec, point, out, storage)
    else:
        chosen, given = parse_numbers(fractions or "", "--fractions"), None
    if thresholds is not None:
        given = np.asarray(parse_numbers(thresholds, "--thresholds"))
    setup = setup_from_spec(study_spec, str(cache_dir) if cache_dir else None, max_loss_pct)
    comparison = compare_incremental(setup, chosen, given, n_jobs=jobs, log=typer.echo)
    seconds = comparison.train_seconds
    typer.echo(f"{setup.net} increments {'/'.join(f'{f:g}' for f in chosen)} on {setup.dataset.dataset_id}: "
               f"incremental training {'not recorded' if seconds is None else f'{seconds:.0f} s'}; "
               f"calibration loss limit {setup.max_loss_pct:g}%")
    echo_comparison(comparison)
    echo_storage(storage_for(setup, chosen))


def simulate_controller_command(
    spec: SpecArgument,
    fractions: Annotated[str, typer.Option("--fractions", help=FractionsHelp)] = "0.25,0.5,0.75,1",
    schedule: Annotated[str, typer.Option(
        "--schedule", help="Budget level (capacity index) of each segment of the stream")] =
        ",".join(map(str, DEFAULT_SCHEDULE)),
    segment: Annotated[int, typer.Option("--segment", help="Inputs per budget segment")] = 250,
    golden: Annotated[bool, typer.Option(
        "--golden/--incremental", help="Per-sample correctness from golden models or the incremental net")] = False,
    data: DataOption = None,
    cache_dir: CacheOption = None,
    jobs: JobsOption = 1,
) -> None:
    """Run Algorithm 2 over the test stream with a budget stepping through the increments' energies (Table 4)."""
    chosen = parse_numbers(fractions, "--fractions")
    levels = parse_whole(schedule, "--schedule")
    setup = setup_from_spec(_load(spec, data), str(cache_dir) if cache_dir else None)
    nets.check_increments(nets.architecture(setup.net), chosen)
    energy = np.array([costmodel.network_cost(setup.layers_at(f), setup.accelerator, setup.technology).energy_pj
                       for f in chosen])
    budget = budget_schedule(energy, levels, segment)
    variants = [nets.Variant(setup.net, f, () if golden else chosen) for f in chosen]
    if not golden:  # the incremental net starts from the golden models: build those first
        build_rows(setup, [nets.Variant(setup.net, f) for f in chosen], jobs, typer.echo)
    _, correct = stage_rows(build_rows(setup, variants, jobs, typer.echo), variants, "test")
    trace = simulate_controller(energy, correct, budget)
    typer.echo(f"{setup.net} capacities {'/'.join(f'{f:g}' for f in chosen)} "
               f"({'golden models' if golden else 'incremental net'}), {len(budget)} test inputs")
    typer.echo(f"{'segment':>7} {'budget uJ':>10} {'settled':>7} {'inputs per capacity':>22} {'violations':>10} "
               f"{'acc %':>7}")
    for k, level in enumerate(levels):
        part = slice(k * segment, (k + 1) * segment)
        counts = np.bincount(trace.capacity[part], minlength=len(chosen))
        violations = int((trace.energy_pj[part] > trace.budget_pj[part]).sum())
        typer.echo(f"{k:>7} {energy[level] * _UJ:>10.3f} {trace.capacity[part][-1]:>7} "
                   f"{'/'.join(map(str, counts)):>22} {violations:>10} {100 * trace.correct[part].mean():>7.2f}")
    typer.echo(f"total: {trace.violations} budget violations in {len(budget)} inputs, accuracy "
               f"{100 * trace.accuracy:.2f}%, mean energy {trace.energy_pj.mean() * _UJ:.3f} uJ")
    echo_storage(storage_for(setup, chosen))


# What `dse` adds for this mechanism: the CLI reads `COMMANDS` of `<mechanism package>.cli` (the mechanism
# itself never imports this module, so the layers read one way).
COMMANDS = [("train-incremental", train_incremental_command), ("simulate-controller", simulate_controller_command)]
