"""Options and steps shared by `dse run` and `dse worker`: checks before any work, and the exit after a signal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from costmodel import UserError

CacheDirOption = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Score cache [default: $DSE_CACHE_DIR, $XDG_CACHE_HOME/adaptive-dse, ~/.cache/adaptive-dse]")]
DataOption = Annotated[Optional[Path], typer.Option("--data", help="Data path (overrides data.path in the spec)")]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", help="Parallel training jobs (-1: all cores)")]
UntilOption = Annotated[Optional[int], typer.Option(
    "--until", min=1, help="Run until the study holds this many completed trials, whoever ran them")]
HeartbeatOption = Annotated[int, typer.Option(
    "--heartbeat", min=1, max=3600, help="Heartbeat interval in seconds; a trial silent for 3 intervals is failed "
                                         "and its parameters retried")]


NewOption = Annotated[bool, typer.Option(
    "--new", help="When the study of the spec's name was made from another spec, start a study of this spec beside "
                  "it (<name>-2, …) instead of refusing")]


class OptionConflict(UserError):
    """Options that cannot be given together; the message names them."""


def check_budget(trials: Optional[int], until: Optional[int]) -> None:
    """--trials adds trials, --until runs to a total: one or the other."""
    if trials is not None and until is not None:
        raise OptionConflict(f"--trials {trials} --until {until}: give one or the other (--trials adds trials, "
                             f"--until runs until the study holds that many)")


def prepare(study_spec, cache_dir: Optional[Path], out_dir: Path | None,  # type: ignore[no-untyped-def]
            url: str, jobs: int, log=print, new: bool = False):
    """Check output paths, the storage and an existing study before any work; then load the problem (`log`: where
    training and caching lines go). Returns the problem, the dataset and the name of the study to run."""
    from dse.core.output import check_output_dir, check_study_outputs, study_out_dir
    from dse.core.loading import load_problem
    from dse.core.storage import check_storage_url
    from dse.core.study import check_resumable

    if out_dir is not None:
        check_study_outputs(out_dir)
    if cache_dir is not None:
        check_output_dir(cache_dir, "--cache-dir")
    check_storage_url(url)
    study_name = check_resumable(study_spec, url, new)
    if out_dir is not None:
        check_study_outputs(study_out_dir(out_dir, study_name, study_spec.name))
    problem, dataset = load_problem(study_spec, str(cache_dir) if cache_dir else None, n_jobs=jobs, log=log)
    return problem, dataset, study_name


def stopped(stop) -> None:  # type: ignore[no-untyped-def]
    """After a stop signal: one line, exit 128 + the signal (130 for Ctrl-C)."""
    if stop.requested:
        typer.echo("interrupted: the trial in flight was finished; run the same command to resume", err=True)
        raise typer.Exit(128 + stop.signal)
