"""`dse run`, `dse report`, `dse pareto` and `dse studies`: run or resume a study and read its results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dse.cli.console import SETTINGS, progress_bar, result, say
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

    with progress_bar("writing the report") as step:
        results = study_results(study)
        export_tables(results, out_dir)
        step("importances and history")
        search = reports.search_data(study)
        step("rendering")
        return reports.write_report(reports.build_report_data(results, search), out_dir / "report.html")


def front_json(results) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The headline and the front as JSON (`dse pareto --json`, `dse --json run`)."""
    from dse.core.results import headline

    return {"study": results.name, "headline": headline(results).to_json(), "pareto": [t.row() for t in results.listed]}


def text_table(columns: list[str], rows: list[list[str]]) -> str:
    """Rows of cells under their headers, each column right-aligned to its widest entry (as pandas prints a frame,
    without importing pandas for it)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows)]
    return "\n".join("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in [columns, *rows])


def summary(results) -> None:  # type: ignore[no-untyped-def]
    """The answer first, then the front as a table with units in its headers."""
    import reports
    from dse.core.results import headline

    say(headline(results).sentence())
    if results.certificate_note:
        say(results.certificate_note)
    front = results.listed
    labels = {"trial": [t.label.removeprefix("trial ") for t in front],
              "status": [reports.point_status(t) for t in front], "front": [t.front_kind for t in front],
              "cascade": [t.cascade for t in front]}
    table = reports.metric_table("", "", labels,
                                 [(t.calib, t.test) for t in front], results.max_accuracy_loss_pct)
    if table.rows:
        say(text_table(table.columns, table.rows))
        if any(t.front_kind == "approximate" for t in front):
            say(reports.FRONT_NOTE)


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
    progress: Annotated[bool, typer.Option(help="Show progress bars (only ever on a terminal)")] = True,
) -> None:
    """Build or load the score cache, run (or resume) the study, and write CSVs and the HTML report. With a loss
    budget the answer is certified (on calibration rows kept aside) unless the spec says loss_guarantee = false."""
    from dse.core.output import out_dir_for, storage_url_for
    from dse.core.spec import load_spec
    from dse.core.storage import open_storage
    from dse.core.study import certify_once, open_study, record_study_facts, run_search, study_results
    from dse.core.workers import StopRequest, trial_counts

    study_spec = load_spec(spec).with_overrides(data={"path": str(data)} if data else {})
    out_dir = out_dir_for(study_spec.name, out)
    url = storage_url_for(out_dir, storage)
    with progress_bar("training and caching variants", enabled=progress, echo=True) as step:
        problem, dataset = prepare(study_spec, data, cache_dir, out_dir, url, jobs, log=step)
    n_trials = study_spec.search.n_trials if trials is None else trials
    study = open_study(study_spec, open_storage(url, heartbeat))
    before = len(study.trials)
    with StopRequest() as stop:
        if workers == 1:
            with progress_bar("search", total=until or n_trials, enabled=progress) as step:
                timing = run_search(study, problem, study_spec, n_trials, progress=False, until=until, stop=stop,
                                    callbacks=[lambda _study, trial: step(f"trial {trial.number}")])
        else:
            from dse.cli.worker import run_workers

            record_study_facts(study, problem, study_spec)
            total = until if until is not None else trial_counts(study)[0] + n_trials
            timing = run_workers(spec, workers, total, url, data, cache_dir, heartbeat, stop)
            if not stop.requested:
                certify_once(study, problem, study_spec)
    stopped(stop)
    report_path = write_outputs(study, out_dir)
    results = study_results(study)
    summary(results)
    say(f"study '{study.study_name}' in {url}: {before} -> {len(study.trials)} trials; {len(results.pareto)} distinct "
        f"feasible Pareto points (calibration split, {problem.margin['calib'].shape[1]} samples)")
    if workers > 1:
        say(f"search: {timing.trials} trials by {workers} workers in {timing.wall_s:.1f} s (with their start)",
            verbose_only=True)
    else:
        say(f"search: {timing.trials} trials in {timing.wall_s:.1f} s; per trial {timing.overhead_ms_per_trial:.1f} ms "
            f"Optuna (sampler + storage), {timing.per_trial_ms(timing.evaluate_s):.2f} ms our evaluation; "
            f"{timing.scoring_s:.1f} s scoring variants first drawn by a trial", verbose_only=True)
    say("score-margin classifier AUC (test split): " + ", ".join(f"{c.net} {c.auc:.3f}" for c in results.margins),
        verbose_only=True)
    say(f"report: {report_path.resolve()}")
    result({**front_json(results), "storage": url, "trials": len(study.trials), "report": str(report_path.resolve()),
            "search_s": timing.wall_s})


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
    path = write_outputs(loaded, out_dir).resolve()
    say(f"report: {path}")
    result({"report": str(path)})


def pareto(
    study: Annotated[str, typer.Argument(help="Study name (or its output directory)")],
    out: OutOption = None,
    storage: StorageOption = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Also write the front to this CSV file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the headline and the front as JSON")] = False,
) -> None:
    """Print the answer (the recommended point, and whether its loss budget is certified) and the feasible Pareto
    front (chosen on calibration, with test-split metrics; exact up to 3 stages, approximate from 4)."""
    from dse.core.output import check_output_file, csv_text, load_existing_study, pareto_rows
    from dse.core.study import study_results
    from nets import atomic_write_text

    if csv is not None:
        check_output_file(csv, "--csv")
    loaded, _ = load_existing_study(study, out, storage)
    results = study_results(loaded)
    if as_json or SETTINGS.json:
        typer.echo(json.dumps(front_json(results), indent=2, default=float))
    else:
        summary(results)
    if csv:
        atomic_write_text(csv, csv_text(pareto_rows(results)))
        say(f"wrote {csv}")


def studies() -> None:
    """List the built-in study specs."""
    from dse.core.spec import builtin_specs, load_spec

    for name, path in sorted(builtin_specs().items()):
        typer.echo(f"{name:<20} {load_spec(path).description}")
