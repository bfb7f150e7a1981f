"""The `dse` command line: the root app, the one place where errors meant for the user become one line and exit 2.

The application layer: it may import every other package, and none imports it. Core commands live in this package
(one module per group); each registered mechanism's commands live beside it, in `<mechanism package>.cli`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Annotated, Any, Callable

import typer

from costmodel import UserError
from dse.cli.commands import DseCommand, DseGroup

if TYPE_CHECKING:
    from dse.core.mechanism import Mechanism

# Plain click help (no rich markup): every bracket in a help text, such as [models.NAME], prints as written.
app = typer.Typer(help="Design-space exploration of input-adaptive DNN inference, priced by an accelerator "
                       "energy model.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  cls=DseGroup, rich_markup_mode=None)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into one line on stderr and exit code 2, Ctrl-C into one line and exit code 130, without a
    traceback; anything else is a bug."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
    return wrapper


def _version(value: bool) -> None:
    if value:  # the one version number: pyproject.toml's, as the installed package's metadata carries it
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"adaptive-dse {version('adaptive-dse')}")
        except PackageNotFoundError:
            typer.echo("adaptive-dse (not installed: no version; install with pip install .)")
        raise typer.Exit()


@app.callback()
def root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print training lines and timings")] = False,
    json: Annotated[bool, typer.Option("--json", help="The result as JSON on stdout (messages on stderr)")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit")] = False,
) -> None:
    """Design-space exploration of input-adaptive DNN inference, priced by an accelerator energy model."""
    from dse.cli.console import SETTINGS

    SETTINGS.quiet, SETTINGS.verbose, SETTINGS.json = quiet, verbose, json


def mechanism_commands(mechanism: Mechanism) -> list[tuple[str, Callable[..., Any]]]:
    """The (name, command) pairs of `COMMANDS` in the `cli` module of the package defining `mechanism`, if it has one
    (a mechanism defined in a plain module adds none). Found by name, so a mechanism never imports the CLI."""
    package = type(mechanism).__module__
    if not hasattr(sys.modules[package], "__path__") or importlib.util.find_spec(f"{package}.cli") is None:
        return []
    return list(importlib.import_module(f"{package}.cli").COMMANDS)


def _register() -> None:
    """Every command: the core's, then each registered mechanism's, each wrapped by `user_errors`."""
    import dse.mechanisms  # noqa: F401  (registers the built-in mechanisms)
    from dse.cli import cache
    from dse.cli.cost import cost
    from dse.cli.dashboard import dashboard
    from dse.cli.export import trials
    from dse.cli.study import pareto, report, run, specs, studies
    from dse.cli.worker import worker
    from dse.core.registry import registry

    commands = [("run", run), ("worker", worker), ("report", report), ("pareto", pareto), ("trials", trials),
                ("dashboard", dashboard), ("studies", studies), ("specs", specs), ("cost", cost)]
    commands += [command for mechanism in registry().values() for command in mechanism_commands(mechanism)]
    for name, command in commands:
        app.command(name, cls=DseCommand)(user_errors(command))
    cache_app = typer.Typer(help="Share the score cache between machines.", no_args_is_help=True, cls=DseGroup,
                            rich_markup_mode=None)
    cache_app.command("export", cls=DseCommand)(user_errors(cache.export))
    cache_app.command("import", cls=DseCommand)(user_errors(cache.import_))
    app.add_typer(cache_app, name="cache")


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: a bad command line is one line naming the option and exit code 2 too."""
    click_error = typer.BadParameter.__mro__[2]  # ClickException, wherever this typer keeps click

    try:
        code = app(args=argv, prog_name="dse", standalone_mode=False)
    except click_error as exc:
        name = getattr(getattr(exc, "param", None), "opts", None)
        where = f"{name[0]}: " if name and name[0] not in exc.format_message() else ""
        message = " ".join(exc.format_message().split())
        if type(exc).__name__ == "NoArgsIsHelpError":  # `dse` or `dse cache` alone: its help, as click shows it
            exc.show()
        elif message:
            typer.echo(f"error: {where}{message}", err=True)
        code = exc.exit_code
    except typer.Abort:
        typer.echo("interrupted", err=True)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
