"""`dse trials`: every trial of a study as one table (parameters, objectives, constraints, calibration and test
metrics, units in the column names), as CSV or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dse.cli.console import say
from dse.cli.study import OutOption, StorageOption


def trials(
    study: Annotated[str, typer.Argument(help="Study name (or its output directory)")],
    out: OutOption = None,
    storage: StorageOption = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the trials to this CSV file")] = None,
    parquet: Annotated[Optional[Path], typer.Option(
        "--parquet", help="Write the trials to this Parquet file (needs the `parquet` extra: pyarrow)")] = None,
) -> None:
    """Export every completed trial; without --csv or --parquet, print it as CSV."""
    from dse.core.output import check_output_file, load_existing_study, study_frame
    from nets import atomic_write_bytes, atomic_write_text

    for path, option in ((csv, "--csv"), (parquet, "--parquet")):
        if path is not None:
            check_output_file(path, option)
    loaded, _ = load_existing_study(study, out, storage)
    frame = study_frame(loaded)
    if parquet:
        atomic_write_bytes(parquet, parquet_bytes(frame))
        say(f"wrote {parquet} ({len(frame)} trials)")
    if csv:
        atomic_write_text(csv, frame.to_csv(index=False))
        say(f"wrote {csv} ({len(frame)} trials)")
    if not (csv or parquet):
        typer.echo(frame.to_csv(index=False), nl=False)


def parquet_bytes(frame) -> bytes:  # type: ignore[no-untyped-def]
    """The frame as Parquet bytes; a missing pyarrow is a user error naming the extra."""
    import io

    from dse.core.output import MissingExtra

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MissingExtra("--parquet needs pyarrow: pip install 'adaptive-dse[parquet]'") from None
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()
