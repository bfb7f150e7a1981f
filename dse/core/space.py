"""The search space: the enabled mechanisms shape each trial's cascade structure; the core adds the accelerator.

Thresholds are not part of the structure: with `[search] thresholds = "exact"` (the default) every trial's whole
threshold front is solved (`dse.core._exact`): exactly for cascades of up to 3 stages, approximately from 4 stages
(coordinate sweeps; hypervolume ratio min 0.94 against brute force on small cases); with "sampled" Optuna draws one
threshold per stage. A stage answers when its confidence under the trial's exit criterion ([search] criteria: margin,
max softmax, entropy), or under its own when a mechanism searches one per stage (`Cascade.criteria`), reaches its
threshold. A structure space small enough (`enumerate_limit`) is listed completely
(`enumerate_structures`) and every structure is run once, through the same study.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import Any, overload

import numpy as np

import costmodel
from dse.core.evaluator import Chain
from dse.core.mechanism import CHOICE_TYPES, Cascade, Chooser, Draw
from dse.core.problem import CascadeProblem
from dse.core.spec import StudySpec


@dataclass(frozen=True)
class Structure:
    """A cascade's structure: its stages (variants) and the accelerator that runs them; thresholds come later."""

    cascade: Cascade
    accelerator: costmodel.Accelerator
    criterion: str = "margin"  # the confidence the thresholds apply to (one per stage when '/'-joined)


@dataclass(frozen=True)
class CascadePoint:
    """One design point: stage variant indices, their thresholds, and the accelerator that runs them."""

    stages: list[int]
    thresholds: np.ndarray  # (S-1,)
    accelerator: costmodel.Accelerator
    reuse: bool = False  # later stages widen earlier ones (increments): priced in reuse mode
    criterion: str = "margin"  # the confidence the thresholds apply to


def increasing_subsets(values: tuple, sizes: range) -> list[str]:
    """Every increasing subset of `values` with a size in `sizes`, as '/'-joined labels (Optuna categoricals)."""
    return ["/".join(f"{v:g}" for v in combo) for k in sizes for combo in itertools.combinations(values, k)]


class ScopedChooser:
    """The chooser one owner (a mechanism, or the core's "search") draws with: categorical and integer choices only,
    each stored under the owner's name for it; a name another owner of the same structure drew is refused."""

    def __init__(self, draw: Draw, owner: str, stored: Callable[[str], str], owners: dict[str, str]) -> None:
        self._draw, self._owner, self._stored, self._owners = draw, owner, stored, owners

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[int]) -> int: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[float]) -> float: ...

    @overload
    def suggest_categorical(self, name: str, choices: Sequence[str]) -> str: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        """One of `choices` (str, int or float values)."""
        if not (isinstance(choices, (list, tuple)) and choices and all(isinstance(c, CHOICE_TYPES) for c in choices)):
            raise TypeError(f"[{self._owner}] parameter '{name}': choices must be a non-empty list of str, int or "
                            f"float, got {choices!r}")
        return self._draw.suggest_categorical(self._claim(name), choices)

    def suggest_int(self, name: str, low: int, high: int) -> int:
        """An integer in [low, high]."""
        if not (isinstance(low, int) and isinstance(high, int) and low <= high):
            raise TypeError(f"[{self._owner}] parameter '{name}': low <= high must hold for integers, got "
                            f"(low={low!r}, high={high!r})")
        return self._draw.suggest_int(self._claim(name), low, high)

    def _claim(self, name: str) -> str:
        stored = self._stored(name)
        owner = self._owners.setdefault(stored, self._owner)
        if owner != self._owner:
            raise ValueError(f"parameter '{stored}' is drawn by both [{owner}] and [{self._owner}]")
        return stored


CORE = "search"  # the owner of the core's own parameters (exit criterion, SRAM, partition), named as they are


def shape_cascade(spec: StudySpec, draw: Draw, owners: dict[str, str] | None = None) -> Cascade:
    """The cascade the spec's enabled mechanisms shape in turn (shaping order) from the big net alone, each drawing
    through its own `ScopedChooser`; `owners` collects which owner drew each stored parameter name."""
    owners = {} if owners is None else owners
    cascade = Cascade((spec.variant(spec.nets.big),))
    for bound in spec.active():
        chooser = ScopedChooser(draw, bound.name, bound.mechanism.param_name, owners)
        cascade = bound.mechanism.shape(chooser, spec, bound.section, cascade)
    return cascade


class CascadeSpace:
    """A trial becomes a cascade structure: each enabled mechanism shapes the stages, then the accelerator."""

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem, self.spec = problem, spec

    def structure(self, trial: Draw, owners: dict[str, str] | None = None) -> Structure:
        """Draw a structure: the mechanisms' choices in shaping order, then the core's (nothing is scored);
        `owners` collects which owner drew each stored parameter name (pass one dict to check a whole space)."""
        owners = {} if owners is None else owners
        cascade = shape_cascade(self.spec, trial, owners)
        core = ScopedChooser(trial, CORE, str, owners)
        criteria, own = self.spec.search.criteria, dict(cascade.criteria)
        early = cascade.stages[:-1]  # the stages a threshold may stop at
        if own and all(stage in own for stage in early):
            criterion = criteria[0]  # not used: each of them has its own
        else:
            criterion = core.suggest_categorical("criterion", list(criteria)) if len(criteria) > 1 else criteria[0]
        if own:  # one criterion per stage, '/'-joined
            criterion = "/".join(own.get(stage, criterion) for stage in early)
        return Structure(cascade, self._accelerator(core), criterion)

    def stages(self, structure: Structure) -> list[int]:
        """The structure's stage indices in the problem, scoring variants it has not seen yet."""
        return [self.problem.ensure(variant) for variant in structure.cascade.stages]

    def chain(self, structure: Structure) -> Chain:
        """The cascade the evaluator prices and evaluates for `structure`, passed whole (stages scored first)."""
        return Chain(tuple(self.stages(structure)), structure.accelerator, structure.cascade.reuse,
                     structure.criterion)

    def sampled_point(self, trial: Any) -> CascadePoint:
        """A structure with one threshold per stage drawn by Optuna (the `sampled` thresholds mode)."""
        structure = self.structure(trial)
        stages = self.stages(structure)
        thresholds = np.array([trial.suggest_float(f"threshold_{i}", *self.spec.search.threshold_range)
                               for i in range(len(stages) - 1)])
        return CascadePoint(stages, thresholds, structure.accelerator, structure.cascade.reuse, structure.criterion)

    def _accelerator(self, trial: Chooser) -> costmodel.Accelerator:
        s, base = self.spec.search, self.problem.accelerator
        changes: dict = {}
        if len(s.sram_choices) > 1:
            changes["sram_bytes"] = costmodel.parse_bytes(trial.suggest_categorical("sram", list(s.sram_choices)))
        if s.partition_step > 0:
            steps = int(round(1.0 / s.partition_step))
            input_steps = trial.suggest_int("partition_input", 1, steps - 2)
            weight_steps = trial.suggest_int("partition_weight", 1, steps - 1 - input_steps)
            changes["partition"] = (input_steps / steps, weight_steps / steps,
                                    (steps - input_steps - weight_steps) / steps)
        return dataclasses.replace(base, **changes) if changes else base


class _Probe:
    """A stand-in trial that takes the choices of `path` (indices) and the first option beyond it, recording widths."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.taken, self.widths, self.params = path, [], [], {}  # type: ignore[var-annotated]

    def _pick(self, name: str, options: list) -> Any:
        index = self.path[len(self.taken)] if len(self.taken) < len(self.path) else 0
        self.taken.append(index)
        self.widths.append(len(options))
        self.params[name] = options[index]
        return options[index]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._pick(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self._pick(name, list(range(low, high + 1)))


def enumerate_structures(space: CascadeSpace, limit: int) -> list[dict[str, Any]] | None:
    """The parameters of every structure of `space` (depth first), or None when there are more than `limit`."""
    found: list[dict[str, Any]] = []
    pending: list[list[int]] = [[]]
    while pending:
        path = pending.pop()
        probe = _Probe(path)
        space.structure(probe)
        found.append(probe.params)
        if len(found) > limit:
            return None
        for position in range(len(path), len(probe.widths)):
            pending += [probe.taken[:position] + [other] for other in range(1, probe.widths[position])]
    return found


class _Replay:
    """A stand-in trial that answers every suggestion from a finished trial's parameters."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return int(self.params[name])


def replay_structure(space: CascadeSpace, params: dict[str, Any]) -> Structure:
    """The structure a finished trial ran, rebuilt from its parameters."""
    return space.structure(_Replay(params))
