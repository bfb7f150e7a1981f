"""Imported logits and labels: .npz, .npy and parquet sources, content identity, every validation error, and scores
for 2 to 1,000 classes against a slow reference."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas
import pytest

from nets import (ImportedModelError, confidence, file_digest, imported_scores, load_labels, load_logits, scores_from_logits,
                  split_scores)

RNG = np.random.default_rng(0)


def arrays(classes: int = 10, calib: int = 30, test: int = 20) -> dict[str, np.ndarray]:
    """Random logits and labels for both splits."""
    return {"calib_logits": RNG.normal(0, 3, (calib, classes)), "test_logits": RNG.normal(0, 3, (test, classes)),
            "calib_labels": RNG.integers(0, classes, calib), "test_labels": RNG.integers(0, classes, test)}


def save_npz(path: Path, **data: np.ndarray) -> Path:
    np.savez(path, **data)
    return path


def reference_scores(logits: np.ndarray, labels: np.ndarray) -> tuple[list[int], list[bool], list[float]]:
    """Prediction, correctness and top-1 minus top-2 softmax margin, one sample at a time in plain Python."""
    predictions, correct, margins = [], [], []
    for row, label in zip(logits.tolist(), labels.tolist()):
        top = max(row)
        exp = [np.exp(v - top) for v in row]
        probs = [e / sum(exp) for e in exp]
        best = max(range(len(probs)), key=lambda k: (probs[k], -k))
        ranked = sorted(probs, reverse=True)
        predictions.append(best)
        correct.append(best == label)
        margins.append(ranked[0] - ranked[1])
    return predictions, correct, margins


@pytest.mark.parametrize("classes", [2, 3, 10, 100, 1000])
def test_scores_from_logits_matches_the_slow_reference(classes: int) -> None:
    logits = RNG.normal(0, 4, (50, classes))
    labels = RNG.integers(0, classes, 50)
    scores = scores_from_logits(logits, labels)
    predictions, correct, margins = reference_scores(logits, labels)
    assert scores.prediction.tolist() == predictions and scores.correct.tolist() == correct
    np.testing.assert_allclose(scores.margin, margins, rtol=1e-6, atol=1e-7)
    assert scores.scores.shape == (50, classes)
    np.testing.assert_allclose(scores.scores.astype(np.float64).sum(axis=1), 1.0, atol=classes * 1e-3)


def test_a_100_class_npz_scores_like_its_arrays(tmp_path: Path) -> None:
    data = arrays(classes=100)
    logits = load_logits(save_npz(tmp_path / "logits.npz", calib_logits=data["calib_logits"],
                                  test_logits=data["test_logits"]))
    labels = load_labels(save_npz(tmp_path / "labels.npz", calib_labels=data["calib_labels"],
                                  test_labels=data["test_labels"]))
    assert logits.num_classes == 100
    scores = imported_scores(logits, labels, num_classes=100)
    for split in ("calib", "test"):
        expected = scores_from_logits(data[f"{split}_logits"], data[f"{split}_labels"])
        assert np.array_equal(scores[split].prediction, expected.prediction)
        assert np.array_equal(scores[split].margin, expected.margin)
        assert scores[split].prediction.dtype == np.int16 and scores[split].prediction.max() < 100


def test_the_same_content_anywhere_has_the_same_digest(tmp_path: Path) -> None:
    data = arrays()
    first = save_npz(tmp_path / "a.npz", **data)
    (tmp_path / "moved").mkdir()
    second = tmp_path / "moved" / "b.npz"
    second.write_bytes(first.read_bytes())
    assert load_logits(first).digest == load_logits(second).digest == file_digest(first)
    assert load_labels(first).digest == file_digest(first)
    data["test_logits"][3, 4] += 1e-9
    assert load_logits(save_npz(tmp_path / "c.npz", **data)).digest != file_digest(first)


def test_npy_and_parquet_directories_read_the_same_arrays(tmp_path: Path) -> None:
    data = arrays(classes=5)
    npz = load_logits(save_npz(tmp_path / "all.npz", **data))
    (tmp_path / "npy").mkdir()
    (tmp_path / "pq").mkdir()
    for name, array in data.items():
        np.save(tmp_path / "npy" / f"{name}.npy", array)
        table = array.reshape(len(array), -1)
        pandas.DataFrame(table, columns=[f"c{i}" for i in range(table.shape[1])]).to_parquet(
            tmp_path / "pq" / f"{name}.parquet")
    for directory in ("npy", "pq"):
        logits, labels = load_logits(tmp_path / directory), load_labels(tmp_path / directory)
        for split in ("calib", "test"):
            got, want = logits.splits[split], npz.splits[split]
            assert np.array_equal(got.prediction, want.prediction) and got.classes == want.classes
            assert all(np.array_equal(got.confidences[c], want.confidences[c]) for c in want.confidences)
            assert np.array_equal(labels.splits[split], data[f"{split}_labels"])
    assert load_logits(tmp_path / "npy").digest == load_logits(tmp_path / "npy").digest != npz.digest
    assert load_logits(tmp_path / "npy").digest != load_logits(tmp_path / "pq").digest


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_streamed_npy_logits_match_the_whole_array_reference(tmp_path: Path, dtype: type,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A .npy read in blocks of a few rows (hashed on the way) gives the confidences of the whole softmax at once
    and the file's own SHA-256."""
    import nets.scores._summary

    monkeypatch.setattr(nets.scores._summary, "BLOCK_BYTES", 8 * 1000 * 7)  # 7 rows of 1,000 classes per block
    data = {"calib_logits": RNG.normal(0, 4, (40, 1000)).astype(dtype),
            "test_logits": RNG.normal(0, 4, (23, 1000)).astype(dtype)}
    for name, array in data.items():
        np.save(tmp_path / f"{name}.npy", array)
    logits = load_logits(tmp_path)
    digest = __import__("hashlib").sha256(
        "".join(f"{n}.npy:{file_digest(tmp_path / f'{n}.npy')};" for n in data).encode()).hexdigest()
    assert logits.digest == digest and logits.num_classes == 1000
    for split in ("calib", "test"):
        whole = data[f"{split}_logits"].astype(np.float64)
        probs = np.exp(whole - whole.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        got = logits.splits[split]
        assert got.prediction.tolist() == probs.argmax(axis=1).tolist()
        for criterion in ("margin", "max_softmax", "entropy"):
            np.testing.assert_allclose(got.confidences[criterion], confidence(probs, criterion), atol=2e-6)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "calib_logits.parquet").write_bytes(b"PAR1")
    np.save(tmp_path / "test_logits.npy", np.zeros((2, 3)))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportedModelError, match=r"calib_logits.parquet: reading parquet needs pyarrow"):
        load_logits(tmp_path)


GOOD = arrays()


@pytest.mark.parametrize(("logits", "match"), [
    ({"calib_logits": GOOD["calib_logits"]}, r"no array 'test_logits' \(found: calib_logits\)"),
    ({**GOOD, "calib_logits": GOOD["calib_logits"][0]}, r"'calib_logits': logits must be 2-D .* got shape \(10,\)"),
    ({**GOOD, "test_logits": GOOD["test_logits"][:, :1]}, r"'test_logits': logits must be 2-D \(samples x classes, "
                                                           r"classes >= 2\)"),
    ({**GOOD, "calib_logits": np.zeros((0, 10))}, r"'calib_logits': the split is empty"),
    ({**GOOD, "test_logits": np.where(np.arange(20)[:, None] == 7, np.nan, GOOD["test_logits"])},
     r"'test_logits': 10 values are NaN or inf \(first in sample 7\)"),
    ({**GOOD, "calib_logits": np.full((3, 10), np.inf)}, r"'calib_logits': 30 values are NaN or inf"),
    ({**GOOD, "calib_logits": np.array([["a", "b"]])}, r"'calib_logits': logits must be real numbers, got dtype <U1"),
    ({**GOOD, "test_logits": GOOD["test_logits"][:, :9]}, r": 'calib_logits' has 10 classes but 'test_logits' has 9"),
])
def test_logits_errors_name_the_file_and_array(tmp_path: Path, logits: dict, match: str) -> None:
    path = save_npz(tmp_path / "logits.npz", **logits)
    with pytest.raises(ImportedModelError, match=match) as caught:
        load_logits(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("labels", "match"), [
    ({"calib_labels": GOOD["calib_labels"]}, r"no array 'test_labels'"),
    ({**GOOD, "calib_labels": GOOD["calib_labels"].reshape(-1, 1)}, r"'calib_labels': labels must be 1-D"),
    ({**GOOD, "test_labels": np.array([], np.int64)}, r"'test_labels': the split is empty"),
    ({**GOOD, "test_labels": np.full(20, 1.5)}, r"'test_labels': labels must be integers, got dtype float64"),
    ({**GOOD, "calib_labels": np.full(30, np.nan)}, r"'calib_labels': labels must be integers"),
    ({**GOOD, "calib_labels": -GOOD["calib_labels"] - 1}, r"'calib_labels': labels must be >= 0, found -"),
])
def test_label_errors_name_the_file_and_array(tmp_path: Path, labels: dict, match: str) -> None:
    path = save_npz(tmp_path / "labels.npz", **labels)
    with pytest.raises(ImportedModelError, match=match) as caught:
        load_labels(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_integral_float_labels_are_accepted(tmp_path: Path) -> None:
    labels = load_labels(save_npz(tmp_path / "l.npz", calib_labels=np.array([0.0, 3.0]), test_labels=np.array([1])))
    assert labels.splits["calib"].tolist() == [0, 3] and labels.splits["calib"].dtype == np.int64


def test_logits_and_labels_that_disagree(tmp_path: Path) -> None:
    logits = load_logits(save_npz(tmp_path / "logits.npz", **GOOD))
    short = load_labels(save_npz(tmp_path / "short.npz", calib_labels=GOOD["calib_labels"][:-1],
                                 test_labels=GOOD["test_labels"]))
    with pytest.raises(ImportedModelError, match=r"logits.npz: 'calib_logits' has 30 samples but .*short.npz "
                                                 r"'calib_labels' has 29"):
        imported_scores(logits, short)
    outside = load_labels(save_npz(tmp_path / "outside.npz", calib_labels=GOOD["calib_labels"],
                                   test_labels=np.where(np.arange(20) < 2, 10, GOOD["test_labels"])))
    with pytest.raises(ImportedModelError, match=r"outside.npz: 'test_labels' has 2 labels outside \[0, 10\)"):
        imported_scores(logits, outside)
    labels = load_labels(save_npz(tmp_path / "labels.npz", **GOOD))
    with pytest.raises(ImportedModelError, match=r"logits.npz: 'calib_logits' has 10 classes, the study has 100"):
        imported_scores(logits, labels, num_classes=100)
    assert set(split_scores(logits.splits, labels.splits, "a", "b", 10)) == {"calib", "test"}


def test_unreadable_sources(tmp_path: Path) -> None:
    with pytest.raises(ImportedModelError, match=r"nothing.npz: no such file or directory"):
        load_logits(tmp_path / "nothing.npz")
    (tmp_path / "logits.csv").write_text("1,2\n")
    with pytest.raises(ImportedModelError, match=r"logits.csv: expected an .npz file or a directory"):
        load_logits(tmp_path / "logits.csv")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ImportedModelError, match=r"broken.npz: not a readable .npz file"):
        load_logits(tmp_path / "broken.npz")
    both = tmp_path / "both"
    both.mkdir()
    for name in ("calib_logits", "test_logits"):
        np.save(both / f"{name}.npy", GOOD[name])
    (both / "calib_logits.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportedModelError, match=r"both: needs exactly one of calib_logits.npy, "
                                                 r"calib_logits.parquet; found 2"):
        load_logits(both)
    with pytest.raises(ImportedModelError, match=r"both: needs exactly one of calib_labels.npy"):
        load_labels(both)


def _summaries_equal(first, second) -> bool:  # type: ignore[no-untyped-def]
    return (first.classes == second.classes and np.array_equal(first.prediction, second.prediction)
            and all(np.array_equal(first.confidences[k], second.confidences[k]) for k in first.confidences))


@pytest.mark.parametrize("layout", ["npy", "npz"])
def test_stored_summaries_are_the_summaries_and_keyed_by_content(tmp_path: Path, layout: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading writes nothing; once stored, the next load takes each split's summary from the cache (equal to
    summarising, the file not summarised again); changed contents or a damaged entry are summarised afresh."""
    import nets.models._imported
    from nets.models._imported import store_summaries

    cache = tmp_path / "cache"
    source = tmp_path / "logits"
    data = {"calib_logits": RNG.normal(0, 4, (30, 50)), "test_logits": RNG.normal(0, 4, (20, 50))}

    def write(values: dict[str, np.ndarray]) -> Path:
        if layout == "npz":
            return save_npz(tmp_path / "logits.npz", **values)
        source.mkdir(exist_ok=True)
        for name, array in values.items():
            np.save(source / f"{name}.npy", array)
        return source

    path = write(data)
    fresh = load_logits(path, cache)
    assert not cache.exists()  # validation writes nothing
    store_summaries(fresh, cache)
    assert len(list((cache / "summaries").glob("*.npz"))) == 2
    calls = []
    monkeypatch.setattr(nets.models._imported, "summarize", lambda *a: calls.append(a) or pytest.fail("summarised again"))
    again = load_logits(path, cache)
    assert again.digest == fresh.digest and not calls
    assert all(_summaries_equal(again.splits[s], fresh.splits[s]) for s in ("calib", "test"))
    monkeypatch.undo()
    changed = {**data, "test_logits": data["test_logits"][::-1].copy()}
    reread = load_logits(write(changed), cache)
    assert reread.digest != fresh.digest
    assert reread.splits["test"].prediction.tolist() == changed["test_logits"].argmax(axis=1).tolist()
    assert _summaries_equal(reread.splits["calib"], fresh.splits["calib"])
    for stored in (cache / "summaries").glob("*.npz"):
        stored.write_bytes(stored.read_bytes()[:-7])  # truncated: refused, summarised again
    assert _summaries_equal(load_logits(write(data), cache).splits["test"], fresh.splits["test"])
