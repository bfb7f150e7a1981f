"""`dse run`, `dse report`, `dse pareto`, `dse studies` and `dse specs`: run or resume a study and read its results."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dse.cli.console import SETTINGS, plural, progress_bar, result, say
from dse.cli.options import (CacheDirOption, DataOption, HeartbeatOption, JobsOption, NewOption, UntilOption,
                             check_budget, prepare, stopped)

OutOption = Annotated[Optional[Path], typer.Option(
    "--out", help="The study's output directory, used as given: study.db, the CSVs and report.html are in DIR "
                  "itself, not in DIR/<study> [default: ./dse-out/<study>]", metavar="DIR")]
StudyArgument = Annotated[str, typer.Argument(
    help="Study name (in ./dse-out/<study>, or in --out/--storage), its output directory, or its study.db file")]
StorageOption = Annotated[Optional[str], typer.Option(
    "--storage", help="Optuna storage URL (sqlite:///…, postgresql+psycopg2://…, journal:///file) "
                      "[default: SQLite file in the output directory]")]


def trial_line(trial) -> str:  # type: ignore[no-untyped-def]
    """What --verbose prints as a trial ends: its number, state, cascade and the threshold points it recorded (its
    front, and with a loss guarantee the safer candidates beyond it)."""
    from dse.core.study_attrs import recorded_points

    points = len(recorded_points(trial)) or 1
    state = trial.state.name.lower()
    return (f"trial {trial.number} {state}: {trial.user_attrs.get('cascade', '')}, "
            f"{plural(points, 'threshold point')}" if state == "complete" else f"trial {trial.number} {state}")


def write_outputs(study, out_dir: Path):  # type: ignore[no-untyped-def]
    """Write trials.csv, pareto.csv and report.html for a study; return the report's path and the results read."""
    import reports
    from dse.core.output import export_tables
    from dse.core.readback import study_results

    with progress_bar("writing the report") as step:
        results = study_results(study)
        export_tables(results, out_dir)
        step(f"wrote trials.csv and pareto.csv in {out_dir}; computing parameter importances and the history")
        search = reports.search_data(study)
        step("rendering report.html")
        return reports.write_report(reports.build_report_data(results, search), out_dir / "report.html"), results


def front_json(results) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The headline and the front as JSON (`dse pareto --json`, `dse --json run`)."""
    from dse.core.results import headline

    return {"study": results.name, "headline": headline(results).to_json(), "pareto": [json_row(t) for t in results.listed]}


def json_row(trial) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A trial point's row with its vectors as lists (the CSV row joins them with '/'), as the headline has them."""
    return {**trial.row(), "thresholds": list(trial.thresholds), "stage_bits": list(trial.stage_bits),
            "partition": list(trial.partition)}


# What the console front leaves out first when the terminal is narrow (by column name prefix; the report has all)
CONSOLE_DROP_FIRST = ("storage", "test latency", "last stage runs", "gap test", "calib energy")


def point_note(front) -> str:  # type: ignore[no-untyped-def]
    """The vocabulary, once: what a trial is and what `7.8` in the trial.point column means."""
    example = next((t for t in front if t.point), None)
    meaning = (f"{example.number}.{example.point} is point {example.point} of trial {example.number}'s front"
               if example else "a trial's point 0 shows as the trial alone")
    return (f"trial.point: a trial is one cascade structure the search drew, with a threshold front of its own; "
            f"{meaning} (thresholds in pareto.csv and the report).")


SHORT_FRONT = 10  # front rows the console shows, spread along the front


def spread(count: int, rows: int = SHORT_FRONT) -> list[int]:
    """Indices of at most `rows` of `count` items spread evenly from the first to the last (all when they fit)."""
    shown = min(rows, count)
    return sorted({round(i * (count - 1) / max(shown - 1, 1)) for i in range(shown)})


def summary(results, full_front: str = "pareto.csv") -> None:  # type: ignore[no-untyped-def]
    """The answer first, then a short front (rows spread along it) as a table with units in its headers, as wide as
    the terminal, and where the full front is."""
    import reports
    from dse.cli.tables import render_table
    from dse.core.results import headline

    say(headline(results).sentence())
    if results.certificate_note:
        say(results.certificate_note)
    listed = results.listed
    front = [listed[i] for i in spread(len(listed))]
    front += [t for t in listed if t.recommended and t not in front]  # the answer is always among the rows
    labels = {"trial.point": [t.label.removeprefix("trial ") for t in front],
              "status": [reports.point_status(t) for t in front], "front": [t.threshold_front for t in front],
              "cascade": [t.cascade for t in front],
              "thresholds": ["/".join(f"{x:.3g}" for x in t.thresholds) or "none" for t in front]}
    table = reports.metric_table("", "", labels,
                                 [(t.calib, t.test) for t in front], results.max_accuracy_loss_pct)
    if table.rows:
        say(render_table(table.columns, table.rows, drop_first=CONSOLE_DROP_FIRST))
        say(point_note(front))
        if any(t.threshold_front == "approximate" for t in front):
            say(reports.FRONT_NOTE)
    if len(front) < len(listed):
        say(f"{len(front)} of the {len(listed)} front points, spread along it; the full front: {full_front}")


def shown_storage(url: str) -> str:
    """A storage as the user can type it: a SQLite or journal file by its path (as `shown_path`), else the URL with
    its password hidden."""
    import re

    for scheme in ("sqlite:///", "journal:///"):
        if url.startswith(scheme):
            return shown_path(Path(url.removeprefix(scheme)))
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def shown_path(path: Path) -> str:
    """A path as the user can type it: relative to the working directory when under it, else absolute."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def run(
    spec: Annotated[str, typer.Argument(help="Spec file or built-in study name (see `dse specs`)")] = "quickstart",
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", min=0, help="Trials to add [default: spec]")] = None,
    until: UntilOption = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=256,
                                         help="Worker processes on this machine, sharing the study")] = 1,
    data: DataOption = None,
    out: OutOption = None,
    storage: StorageOption = None,
    new: NewOption = False,
    cache_dir: CacheDirOption = None,
    jobs: JobsOption = -1,
    heartbeat: HeartbeatOption = 10,
    progress: Annotated[bool, typer.Option(help="Show progress bars (only ever on a terminal)")] = True,
) -> None:
    """Build or load the score cache, run (or resume) the study, and write CSVs and the HTML report. With a loss
    budget the answer is certified (on calibration rows kept aside) unless the spec says loss_guarantee = false."""
    from dse.core.output import out_dir_for, storage_url_for, study_out_dir
    from dse.core.spec import load_spec
    from dse.core.storage import open_storage
    from dse.core.study import open_study, space_queue
    from dse.core.workers import InterruptLatch, study_counts

    check_budget(trials, until)
    start = time.perf_counter()  # ingest: the spec (and the files it names) read, then every variant's scores
    with InterruptLatch() as latch:  # a Ctrl-C before the search stops the run, even one Python dropped
        study_spec = load_spec(spec).with_data(data)
        out_dir = out_dir_for(study_spec.name, out)
        url = storage_url_for(out_dir, storage)
        with progress_bar("training and caching variants", enabled=progress, echo=True) as step:
            problem, dataset, study_name = prepare(study_spec, cache_dir, out_dir, url, jobs, log=step, new=new)
        ingest_s = time.perf_counter() - start
        n_trials = study_spec.search.n_trials if trials is None else trials
        study = open_study(study_spec, open_storage(url, heartbeat), study_name=study_name)
        queue = space_queue(problem, study_spec)
        before, space_before = study_counts(study), queue and queue.state(study)
        latch.check()
    search = RunSearch(spec, n_trials, until, workers, data, cache_dir, heartbeat, progress)
    timing = search.run(study, problem, study_spec, url, before.complete, space_before)
    start = time.perf_counter()
    study_dir = study_out_dir(out_dir, study.study_name, study_spec.name)
    report_path, results = write_outputs(study, study_dir)
    report_s = time.perf_counter() - start
    after, space_after = study_counts(study), queue and queue.state(study)
    summary(results, str(study_dir / "pareto.csv"))
    say(counts_line(study.study_name, url, before, after, len(results.pareto), problem.margin['calib'].shape[1]))
    if space_before and space_after:
        say_space(space_before, space_after, until or n_trials, until or space_before.complete + n_trials)
    say_timing(timing, workers)
    say("score-margin classifier AUC (test split): " + ", ".join(f"{c.net} {c.auc:.3f}" for c in results.margins),
        verbose_only=True)
    say(f"report: {shown_path(report_path)}")
    space = {"structures": space_after.total, "structures_complete": space_after.complete} if space_after else {}
    result({**front_json(results), "storage": url, "trials": after.complete, "trials_before": before.complete,
            "queued": after.queued, "running": after.running, **space, "report": str(report_path.resolve()),
            "search_s": timing.wall_s, "timing_s": {"ingest": ingest_s, "search": timing.wall_s, "report": report_s}})


@dataclass(frozen=True)
class RunSearch:
    """The search part of `dse run`: its budget and, with several workers, what each worker process is started with."""

    spec: str
    n_trials: int
    until: int | None
    workers: int
    data: Optional[Path]
    cache_dir: Optional[Path]
    heartbeat: int
    progress: bool

    def run(self, study, problem, study_spec, url: str, complete: int, space):  # type: ignore[no-untyped-def]
        """Search in this process (with a progress bar) or in worker processes, until done or stopped by a signal
        (then exit as `stopped` does); `complete`: the study's completed trials before, `space`: its enumerated
        space's state before (None: not enumerated)."""
        from dse.core.certify import certify_once
        from dse.core.facts import record_study_facts
        from dse.core.study import run_search
        from dse.core.workers import StopRequest

        with StopRequest() as stop:
            if self.workers == 1:
                planned = (self.until or self.n_trials) if not space else (
                    min(self.until or space.complete + self.n_trials, space.total) - space.complete)
                with progress_bar("search", total=max(planned, 0), enabled=self.progress) as step:
                    timing = run_search(study, problem, study_spec, self.n_trials, progress=False, until=self.until,
                                        stop=stop, callbacks=[lambda _study, trial: step(lambda: trial_line(trial))])
            else:
                from dse.cli.worker import run_workers

                record_study_facts(study, problem, study_spec)
                done = space.complete if space else complete
                total = self.until if self.until is not None else done + self.n_trials
                timing = run_workers(self.spec, self.workers, total, url, self.data, self.cache_dir, self.heartbeat,
                                     stop)
                if not stop.requested:
                    certify_once(study, problem, study_spec)
        stopped(stop)
        return timing


def counts_line(name: str, url: str, before, after, pareto: int, samples: int) -> str:  # type: ignore[no-untyped-def]
    """The study's completed trials before and after the run (and those still queued or running), and its front."""
    pending = f" ({after.queued} queued, {after.running} running)" if after.queued or after.running else ""
    return (f"study '{name}' in {shown_storage(url)}: {before.complete} -> "
            f"{plural(after.complete, 'completed trial')}{pending}; "
            f"{plural(pareto, 'distinct feasible Pareto point')} (calibration split, {plural(samples, 'sample')})")


def say_space(before, after, asked: int, wanted: int) -> None:  # type: ignore[no-untyped-def]
    """Where an enumerated space stands after the run: already complete before, or completed with fewer structures
    added than `asked` (the run `wanted` that many completed in all)."""
    size = plural(after.total, 'structure')
    if before.is_complete:
        say(f"the enumerated space of {size} was already complete: nothing was added")
    elif after.is_complete and wanted > after.total:
        say(f"the enumerated space of {size} is complete: {after.complete - before.complete} added, not {asked}")


def say_timing(timing, workers: int) -> None:  # type: ignore[no-untyped-def]
    """Where the search time went (--verbose)."""
    if workers > 1:
        say(f"search: {plural(timing.trials, 'trial')} by {workers} workers in {timing.wall_s:.1f} s (with their start)",
            verbose_only=True)
    else:
        say(f"search: {plural(timing.trials, 'trial')} in {timing.wall_s:.1f} s; per trial {timing.overhead_ms_per_trial:.1f} ms "
            f"Optuna (sampler + storage), {timing.per_trial_ms(timing.evaluate_s):.2f} ms our evaluation; "
            f"{timing.scoring_s:.1f} s scoring variants first drawn by a trial", verbose_only=True)


def report(
    study: StudyArgument,
    out: OutOption = None,
    storage: StorageOption = None,
) -> None:
    """Rewrite the HTML report (and CSVs) of a study from its storage."""
    from dse.core.output import check_output_dir, check_study_outputs, load_existing_study, study_out_dir
    from dse.core.study_attrs import SPEC_NAME_ATTR

    if out is not None:
        check_output_dir(out, "--out")
    loaded, out_dir = load_existing_study(study, out, storage)
    target = study_out_dir(out_dir, loaded.study_name, loaded.user_attrs.get(SPEC_NAME_ATTR, loaded.study_name))
    check_study_outputs(target)
    path = write_outputs(loaded, target)[0].resolve()
    say(f"report: {shown_path(path)}")
    result({"report": str(path)})


def pareto(
    study: StudyArgument,
    out: OutOption = None,
    storage: StorageOption = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Also write the front to this CSV file")] = None,
) -> None:
    """Print the answer (the recommended point, and whether its loss budget is certified) and the feasible Pareto
    front (chosen on calibration, with test-split metrics; exact up to 3 stages, approximate from 4)."""
    from dse.core.output import check_output_file, csv_text, load_existing_study, pareto_rows
    from dse.core.readback import study_results
    from nets import atomic_write_text

    if csv is not None:
        check_output_file(csv, "--csv")
    loaded, out_dir = load_existing_study(study, out, storage)
    results = study_results(loaded)
    if SETTINGS.json:
        typer.echo(json.dumps(front_json(results), indent=2, default=float))
    else:
        summary(results, str(csv or out_dir / "pareto.csv"))
    if csv:
        atomic_write_text(csv, csv_text(pareto_rows(results)))
        say(f"wrote {csv}")


def studies(
    out: Annotated[Optional[Path], typer.Option("--out", help="A study's output directory (its study.db)")] = None,
    storage: Annotated[Optional[str], typer.Option(
        "--storage", help="Optuna storage URL (sqlite:///…, postgresql+psycopg2://…, journal:///file)")] = None,
    builtin: Annotated[bool, typer.Option("--builtin", help="List the built-in study specs instead (`dse specs`)")]
    = False,
) -> None:
    """List the studies in a storage, as `optuna studies` does: name, trials, objectives and their directions.
    Without --out or --storage: every study database under ./dse-out/."""
    from dse.cli.tables import render_table
    from dse.core.output import DB_NAME, DEFAULT_OUT_ROOT, StudyNotFound, storage_summaries
    from dse.core.storage import sqlite_url

    if builtin:
        specs()
        return
    if out is not None and storage is None and not (out / DB_NAME).is_file():
        raise StudyNotFound(f"--out {out}: no study database {out / DB_NAME}")
    if storage or out:
        urls = [storage or sqlite_url(out / DB_NAME)]  # type: ignore[operator]
    else:
        urls = [sqlite_url(path) for path in sorted(DEFAULT_OUT_ROOT.glob(f"*/{DB_NAME}"))]
    rows = [summary for url in urls for summary in storage_summaries(url)]
    if SETTINGS.json:
        result({"studies": [{**row._asdict(), "storage": shown_storage(row.storage)} for row in rows]})
    elif rows:
        say(render_table(["study", "trials", "objectives", "storage"],
                         [[r.study, r.trials, ", ".join(f"{d} {n}" for d, n in zip(r.directions, r.objectives)),
                           shown_storage(r.storage)] for r in rows]))
    else:
        say(f"no study databases under {DEFAULT_OUT_ROOT}/ (give --out or --storage; `dse specs` lists the built-in "
            "specs)")


def specs() -> None:
    """List the built-in study specs (`dse run NAME` runs one)."""
    from dse.cli.tables import render_table
    from dse.core.spec import builtin_specs, load_spec

    rows = [[name, load_spec(path).description] for name, path in sorted(builtin_specs().items())]
    if SETTINGS.json:
        result({"specs": [{"name": name, "description": description} for name, description in rows]})
    else:
        say(render_table(["spec", "description"], rows))
