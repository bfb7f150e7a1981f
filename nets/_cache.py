"""Score cache: trained weights and per-sample results of every variant, under content keys.

Layout of the cache directory: `<key>.npz` (per-sample rows of the calib and test splits) with
`<key>.json` (metadata, SHA-256 of the npz), `weights/<key>.pt` with `weights/<key>.json` (SHA-256),
and `manifest.json` (all variant metadata, rebuilt after each build). Every file is written
atomically, data before metadata; a file whose hash or contents do not check out is reported and
rebuilt, never used.
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

CODE_VERSION = "2"
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
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def variant_key(dataset: Dataset, variant: Variant, config: TrainingConfig) -> str:
    """Content key of a variant's scores: its weights' key plus stage width and post-training options."""
    base = weights_key(dataset, variant, config)
    if variant == variant.training:
        return base
    extra = {"width": variant.width, "bits": variant.bits, "rounding": variant.rounding,
             "knobs": [list(k) for k in variant.knobs]}
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
        return VariantScores(variant, key, splits)

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

    def store(self, key: str, variant: Variant, splits: dict[str, SplitScores], info: dict) -> VariantScores:
        """Write scores, then metadata (the commit point), atomically."""
        blob = encode_scores(splits)
        atomic_write_bytes(self.root / f"{key}.npz", blob)
        meta = {"key": key, "variant": variant.name, "net": variant.net, "width": variant.width,
                "bits": variant.bits, "sha256": _sha256(blob),
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


def train_weights(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> str:
    """Train the weights `variant` runs (seeded, deterministic, one thread) and store them; returns `key`."""
    import torch

    from nets._torch import init_module, train_module

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    trained = variant.training
    if trained.increments:
        from nets._incremental import cached_golden, train_incremental

        state, seconds = train_incremental(trained.architecture, trained.increments, dataset, config,
                                           golden=cached_golden(ScoreCache(root), dataset, trained.net, config))
    else:
        module = init_module(trained.architecture, trained.width, config.seed)
        seconds = train_module(module, *dataset.split("train"), config)
        state = module.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    ScoreCache(root).store_weights(key, trained, buffer.getvalue(), {"train_seconds": round(seconds, 3)})
    return key


def evaluate_split(module, variant: Variant, dataset: Dataset, split: str) -> SplitScores:  # type: ignore[no-untyped-def]
    """Run `variant` on one split: plain, quantized (bits) or with effort knobs (per-sample ops)."""
    from nets._torch import predict_logits

    images, labels = dataset.split(split)
    if variant.knobs:
        from nets._effort import effort_logits

        logits, ops = effort_logits(module, variant, images, dataset.split("calib")[0])
        return scores_from_logits(logits, labels, ops)
    if variant.bits is not None:
        from nets._quant import quantized_logits

        return scores_from_logits(quantized_logits(module, variant, images, dataset.split("calib")[0]), labels)
    return scores_from_logits(predict_logits(module, images), labels)


def score_variant(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> VariantScores:
    """Load the variant's weights, score the calib and test splits, and store the rows."""
    import torch

    from nets._torch import init_module

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cache = ScoreCache(root)
    state = torch.load(io.BytesIO(cache.load_weights(weights_key(dataset, variant, config))), weights_only=True)
    if variant.increments:
        from nets._incremental import stage_module

        module = stage_module(variant.architecture, variant.increments, variant.width, state)
    else:
        module = init_module(variant.architecture, variant.width, config.seed)
        module.load_state_dict(state)
    module.eval()
    splits = {split: evaluate_split(module, variant, dataset, split) for split in SCORED_SPLITS}
    return cache.store(key, variant, splits, {"weights_key": weights_key(dataset, variant, config),
                                              "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _parallel(jobs: list, n_jobs: int):  # type: ignore[no-untyped-def]
    """Run joblib jobs, yielding results as they finish."""
    from joblib import Parallel

    workers = min(n_jobs if n_jobs > 0 else os.cpu_count() or 1, len(jobs))
    return Parallel(n_jobs=workers, return_as="generator_unordered")(jobs)


def build_scores(dataset: Dataset, variants: Sequence[Variant], config: TrainingConfig,
                 cache: ScoreCache, n_jobs: int = -1,
                 log: Callable[[str], None] = print) -> dict[Variant, VariantScores]:
    """Scores of every variant: loaded from the cache when valid, else trained and scored in parallel (joblib).

    Two phases: every missing weight set is trained once (variants differing only in bit-width or
    knobs share one), then every missing variant is scored.
    """
    from joblib import delayed

    results: dict[Variant, VariantScores] = {}
    to_score: list[tuple[Variant, str]] = []
    for variant in dict.fromkeys(variants):
        key = variant_key(dataset, variant, config)
        try:
            results[variant] = cache.load(key, variant, dataset)
            continue
        except FileNotFoundError:
            pass
        except CacheCorrupted as exc:
            log(f"cache: {variant.name}: {exc}; rebuilding")
        to_score.append((variant, key))
    to_train: dict[str, Variant] = {}
    for variant, _ in to_score:
        wkey = weights_key(dataset, variant, config)
        try:
            cache.load_weights(wkey)
        except FileNotFoundError:
            to_train[wkey] = variant.training
        except CacheCorrupted as exc:
            log(f"cache: {variant.training.name} weights: {exc}; retraining")
            to_train[wkey] = variant.training
    log(f"cache {cache.root}: {len(results)} of {len(results) + len(to_score)} variants cached; "
        f"{len(to_train)} to train, {len(to_score)} to score")
    start = time.perf_counter()
    # ordinary weights first: incremental training starts from the golden models they may include
    for phase in ([k for k, v in to_train.items() if not v.increments], [k for k, v in to_train.items() if v.increments]):
        jobs = [delayed(train_weights)(dataset, to_train[key], config, key, str(cache.root)) for key in phase]
        for key in _parallel(jobs, n_jobs) if jobs else ():
            log(f"  trained {to_train[key].name} ({time.perf_counter() - start:.0f}s)")
    if to_score:
        jobs = [delayed(score_variant)(dataset, v, config, key, str(cache.root)) for v, key in to_score]
        for scores in _parallel(jobs, n_jobs):
            results[scores.variant] = scores
            log(f"  {scores.variant.name:>12}: calib acc {scores.splits['calib'].accuracy:.2%}, "
                f"test acc {scores.splits['test'].accuracy:.2%} ({time.perf_counter() - start:.0f}s)")
        cache.write_manifest()
    return {variant: results[variant] for variant in variants}
