"""`dse dashboard STUDY`: optuna-dashboard on the study's storage, on the loopback interface only."""

from __future__ import annotations

from typing import Annotated

import typer

from dse.cli.console import say
from dse.cli.study import OutOption, StorageOption, StudyArgument


def dashboard(
    study: StudyArgument,
    out: OutOption = None,
    storage: StorageOption = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1")] = 8080,
) -> None:
    """Serve optuna-dashboard for the study on 127.0.0.1 until interrupted (the `dashboard` extra)."""
    from dse.core.optuna_adapter import study_storage
    from dse.core.output import MissingExtra, load_existing_study

    loaded, _ = load_existing_study(study, out, storage)
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise MissingExtra("dse dashboard needs optuna-dashboard: pip install 'adaptive-dse[dashboard]'") from None
    say(f"optuna-dashboard for study '{loaded.study_name}' on http://127.0.0.1:{port}/ (Ctrl-C stops it)")
    run_server(study_storage(loaded), host="127.0.0.1", port=port)
