"""`dse run`, `dse report`, `dse pareto` and `dse studies`: run or resume a study and read its results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dse.cli.options import CacheDirOption, DataOption, HeartbeatOption, JobsOption, UntilOption, prepare, stopped

OutOption = Annotated[Optional[Path], typer.Option("--out", help="Output directory [default: ./dse-out/<study>]")]
StorageOption = Annotated[Optional[str], typer.Option(
    "--storage", help="Optuna storage URL (sqlite:///…, postgresql+psycopg2://…, journal:///file) "
                      "[default: SQLite file in the output directory]")]


def write_outputs(study, out_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    """Write trials.csv, pareto.csv and report.html for a study; return the report's path."""
    import reports
    from dse.core.output import export_tables
    from dse.core.study import study_results

    results = study_results(study)
    export_tables(results, out_dir)
    return reports.write_report(reports.build_report_data(results), out_dir / "report.html")


def run(
    spec: Annotated[str, typer.Argument(help="Spec file or built-in study name (see `dse studies`)")] = "quickstart",
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", min=0, help="Trials to add [default: spec]")] = None,
    until: UntilOption = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=256,
                                         help="Worker processes on this machine, sharing the study")] = 1,
    data: DataOption = None,
    out: OutOption = None,
    storage: StorageOption = None,
    cache_dir: CacheDirOption = None,
    jobs: JobsOption = -1,
    heartbeat: HeartbeatOption = 10,
    progress: Annotated[bool, typer.Option(help="Show the search progress bar")] = True,
) -> None:
    """Build or load the score cache, run (or resume) the study, and write CSVs and the HTML report."""
    from dse.core.output import out_dir_for, storage_url_for
    from dse.core.spec import load_spec
    from dse.core.storage import open_storage
    from dse.core.study import open_study, record_study_facts, run_search, study_results
    from dse.core.workers import StopRequest, trial_counts

    study_spec = load_spec(spec).with_overrides(data={"path": str(data)} if data else {})
    out_dir = out_dir_for(study_spec.name, out)
    url = storage_url_for(out_dir, storage)
    problem, dataset = prepare(study_spec, data, cache_dir, out_dir, url, jobs)
    n_trials = study_spec.search.n_trials if trials is None else trials
    study = open_study(study_spec, open_storage(url, heartbeat))
    before = len(study.trials)
    with StopRequest() as stop:
        if workers == 1:
            timing = run_search(study, problem, study_spec, n_trials, progress=progress, until=until, stop=stop)
        else:
            from dse.cli.worker import run_workers

            record_study_facts(study, problem, study_spec)
            total = until if until is not None else trial_counts(study)[0] + n_trials
            timing = run_workers(spec, workers, total, url, data, cache_dir, heartbeat, stop)
    stopped(stop)
    report_path = write_outputs(study, out_dir)
    front = len(study_results(study).pareto)
    typer.echo(f"study '{study.study_name}' in {url}: {before} -> {len(study.trials)} trials; "
               f"{front} distinct feasible Pareto points (calibration split, {len(dataset.labels['calib'])} samples)")
    if workers > 1:
        typer.echo(f"search: {timing.trials} trials by {workers} workers in {timing.wall_s:.1f} s (with their start)")
    else:
        typer.echo(f"search: {timing.trials} trials in {timing.wall_s:.1f} s; per trial "
                   f"{timing.overhead_ms_per_trial:.1f} ms Optuna (sampler + storage), "
                   f"{timing.per_trial_ms(timing.evaluate_s):.2f} ms our evaluation; "
                   f"{timing.scoring_s:.1f} s scoring variants first drawn by a trial")
    aucs = ", ".join(f"{row['net']} {row['auc']:.3f}" for row in study.user_attrs.get("smrc", []))
    typer.echo(f"score-margin classifier AUC (test split): {aucs}")
    typer.echo(f"report: {report_path.resolve()}")


def report(
    study: Annotated[str, typer.Argument(help="Study name (or its output directory)")],
    out: OutOption = None,
    storage: StorageOption = None,
) -> None:
    """Rewrite the HTML report (and CSVs) of a study from its storage."""
    from dse.core.output import load_existing_study

    from dse.core.output import check_output_dir

    if out is not None:
        check_output_dir(out, "--out")
    loaded, out_dir = load_existing_study(study, out, storage)
    check_output_dir(out_dir, "--out")
    typer.echo(f"report: {write_outputs(loaded, out_dir).resolve()}")


def pareto(
    study: Annotated[str, typer.Argument(help="Study name (or its output directory)")],
    out: OutOption = None,
    storage: StorageOption = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Also write the front to this CSV file")] = None,
) -> None:
    """Print the feasible Pareto front (chosen on calibration, with test-split metrics) as a table."""
    from dse.core.output import load_existing_study, pareto_frame
    from dse.core.study import study_results
    from dse.core.output import check_output_file
    from nets import atomic_write_text

    if csv is not None:
        check_output_file(csv, "--csv")
    loaded, _ = load_existing_study(study, out, storage)
    front = pareto_frame(study_results(loaded))
    if front.empty:
        typer.echo("no feasible Pareto points yet")
        return
    columns = [c for c in ["trial", "cascade", "threshold_mode", "thresholds", "sram", "calib_energy_j",
                           "calib_accuracy_loss_pct", "test_energy_j", "test_energy_saving_pct", "test_accuracy",
                           "test_accuracy_loss_pct"] if c in front]
    typer.echo(front[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if csv:
        atomic_write_text(csv, front.to_csv(index=False))
        typer.echo(f"wrote {csv}")


def studies() -> None:
    """List the built-in study specs."""
    from dse.core.spec import builtin_specs, load_spec

    for name, path in sorted(builtin_specs().items()):
        typer.echo(f"{name:<20} {load_spec(path).description}")
