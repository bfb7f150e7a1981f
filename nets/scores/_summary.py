"""What a study keeps of a logits array: per sample the prediction and each exit criterion's confidence, computed in
blocks of rows while the file is read (and hashed) once, so that a 50,000 x 1,000 array never sits in memory whole.
Summaries of a file are kept in the score cache under the file's SHA-256, so a later run only hashes the file."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from costmodel import UserError
from nets.scores._atomic import atomic_write_bytes, atomic_write_text

BLOCK_BYTES = 16 * 2**20  # float64 working memory of one block of rows
SUMMARY_VERSION = "1"  # part of a stored summary's key: bump when `summarize` computes something else


class ImportedModelError(UserError):
    """A user's ONNX model, logits or labels file that cannot be used as it is."""


@dataclass(frozen=True, eq=False)
class LogitSummary:
    """Per-sample results of one logits array: prediction (N,) int16, and the confidence (N,) float32 of each exit
    criterion (`margin`: softmax top-1 minus top-2, `max_softmax`: top-1, `entropy`: 1 - entropy / log classes)."""

    prediction: np.ndarray = field(repr=False)
    confidences: dict[str, np.ndarray] = field(repr=False)
    classes: int

    def __len__(self) -> int:
        return len(self.prediction)


def summarize(blocks: Iterator[np.ndarray], where: str) -> LogitSummary:
    """Summarise logits given as blocks of rows (each (n, classes), any real dtype), checking each block: real
    numbers, 2-D with >= 2 classes, every value finite, a non-empty split; `where` names the array in errors."""
    predictions, margins, tops, entropies = [], [], [], []
    classes, seen, bad, first_bad = None, 0, 0, 0
    for block in blocks:
        if block.dtype == bool or not np.issubdtype(block.dtype, np.number) or np.iscomplexobj(block):
            raise ImportedModelError(f"{where}: logits must be real numbers, got dtype {block.dtype}")
        if block.ndim != 2 or block.shape[1] < 2:
            raise ImportedModelError(f"{where}: logits must be 2-D (samples x classes, classes >= 2), got shape {block.shape}")
        classes = block.shape[1]
        logits = block.astype(np.float64)
        finite = np.isfinite(logits)
        if bad or not finite.all():  # count them all, then refuse
            first_bad = first_bad if bad else seen + int(np.flatnonzero(~finite.all(axis=1))[0])
            bad += int(np.count_nonzero(~finite))
            seen += len(block)
            continue
        rows = np.arange(len(logits))
        top = logits.argmax(axis=1)
        shifted = logits - logits[rows, top][:, None]  # z <= 0, and 0 at the top class
        exp = np.exp(shifted)
        total = exp.sum(axis=1)
        # the softmax's top two, as a sort of p = exp(z) / total would give them: 1 / total and exp(z2) / total
        shifted[rows, top] = -np.inf
        first, second = 1.0 / total, np.exp(shifted.max(axis=1)) / total
        shifted[rows, top] = 0.0
        predictions.append(top.astype(np.int16))
        margins.append((first - second).astype(np.float32))
        tops.append(first.astype(np.float32))
        # entropy = log(sum exp z) - sum p z over the shifted logits z: no logarithm per class
        entropy = np.log(total) - np.einsum("ij,ij->i", exp, shifted) / total
        entropies.append(np.clip(1.0 - entropy / np.log(classes), 0.0, 1.0).astype(np.float32))
        seen += len(block)
    if bad:
        raise ImportedModelError(f"{where}: {bad} values are NaN or inf (first in sample {first_bad})")
    if classes is None or not seen:
        raise ImportedModelError(f"{where}: the split is empty (0 samples)")
    return LogitSummary(np.concatenate(predictions), {"margin": np.concatenate(margins),
                                                      "max_softmax": np.concatenate(tops),
                                                      "entropy": np.concatenate(entropies)}, classes)


def array_blocks(array: np.ndarray) -> Iterator[np.ndarray]:
    """An in-memory (or memory-mapped) array in blocks of rows of bounded working memory."""
    if array.ndim != 2:
        yield array
        return
    step = max(1, BLOCK_BYTES // 8 // max(array.shape[1], 1))
    for start in range(0, max(len(array), 1), step):
        yield np.asarray(array[start:start + step])


def npy_blocks(path: Path, digest: "hashlib._Hash") -> Iterator[np.ndarray] | None:
    """Blocks of rows of a C-ordered 2-D .npy file read front to back once, every byte fed to `digest` on the way
    (header included, so the digest is the file's); None for a file this reader does not stream (another layout)."""
    handle = open(path, "rb")
    try:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, fortran, dtype = read_header[version](handle)
    except (ValueError, OSError, EOFError, KeyError):
        handle.close()
        return None
    if fortran or len(shape) != 2 or dtype.hasobject or dtype.itemsize == 0:
        handle.close()
        return None
    header = handle.tell()
    handle.seek(0)
    digest.update(handle.read(header))

    def blocks() -> Iterator[np.ndarray]:
        with handle:
            row_bytes = shape[1] * dtype.itemsize
            step = max(1, BLOCK_BYTES // 8 // max(shape[1], 1))
            for start in range(0, shape[0], step):
                rows = min(step, shape[0] - start)
                data = handle.read(rows * row_bytes)
                if len(data) != rows * row_bytes:
                    raise ImportedModelError(f"{path}: the file ends before its {shape[0]} rows (truncated)")
                digest.update(data)
                yield np.frombuffer(data, dtype=dtype).reshape(rows, shape[1])
            while rest := handle.read(1 << 20):  # trailing bytes count towards the file's identity
                digest.update(rest)
            if shape[0] == 0:
                yield np.zeros((0, shape[1]), dtype)

    return blocks()


def _summary_paths(root: Path, key: str) -> tuple[Path, Path]:
    """Where the summary stored under `key` lies in the cache at `root`: the arrays, then their metadata."""
    stem = root / "summaries" / f"{key}-v{SUMMARY_VERSION}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def cached_summary(root: Path, key: str) -> LogitSummary | None:
    """The summary stored under `key` (a file's SHA-256 and the array's name), or None when there is none or it does
    not check out (missing, unreadable, or not matching the SHA-256 recorded beside it: then it is made again)."""
    data_path, meta_path = _summary_paths(root, key)
    try:
        meta = json.loads(meta_path.read_text())
        data = data_path.read_bytes()
        if not isinstance(meta, dict) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            prediction = archive["prediction"]
            confidences = {name: archive[name] for name in ("margin", "max_softmax", "entropy")}
        classes = int(meta["classes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(values.shape != prediction.shape for values in confidences.values()) or prediction.ndim != 1:
        return None
    return LogitSummary(prediction, confidences, classes)


def store_summary(root: Path, key: str, summary: LogitSummary) -> None:
    """Store a summary under `key` (arrays, then metadata: the commit point), each file atomically."""
    data_path, meta_path = _summary_paths(root, key)
    buffer = io.BytesIO()
    np.savez(buffer, prediction=summary.prediction, **summary.confidences)
    blob = buffer.getvalue()
    atomic_write_bytes(data_path, blob)
    atomic_write_text(meta_path, json.dumps({"key": key, "classes": summary.classes,
                                             "samples": len(summary), "sha256": hashlib.sha256(blob).hexdigest()}))
