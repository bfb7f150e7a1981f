"""The one interface every mechanism implements (the registry the core iterates over is `dse.core.registry`).

A mechanism declares its spec section, the variants it needs, its choices in the search space (the cascade's
structure: the thresholds are the core's), baselines and report panels; its CLI subcommands are `COMMANDS` in
`<mechanism package>.cli`, which the CLI reads and the mechanism never imports. The core (spec loader, space, problem,
study, CLI root, report) never names a mechanism. A mechanism is off when its section is absent from the spec (the
section's defaults). The built-in mechanisms live in `dse.mechanisms` and register themselves when `dse` is imported;
register one of your own with `register(MyMechanism())` before loading a spec that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import optuna

    from dse.core.pricer import StageRule
    from dse.core.problem import CascadeProblem
    from dse.core.results import Baseline, Panel
    from dse.core.spec import StudySpec
    from nets import Variant


@dataclass(frozen=True)
class Cascade:
    """The stages a trial runs, in order, the last always answering; `reuse`: a stage that widens the stage before
    it pays only for its new channels (increments); `criteria`: (stage, exit criterion) for stages a mechanism gave
    their own criterion (the others take the trial's)."""

    stages: tuple["Variant", ...]
    reuse: bool = False
    criteria: tuple[tuple["Variant", str], ...] = ()


class Mechanism:
    """Base class: override what the mechanism contributes; every hook defaults to contributing nothing.

    `name` is the registry key and the spec section ([name]); `Section` is a frozen dataclass whose default instance
    means "off". `unsupported` names mechanisms this one cannot be combined with (the spec loader refuses the pair).
    `example` is the section the contract suite (tests/contract/) runs it with, alone and paired with every other.
    """

    name: ClassVar[str]
    Section: ClassVar[type]
    unsupported: ClassVar[frozenset[str]] = frozenset()
    example: ClassVar[dict[str, Any]] = {}  # a small section that switches it on (big net lenet, embedded data)
    # Whether the section is part of a study's fingerprint while off: True for the mechanisms that existed when
    # fingerprints were fixed (so their studies still resume); a newer mechanism sets False.
    digest_when_off: ClassVar[bool] = True
    # Section fields added after its studies' fingerprints were fixed, with their defaults: left out of the fingerprint
    # at those values, so that those studies still resume.
    later_fields: ClassVar[dict[str, Any]] = {}

    def enabled(self, config: Any) -> bool:
        """True when the spec switches the mechanism on (its section differs from the defaults)."""
        return config != self.Section()

    def validate(self, spec: "StudySpec", config: Any) -> None:
        """Raise SpecError (naming `spec.source` and the key) for a section that cannot be used."""

    def check_nets(self, spec: "StudySpec", config: Any) -> None:
        """Checks that need the architectures (run before any data is read or any net is trained)."""

    def variants(self, spec: "StudySpec", config: Any) -> list["Variant"]:
        """Variants to score before the search starts (others are scored when a trial first draws them)."""
        return []

    def shape(self, trial: "optuna.Trial", spec: "StudySpec", config: Any, cascade: Cascade) -> Cascade:
        """This mechanism's choices for one trial, applied to the cascade built so far (registry order).

        Use only `trial.suggest_categorical` and `trial.suggest_int`, so that small spaces can be enumerated."""
        return cascade

    def baselines(self, problem: "CascadeProblem", spec: "StudySpec", config: Any) -> list["Baseline"]:
        """Reference points drawn beside the front (e.g. a paper's own method)."""
        return []

    def baseline_kind(self, spec: "StudySpec", config: Any, variant: "Variant") -> str | None:
        """The kind a single-variant baseline of this mechanism's variants is shown as (None: not one of ours)."""
        return None

    def panels(self, problem: "CascadeProblem", spec: "StudySpec", config: Any) -> list["Panel"]:
        """Report panels of this mechanism, computed when the search starts."""
        return []

    def stage_rules(self) -> tuple["StageRule", ...]:
        """How this mechanism's stages are priced right after another stage on the same input (e.g. reusing its
        work); the pricer applies the first rule that fits a pair of stages."""
        return ()
