"""Datasets are identified by content: two IDX datasets at two paths never share cache entries; a copy does."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np

from nets import ScoreCache, TrainingConfig, Variant, build_scores, load_dataset, variant_key
from nets.data._data import MNIST_FILES


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x803 if array.ndim == 3 else 0x801
    header = struct.pack(">II", magic, array.shape[0]) + b"".join(struct.pack(">I", d) for d in array.shape[1:])
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _idx_dataset(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Four MNIST-named IDX files: the first 600 digits as train, the next 200 as the official test set."""
    folder.mkdir()
    _write_idx(folder / MNIST_FILES["train_images"], images[:600])
    _write_idx(folder / MNIST_FILES["train_labels"], labels[:600])
    _write_idx(folder / MNIST_FILES["test_images"], images[600:800])
    _write_idx(folder / MNIST_FILES["test_labels"], labels[600:800])
    return folder


def test_idx_datasets_are_keyed_by_content(tmp_path: Path, mnist5k) -> None:
    images = np.concatenate([mnist5k.images["train"], mnist5k.images["test"]])[:, 0]
    labels = np.concatenate([mnist5k.labels["train"], mnist5k.labels["test"]])
    order = np.random.default_rng(0).permutation(len(labels))[:800]
    images, labels = images[order], labels[order]
    first = _idx_dataset(tmp_path / "digits", images, labels)
    # a second dataset of the same shapes and file names, different content (Fashion-MNIST stands in the same way)
    second = _idx_dataset(tmp_path / "inverted", 255 - images, (labels + 1) % 10)
    copy = tmp_path / "elsewhere" / "digits"
    shutil.copytree(first, copy)

    a, b, c = (load_dataset("mnist", folder) for folder in (first, second, copy))
    assert a.dataset_id != b.dataset_id and a.dataset_id == c.dataset_id
    config, variant = TrainingConfig(epochs=1, batch_size=64), Variant("mini8")
    assert variant_key(a, variant, config) != variant_key(b, variant, config)
    assert variant_key(a, variant, config) == variant_key(c, variant, config)

    cache, logs = ScoreCache(tmp_path / "cache"), []
    scores_a = build_scores(a, [variant], config, cache, n_jobs=1, log=logs.append)[variant]
    scores_b = build_scores(b, [variant], config, cache, n_jobs=1, log=logs.append)[variant]
    assert sum("1 to train" in line for line in logs) == 2  # each dataset trains its own weights
    assert scores_a.key != scores_b.key
    assert not np.array_equal(scores_a.splits["test"].scores, scores_b.splits["test"].scores)
    logs.clear()
    scores_c = build_scores(c, [variant], config, cache, n_jobs=1, log=logs.append)[variant]
    assert logs == [f"cache {cache.root}: 1 of 1 variants cached; 0 to train, 0 to score"]
    assert np.array_equal(scores_a.splits["test"].margin, scores_c.splits["test"].margin)


def test_one_changed_byte_changes_the_key(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (60, 8, 8), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 20)
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    images[5, 3, 3] ^= 1
    np.savez(tmp_path / "b.npz", images=images, labels=labels)
    np.savez(tmp_path / "same-as-b.npz", images=images, labels=labels)
    ids = [load_dataset("npz", tmp_path / name).dataset_id for name in ("a.npz", "b.npz", "same-as-b.npz")]
    assert ids[0] != ids[1] and ids[1] == ids[2]


def test_a_technology_file_is_part_of_the_study_fingerprint_by_content(tmp_path: Path) -> None:
    import pytest

    from dse import SpecError, parse_spec
    from dse.core.fingerprint import spec_digest

    tech = tmp_path / "tech.toml"
    tech.write_text("")
    text = f'version = 2\nname = "t"\n[accelerator]\ntechnology = "{tech}"\n[little]\nnets = ["mini7"]\n'
    before = spec_digest(parse_spec(text, "t.toml"))
    assert spec_digest(parse_spec(text, "t.toml")) == before
    tech.write_text("# one changed byte\n")
    assert spec_digest(parse_spec(text, "t.toml")) != before
    tech.unlink()
    with pytest.raises(SpecError, match=r"t\.toml: accelerator\.technology: cannot read .*tech\.toml"):
        spec_digest(parse_spec(text, "t.toml"))
