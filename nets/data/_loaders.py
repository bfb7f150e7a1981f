"""One entry point for every dataset the tool reads: embedded MNIST digits, IDX directories, npz files, CIFAR-10."""

from __future__ import annotations

from pathlib import Path

from nets.data._cifar import load_cifar10
from nets.data._data import Dataset, DatasetError, load_mnist, load_mnist5k, load_npz
from nets.models._imported import load_labels


def load_dataset(name: str, path: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load dataset `name`: 'mnist5k' (embedded), 'mnist' (IDX directory `path`), 'npz' (file `path`) or
    'cifar10' (the python pickle batches in directory `path`) or 'labels' (calib/test labels only, file `path`)."""
    if name == "mnist5k":
        return load_mnist5k(seed)
    if name in ("mnist", "npz"):
        if not path:
            raise DatasetError(f"dataset '{name}' needs a path (data.path in the spec, or --data)")
        return load_mnist(path, seed) if name == "mnist" else load_npz(path, seed)
    if name == "labels":
        if not path:
            raise DatasetError("dataset 'labels' needs a path (data.path in the spec, or --data)")
        return labels_dataset(path)
    if name == "cifar10":
        if not path:
            raise DatasetError("dataset 'cifar10' needs a path (data.path in the spec, or --data)")
        return load_cifar10(path, seed)
    raise DatasetError(f"unknown dataset '{name}'; known: mnist5k, mnist, npz, cifar10, labels")


def labels_dataset(path: str | Path) -> Dataset:
    """Labels only (`calib_labels`, `test_labels`), for studies whose every model brings its own logits: no images,
    no training split; identified by the file's SHA-256."""
    read = load_labels(path)
    classes = 1 + max(int(labels.max()) for labels in read.splits.values())
    return Dataset(f"labels-{read.digest[:16]}", {}, dict(read.splits), classes, source=str(path))
