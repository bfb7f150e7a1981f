"""Score cache: trained weights and per-sample results of every variant, under content keys.

Layout of the cache directory: `<key>.npz` (per-sample rows of the calib and test splits),
`<key>.pt` (weights), `<key>.json` (metadata with SHA-256 of both files) and `manifest.json`
(all metadata, rebuilt after each build). Every file is written atomically; a file whose hash
or contents do not check out is reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nets._atomic import atomic_write_bytes, atomic_write_text
from nets._data import Dataset
from nets._variant import SplitScores, TrainingConfig, Variant, VariantScores, scores_from_logits

CODE_VERSION = "1"
SCORED_SPLITS = ("calib", "test")
FIELDS = ("prediction", "correct", "margin", "scores")


class CacheCorrupted(Exception):
    """A cache file whose hash, format or shape is wrong."""


def default_cache_dir() -> Path:
    """`$DSE_CACHE_DIR`, else `$XDG_CACHE_HOME/adaptive-dse`, else `~/.cache/adaptive-dse`."""
    if os.environ.get("DSE_CACHE_DIR"):
        return Path(os.environ["DSE_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "adaptive-dse"
    return Path.home() / ".cache" / "adaptive-dse"


def variant_key(dataset: Dataset, variant: Variant, config: TrainingConfig) -> str:
    """Content key: dataset id and split, architecture, width, training config, code version."""
    payload = {
        "dataset": dataset.dataset_id,
        "splits": {name: len(labels) for name, labels in dataset.labels.items()},
        "architecture": variant.architecture.describe(),
        "input_shape": list(variant.architecture.input_shape),
        "width": variant.width,
        "training": asdict(config),
        "code_version": CODE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


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
    """Serialise per-split rows into one compressed npz blob."""
    arrays = {f"{split}_{name}": getattr(rows, name) for split, rows in splits.items() for name in FIELDS}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def decode_scores(data: bytes, dataset: Dataset) -> dict[str, SplitScores]:
    """Parse an npz blob and check it against the dataset's split sizes."""
    try:
        with np.load(io.BytesIO(data)) as archive:
            splits = {split: SplitScores(*(archive[f"{split}_{name}"] for name in FIELDS)) for split in SCORED_SPLITS}
    except (OSError, ValueError, KeyError) as exc:
        raise CacheCorrupted(f"unreadable score file ({exc})") from None
    for split, rows in splits.items():
        count = len(dataset.labels[split])
        if any(len(getattr(rows, name)) != count for name in FIELDS):
            raise CacheCorrupted(f"split {split} has the wrong number of rows (expected {count})")
    return splits


class ScoreCache:
    """Per-variant weights and per-sample scores under `root`, keyed by content."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()

    def _meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str, variant: Variant, dataset: Dataset) -> VariantScores:
        """Cached scores of `variant`; raises FileNotFoundError or CacheCorrupted."""
        meta_path = self._meta_path(key)
        if not meta_path.is_file():
            raise FileNotFoundError(key)
        try:
            meta = json.loads(meta_path.read_text())
            npz_sha = meta["scores_sha256"]
        except (ValueError, KeyError, OSError) as exc:
            raise CacheCorrupted(f"{meta_path.name} unreadable ({exc})") from None
        splits = decode_scores(_read_checked(self.root / f"{key}.npz", npz_sha), dataset)
        return VariantScores(variant, key, splits)

    def load_weights(self, key: str) -> bytes:
        """Checked bytes of the variant's torch state dict."""
        meta = json.loads(self._meta_path(key).read_text())
        return _read_checked(self.root / f"{key}.pt", meta["weights_sha256"])

    def store(self, key: str, variant: Variant, weights: bytes, splits: dict[str, SplitScores],
              info: dict) -> VariantScores:
        """Write weights, scores, then metadata (the commit point), each atomically."""
        blob = encode_scores(splits)
        atomic_write_bytes(self.root / f"{key}.pt", weights)
        atomic_write_bytes(self.root / f"{key}.npz", blob)
        meta = {"key": key, "variant": variant.name, "net": variant.net, "width": variant.width,
                "scores_sha256": _sha256(blob), "weights_sha256": _sha256(weights),
                "accuracy": {split: rows.accuracy for split, rows in splits.items()}, **info}
        atomic_write_text(self._meta_path(key), json.dumps(meta, indent=1))
        return VariantScores(variant, key, splits)

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


def train_and_score(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str,
                    root: str, weights: bytes | None = None) -> VariantScores:
    """Train `variant` (or load given weights), score calib and test, and store in the cache."""
    import torch

    from nets._torch import init_module, predict_logits, train_module

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    module = init_module(variant.architecture, variant.width, config.seed)
    seconds = 0.0
    if weights is None:
        seconds = train_module(module, *dataset.split("train"), config)
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        weights = buffer.getvalue()
    else:
        module.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    splits = {split: scores_from_logits(predict_logits(module, images), labels)
              for split in SCORED_SPLITS for images, labels in [dataset.split(split)]}
    info = {"train_seconds": round(seconds, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return ScoreCache(root).store(key, variant, weights, splits, info)


def build_scores(dataset: Dataset, variants: Sequence[Variant], config: TrainingConfig,
                 cache: ScoreCache, n_jobs: int = -1,
                 log: Callable[[str], None] = print) -> dict[Variant, VariantScores]:
    """Scores of every variant: loaded from the cache when valid, else trained in parallel (joblib)."""
    from joblib import Parallel, delayed

    results: dict[Variant, VariantScores] = {}
    todo: list[tuple[Variant, str, bytes | None]] = []
    for variant in dict.fromkeys(variants):
        key = variant_key(dataset, variant, config)
        try:
            results[variant] = cache.load(key, variant, dataset)
            continue
        except FileNotFoundError:
            weights = None
        except CacheCorrupted as exc:
            log(f"cache: {variant.name}: {exc}; rebuilding")
            weights = None
        if cache._meta_path(key).is_file():
            try:
                weights = cache.load_weights(key)
            except (CacheCorrupted, ValueError, KeyError, OSError):
                weights = None
        todo.append((variant, key, weights))
    log(f"cache {cache.root}: {len(results)} of {len(results) + len(todo)} variants cached, "
        f"{sum(w is None for _, _, w in todo)} to train, {sum(w is not None for _, _, w in todo)} to re-score")
    if todo:
        jobs = (delayed(train_and_score)(dataset, v, config, key, str(cache.root), w) for v, key, w in todo)
        start = time.perf_counter()
        for scores in Parallel(n_jobs=min(n_jobs if n_jobs > 0 else os.cpu_count() or 1, len(todo)),
                               return_as="generator_unordered")(jobs):
            results[scores.variant] = scores
            log(f"  {scores.variant.name:>12}: calib acc {scores.splits['calib'].accuracy:.2%}, "
                f"test acc {scores.splits['test'].accuracy:.2%} ({time.perf_counter() - start:.0f}s)")
        cache.write_manifest()
    return {variant: results[variant] for variant in variants}
