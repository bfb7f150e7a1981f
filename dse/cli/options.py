"""Options and steps shared by `dse run` and `dse worker`: checks before any work, and the exit after a signal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

CacheDirOption = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Score cache [default: $DSE_CACHE_DIR, $XDG_CACHE_HOME/adaptive-dse, ~/.cache/adaptive-dse]")]
DataOption = Annotated[Optional[Path], typer.Option("--data", help="Data path (overrides data.path in the spec)")]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", help="Parallel training jobs (-1: all cores)")]
UntilOption = Annotated[Optional[int], typer.Option(
    "--until", min=1, help="Run until the study holds this many completed trials, whoever ran them")]
HeartbeatOption = Annotated[int, typer.Option(
    "--heartbeat", min=1, max=3600, help="Heartbeat interval in seconds; a trial silent for 3 intervals is failed "
                                         "and its parameters retried")]


def prepare(study_spec, data: Optional[Path], cache_dir: Optional[Path], out_dir: Path | None,  # type: ignore[no-untyped-def]
            url: str, jobs: int, log=print):
    """Check output paths, the storage and an existing study before any work; then load the problem (`log`: where
    training and caching lines go)."""
    from dse.core.output import check_output_dir
    from dse.core.problem import load_problem
    from dse.core.storage import check_storage_url
    from dse.core.study import check_resumable

    if out_dir is not None:
        check_output_dir(out_dir, "--out")
    if cache_dir is not None:
        check_output_dir(cache_dir, "--cache-dir")
    check_storage_url(url)
    check_resumable(study_spec, url)
    problem, dataset = load_problem(study_spec, str(cache_dir) if cache_dir else None, n_jobs=jobs, log=log)
    return problem, dataset


def stopped(stop) -> None:  # type: ignore[no-untyped-def]
    """After a stop signal: one line, exit 128 + the signal (130 for Ctrl-C)."""
    if stop.requested:
        typer.echo("interrupted: the trial in flight was finished; run the same command to resume", err=True)
        raise typer.Exit(128 + stop.signal)
