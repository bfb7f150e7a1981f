"""The command classes of every `dse` command: help that reads as click's (TEXT, INTEGER, PATH, [a|b]; flags with no
type; NET and [SPEC] for arguments), and the root flags (--quiet, --verbose, --json) accepted after the command too.

Typer builds its parameters itself, so the command classes restyle them once they exist rather than through each
declaration.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

_TYPE_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN", Path: "PATH"}


def click_type_name(param: TyperArgument | TyperOption) -> str:
    """What click prints for a parameter's type: TEXT, INTEGER RANGE, PATH, [fastest|energy|dram], ..."""
    descriptor = param.type_descriptor
    if descriptor.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in descriptor.choices or ()) + "]"
    annotation = descriptor.annotation
    name = _TYPE_NAMES.get(annotation) or getattr(annotation, "__name__", str(annotation)).upper()
    return f"{name} RANGE" if descriptor.is_ranged else name


class ClickStyleOption(TyperOption):
    """An option whose help shows its type as click does."""

    def display_type(self, ctx: Any) -> str:
        """TEXT, INTEGER, PATH, [a|b] (flags show none: click leaves them out)."""
        return click_type_name(self)


class ClickStyleArgument(TyperArgument):
    """An argument named in capitals, as click names it: NET when required, [SPEC] when optional."""

    def display_type(self, ctx: Any) -> str:
        """TEXT, PATH, ... (for readers of the parameter, such as a generated reference)."""
        return click_type_name(self)

    def display_type_rich(self, ctx: Any) -> str:
        """Nothing beside the name in help, as click prints an argument: the help text says what it takes."""
        return ""

    @property
    def display_name_raw(self) -> str:
        """NET: the metavar if one was given, else the name in capitals."""
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        """NET on the usage line when required, [SPEC] when optional (typer writes {net})."""
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


def restyle(param: Any) -> None:
    """Give a typer parameter its click-style subclass (same state, other rendering)."""
    if type(param) is TyperOption:
        param.__class__ = ClickStyleOption
    elif type(param) is TyperArgument:
        param.__class__ = ClickStyleArgument


class DseCommand(TyperCommand):
    """A command with click-style help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            restyle(param)


def _set_root_flag(ctx: Any, param: Any, value: bool) -> bool:
    """A root flag given after the command: the same setting as before it."""
    if value:
        from dse.cli.console import SETTINGS

        setattr(SETTINGS, param.name, True)
    return value


class DseGroup(TyperGroup):
    """A group with click-style help whose own flags (not eager ones such as --version) every command under it also
    accepts after its name: `dse run --json` is `dse --json run`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            restyle(param)
        flags = [p for p in self.params if isinstance(p, TyperOption) and p.is_flag and not p.is_eager
                 and p.expose_value]
        for command in _leaves(self):
            taken = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            for flag in flags:
                if not taken & set(flag.opts):
                    command.params.append(_root_flag_copy(flag))


def _root_flag_copy(flag: TyperOption) -> TyperOption:
    """The root flag as an option of a command: it sets the root setting instead of reaching the command."""
    copied = copy.copy(flag)
    copied.expose_value = False
    copied.callback = _set_root_flag
    return copied


def _leaves(group: TyperGroup) -> list[Any]:
    """Every command under a group, through its sub-groups."""
    leaves = []
    for command in group.commands.values():
        leaves += _leaves(command) if isinstance(command, TyperGroup) else [command]
    return leaves
