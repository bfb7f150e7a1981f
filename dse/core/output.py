"""Where a study's files go and how they are written: ./dse-out/<study>/ unless --out says otherwise."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import optuna

from costmodel import UserError
from dse.core.gc_pause import gc_paused
from dse.core.results import StudyResults, headline
from dse.core.storage import open_storage, sqlite_url
from nets import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_OUT_ROOT = Path("dse-out")
DB_NAME = "study.db"


def out_dir_for(study_name: str, out: Path | None) -> Path:
    """The output directory of a study."""
    return out if out is not None else DEFAULT_OUT_ROOT / study_name


def storage_url_for(out_dir: Path, storage: str | None) -> str:
    """The storage URL: --storage if given, else the SQLite file in the output directory."""
    return storage or sqlite_url(out_dir / DB_NAME)


class OutputPathError(UserError):
    """An output path (--out, --cache-dir, --csv) of the wrong kind; the message names the option."""


def _check_parents(path: Path, option: str) -> None:
    """Every existing ancestor of `path` must be a directory."""
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"{option} {path}: {parent} is a file, not a directory")


def check_output_dir(path: Path, option: str) -> None:
    """Refuse an output directory that is a file or lies under one (before anything is written)."""
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {path}: is a file, not a directory")
    _check_parents(path, option)


def check_output_file(path: Path, option: str) -> None:
    """Refuse an output file that is a directory or lies under a file (before anything is written)."""
    if path.is_dir() or str(path).endswith("/"):
        raise OutputPathError(f"{option} {path}: is a directory, not a file")
    _check_parents(path, option)


OUTPUT_FILES = ("report.html", "trials.csv", "pareto.csv", "certified.csv")  # what a study writes in its directory


def check_study_outputs(out_dir: Path, option: str = "--out") -> None:
    """Refuse a study output directory that cannot take the study's files (before any work)."""
    check_output_dir(out_dir, option)
    for name in OUTPUT_FILES:
        if (out_dir / name).is_dir():
            raise OutputPathError(f"{option} {out_dir}: {out_dir / name} is a directory, not a file")


def study_out_dir(out_dir: Path, study_name: str, spec_name: str) -> Path:
    """Where a study's report and tables go: the output directory, or its subdirectory <study> for a study started
    beside the first study of its spec's name (`dse run --new`)."""
    return out_dir if study_name == spec_name else out_dir / study_name


class StudyNotFound(UserError):
    """No study of that name in the storage."""

    def __str__(self) -> str:
        return str(self.args[0])


class MissingExtra(UserError):
    """An optional dependency a command needs is not installed; the message names the extra to install."""


def _database_url(path: Path) -> str:
    """The storage URL of a study database file: SQLite by its header, else an Optuna journal."""
    with open(path, "rb") as file:
        sqlite = file.read(16) == b"SQLite format 3\x00"
    return sqlite_url(path) if sqlite else f"journal:///{path.resolve()}"


def load_existing_study(name: str, out: Path | None, storage: str | None) -> tuple[optuna.Study, Path]:
    """Load a finished or running study for reporting, given by name, by output directory or by database file
    (its output directory is then the file's directory)."""
    candidate = Path(name)
    by_path = out is None and storage is None and (candidate.is_file() or (candidate / DB_NAME).is_file())
    if by_path and candidate.is_file():
        out_dir, url = candidate.parent, _database_url(candidate)
    else:
        out_dir = candidate if by_path else out_dir_for(name, out)
        url = storage_url_for(out_dir, storage)
        if storage is None and not (out_dir / DB_NAME).is_file():
            raise StudyNotFound(f"no study database at {out_dir / DB_NAME} (run `dse run` first, or pass --out/"
                                "--storage)")
    backend = open_storage(url, heartbeat_s=None, create=False)  # reading never changes the file
    names = [s.study_name for s in optuna.get_all_study_summaries(backend, include_best_trial=False)]
    study_name = name if name in names else (names[0] if len(names) == 1 and by_path else None)
    if study_name is None:
        raise StudyNotFound(f"no study '{name}' in {url} (found: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=backend), out_dir


class StudySummary(NamedTuple):
    """One study of a storage, as `dse studies` lists it."""

    study: str
    trials: int  # every trial, whatever its state (as `optuna studies` counts them)
    objectives: list[str]
    directions: list[str]  # "minimize" or "maximize", one per objective
    storage: str


def storage_summaries(url: str) -> list[StudySummary]:
    """Every study in a storage (read-only: a file that is not a study database is refused, nothing is created)."""
    backend = open_storage(url, heartbeat_s=None, create=False)
    summaries = []
    for summary in optuna.get_all_study_summaries(backend, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=backend)
        names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
        summaries.append(StudySummary(summary.study_name, summary.n_trials, list(names),
                                      [d.name.lower() for d in study.directions], url))
    return summaries


def trial_rows(results: StudyResults) -> list[dict[str, Any]]:
    """One row per point of every completed trial (Pareto first, then by calibration energy), units in the column
    names."""
    return sorted((t.row() for t in results.trials), key=lambda row: (not row["pareto"], row["calib_energy_j"]))


def trials_frame(results: StudyResults) -> pd.DataFrame:
    """`trial_rows` as a data frame."""
    import pandas as pd

    return pd.DataFrame(trial_rows(results))


def pareto_rows(results: StudyResults) -> list[dict[str, Any]]:
    """The distinct feasible calibration-Pareto trials and the recommended point (`StudyResults.listed`), by
    calibration energy, with their test-split metrics and certified / recommended flags."""
    return [t.row() for t in results.listed]


def pareto_frame(results: StudyResults) -> pd.DataFrame:
    """`pareto_rows` as a data frame."""
    import pandas as pd

    return pd.DataFrame(pareto_rows(results))


CSV_DIGITS = 10  # significant digits of a float in a CSV file: no 1.0000000000000009 from summing in binary


def csv_value(value: Any) -> Any:
    """A cell as written: a float to CSV_DIGITS significant digits (as its shortest repr), NaN and None empty,
    integers, booleans and text as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return float(f"{value:.{CSV_DIGITS}g}")
    return value


def csv_text(rows: list[dict[str, Any]]) -> str:
    """CSV of `rows` (with the csv module: pandas takes longer to import than a run takes to write), as pandas
    writes it, floats rounded by `csv_value`: the union of the rows' keys as columns in first-seen order, a missing
    or NaN value left empty."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[csv_value(row.get(column)) for column in columns] for row in rows])
    return buffer.getvalue()


@gc_paused()
def export_tables(results: StudyResults, out_dir: Path) -> None:
    """Write trials.csv and pareto.csv, and certified.csv when points were certified (each atomically)."""
    atomic_write_text(out_dir / "trials.csv", csv_text(trial_rows(results)))
    atomic_write_text(out_dir / "pareto.csv", csv_text(pareto_rows(results)))
    if results.certified:
        chosen = headline(results).certified
        atomic_write_text(out_dir / "certified.csv",
                          csv_text([{**p.row(), "recommended": p == chosen} for p in results.certified]))
