"""Score cache: trained weights and per-sample results of every variant, under content keys.

Layout of the cache directory: `<key>.npz` (per-sample rows of the calib and test splits) with
`<key>.json` (metadata, SHA-256 of the npz), `weights/<key>.pt` with `weights/<key>.json` (SHA-256),
`summaries/<sha256>-<array>-v<version>.npz` with `.json` (what a study keeps of an imported logits array, under
the file's SHA-256: `nets.scores._summary`), `manifest.json` (all variant metadata, rebuilt after each build),
`builds.log` (one JSON line per stored entry: what, which key, which host and process, when) and `claims/`
(see `nets.scores._claims`).
Every file but the log is written atomically, data before metadata; the log is appended one line
per write. A file whose hash or contents do not check out is reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nets.scores._atomic import atomic_write_bytes, atomic_write_text
from nets.scores._cache_dir import default_cache_dir
from nets.data._data import Dataset
from nets.models._exits import exits_key
from nets.scores._scores import SplitScores
from nets.scores._variant import TrainingConfig, Variant, VariantScores

CODE_VERSION = "2"
SCORED_SPLITS = ("calib", "test")
FIELDS = ("prediction", "correct", "margin", "scores")
BUILDS_LOG = "builds.log"


class CacheCorrupted(Exception):
    """A cache file whose hash, format or shape is wrong."""


def weights_key(dataset: Dataset, variant: Variant, config: TrainingConfig) -> str:
    """Content key of trained weights: dataset id and split, architecture, width/increments, training, code."""
    trained = variant.training
    payload = {
        "dataset": dataset.dataset_id,
        "splits": {name: len(labels) for name, labels in dataset.labels.items()},
        "architecture": trained.architecture.describe(),
        "input_shape": list(trained.architecture.input_shape),
        "width": trained.width,
        "increments": list(trained.increments),
        "training": asdict(config),
        "code_version": CODE_VERSION,
    }
    if trained.exits is not None:  # only branched nets carry the key: every other key stays as it was
        payload["exits"] = exits_key(trained.architecture, trained.exits)
        model = trained.model
        if model is not None and model.onnx is not None:  # branches on an ONNX trunk: its file and input scaling
            payload["trunk"] = {"onnx_sha256": model.digest, "input_mean": model.input_mean,
                                "input_std": model.input_std}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def variant_key(dataset: Dataset, variant: Variant, config: TrainingConfig) -> str:
    """Content key of a variant's scores: its weights' key plus stage width and post-training options."""
    base = weights_key(dataset, variant, config)
    if variant == variant.training:
        return base
    extra = {"width": variant.width, "bits": variant.bits, "rounding": variant.rounding,
             "knobs": [list(k) for k in variant.knobs]}
    if variant.bits is not None or variant.knobs:
        extra["ranges"] = "train"  # activation and knob ranges fitted on training images (`nets.scores._build.range_images`)
    if variant.exits is not None:
        extra["exits"] = exits_key(variant.training.architecture, variant.exits)
    if variant.extra:  # only variants with a mechanism's own transforms carry the key: every other stays as it was
        extra["transforms"] = [{"name": t.name, **t.key_part()} for t in variant.extra]
    return hashlib.sha256(json.dumps([base, extra], sort_keys=True).encode()).hexdigest()[:24]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_checked(path: Path, expected_sha: str) -> bytes:
    """File bytes, or CacheCorrupted if missing or not matching `expected_sha`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CacheCorrupted(f"{path.name} unreadable ({exc.strerror})") from None
    if _sha256(data) != expected_sha:
        raise CacheCorrupted(f"{path.name} does not match its recorded SHA-256 (truncated or modified)")
    return data


def encode_scores(splits: dict[str, SplitScores]) -> bytes:
    """Serialise per-split rows (and per-sample op counts, when present) into one compressed npz blob."""
    arrays = {f"{split}_{name}": getattr(rows, name) for split, rows in splits.items() for name in FIELDS}
    arrays.update({f"{split}_ops": rows.ops for split, rows in splits.items() if rows.ops is not None})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def decode_scores(data: bytes, dataset: Dataset) -> dict[str, SplitScores]:
    """Parse an npz blob and check it against the dataset's split sizes."""
    try:
        with np.load(io.BytesIO(data)) as archive:
            splits = {split: SplitScores(*(archive[f"{split}_{name}"] for name in FIELDS),
                                         archive[f"{split}_ops"] if f"{split}_ops" in archive else None)
                      for split in SCORED_SPLITS}
    except (OSError, ValueError, KeyError) as exc:
        raise CacheCorrupted(f"unreadable score file ({exc})") from None
    for split, rows in splits.items():
        count = len(dataset.labels[split])
        if any(len(getattr(rows, name)) != count for name in FIELDS) or (rows.ops is not None and len(rows.ops) != count):
            raise CacheCorrupted(f"split {split} has the wrong number of rows (expected {count})")
    return splits


class ScoreCache:
    """Per-sample scores (`<key>.npz` + `<key>.json`) and weights (`weights/<key>.pt` + `.json`) under `root`."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()

    def _meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _weights_paths(self, key: str) -> tuple[Path, Path]:
        return self.root / "weights" / f"{key}.pt", self.root / "weights" / f"{key}.json"

    @staticmethod
    def _read_meta(path: Path) -> dict:
        """A metadata file, or FileNotFoundError / CacheCorrupted."""
        if not path.is_file():
            raise FileNotFoundError(path.name)
        try:
            meta = json.loads(path.read_text())
        except (ValueError, OSError) as exc:
            raise CacheCorrupted(f"{path.name} unreadable ({exc})") from None
        if not isinstance(meta, dict) or "sha256" not in meta:
            raise CacheCorrupted(f"{path.name} lacks a sha256 entry")
        return meta

    def load(self, key: str, variant: Variant, dataset: Dataset) -> VariantScores:
        """Cached scores of `variant`; raises FileNotFoundError or CacheCorrupted."""
        meta = self._read_meta(self._meta_path(key))
        splits = decode_scores(_read_checked(self.root / f"{key}.npz", meta["sha256"]), dataset)
        return VariantScores(variant, key, splits, tuple(meta.get("applied", ())))

    def load_weights(self, key: str) -> bytes:
        """Checked bytes of a torch state dict; raises FileNotFoundError or CacheCorrupted."""
        data_path, meta_path = self._weights_paths(key)
        return _read_checked(data_path, self._read_meta(meta_path)["sha256"])

    def store_weights(self, key: str, variant: Variant, weights: bytes, info: dict) -> None:
        """Write weights, then their metadata (the commit point), atomically."""
        data_path, meta_path = self._weights_paths(key)
        atomic_write_bytes(data_path, weights)
        atomic_write_text(meta_path, json.dumps({"key": key, "variant": variant.name, "sha256": _sha256(weights),
                                                 **info}, indent=1))
        self._record("weights", key, variant)

    def store(self, key: str, variant: Variant, splits: dict[str, SplitScores], applied: tuple[str, ...],
              info: dict) -> VariantScores:
        """Write scores, then metadata (the commit point), atomically; `applied` names the transforms scored."""
        blob = encode_scores(splits)
        atomic_write_bytes(self.root / f"{key}.npz", blob)
        meta = {"key": key, "variant": variant.name, "net": variant.net, "width": variant.width,
                "bits": variant.bits, "applied": list(applied), "sha256": _sha256(blob),
                "accuracy": {split: rows.accuracy for split, rows in splits.items()}, **info}
        atomic_write_text(self._meta_path(key), json.dumps(meta, indent=1))
        self._record("scores", key, variant)
        return VariantScores(variant, key, splits, applied)

    def _record(self, kind: str, key: str, variant: Variant) -> None:
        """Append one line to `builds.log`: which entry was stored, by which host and process (one write of one
        short line with O_APPEND, so lines of processes sharing the cache do not interleave)."""
        line = json.dumps({"stored": kind, "key": key, "variant": variant.name, "host": socket.gethostname(),
                           "pid": os.getpid(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n"
        fd = os.open(self.root / BUILDS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def builds(self) -> list[dict]:
        """Every line of `builds.log` (empty before the first build)."""
        try:
            text = (self.root / BUILDS_LOG).read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def write_manifest(self) -> None:
        """Rebuild manifest.json from every variant's metadata file."""
        entries = {}
        for path in sorted(self.root.glob("*.json")):
            if path.name == "manifest.json":
                continue
            try:
                entries[path.stem] = json.loads(path.read_text())
            except ValueError:
                continue
        atomic_write_text(self.root / "manifest.json", json.dumps(entries, indent=1))
