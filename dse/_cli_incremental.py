"""`dse train-incremental` and `dse simulate-controller`: Tann 2016's runtime-configurable net on a study spec.

The helpers above the commands (setup, rows, comparison) are shared with `benchmarks/tann2016.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional, Sequence

import numpy as np
import typer

import costmodel
import nets
from dse._incremental import (DEFAULT_SCHEDULE, IncrementPoint, IncrementSearchError, StorageComparison,
                              budget_schedule, simulate_controller, stage_costs, storage_comparison, tune_thresholds,
                              increment_point)
from dse._problem import make_accelerator
from dse._spec import SpecError, StudySpec, load_spec

_UJ = 1e-6  # pJ -> uJ


@dataclass(frozen=True)
class IncrementalSetup:
    """What pricing and training a spec's big net incrementally needs."""

    net: str
    dataset: nets.Dataset
    config: nets.TrainingConfig
    cache: nets.ScoreCache
    accelerator: costmodel.Accelerator
    technology: costmodel.Technology
    priced_layers: str
    max_loss_pct: float

    def layers_at(self, width: float) -> list[costmodel.LayerShape]:
        """Priced layer shapes of the big net at `width` (conv only when the spec prices conv layers only)."""
        layers = nets.architecture(self.net).layer_shapes(width)
        return [shape for shape in layers if shape.kind == "conv"] if self.priced_layers == "conv" else layers

    def full_energy_pj(self) -> float:
        """Energy of one inference of the full net."""
        return costmodel.network_cost(self.layers_at(1.0), self.accelerator, self.technology).energy_pj


def setup_from_spec(spec: StudySpec, cache_dir: str | None = None,
                    max_loss_pct: float | None = None) -> IncrementalSetup:
    """Dataset, training, cache and accelerator of a spec; the loss limit defaults to the spec's (else 1%)."""
    accelerator, technology = make_accelerator(spec)
    limit = max_loss_pct if max_loss_pct is not None else spec.search.max_accuracy_loss_pct
    return IncrementalSetup(spec.nets.big, nets.load_dataset(spec.data.dataset, spec.data.path or None, spec.data.seed),
                            spec.training, nets.ScoreCache(cache_dir), accelerator, technology,
                            spec.accelerator.priced_layers, 1.0 if limit is None else limit)


def stage_rows(scores: dict[nets.Variant, nets.VariantScores], variants: Sequence[nets.Variant],
               split: str) -> tuple[np.ndarray, np.ndarray]:
    """(S, n) margins and correctness of `variants` on `split`."""
    rows = [scores[v].splits[split] for v in variants]
    return np.stack([r.margin for r in rows]), np.stack([r.correct for r in rows])


def build_rows(setup: IncrementalSetup, variants: Sequence[nets.Variant], n_jobs: int,
               log: Callable[[str], None]) -> dict[nets.Variant, nets.VariantScores]:
    """Scores of `variants`, trained and scored into the setup's cache when missing."""
    return nets.build_scores(setup.dataset, list(variants), setup.config, setup.cache, n_jobs=n_jobs, log=log)


def weights_seconds(setup: IncrementalSetup, variant: nets.Variant) -> float | None:
    """Recorded training seconds of a variant's weights (`weights/<key>.json` in the cache), if any."""
    from nets._cache import weights_key

    path = setup.cache.root / "weights" / f"{weights_key(setup.dataset, variant, setup.config)}.json"
    try:
        return float(json.loads(path.read_text())["train_seconds"])
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class TrainedComparison:
    """Golden-model estimate vs the incrementally trained net, on the test split."""

    golden: IncrementPoint  # golden models as stages, thresholds tuned on golden calibration rows (or given)
    incremental_same: IncrementPoint  # the incremental net at those same thresholds
    incremental: IncrementPoint  # the incremental net, thresholds re-tuned on its own calibration rows (§5.2)
    golden_stage_accuracy: np.ndarray  # (S,) test accuracy of each golden model
    incremental_stage_accuracy: np.ndarray  # (S,) test accuracy of each incremental stage
    stage_energy_pj: np.ndarray  # (S,) reuse-mode price of each stage
    train_seconds: float | None  # incremental training (stages 2..N), as recorded in the cache


def compare_incremental(setup: IncrementalSetup, fractions: tuple[float, ...], thresholds: np.ndarray | None = None,
                        n_jobs: int = 1, log: Callable[[str], None] = print) -> TrainedComparison:
    """Train (or load) the golden models and the incremental net for `fractions`, then evaluate both on test."""
    from nets._incremental import check_increments

    check_increments(nets.architecture(setup.net), fractions)
    if thresholds is not None and len(thresholds) != len(fractions) - 1:
        raise IncrementSearchError(f"thresholds: need {len(fractions) - 1} for {len(fractions)} increments "
                                   f"(none for the last), got {len(thresholds)}")
    golden_variants = [nets.Variant(setup.net, f) for f in fractions]
    incremental_variants = [nets.Variant(setup.net, f, fractions) for f in fractions]
    golden = build_rows(setup, golden_variants, n_jobs, log)  # first, so the incremental net finds its golden models
    incremental = build_rows(setup, incremental_variants, n_jobs, log)
    energy = np.array([c.energy_pj for c in stage_costs(setup.layers_at, fractions, setup.accelerator,
                                                         setup.technology)])
    golden_calib, golden_test = (stage_rows(golden, golden_variants, split) for split in ("calib", "test"))
    incremental_calib, incremental_test = (stage_rows(incremental, incremental_variants, split)
                                           for split in ("calib", "test"))
    reference_calib = float(golden_calib[1][-1].mean())
    if thresholds is None:
        thresholds = tune_thresholds(*golden_calib, energy, reference_calib, setup.max_loss_pct)
    retuned = tune_thresholds(*incremental_calib, energy, reference_calib, setup.max_loss_pct)
    full, reference_test = setup.full_energy_pj(), float(golden_test[1][-1].mean())

    def point(rows: tuple[np.ndarray, np.ndarray], chosen: np.ndarray) -> IncrementPoint:
        return increment_point(fractions, *rows, energy, chosen, full, reference_test, setup.max_loss_pct)

    return TrainedComparison(point(golden_test, thresholds), point(incremental_test, thresholds),
                             point(incremental_test, retuned), golden_test[1].mean(axis=1),
                             incremental_test[1].mean(axis=1), energy,
                             weights_seconds(setup, incremental_variants[0]))


def storage_for(setup: IncrementalSetup, fractions: Sequence[float]) -> StorageComparison:
    """Table 6 for the setup's net (all layers: storage is not restricted to priced layers)."""
    return storage_comparison(nets.architecture(setup.net).layer_shapes, fractions, setup.accelerator,
                              setup.technology)


def parse_numbers(text: str, option: str) -> tuple[float, ...]:
    """Comma-separated numbers, e.g. "0.25,0.5,1"."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise IncrementSearchError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0.25,0.5,1") from None


def point_settings(spec: StudySpec, trial_number: int, out: Path | None,
                   storage: str | None) -> tuple[tuple[float, ...], np.ndarray | None]:
    """Fractions and thresholds of a study trial: param `fractions` ("0.25/0.5", the full net implied) and params
    `threshold_0`, `threshold_1`, ... as the search space writes them."""
    from dse._output import load_existing_study

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


def _row(label: str, p: IncrementPoint) -> str:
    """One line of the comparison table."""
    thresholds = "/".join(f"{t:.4g}" for t in p.thresholds) or "-"
    return (f"{label:<26} {thresholds:>30} {p.energy_pj * _UJ:>10.3f} {p.energy_saving_pct:>8.2f} "
            f"{100 * p.accuracy:>8.2f} {p.accuracy_loss_pct:>7.2f} {p.analytic_fraction:>8.4f} "
            f"{p.simulated_fraction:>8.4f} {100 * p.analytic_accuracy:>9.2f}")


def echo_comparison(comparison: TrainedComparison) -> None:
    """Golden estimate vs incrementally trained net, per stage and as a cascade."""
    typer.echo(f"{'stage':>5} {'fraction':>8} {'golden acc %':>12} {'incremental acc %':>17} {'energy uJ':>10}")
    for i, f in enumerate(comparison.golden.fractions):
        typer.echo(f"{i + 1:>5} {f:>8g} {100 * comparison.golden_stage_accuracy[i]:>12.2f} "
                   f"{100 * comparison.incremental_stage_accuracy[i]:>17.2f} "
                   f"{comparison.stage_energy_pj[i] * _UJ:>10.3f}")
    typer.echo("")
    typer.echo(f"{'test split':<26} {'thresholds':>30} {'energy uJ':>10} {'saving %':>8} {'acc %':>8} {'drop %':>7} "
               f"{'E Eq.1':>8} {'E sim':>8} {'acc Eq.3':>9}")
    typer.echo(_row("golden-model estimate", comparison.golden))
    typer.echo(_row("incremental, same theta", comparison.incremental_same))
    typer.echo(_row("incremental, re-tuned theta", comparison.incremental))


def echo_storage(storage: StorageComparison) -> None:
    """Table 6: extra weight storage, % of the full net."""
    typer.echo(f"storage (Table 6): full net {storage.full_bytes / 1024:.1f} KiB; extra for the smaller stages: "
               f"incremental {storage.incremental_extra_pct:.2f}% (classifiers), "
               f"golden models {storage.golden_extra_pct:.2f}% (Big/Little style)")


def _user_errors() -> tuple[type[BaseException], ...]:
    """Bad-input exceptions of these commands."""
    from dse._output import StudyNotFound
    from nets._incremental import IncrementalError

    return (IncrementalError, IncrementSearchError, SpecError, StudyNotFound, nets.DatasetError,
            nets.ArchitectureError, nets.UnknownArchitecture, costmodel.CostModelError)


SpecArgument = Annotated[str, typer.Argument(help="Spec file or built-in study name (see `dse studies`)")]
DataOption = Annotated[Optional[Path], typer.Option("--data", help="Data path (overrides data.path in the spec)")]
CacheOption = Annotated[Optional[Path], typer.Option("--cache-dir", help="Score cache [default: $DSE_CACHE_DIR, ...]")]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", help="Parallel training jobs (-1: all cores)")]
FractionsHelp = "Channel fraction of each increment, increasing, ending at 1"


def register(app: typer.Typer) -> None:
    """Add `train-incremental` and `simulate-controller` to the `dse` app."""
    app.command("train-incremental")(train_incremental)
    app.command("simulate-controller")(simulate_controller_command)


def _load(spec: str, data: Path | None) -> StudySpec:
    return load_spec(spec).with_overrides(data={"path": str(data)} if data else {})


def train_incremental(
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
    try:
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
    except _user_errors() as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
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
    try:
        setup = setup_from_spec(_load(spec, data), str(cache_dir) if cache_dir else None)
        chosen = parse_numbers(fractions, "--fractions")
        levels = [int(level) for level in parse_numbers(schedule, "--schedule")]
        from nets._incremental import check_increments

        check_increments(nets.architecture(setup.net), chosen)
        energy = np.array([costmodel.network_cost(setup.layers_at(f), setup.accelerator, setup.technology).energy_pj
                           for f in chosen])
        budget = budget_schedule(energy, levels, segment)
        variants = [nets.Variant(setup.net, f, () if golden else chosen) for f in chosen]
        if not golden:  # the incremental net starts from the golden models: build those first
            build_rows(setup, [nets.Variant(setup.net, f) for f in chosen], jobs, typer.echo)
        _, correct = stage_rows(build_rows(setup, variants, jobs, typer.echo), variants, "test")
        trace = simulate_controller(energy, correct, budget)
    except _user_errors() as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
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
