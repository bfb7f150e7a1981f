"""CIFAR-10 from the standard python pickle batches (data_batch_1..5, test_batch), split as Tann et al. 2016 §5."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from nets.data._data import Dataset, DatasetError, make_dataset, stratified_split

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SHAPE = (3, 32, 32)
CALIB_FRACTION = 0.1  # Tann 2016 §5: 10% of each class of the test set is the validation split
# What a CIFAR batch pickle may construct: numpy arrays, and bytes as protocol-2 pickles from Python 3 write them.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global but numpy's array reconstruction (batches come from a user path)."""

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and int64 labels of one pickle batch."""
    try:
        with path.open("rb") as handle:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != np.prod(IMAGE_SHAPE) or len(data) != len(labels):
        raise DatasetError(f"{path}: 'data' must be uint8 (N, 3072) matching {len(labels)} labels, "
                           f"got {data.dtype} {data.shape}")
    if len(labels) and not 0 <= labels.min() <= labels.max() <= 9:
        raise DatasetError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, *IMAGE_SHAPE), labels


def load_cifar10(directory: str | Path, seed: int = 0) -> Dataset:
    """CIFAR-10 from `directory` (or its `cifar-10-batches-py` folder): train = the five data batches;
    calibration = 10% of each class of the test batch, test = the rest.
    """
    directory = Path(directory)
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    if not directory.is_dir():
        raise DatasetError(f"CIFAR-10 directory {directory} does not exist")
    missing = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if not (directory / name).is_file()]
    if missing:
        raise DatasetError(f"CIFAR-10 directory {directory} lacks {', '.join(missing)}")
    parts = [read_batch(directory / name) for name in TRAIN_BATCHES]
    train_images, train_labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test_images, test_labels = read_batch(directory / TEST_BATCH)
    calib, test = stratified_split(test_labels, (CALIB_FRACTION, 1 - CALIB_FRACTION), seed)
    return make_dataset(
        f"cifar10-s{seed}",
        {"train": train_images, "calib": test_images[calib], "test": test_images[test]},
        {"train": train_labels, "calib": test_labels[calib], "test": test_labels[test]},
        10,
    )
