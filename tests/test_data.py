"""Dataset loaders: shapes, ids, split determinism and stratification, clear errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_MNIST
from nets import DatasetError, load_dataset, stratified_split
from nets.data._data import read_idx


def test_mnist5k_shapes_and_split(mnist5k) -> None:
    assert mnist5k.dataset_id.startswith("mnist5k-s0-") and len(mnist5k.dataset_id.split("-")[-1]) == 16
    sizes = {name: len(labels) for name, labels in mnist5k.labels.items()}
    assert sizes == {"train": 3000, "calib": 1000, "test": 1000}
    assert mnist5k.images["train"].shape == (3000, 1, 28, 28) and mnist5k.images["train"].dtype == np.uint8
    for labels in mnist5k.labels.values():  # stratified: 500 per class split 60/20/20
        assert np.bincount(labels, minlength=10).tolist() == [len(labels) // 10] * 10
    assert mnist5k.images["train"].max() == 255  # real digits, not noise
    assert set(np.unique(mnist5k.labels["test"])) == set(range(10))


def test_split_is_deterministic_and_disjoint() -> None:
    labels = np.repeat(np.arange(5), 37)
    first = stratified_split(labels, (0.5, 0.3, 0.2), seed=3)
    again = stratified_split(labels, (0.5, 0.3, 0.2), seed=3)
    other = stratified_split(labels, (0.5, 0.3, 0.2), seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    joined = np.concatenate(first)
    assert len(joined) == len(labels) == len(np.unique(joined))


def test_mnist5k_seed_changes_split_and_id() -> None:
    a, b = load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=1)
    assert a.dataset_id != b.dataset_id
    assert not np.array_equal(a.images["test"], b.images["test"])


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(">II", magic, array.shape[0]) + b"".join(struct.pack(">I", d) for d in array.shape[1:])
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_and_errors(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    _write_idx(tmp_path / "img.gz", 0x803, images)
    assert read_idx(tmp_path / "img.gz").shape == (2, 1, 3, 4)
    _write_idx(tmp_path / "bad.gz", 0x999, images)
    with pytest.raises(DatasetError, match="bad IDX magic"):
        read_idx(tmp_path / "bad.gz")
    with gzip.open(tmp_path / "short.gz", "wb") as handle:
        handle.write(struct.pack(">II", 0x801, 10) + b"\x01\x02")
    with pytest.raises(DatasetError, match="expected 10 values"):
        read_idx(tmp_path / "short.gz")


def test_missing_mnist_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")
    (tmp_path / "partial").mkdir()
    with pytest.raises(DatasetError, match="lacks"):
        load_dataset("mnist", tmp_path / "partial")
    with pytest.raises(DatasetError, match="needs a path"):
        load_dataset("mnist")


def test_npz_dataset(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "toy.npz", images=rng.integers(0, 255, (60, 8, 8), dtype=np.uint8),
             labels=np.repeat(np.arange(3), 20))
    data = load_dataset("npz", tmp_path / "toy.npz")
    assert data.input_shape == (1, 8, 8) and data.num_classes == 3
    assert sum(len(v) for v in data.labels.values()) == 60


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="full MNIST not present in ../shared/datasets")
def test_full_mnist() -> None:
    data = load_dataset("mnist", SHARED_MNIST)
    assert len(data.labels["train"]) == 60000
    assert len(data.labels["calib"]) + len(data.labels["test"]) == 10000
    counts = np.bincount(np.concatenate([data.labels["calib"], data.labels["test"]]))
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
