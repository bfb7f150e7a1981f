"""The CLI's conventions: help as click prints it at 80 columns, root flags after the command, output that fits the
terminal, and the plain-text table helper that makes it fit."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from dse.cli import app
from dse.cli.tables import render_table

runner = CliRunner()


def _commands() -> list[list[str]]:
    """The argument list of every command and group: [], ["run"], ["cache", "export"], ..."""
    found, todo = [], [([], typer.main.get_command(app))]
    while todo:
        path, command = todo.pop()
        found.append(path)
        todo += [([*path, name], sub) for name, sub in getattr(command, "commands", {}).items()]
    return sorted(found)


def _params(path: list[str]) -> list:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command.params


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("path", _commands(), ids=lambda path: " ".join(path) or "dse")
def test_help_at_80_columns_reads_as_click_prints_it(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Usage: " in text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "[]" not in text and "()" not in text, text  # nothing swallowed between brackets
    assert not re.search(r"<(bool|int|str|float|path)[^>]*>", text), text  # click's TEXT, INTEGER, PATH
    assert "{" not in text.splitlines()[0], text  # a required argument reads NET, not {net}
    for param in _params(path):
        if param.help:  # every word of the source help text is printed, brackets included
            assert _squeezed(param.help) in _squeezed(text), (param.name, param.help)
        if getattr(param, "is_flag", False):
            assert not re.search(re.escape(param.opts[0]) + r" (BOOLEAN|<bool>)", text)


def test_brackets_and_defaults_survive() -> None:
    cost = runner.invoke(app, ["cost", "--help"], env={"COLUMNS": "80"}).output
    assert "[models.NAME]" in cost and "cost [OPTIONS] NET\n" in cost
    assert "--sram TEXT" in cost and "--bits INTEGER" in cost and "--spec PATH" in cost
    assert "[fastest|energy|dram]" in cost
    bits = runner.invoke(app, ["characterize", "--help"], env={"COLUMNS": "80"}).output
    assert "2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]" in bits  # the whole default, not cut
    exits = runner.invoke(app, ["exits-cost", "--help"], env={"COLUMNS": "80"}).output
    assert "[models.*]" in _squeezed(exits) and "[[exits.branch]]" in _squeezed(exits)


@pytest.mark.parametrize("flag", ["--json", "--quiet", "-q", "--verbose", "-v"])
def test_root_flags_are_accepted_after_the_command_too(flag: str) -> None:
    before = runner.invoke(app, [flag, "specs"])
    after = runner.invoke(app, ["specs", flag])
    assert before.exit_code == after.exit_code == 0, after.output
    assert before.output == after.output


def test_run_fits_80_columns(tiny_study: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_study["out"], tmp_path / "out")
    args = ["run", str(tiny_study["spec"]), "--out", "out", "--cache-dir", str(tiny_study["root"] / "cache"),
            "-n", "1", "--jobs", "1", "--verbose"]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    words = " ".join(result.output.split())
    assert "trial.point: a trial is one cascade structure the search drew, with a threshold front" in words
    assert "report: out/report.html" in result.output
    assert "search: 1 trial in" in result.output  # --verbose after the command, and the singular


def test_table_keeps_every_value_when_it_fits() -> None:
    columns = ["trial", "cascade", "calib energy (µJ)", "test loss (pp)"]
    rows = [["7.8", "mini2 > lenet", 60.67, 1.4], ["0.15", "mini1 > lenet", 124.5, 0.0]]
    text = render_table(columns, rows, width=120)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].split() == " ".join(columns).split()
    assert lines[1].split() == ["7.8", "mini2", ">", "lenet", "60.67", "1.4"]
    assert lines[2].split() == ["0.15", "mini1", ">", "lenet", "124.5", "0.0"]
    assert lines[1].index("60.67") + len("60.67") == lines[2].index("124.5") + len("124.5")  # numbers right-aligned
    assert lines[1].index("mini2") == lines[2].index("mini1")  # text left-aligned


@pytest.mark.parametrize("width", [30, 40, 60, 80, 100])
def test_table_never_exceeds_the_width_and_names_what_it_left_out(width: int) -> None:
    columns = ["trial", "cascade", *(f"metric number {i} (unit)" for i in range(12))]
    rows = [[f"{r}.{r + 1}", "mini1 > mini4 > lenet", *(round(1000 / (r + i + 1), 3) for i in range(12))]
            for r in range(5)]
    text = render_table(columns, rows, width=width, drop_first=["metric number 1 "])
    assert max(len(line) for line in text.splitlines()) <= width, text
    table, _, note = text.partition("(left out")
    named = " ".join(note.split()).partition(": ")[2].removesuffix(")")
    missing = named.split(", ") if named else []
    assert set(missing) <= set(columns)
    shown = [c for c in columns if c not in missing]
    assert shown[:2] == ["trial", "cascade"]  # wrapping the text cells comes before losing the label columns
    if missing:
        assert "metric number 1 (unit)" in missing  # the expendable column goes first
    else:
        assert "(left out" not in text
    header_words = [word for c in shown for word in c.split()]
    assert sorted(header_words) == sorted(table.split()[:len(header_words)])  # every shown header, whole
    for row in rows:  # every value of every shown numeric column is printed
        for column, value in zip(columns, row):
            if column in shown and column not in ("trial", "cascade"):
                assert str(value) in table.split(), (column, value)


@pytest.mark.parametrize("argv", [[], ["cache"]])
def test_a_group_alone_prints_its_help_not_an_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from dse.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    shown = capsys.readouterr().err
    assert "Usage: " in shown and "\nCommands:\n" in shown and "error:" not in shown


def test_a_storage_is_shown_as_typed_without_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dse.cli.study import shown_storage

    monkeypatch.chdir(tmp_path)
    assert shown_storage(f"sqlite:///{tmp_path / 'out' / 'study.db'}") == "out/study.db"
    assert shown_storage("journal:////elsewhere/j.log") == "/elsewhere/j.log"
    assert shown_storage("postgresql+psycopg2://dse:s3cr:et@db.example:5432/x") == \
        "postgresql+psycopg2://dse:***@db.example:5432/x"


@pytest.mark.parametrize("args", [["cost", "lenet"], ["cost", "mini1", "--sweep-sram", "4KiB..512KiB"]])
def test_cost_fits_80_columns_and_keeps_the_energy(args: list[str]) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output
    assert "energy_uJ" in result.output.split("(left out")[0]
    whole = runner.invoke(app, args)  # into a file or pipe: every column, whole lines
    assert "(left out" not in whole.output and "dram_KiB" in whole.output
