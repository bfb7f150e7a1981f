"""The typed interface every mechanism implements, where its stages go, and the set of mechanisms specs are parsed with.

A mechanism declares its spec section (a frozen dataclass whose defaults mean "off"), where its stages go in the
cascade (`place`, and `after`: the mechanisms whose choices it reads), the variants it needs, its choices in the
search space (the cascade's structure: the thresholds are the core's), baselines and report panels. The core never
names a mechanism. `parse_spec` binds the mechanisms it knows (`dse.core.registry`) into the spec, in shaping order;
nothing after parsing reads the registry. The built-in mechanisms live in `dse.mechanisms` and register themselves
when `dse` is imported; register one of your own with `register(MyMechanism())` before parsing a spec that uses it,
or pass the mechanisms to `parse_spec` explicitly. A mechanism's CLI subcommands are `COMMANDS` in
`<mechanism package>.cli`, which the CLI reads and the mechanism never imports.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dse.core.registry import Place
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from dse.core.pricer import StageRule
    from dse.core.problem import CascadeProblem
    from dse.core.results import Baseline, Panel
    from dse.core.spec import StudySpec
    from nets import Variant

SectionT = TypeVar("SectionT")
CHOICE_TYPES = (str, int, float)  # what a categorical choice may hold (bool is an int)


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

    def stage_rules(self) -> tuple["StageRule", ...]:
        """How this mechanism's stages are priced right after another stage on the same input (e.g. reusing its
        work); the pricer applies the first rule that fits a pair of stages."""
        return ()
