"""Minimum-bit-width characterization, the 1% merge rule, shared-threshold cascades and `dse characterize`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from dse.mechanisms.bitwidth.jahier2018 import (BitwidthError, characterize, fit_precision_cascade,
                                                fit_shared_threshold, merge_bars, shared_threshold_curve,
                                                validate_bitwidth_set)
from dse import evaluate_cascade
from nets import Dataset


def reference_minimum_index(correct: np.ndarray, correct_float: np.ndarray) -> np.ndarray:
    """Slow per-sample rule: the smallest k with the sample correct at every width from k up; -1 if wrong in float."""
    n_widths, n_samples = correct.shape
    out = np.full(n_samples, -1)
    for i in range(n_samples):
        if correct_float[i]:
            out[i] = next((k for k in range(n_widths) if correct[k:, i].all()), n_widths)
    return out


def test_characterize_matches_reference_and_is_monotone_consistent() -> None:
    rng = np.random.default_rng(0)
    widths = (2, 4, 6, 8, 16)
    correct = rng.random((len(widths), 3000)) < np.linspace(0.3, 0.97, len(widths))[:, None]
    correct_float = rng.random(3000) < 0.95
    result = characterize(correct, correct_float, widths)
    np.testing.assert_array_equal(result.minimum_index, reference_minimum_index(correct, correct_float))
    for i in np.flatnonzero(correct_float):
        minimum = result.minimum_index[i]
        assert correct[minimum:, i].all() and (minimum == 0 or not correct[minimum - 1, i])
        for k in range(len(widths)):  # correct at b_k and above implies counted at <= b_k
            if correct[k:, i].all():
                assert minimum <= k
    assert result.counts.sum() == correct_float.sum() and np.isclose(result.fractions.sum(), 1.0)
    assert result.labels == ["2b", "4b", "6b", "8b", "16b", "float"]


def test_characterize_small_golden() -> None:
    correct = np.array([[1, 0, 1, 0, 1], [1, 1, 0, 0, 1], [1, 1, 1, 0, 0]], dtype=bool)  # rows: 4, 8, 16 bits
    result = characterize(correct, np.array([1, 1, 1, 1, 0], dtype=bool), (4, 8, 16))
    # sample 2 is right at 4 bits but wrong at 8: its minimum is 16 under the "correct from b upward" rule
    np.testing.assert_array_equal(result.minimum_index, [0, 1, 2, 3, -1])
    np.testing.assert_array_equal(result.counts, [1, 1, 1, 1])


def test_merge_bars_follows_the_one_percent_rule() -> None:
    widths = (2, 3, 4, 8, 12, 16)
    fractions = [0.005, 0.003, 0.90, 0.08, 0.004, 0.002, 0.006]  # last: float only, never a candidate
    merged = merge_bars(np.array(fractions), widths)
    assert list(merged) == [4, 8]
    assert merged[4] == pytest.approx(0.908) and merged[8] == pytest.approx(0.08)
    # CaffeNet's Fig. 2 shape: negligible bars below 8 and at 32 -> {8, 16}
    assert list(merge_bars(np.array([0.0005, 0.929, 0.07, 0.0005]), (4, 8, 16, 32))) == [8, 16]
    with pytest.raises(BitwidthError, match="no bit-width bar reaches 1%"):
        merge_bars(np.array([0.004, 0.004, 0.992]), (4, 8))


@pytest.mark.parametrize(("bits", "match"), [
    ([], "bit-width set is empty"),
    ([0, 8], "bit-width must be an integer in 2..32, got 0"),
    ([8, 33], "got 33"),
    ([8, 8], "strictly increasing, got 8 after 8 in \\[8, 8\\]"),
    ([16, 8], "strictly increasing, got 8 after 16"),
])
def test_bad_bitwidth_sets(bits: list[int], match: str) -> None:
    with pytest.raises(BitwidthError, match=match):
        validate_bitwidth_set(bits)
    assert validate_bitwidth_set([4, 8, 16]) == (4, 8, 16)


@pytest.mark.parametrize("n_stages", [1, 2, 3, 4])
def test_shared_threshold_curve_matches_the_cascade_evaluator(n_stages: int) -> None:
    rng = np.random.default_rng(n_stages)
    margins = rng.random((n_stages, 400)).astype(np.float32)
    margins[:, :20] = 0.5  # ties with a threshold
    correct = rng.random((n_stages, 400)) < 0.8
    energy = rng.uniform(1, 10, n_stages)
    thresholds = np.concatenate([[0.0, 0.5, 1.0, np.inf], rng.random(30)])
    accuracy, energy_pj = shared_threshold_curve(margins, correct, energy, thresholds)
    reference = evaluate_cascade(margins, correct, energy, np.zeros(n_stages),
                                 np.repeat(thresholds[:, None], n_stages - 1, axis=1))
    np.testing.assert_allclose(accuracy, reference.accuracy)
    np.testing.assert_allclose(energy_pj, reference.energy_pj)


def test_fit_shared_threshold_is_the_smallest_meeting_the_drop() -> None:
    rng = np.random.default_rng(3)
    margins = rng.random((2, 2000))
    correct = np.vstack([rng.random(2000) < 0.5 + 0.5 * margins[0], rng.random(2000) < 0.99])
    reference = 0.985
    threshold = fit_shared_threshold(margins, correct, reference, max_drop_pct=1.0)
    grid = np.sort(np.concatenate([[0.0], margins[0]]))
    accuracy, _ = shared_threshold_curve(margins, correct, np.zeros(2), grid)
    assert accuracy[grid == threshold][0] >= reference - 0.01
    assert (accuracy[grid < threshold] < reference - 0.01).all()
    assert fit_shared_threshold(margins, correct, 1.0, max_drop_pct=0.1) is None  # the last stage alone loses 1%


def test_fit_precision_cascade_picks_the_cheapest_feasible_subset() -> None:
    """4-bit is right on 80 of 100 samples, confidently (margin 0.9) only there; 8-bit misses one of those 80."""
    correct = np.ones((3, 100), dtype=bool)
    correct[0, 80:] = False
    correct[1, 0] = False
    margins = np.vstack([np.where(correct[0], 0.9, 0.1), np.full(100, 0.95), np.full(100, 0.99)])
    best = fit_precision_cascade(margins, correct, [1.0, 2.0, 4.0], (4, 8, 16), reference_accuracy=1.0)
    # {4, 8} at T = 0.9: 20% escalate, all then right: cost 1 + 0.2 * 2 beats {8} (2, 99%) and {4, 16} (1.8)
    assert best is not None and best.bitwidths == (4, 8) and best.threshold == pytest.approx(0.9)
    assert best.accuracy == 1.0 and best.energy_pj == pytest.approx(1.4)
    single = fit_precision_cascade(margins, correct, [1.0, 2.0, 4.0], (4, 8, 16), 1.0, max_stages=1)
    assert single is not None and single.bitwidths == (8,) and single.energy_pj == 2.0
    assert fit_precision_cascade(margins[:1], correct[:1], [1.0], (4,), 1.0) is None


TINY_SPEC = """
version = 2
name = "tiny-bits"
[data]
dataset = "npz"
[training]
epochs = 1
batch_size = 128
[nets]
big = "mini8"
[little]
nets = ["mini7"]
"""


@pytest.fixture()
def app() -> typer.Typer:
    """The `dse` app, whose `characterize` command the bit-width mechanism brings."""
    from dse.cli import app as application

    return application


def test_characterize_command(app: typer.Typer, tmp_path: Path, mnist5k: Dataset) -> None:
    spec, data = tmp_path / "tiny.toml", tmp_path / "digits.npz"
    spec.write_text(TINY_SPEC)
    images, labels = mnist5k.split("train")
    np.savez(data, images=images[:600], labels=labels[:600])
    args = ["characterize", str(spec), "--data", str(data), "--bits", "2,4,8,16",
            "--cache-dir", str(tmp_path / "cache"), "--jobs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = lines.index(next(line for line in lines if line.split()[:2] == ["width", "accuracy"]))
    assert [line.split()[0] for line in lines[header + 1:header + 6]] == ["2b", "4b", "8b", "16b", "float"]
    assert lines[-1].startswith("candidate bit-widths (bars < 1% merged upward): ")


@pytest.mark.parametrize(("bits", "message"), [
    ("0,8", "error: bit-width must be an integer in 2..32, got 0"),
    ("8,40", "error: bit-width must be an integer in 2..32, got 40"),
    ("8,4", "error: bit-widths must be strictly increasing, got 4 after 8 in [8, 4]"),
    ("", "error: bit-width set is empty"),
    ("4,x", "error: --bits '4,x': expected comma-separated integers"),
])
def test_characterize_bad_bits(app: typer.Typer, bits: str, message: str) -> None:
    result = CliRunner().invoke(app, ["characterize", "quickstart", "--bits", bits])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(message) and "Traceback" not in result.output


def test_characterize_bad_spec(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["characterize", str(tmp_path / "nosuch.toml")])
    assert result.exit_code == 2 and "no such spec file" in result.output
