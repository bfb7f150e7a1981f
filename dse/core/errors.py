"""The spec error and its one message shape, shared by the spec loader and the modules it calls."""

from __future__ import annotations

from costmodel import UserError


class SpecError(UserError):
    """A study spec that cannot be used; the message names the file and key."""


def check(ok: bool, where: str, message: str) -> None:
    """Raise SpecError(f"{where}: {message}") unless `ok`: the one shape of every spec error."""
    if not ok:
        raise SpecError(f"{where}: {message}")
