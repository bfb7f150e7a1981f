"""`dse cost`: per-layer table, SRAM sweep and one-line errors."""

from __future__ import annotations

from typer.testing import CliRunner

from dse.cli import app

runner = CliRunner()


def test_cost_prints_layers_and_breakdown() -> None:
    result = runner.invoke(app, ["cost", "lenet", "--sram", "16KiB", "--bits", "8", "--width", "0.5"])
    assert result.exit_code == 0, result.output
    for text in ("conv1", "fc2", "SRAM weight buffer", "DRAM", "total", "8-bit", "input 4096 + weight 8192"):
        assert text in result.output


def test_cost_sweep_lists_powers_of_two() -> None:
    result = runner.invoke(app, ["cost", "mini1", "--sweep-sram", "4KiB..32KiB", "--rule", "energy"])
    assert result.exit_code == 0, result.output
    sizes = [line.split()[0] for line in result.output.splitlines()[2:]]
    assert sizes == ["4.000", "8.000", "16.000", "32.000"]


def test_cost_errors_are_one_line() -> None:
    for args, text in [
        (["cost", "nonet"], "unknown network 'nonet'"),
        (["cost", "lenet", "--partition", "0.5,0.6,0.1"], "partition fractions must sum to at most 1"),
        (["cost", "lenet", "--sram", "16 apples"], "expected a number with an optional unit"),
        (["cost", "lenet", "--sweep-sram", "64KiB..4KiB"], "LO (65536 B) exceeds HI (4096 B)"),
        (["cost", "lenet", "--sram", "64B"], "fits no tiling"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert text in result.output and "Traceback" not in result.output


def test_cost_prints_the_chosen_mapping_per_layer() -> None:
    result = runner.invoke(app, ["cost", "lenet", "--dataflow", "weight_stationary", "--rule", "energy"])
    assert result.exit_code == 0, result.output
    assert "dataflow weight_stationary" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.split()[:2] in (["conv1", "conv"], ["fc1", "fc"])]
    assert [row[2] for row in rows] == ["weight_stationary", "weight_stationary"]
    diannao = runner.invoke(app, ["cost", "lenet", "--dataflow", "diannao"])
    assert diannao.exit_code == 0 and "total 294.072 uJ" in diannao.output  # the first version's LeNet price


def test_cost_rejects_an_unknown_dataflow() -> None:
    result = runner.invoke(app, ["cost", "lenet", "--dataflow", "row_stationary"])
    assert result.exit_code == 2
    assert "Invalid value for '--dataflow'" in result.output
