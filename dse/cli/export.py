"""`dse trials`: every point of every completed trial as one table (the rows of the study's trials.csv: parameters,
calibration and test metrics, energy breakdown; units in the column names), as CSV or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dse.cli.console import plural, say
from dse.cli.study import OutOption, StorageOption, StudyArgument


def trials(
    study: StudyArgument,
    out: OutOption = None,
    storage: StorageOption = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the rows to this CSV file (as trials.csv)")]
    = None,
    parquet: Annotated[Optional[Path], typer.Option(
        "--parquet", help="Write the rows to this Parquet file (needs the `parquet` extra: pyarrow)")] = None,
) -> None:
    """Export one row per point of every completed trial, as trials.csv has them; without --csv or --parquet,
    print them as CSV."""
    from dse.core.output import check_output_file, csv_text, load_existing_study, trial_rows
    from dse.core.readback import study_results
    from nets import atomic_write_bytes, atomic_write_text

    for path, option in ((csv, "--csv"), (parquet, "--parquet")):
        if path is not None:
            check_output_file(path, option)
    loaded, _ = load_existing_study(study, out, storage)
    rows = trial_rows(study_results(loaded))
    trials_done = len({row["trial"] for row in rows})
    counted = f"{plural(len(rows), 'row')}: {plural(trials_done, 'trial')}"
    if parquet:
        atomic_write_bytes(parquet, parquet_bytes(rows))
        say(f"wrote {parquet} ({counted})")
    if csv:
        atomic_write_text(csv, csv_text(rows))
        say(f"wrote {csv} ({counted})")
    if not (csv or parquet):
        typer.echo(csv_text(rows), nl=False)


def parquet_bytes(rows: list[dict]) -> bytes:
    """The rows as Parquet bytes (full precision); a missing pyarrow is a user error naming the extra."""
    import io

    import pandas as pd

    from dse.core.output import MissingExtra

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MissingExtra("--parquet needs pyarrow: pip install 'adaptive-dse[parquet]'") from None
    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()
