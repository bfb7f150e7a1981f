"""Where mechanisms' stages go (`Place`), a mechanism bound to a spec's section of it (`Bound`), and the set of
mechanisms specs are parsed with (`register`, `registry`), in shaping order.

Apart from the `Mechanism` interface (`dse.core.mechanism`), whose hooks name the spec's and the problem's types, so
that the spec loader reads the registry without importing the interface: the imports stay one-way. Mechanisms are
typed `Any` here for that reason (each is a `dse.Mechanism`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

SectionT = TypeVar("SectionT")
M = TypeVar("M")  # a `dse.Mechanism`
CORE_SECTIONS = frozenset({"name", "description", "version", "models", "data", "training", "nets", "accelerator",
                           "search"})  # spec keys a mechanism cannot be named after


class Place(enum.IntEnum):
    """Where a mechanism's stages go. Mechanisms shape a trial's cascade in this order, starting from the big net
    alone; within one place, after the mechanisms each names in `after`, then by name."""

    BIG = 1  # the big net's own stages: its last stage becomes several (channel fractions, bit-widths)
    TRUNK = 2  # stages on the big net's trunk, placed before the big net's stages (side branches)
    FRONT = 3  # other networks in front of the stages placed so far, or replacing them (smaller networks)
    INSIDE = 4  # changes stages already placed and adds none (per-input work skipping)


@dataclass(frozen=True)
class Bound(Generic[SectionT]):
    """A mechanism bound to one spec's section of it."""

    mechanism: Any  # a dse.Mechanism[SectionT]
    section: SectionT

    @property
    def name(self) -> str:
        """The mechanism's name (its spec section)."""
        return self.mechanism.name

    @property
    def enabled(self) -> bool:
        """Whether the spec switches the mechanism on."""
        return self.mechanism.enabled(self.section)


def check_declaration(mechanism: Any) -> None:
    """Raise TypeError when `mechanism`'s class does not declare what the core needs (name, Section, place, after)."""
    cls = type(mechanism)
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier() or name in CORE_SECTIONS:
        raise TypeError(f"{cls.__name__}.name must be an identifier other than {', '.join(sorted(CORE_SECTIONS))}, "
                        f"got {name!r}")
    section = getattr(cls, "Section", None)
    if not (isinstance(section, type) and dataclasses.is_dataclass(section)):
        raise TypeError(f"{cls.__name__}.Section must be a dataclass whose defaults mean off, got {section!r}")
    if not isinstance(getattr(cls, "place", None), Place):
        raise TypeError(f"{cls.__name__}.place must be a dse.Place ({', '.join(p.name for p in Place)}), "
                        f"got {getattr(cls, 'place', None)!r}")
    if not (isinstance(cls.after, frozenset) and all(isinstance(other, str) for other in cls.after)):
        raise TypeError(f"{cls.__name__}.after must be a frozenset of mechanism names, got {cls.after!r}")


def shaping_order(mechanisms: Iterable[Any]) -> list[Any]:
    """`mechanisms` in the order they shape a cascade: by place; within a place, after the ones each names in
    `after`, then by name. Raises TypeError when `after` names a mechanism of a later place, or forms a cycle."""
    pending = sorted(mechanisms, key=lambda m: (m.place, m.name))
    places = {m.name: m.place for m in pending}
    for m in pending:
        later = sorted(other for other in m.after if places.get(other, m.place) > m.place)
        if later:
            raise TypeError(f"mechanism '{m.name}' ({m.place.name}) cannot shape after '{later[0]}' "
                            f"({places[later[0]].name}), which shapes later")
    ordered: list[Any] = []
    while pending:
        waiting = {m.name for m in pending}
        ready = next((m for m in pending if not (m.after & (waiting - {m.name}))), None)
        if ready is None or ready.place != pending[0].place:
            raise TypeError(f"mechanisms {sorted(waiting)} wait for one another (their `after` forms a cycle)")
        ordered.append(ready)
        pending.remove(ready)
    return ordered


_REGISTRY: dict[str, Any] = {}


def register(mechanism: M) -> M:
    """Add `mechanism` to the mechanisms specs are parsed with (replacing one of the same name); returns it."""
    check_declaration(mechanism)
    _REGISTRY[mechanism.name] = mechanism  # type: ignore[attr-defined]
    return mechanism


def unregister(name: str) -> None:
    """Remove a mechanism from the registry (for tests that register one of their own)."""
    _REGISTRY.pop(name, None)


def registry() -> dict[str, Any]:
    """Every registered mechanism by name, in shaping order (what `parse_spec` binds when given no mechanisms)."""
    return {m.name: m for m in shaping_order(_REGISTRY.values())}
