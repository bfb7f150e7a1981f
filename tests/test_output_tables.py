"""The run's tables without pandas: `csv_text` writes what pandas writes, floats without binary noise."""

from __future__ import annotations

import io
import math

import pandas as pd

from dse.core.output import CSV_DIGITS, csv_text

ROWS = [{"trial": 7, "cascade": "mini2 > lenet", "thresholds": "0.2355/0.5", "calib_energy_j": 6.066740194773888e-05,
         "calib_accuracy_loss_pct": 1.0000000000000009, "feasible": True, "note": 'quote " and, comma'},
        {"trial": 0, "cascade": "mini1 > lenet", "thresholds": "", "calib_energy_j": 1e-4, "feasible": False,
         "calib_accuracy_loss_pct": math.nan, "note": None, "sram": "16 KiB"}]


def _rounded(row: dict) -> dict:
    return {k: float(f"{v:.{CSV_DIGITS}g}") if isinstance(v, float) else v for k, v in row.items()}


def test_csv_text_writes_what_pandas_writes_of_the_rounded_rows() -> None:
    rows = [dict(row, little="mini1") for row in ROWS]  # no integer column with a gap (pandas would write 3.0)
    assert csv_text(rows) == pd.DataFrame([_rounded(r) for r in rows]).to_csv(index=False)


def test_csv_floats_carry_no_binary_noise_and_integers_stay_exact() -> None:
    rows = [{"loss_pct": 1.0000000000000009, "energy_j": 0.1 + 0.2, "samples": 10**15 + 1, "big": 12345678901234.5,
             "tiny": 6.066740194773888e-05, "flag": True}]
    line = csv_text(rows).splitlines()[1]
    assert line == "1.0,0.3,1000000000000001,12345678900000.0,6.066740195e-05,True"
    for value in (1.0000000000000009, 0.1 + 0.2, 6.066740194773888e-05, 123.456789012345):  # within 10 digits
        written = float(csv_text([{"x": value}]).splitlines()[1])
        assert abs(written - value) <= 5e-10 * abs(value)


def test_csv_text_reads_back_as_the_rows() -> None:
    text = csv_text(ROWS)
    assert text.splitlines()[0].split(",")[-1] == "sram"  # columns: the union, first seen first
    frame = pd.read_csv(io.StringIO(text))
    expected = pd.DataFrame([_rounded(r) for r in ROWS]).to_csv(index=False)
    pd.testing.assert_frame_equal(frame, pd.read_csv(io.StringIO(expected)))
    assert frame["calib_energy_j"].tolist() == [6.066740195e-05, 1e-4]
    assert csv_text([]) == pd.DataFrame([]).to_csv(index=False)
