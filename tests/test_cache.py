"""Score cache: round trip, content keys, and detection of corrupted or truncated files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nets import CacheCorrupted, ScoreCache, TrainingConfig, Variant, build_scores, variant_key

CONFIG = TrainingConfig(epochs=2, batch_size=64)
VARIANTS = [Variant("mini8"), Variant("mini4")]


def _build(dataset, cache: ScoreCache, lines: list[str]):
    return build_scores(dataset, VARIANTS, CONFIG, cache, n_jobs=1, log=lines.append)


def test_round_trip_and_reuse(mnist5k, cache_dir: Path) -> None:
    cache, lines = ScoreCache(cache_dir), []
    first = _build(mnist5k, cache, lines)
    assert "0 of 2 variants cached; 2 to train, 2 to score" in lines[0]
    rows = first[VARIANTS[0]].splits["test"]
    assert rows.scores.dtype == np.float16 and rows.scores.shape == (1000, 10)
    top = rows.scores[np.arange(len(rows.scores)), rows.prediction]
    assert np.array_equal(top, rows.scores.max(axis=1))  # float16 scores may tie; the prediction is a top score
    assert np.array_equal(rows.correct, rows.prediction == mnist5k.labels["test"])
    assert np.all((rows.margin >= 0) & (rows.margin <= 1))
    assert rows.accuracy > 0.5  # trained, not random
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    assert {entry["variant"] for entry in manifest.values()} == {"mini8", "mini4"}

    again_lines: list[str] = []
    again = _build(mnist5k, cache, again_lines)
    assert "2 of 2 variants cached; 0 to train, 0 to score" in again_lines[0]
    assert np.array_equal(again[VARIANTS[0]].splits["calib"].margin, first[VARIANTS[0]].splits["calib"].margin)


def test_key_depends_on_config_and_dataset(mnist5k) -> None:
    from nets import load_dataset

    key = variant_key(mnist5k, VARIANTS[0], CONFIG)
    assert key == variant_key(mnist5k, VARIANTS[0], TrainingConfig(epochs=2, batch_size=64))
    assert key != variant_key(mnist5k, VARIANTS[0], TrainingConfig(epochs=3, batch_size=64))
    assert key != variant_key(mnist5k, Variant("mini8", 0.5), CONFIG)
    assert key != variant_key(load_dataset("mnist5k", seed=1), VARIANTS[0], CONFIG)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupted_scores_are_rebuilt_not_used(mnist5k, cache_dir: Path, damage: str) -> None:
    cache = ScoreCache(cache_dir)
    first = _build(mnist5k, cache, [])
    key = first[VARIANTS[0]].key
    npz = cache_dir / f"{key}.npz"
    blob = npz.read_bytes()
    if damage == "truncate":
        npz.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        npz.write_bytes(blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:]))
    else:
        npz.unlink()
    with pytest.raises(CacheCorrupted):
        cache.load(key, VARIANTS[0], mnist5k)
    lines: list[str] = []
    rebuilt = _build(mnist5k, cache, lines)
    assert any("rebuilding" in line for line in lines)
    assert any("0 to train, 1 to score" in line for line in lines)  # weights intact: no retraining
    assert np.array_equal(rebuilt[VARIANTS[0]].splits["test"].margin, first[VARIANTS[0]].splits["test"].margin)
    cache.load(key, VARIANTS[0], mnist5k)  # valid again


def test_corrupted_weights_retrain_deterministically(mnist5k, cache_dir: Path) -> None:
    cache = ScoreCache(cache_dir)
    first = _build(mnist5k, cache, [])
    key = first[VARIANTS[1]].key
    (cache_dir / f"{key}.npz").write_bytes(b"garbage")
    (cache_dir / "weights" / f"{key}.pt").write_bytes(b"garbage")
    lines: list[str] = []
    rebuilt = _build(mnist5k, cache, lines)
    assert any("weights" in line and "retraining" in line for line in lines)
    assert any("1 to train, 1 to score" in line for line in lines)
    assert np.array_equal(rebuilt[VARIANTS[1]].splits["test"].prediction, first[VARIANTS[1]].splits["test"].prediction)
