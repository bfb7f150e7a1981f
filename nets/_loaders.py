"""One entry point for every dataset the tool reads: embedded MNIST digits, IDX directories, npz files, CIFAR-10."""

from __future__ import annotations

from pathlib import Path

from nets._cifar import load_cifar10
from nets._data import Dataset, DatasetError, load_mnist, load_mnist5k, load_npz


def load_dataset(name: str, path: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load dataset `name`: 'mnist5k' (embedded), 'mnist' (IDX directory `path`), 'npz' (file `path`) or
    'cifar10' (the python pickle batches in directory `path`)."""
    if name == "mnist5k":
        return load_mnist5k(seed)
    if name in ("mnist", "npz"):
        if not path:
            raise DatasetError(f"dataset '{name}' needs a path (data.path in the spec, or --data)")
        return load_mnist(path, seed) if name == "mnist" else load_npz(path, seed)
    if name == "cifar10":
        if not path:
            raise DatasetError("dataset 'cifar10' needs a path (data.path in the spec, or --data)")
        return load_cifar10(path, seed)
    raise DatasetError(f"unknown dataset '{name}'; known: mnist5k, mnist, npz, cifar10")
