"""Where a study's files go and how they are written: ./dse-out/<study>/ unless --out says otherwise."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from costmodel import UserError
from dse.core.results import StudyResults
from dse.core.storage import open_storage, sqlite_url
from nets import atomic_write_text

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


class StudyNotFound(UserError):
    """No study of that name in the storage."""

    def __str__(self) -> str:
        return str(self.args[0])


class MissingExtra(UserError):
    """An optional dependency a command needs is not installed; the message names the extra to install."""


def load_existing_study(name: str, out: Path | None, storage: str | None) -> tuple[optuna.Study, Path]:
    """Load a finished or running study by name (or output directory) for reporting."""
    candidate = Path(name)
    out_dir = candidate if out is None and (candidate / DB_NAME).is_file() else out_dir_for(name, out)
    url = storage_url_for(out_dir, storage)
    if storage is None and not (out_dir / DB_NAME).is_file():
        raise StudyNotFound(f"no study database at {out_dir / DB_NAME} (run `dse run` first, or pass --out/--storage)")
    backend = open_storage(url, heartbeat_s=None, create=False)  # reading never changes the file
    names = [s.study_name for s in optuna.get_all_study_summaries(backend, include_best_trial=False)]
    study_name = name if name in names else (names[0] if len(names) == 1 and candidate == out_dir else None)
    if study_name is None:
        raise StudyNotFound(f"no study '{name}' in {url} (found: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=backend), out_dir


def trials_frame(results: StudyResults) -> pd.DataFrame:
    """One row per completed trial (Pareto first, then by calibration energy), units in the column names."""
    frame = pd.DataFrame([t.row() for t in results.trials])
    if frame.empty:
        return frame
    return frame.sort_values(["pareto", "calib_energy_j"], ascending=[False, True]).reset_index(drop=True)


def study_frame(study: optuna.Study) -> pd.DataFrame:
    """Every completed trial: its row (parameters, calibration and test metrics, energy breakdown), the objective
    values under the study's metric names and each constraint value (<= 0: met), in trial order."""
    from dse.core.study import study_results

    frame = pd.DataFrame([t.row() for t in study_results(study).trials])
    if frame.empty:
        return frame
    names = study.metric_names or [f"objective_{i}" for i in range(len(study.directions))]
    extra = pd.DataFrame([{"trial": t.number, **{f"objective_{n}": v for n, v in zip(names, t.values)},
                           **{f"constraint_{k}": v for k, v in (t.constraints or {}).items()
                              if not k.isdigit()}}  # "0": the dashboard's copy of the same value
                          for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))])
    return frame.merge(extra, on="trial", how="left").sort_values("trial").reset_index(drop=True)


def pareto_frame(results: StudyResults) -> pd.DataFrame:
    """The distinct feasible calibration-Pareto trials, by calibration energy, with their test-split metrics."""
    return pd.DataFrame([t.row() for t in results.pareto])


def export_tables(results: StudyResults, out_dir: Path) -> None:
    """Write trials.csv and pareto.csv (each atomically)."""
    atomic_write_text(out_dir / "trials.csv", trials_frame(results).to_csv(index=False))
    atomic_write_text(out_dir / "pareto.csv", pareto_frame(results).to_csv(index=False))
    if results.certified:
        certified = pd.DataFrame([p.row() for p in results.certified])
        atomic_write_text(out_dir / "certified.csv", certified.to_csv(index=False))
