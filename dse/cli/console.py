"""What the CLI prints and where: the root flags (--quiet, --verbose, --json) and rich progress that stays quiet
when not on a terminal. With --json, stdout carries only the JSON result; messages go to stderr."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import typer


@dataclass
class Settings:
    """The root flags, set once by the root callback."""

    quiet: bool = False
    verbose: bool = False
    json: bool = False


SETTINGS = Settings()


def say(text: str, verbose_only: bool = False) -> None:
    """A message for people: nothing with --quiet; on stderr with --json; `verbose_only` needs --verbose."""
    if SETTINGS.quiet or (verbose_only and not SETTINGS.verbose):
        return
    typer.echo(fit_width(text), err=SETTINGS.json)


def fit_width(text: str) -> str:
    """Lines wider than the terminal wrapped at spaces (narrower ones, such as a table's, kept as they are; nothing
    wrapped when there is no width to fit: see `terminal_width`)."""
    import textwrap

    from dse.cli.tables import terminal_width

    width = terminal_width()
    if width is None:
        return text
    return "\n".join(line if len(line) <= width else "\n".join(
        textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)) for line in text.splitlines())


def plural(count: int, noun: str) -> str:
    """'1 trial', '8 trials': a count with its noun in the right number (nouns that take an s)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def result(data: dict[str, Any]) -> None:
    """The machine-readable result on stdout (only with --json)."""
    if SETTINGS.json:
        typer.echo(json.dumps(data, indent=2, default=float))


def _interactive() -> bool:
    return not SETTINGS.quiet and sys.stderr.isatty()


Message = str | Callable[[], str] | None  # a callable is called only when its message is shown


@contextmanager
def progress_bar(description: str, total: int | None = None, enabled: bool = True,
                 echo: bool = False) -> Iterator[Callable[[Message], None]]:
    """A rich progress bar (with `total`) or spinner on stderr; yields `advance(message)`. Off the terminal (or not
    `enabled`) it draws nothing and `advance` prints each message (with `echo`, else only with --verbose). A message
    given as a function is made only when it is shown."""
    if not (enabled and _interactive()):
        def print_message(message: Message = None) -> None:
            if message and not SETTINGS.quiet and (echo or SETTINGS.verbose):
                say(message() if callable(message) else message)

        yield print_message
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()] if total else [SpinnerColumn(), TextColumn("{task.description}"),
                                                   TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(message: Message = None) -> None:
            if total:
                bar.advance(task)
            if message:
                bar.update(task, description=f"{description}: {message() if callable(message) else message}")
        yield advance
