"""The run's tables without pandas: `csv_text` writes what pandas writes, `text_table` aligns the console front."""

from __future__ import annotations

import io
import math

import pandas as pd

from dse.cli.study import text_table
from dse.core.output import csv_text

ROWS = [{"trial": 7, "cascade": "mini2 > lenet", "thresholds": "0.2355/0.5", "calib_energy_j": 6.066740194773888e-05,
         "calib_accuracy_loss_pct": 1.0000000000000009, "feasible": True, "note": 'quote " and, comma'},
        {"trial": 0, "cascade": "mini1 > lenet", "thresholds": "", "calib_energy_j": 1e-4, "feasible": False,
         "calib_accuracy_loss_pct": math.nan, "note": None, "sram": "16 KiB"}]


def test_csv_text_writes_what_pandas_writes() -> None:
    rows = [dict(row, little="mini1") for row in ROWS]  # no integer column with a gap (pandas would write 3.0)
    assert csv_text(rows) == pd.DataFrame(rows).to_csv(index=False)


def test_csv_text_reads_back_as_the_rows() -> None:
    text = csv_text(ROWS)
    assert text.splitlines()[0].split(",")[-1] == "sram"  # columns: the union, first seen first
    frame = pd.read_csv(io.StringIO(text))
    pd.testing.assert_frame_equal(frame, pd.read_csv(io.StringIO(pd.DataFrame(ROWS).to_csv(index=False))))
    assert frame["calib_energy_j"].tolist() == [6.066740194773888e-05, 1e-4]  # floats round-trip exactly
    assert csv_text([]) == pd.DataFrame([]).to_csv(index=False)


def test_text_table_right_aligns_every_column() -> None:
    lines = text_table(["trial", "calib energy (µJ)"], [["7.8", "60.67"], ["0.15", "124.5"]]).splitlines()
    assert lines == ["trial  calib energy (µJ)", "  7.8              60.67", " 0.15              124.5"]
