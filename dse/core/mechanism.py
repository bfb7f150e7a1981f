"""The typed interface every mechanism implements, where its stages go, and the set of mechanisms specs are parsed with.

A mechanism declares its spec section (a frozen dataclass whose defaults mean "off"), where its stages go in the
cascade (`place`, and `after`: the mechanisms whose choices it reads), the variants it needs, its choices in the
search space (the cascade's structure: the thresholds are the core's), baselines and report panels. The core never
names a mechanism. `parse_spec` binds the mechanisms it knows into the spec, in shaping order (`shaping_order`);
nothing after parsing reads the registry. The built-in mechanisms live in `dse.mechanisms` and register themselves
when `dse` is imported; register one of your own with `register(MyMechanism())` before parsing a spec that uses it,
or pass the mechanisms to `parse_spec` explicitly.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from dse.core.problem import CascadeProblem
    from dse.core.results import Baseline, Panel
    from dse.core.spec import StudySpec
    from nets import Variant

SectionT = TypeVar("SectionT")
CHOICE_TYPES = (str, int, float)  # what a categorical choice may hold (bool is an int)
CORE_SECTIONS = frozenset({"name", "description", "version", "models", "data", "training", "nets", "accelerator",
                           "search"})  # spec keys a mechanism cannot be named after


class Draw(Protocol):
    """Where a cascade's structure is drawn from: an Optuna trial, the enumerator's probe, a finished trial's replay."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...


class Chooser(Protocol):
    """What a mechanism draws its choices with: categorical and integer choices only, so that a small space can be
    listed completely."""

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[int]) -> int: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[float]) -> float: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[str]) -> str: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...


class Place(enum.IntEnum):
    """Where a mechanism's stages go. Mechanisms shape a trial's cascade in this order, starting from the big net
    alone; within one place, after the mechanisms each names in `after`, then by name."""

    BIG = 1  # the big net's own stages: its last stage becomes several (channel fractions, bit-widths)
    TRUNK = 2  # stages on the big net's trunk, placed before the big net's stages (side branches)
    FRONT = 3  # other networks in front of the stages placed so far, or replacing them (smaller networks)
    INSIDE = 4  # changes stages already placed and adds none (per-input work skipping)


@dataclass(frozen=True)
class Cascade:
    """The stages a trial runs, in order, the last always answering; `reuse`: a stage that widens the stage before
    it pays only for its new channels (increments); `criteria`: (stage, exit criterion) for stages a mechanism gave
    their own criterion (the others take the trial's)."""

    stages: tuple["Variant", ...]
    reuse: bool = False
    criteria: tuple[tuple["Variant", str], ...] = ()


class Mechanism(abc.ABC, Generic[SectionT]):
    """Base class: `validate` and `shape` are required; every other hook defaults to contributing nothing.

    `name` is the spec section ([name]) and the prefix of the mechanism's parameters; `Section` is a frozen dataclass
    (SectionT) whose default instance means "off"; `place` says where its stages go and `after` names the mechanisms
    whose choices it reads (each in its place or an earlier one). `unsupported` names mechanisms this one cannot be
    combined with (the spec loader refuses the pair). `example` is the section the contract suite (tests/contract/)
    runs it with, alone and paired with every other.
    """

    name: ClassVar[str]
    Section: ClassVar[type]
    place: ClassVar[Place]
    after: ClassVar[frozenset[str]] = frozenset()
    unsupported: ClassVar[frozenset[str]] = frozenset()
    example: ClassVar[dict[str, Any]] = {}  # a small section that switches it on (big net lenet, embedded data)
    # Whether the section is part of a study's fingerprint while off: True for the mechanisms that existed when
    # fingerprints were fixed (so their studies still resume); a newer mechanism sets False.
    digest_when_off: ClassVar[bool] = True
    # Section fields added after its studies' fingerprints were fixed, with their defaults: left out of the fingerprint
    # at those values, so that those studies still resume.
    later_fields: ClassVar[dict[str, Any]] = {}
    # Parameter names stored before names were prefixed automatically (local name -> stored name), so that those
    # studies still resume; a new mechanism leaves it empty.
    legacy_names: ClassVar[Mapping[str, str]] = {}

    def enabled(self, section: SectionT) -> bool:
        """True when the spec switches the mechanism on (its section differs from the defaults)."""
        return section != self.Section()

    @abc.abstractmethod
    def validate(self, spec: "StudySpec", section: SectionT) -> None:
        """Raise SpecError (naming `spec.source` and the key) for a section that cannot be used."""

    def check_nets(self, spec: "StudySpec", section: SectionT) -> None:
        """Checks that need the architectures (run before any data is read or any net is trained)."""

    def variants(self, spec: "StudySpec", section: SectionT) -> list["Variant"]:
        """Variants to score before the search starts (others are scored when a trial first draws them)."""
        return []

    @abc.abstractmethod
    def shape(self, chooser: Chooser, spec: "StudySpec", section: SectionT, cascade: Cascade) -> Cascade:
        """This mechanism's choices for one trial, applied to the cascade shaped so far (see `Place`).

        `chooser` names each parameter after the mechanism (`param_name`) and offers categorical and integer choices
        only, so that small spaces can be enumerated."""

    def param_name(self, local: str) -> str:
        """The name parameter `local` is stored under: '<name>.<local>' ('<name>' for ''), or its name from before
        names were prefixed automatically (`legacy_names`)."""
        if local in self.legacy_names:
            return self.legacy_names[local]
        return f"{self.name}.{local}" if local else self.name

    def baselines(self, problem: "CascadeProblem", spec: "StudySpec", section: SectionT) -> list["Baseline"]:
        """Reference points drawn beside the front (e.g. a paper's own method)."""
        return []

    def baseline_kind(self, spec: "StudySpec", section: SectionT, variant: "Variant") -> str | None:
        """The kind a single-variant baseline of this mechanism's variants is shown as (None: not one of ours)."""
        return None

    def panels(self, problem: "CascadeProblem", spec: "StudySpec", section: SectionT) -> list["Panel"]:
        """Report panels of this mechanism, computed when the search starts."""
        return []

    def commands(self) -> list[tuple[str, Callable[..., Any]]]:
        """CLI subcommands (name, typer command function) this mechanism adds to `dse`."""
        return []


@dataclass(frozen=True)
class Bound(Generic[SectionT]):
    """A mechanism bound to one spec's section of it."""

    mechanism: Mechanism[SectionT]
    section: SectionT

    @property
    def name(self) -> str:
        """The mechanism's name (its spec section)."""
        return self.mechanism.name

    @property
    def enabled(self) -> bool:
        """Whether the spec switches the mechanism on."""
        return self.mechanism.enabled(self.section)


def check_declaration(mechanism: Mechanism) -> None:
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


def shaping_order(mechanisms: Iterable[Mechanism]) -> list[Mechanism]:
    """`mechanisms` in the order they shape a cascade: by place; within a place, after the ones each names in
    `after`, then by name. Raises TypeError when `after` names a mechanism of a later place, or forms a cycle."""
    pending = sorted(mechanisms, key=lambda m: (m.place, m.name))
    places = {m.name: m.place for m in pending}
    for m in pending:
        later = sorted(other for other in m.after if places.get(other, m.place) > m.place)
        if later:
            raise TypeError(f"mechanism '{m.name}' ({m.place.name}) cannot shape after '{later[0]}' "
                            f"({places[later[0]].name}), which shapes later")
    ordered: list[Mechanism] = []
    while pending:
        waiting = {m.name for m in pending}
        ready = next((m for m in pending if not (m.after & (waiting - {m.name}))), None)
        if ready is None or ready.place != pending[0].place:
            raise TypeError(f"mechanisms {sorted(waiting)} wait for one another (their `after` forms a cycle)")
        ordered.append(ready)
        pending.remove(ready)
    return ordered


_REGISTRY: dict[str, Mechanism] = {}
MechanismT = TypeVar("MechanismT", bound=Mechanism)


def register(mechanism: MechanismT) -> MechanismT:
    """Add `mechanism` to the mechanisms specs are parsed with (replacing one of the same name); returns it."""
    check_declaration(mechanism)
    _REGISTRY[mechanism.name] = mechanism
    return mechanism


def unregister(name: str) -> None:
    """Remove a mechanism from the registry (for tests that register one of their own)."""
    _REGISTRY.pop(name, None)


def registry() -> dict[str, Mechanism]:
    """Every registered mechanism by name, in shaping order (what `parse_spec` binds when given no mechanisms)."""
    return {m.name: m for m in shaping_order(_REGISTRY.values())}
