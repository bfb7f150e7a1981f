"""The `dse` command line: run studies, report, print Pareto fronts, list built-in studies, price nets."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

app = typer.Typer(help="Design-space exploration of input-adaptive DNN inference, priced by an accelerator "
                       "energy model.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input (shown as one line), not a bug."""
    import costmodel
    import nets
    from dse._bitwidth import BitwidthError
    from dse._incremental import IncrementSearchError
    from dse._output import StudyNotFound
    from dse._spec import SpecError
    from dse._static import ThresholdError

    from nets._effort import EffortError

    return (SpecError, nets.DatasetError, nets.ArchitectureError, nets.UnknownArchitecture, EffortError,
            costmodel.CostModelError, StudyNotFound, BitwidthError, ThresholdError,
            IncrementSearchError)


def cli_errors(command: Callable) -> Callable:
    """Turn bad-input exceptions into one line on stderr and exit code 2, without a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return command(*args, **kwargs)
        except _user_errors() as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    return wrapper


OutOption = Annotated[Optional[Path], typer.Option("--out", help="Output directory [default: ./dse-out/<study>]")]
StorageOption = Annotated[Optional[str], typer.Option(
    "--storage", help="Optuna storage URL (sqlite:///…, postgresql+psycopg2://…, journal:///file) "
                      "[default: SQLite file in the output directory]")]


@app.command()
@cli_errors
def run(
    spec: Annotated[str, typer.Argument(help="Spec file or built-in study name (see `dse studies`)")] = "quickstart",
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", min=0, help="Trials to add [default: spec]")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data path (overrides data.path in the spec)")] = None,
    out: OutOption = None,
    storage: StorageOption = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Score cache [default: $DSE_CACHE_DIR, $XDG_CACHE_HOME/adaptive-dse, ~/.cache/adaptive-dse]")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel training jobs (-1: all cores)")] = -1,
    progress: Annotated[bool, typer.Option(help="Show the search progress bar")] = True,
) -> None:
    """Build or load the score cache, run (or resume) the study, and write CSVs and the HTML report."""
    from dse._output import export_results, out_dir_for, storage_url_for
    from dse._problem import load_problem
    from dse._spec import load_spec
    from dse._storage import open_storage
    from dse._study import open_study, pareto_frame, run_search

    study_spec = load_spec(spec).with_overrides(data={"path": str(data)} if data else {})
    n_trials = study_spec.search.n_trials if trials is None else trials
    problem, dataset = load_problem(study_spec, str(cache_dir) if cache_dir else None, n_jobs=jobs)
    out_dir = out_dir_for(study_spec.name, out)
    url = storage_url_for(out_dir, storage)
    study = open_study(study_spec, open_storage(url))
    before = len(study.trials)
    timing = run_search(study, problem, study_spec, n_trials, progress=progress)
    report = export_results(study, out_dir)
    typer.echo(f"study '{study.study_name}' in {url}: {before} -> {len(study.trials)} trials; "
               f"{len(pareto_frame(study))} distinct feasible Pareto points (calibration split, {len(dataset.labels['calib'])} samples)")
    typer.echo(f"search: {timing.trials} trials in {timing.wall_s:.1f} s; per trial {timing.overhead_ms_per_trial:.1f} ms "
               f"Optuna (sampler + storage), {timing.per_trial_ms(timing.evaluate_s):.2f} ms our evaluation; "
               f"{timing.scoring_s:.1f} s scoring variants first drawn by a trial")
    aucs = ", ".join(f"{row['net']} {row['auc']:.3f}" for row in study.user_attrs.get("smrc", []))
    typer.echo(f"score-margin classifier AUC (test split): {aucs}")
    typer.echo(f"report: {report.resolve()}")


@app.command()
@cli_errors
def report(
    study: Annotated[str, typer.Argument(help="Study name (or its output directory)")],
    out: OutOption = None,
    storage: StorageOption = None,
) -> None:
    """Rewrite the HTML report (and CSVs) of a study from its storage."""
    from dse._output import export_results, load_existing_study

    loaded, out_dir = load_existing_study(study, out, storage)
    typer.echo(f"report: {export_results(loaded, out_dir).resolve()}")


@app.command()
@cli_errors
def pareto(
    study: Annotated[str, typer.Argument(help="Study name (or its output directory)")],
    out: OutOption = None,
    storage: StorageOption = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Also write the front to this CSV file")] = None,
) -> None:
    """Print the feasible Pareto front (chosen on calibration, with test-split metrics) as a table."""
    from dse._output import load_existing_study
    from dse._study import pareto_frame
    from nets import atomic_write_text

    loaded, _ = load_existing_study(study, out, storage)
    front = pareto_frame(loaded)
    if front.empty:
        typer.echo("no feasible Pareto points yet")
        return
    columns = [c for c in ["trial", "cascade", "threshold_mode", "applied_threshold", "sram", "calib_energy_pj", "calib_accuracy_loss_pct", "test_energy_pj",
                           "test_energy_saving_pct", "test_accuracy", "test_accuracy_loss_pct"] if c in front]
    typer.echo(front[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if csv:
        atomic_write_text(csv, front.to_csv(index=False))
        typer.echo(f"wrote {csv}")


@app.command()
def studies() -> None:
    """List the built-in study specs."""
    from dse._spec import builtin_specs, load_spec

    for name, path in sorted(builtin_specs().items()):
        typer.echo(f"{name:<20} {load_spec(path).description}")


def _register_optional_commands() -> None:
    """Commands contributed by other modules (kept out of this file to keep it small)."""
    from dse import _cli_bitwidth, _cli_cost, _cli_incremental

    _cli_cost.register(app)
    _cli_bitwidth.register(app)
    _cli_incremental.register(app)


_register_optional_commands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
