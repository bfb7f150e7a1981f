"""Scores computed elsewhere: per-split logits and labels read from a user's files, checked, identified by content.

A source is an `.npz` holding the arrays, or a directory holding one `<array>.npy` or `<array>.parquet` per array
(parquet needs pyarrow: a table whose numeric columns are the classes, or the one label column).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nets.scores._cache_dir import default_cache_dir
from nets.scores._scores import SplitScores
from nets.scores._summary import (ImportedModelError, LogitSummary, array_blocks, cached_summary, npy_blocks,
                                  store_summary, summarize)

SCORED_SPLITS = ("calib", "test")
_CHUNK = 1 << 20


def file_digest(path: str | Path, chunk: int = _CHUNK) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks: the file's identity in cache keys, whatever its path."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ImportedArrays:
    """Per-split arrays from one source (`splits['calib']`, `splits['test']`) and the SHA-256 of the files read."""

    source: str
    splits: dict[str, np.ndarray] = field(repr=False)
    digest: str

    @property
    def num_classes(self) -> int:
        """Class count of logits (their second dimension)."""
        return int(self.splits[SCORED_SPLITS[0]].shape[1])


@dataclass(frozen=True)
class ImportedLogits:
    """What a study keeps of a logits source: per split, each sample's prediction and confidences (`LogitSummary`),
    the SHA-256 of the files read, and per split the key its summary is stored under (`store_summaries`)."""

    source: str
    splits: dict[str, LogitSummary] = field(repr=False)
    digest: str
    summary_keys: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        """Class count of the logits (their second dimension)."""
        return self.splits[SCORED_SPLITS[0]].classes


def load_logits(path: str | Path, cache_root: str | Path | None = None) -> ImportedLogits:
    """`calib_logits` and `test_logits` (n x classes, finite, same class count) from an .npz or a directory, each
    summarised per sample, or its summary taken from the score cache at `cache_root` (default: the default cache)
    when one is stored under the file's SHA-256 (a file is then read only to hash it). A summarised .npy is streamed
    in blocks of rows; nothing is written here (see `store_summaries`)."""
    path = Path(path)
    root = Path(cache_root) if cache_root is not None else default_cache_dir()
    names = [f"{split}_logits" for split in SCORED_SPLITS]
    splits, keys = {}, {}
    if path.is_dir():
        files = _directory_files(path, names)
        parts = []
        for split, name, file in zip(SCORED_SPLITS, names, files):
            digest = file_digest(file)
            keys[split] = f"{digest}-{name}"
            splits[split] = cached_summary(root, keys[split]) or _summarize_file(file, name, digest)
            parts.append(f"{file.name}:{digest};")
        digest = hashlib.sha256("".join(parts).encode()).hexdigest()
    else:
        digest = file_digest(_npz_file(path))
        for split, name in zip(SCORED_SPLITS, names):  # one array in memory at a time
            keys[split] = f"{digest}-{name}"
            splits[split] = cached_summary(root, keys[split]) or summarize(
                array_blocks(_npz_arrays(path, [name])[name]), f"{path}: '{name}'")
    widths = {split: rows.classes for split, rows in splits.items()}
    if len(set(widths.values())) > 1:
        raise ImportedModelError(f"{path}: 'calib_logits' has {widths['calib']} classes but 'test_logits' has "
                                 f"{widths['test']}")
    return ImportedLogits(str(path), splits, digest, keys)


def store_summaries(logits: ImportedLogits, cache_root: str | Path) -> None:
    """Store each split's summary in the score cache at `cache_root` unless it is there (called once the files are
    checked against the labels: validation writes nothing). A cache that cannot be written is left as it is: the
    summaries only save the next run their computation."""
    for split, key in logits.summary_keys.items():
        if cached_summary(Path(cache_root), key) is None:
            try:
                store_summary(Path(cache_root), key, logits.splits[split])
            except OSError:
                return


def _summarize_file(file: Path, name: str, digest: str) -> LogitSummary:
    """The summary of one array file whose SHA-256 was `digest` when hashed: a C-ordered .npy streamed in blocks of
    rows (and hashed again on the way: a file changed since is refused), another file read whole."""
    hasher = hashlib.sha256()
    blocks = npy_blocks(file, hasher) if file.suffix == ".npy" else None
    if blocks is None:
        return summarize(array_blocks(_read_file(file, name, mmap=True)), f"{file}: '{name}'")
    summary = summarize(blocks, f"{file}: '{name}'")
    if hasher.hexdigest() != digest:
        raise ImportedModelError(f"{file}: changed while it was read (its SHA-256 differs between two reads)")
    return summary


def load_labels(path: str | Path) -> ImportedArrays:
    """`calib_labels` and `test_labels` (1-D, integers >= 0, non-empty) from an .npz or a directory."""
    arrays, digest = _read_arrays(Path(path), [f"{split}_labels" for split in SCORED_SPLITS])
    return ImportedArrays(str(path), {split: _check_labels(*arrays[f"{split}_labels"]) for split in SCORED_SPLITS},
                          digest)


def check_logits(logits: np.ndarray, where: str) -> np.ndarray:
    """`logits` as float64 (n, classes) with n >= 1, classes >= 2, every value finite; `where` names the array."""
    if logits.dtype == bool or not np.issubdtype(logits.dtype, np.number) or np.iscomplexobj(logits):
        raise ImportedModelError(f"{where}: logits must be real numbers, got dtype {logits.dtype}")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ImportedModelError(f"{where}: logits must be 2-D (samples x classes, classes >= 2), "
                                 f"got shape {logits.shape}")
    if not len(logits):
        raise ImportedModelError(f"{where}: the split is empty (0 samples)")
    logits = logits.astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(logits)))
    if bad:
        row = int(np.argwhere(~np.isfinite(logits))[0][0])
        raise ImportedModelError(f"{where}: {bad} values are NaN or inf (first in sample {row})")
    return logits


def _check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """`labels` as int64 (n,) with n >= 1, integer-valued and >= 0; `where` names the array."""
    if labels.ndim != 1:
        raise ImportedModelError(f"{where}: labels must be 1-D, got shape {labels.shape}")
    if not len(labels):
        raise ImportedModelError(f"{where}: the split is empty (0 samples)")
    integral = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and bool(np.all(np.isfinite(labels) & (labels == np.round(labels)))))
    if not integral:
        raise ImportedModelError(f"{where}: labels must be integers, got dtype {labels.dtype} with non-integer values")
    if labels.min() < 0:
        raise ImportedModelError(f"{where}: labels must be >= 0, found {labels.min():g}")
    return labels.astype(np.int64)


def split_scores(logits: Mapping[str, LogitSummary], labels: Mapping[str, np.ndarray], logits_source: str,
                 labels_source: str, num_classes: int | None = None) -> dict[str, SplitScores]:
    """Per-split scores of summarised `logits` against `labels` (calib and test), checked against each other.

    Lengths must agree per split, every label must lie in [0, classes), and the logits' class count must equal
    `num_classes` when the study fixes it (the data's or another model's).
    """
    scores = {}
    for split in SCORED_SPLITS:
        rows, targets = logits[split], labels[split]
        if num_classes is not None and rows.classes != num_classes:
            raise ImportedModelError(f"{logits_source}: '{split}_logits' has {rows.classes} classes, "
                                     f"the study has {num_classes}")
        if len(rows) != len(targets):
            raise ImportedModelError(f"{logits_source}: '{split}_logits' has {len(rows)} samples but "
                                     f"{labels_source} '{split}_labels' has {len(targets)}")
        outside = int(np.count_nonzero((targets < 0) | (targets >= rows.classes)))
        if outside:
            raise ImportedModelError(f"{labels_source}: '{split}_labels' has {outside} labels outside "
                                     f"[0, {rows.classes}) (the classes of {logits_source}), e.g. {targets.max()}")
        confidences = rows.confidences
        scores[split] = SplitScores(rows.prediction, rows.prediction == targets, confidences["margin"], None,
                                    confidences={k: v for k, v in confidences.items() if k != "margin"})
    return scores


def imported_scores(logits: ImportedLogits, labels: ImportedArrays,
                    num_classes: int | None = None) -> dict[str, SplitScores]:
    """Per-split scores of logits read from one file against labels read from another (see `split_scores`)."""
    return split_scores(logits.splits, labels.splits, logits.source, labels.source, num_classes)


def _read_arrays(path: Path, names: list[str]) -> tuple[dict[str, tuple[np.ndarray, str]], str]:
    """Each named array with the 'file: name' that locates it, and one SHA-256 over the files read."""
    if path.is_dir():
        files = _directory_files(path, names)
        arrays = {name: (_read_file(file, name), f"{file}: '{name}'") for name, file in zip(names, files)}
        digest = hashlib.sha256("".join(f"{file.name}:{file_digest(file)};" for file in files).encode()).hexdigest()
        return arrays, digest
    arrays = _npz_arrays(_npz_file(path), names)
    return {name: (array, f"{path}: '{name}'") for name, array in arrays.items()}, file_digest(path)


def _directory_files(path: Path, names: list[str]) -> list[Path]:
    """The one .npy or .parquet file of each named array in directory `path`."""
    found = {name: [path / f"{name}{ext}" for ext in (".npy", ".parquet") if (path / f"{name}{ext}").is_file()]
             for name in names}
    for name, files in found.items():
        if len(files) != 1:
            raise ImportedModelError(f"{path}: needs exactly one of {name}.npy, {name}.parquet; found {len(files)}")
    return [found[name][0] for name in names]


def _npz_file(path: Path) -> Path:
    """`path`, checked to be an existing .npz file."""
    if not path.is_file():
        raise ImportedModelError(f"{path}: no such file or directory")
    if path.suffix != ".npz":
        raise ImportedModelError(f"{path}: expected an .npz file or a directory of .npy/.parquet files")
    return path


def _npz_arrays(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = archive.files
            arrays = {name: archive[name] for name in names if name in stored}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ImportedModelError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [name for name in names if name not in arrays]
    if missing:
        raise ImportedModelError(f"{path}: no array '{missing[0]}' (found: {', '.join(stored) or 'none'})")
    return arrays


def _read_file(file: Path, name: str, mmap: bool = False) -> np.ndarray:
    """One array from an .npy (memory-mapped with `mmap`) or .parquet file (parquet: all columns, as samples x
    columns; one column: 1-D)."""
    if file.suffix == ".npy":
        try:
            return np.load(file, allow_pickle=False, mmap_mode="r" if mmap else None)
        except (OSError, ValueError, EOFError) as exc:
            raise ImportedModelError(f"{file}: not a readable .npy file ({exc})") from None
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ImportedModelError(f"{file}: reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = parquet.read_table(file)
    except (OSError, ValueError) as exc:
        raise ImportedModelError(f"{file}: not a readable parquet file ({exc})") from None
    columns = [column.to_numpy() for column in table.columns]
    if not columns:
        raise ImportedModelError(f"{file}: '{name}' has no columns")
    return columns[0] if len(columns) == 1 else np.column_stack(columns)
