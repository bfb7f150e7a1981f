"""Dynamic effort knobs (DyVEDeep-style, Ganapathy et al.): per-input work skipping inside one network.

Section [effort]: which knob mechanisms (neuron, feature, layer level; see `nets.effort`), on which stages (the
last, "big", and/or the first, "little"), and in which layer groups. Knobs are searched on a small grid
(categorical), so that trials reuse cached variants. Each knob mechanism has a primary knob whose first grid value
switches it off (`chunk_fraction` 1, `sample_stride` 1, `uniformity` 0); its partner is only drawn when it is on.
Pure: no torch.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from dse.core.loading import spec_variants
from dse.core.mechanism import Cascade, Chooser, Mechanism, Place
from dse.core.spec import SpecError, StudySpec, check
from nets import KNOBS, Architecture, EffortError, resolve_knobs, takes_transforms

MECHANISM_KNOBS: dict[str, tuple[str, ...]] = {  # primary knob first
    mechanism: tuple(name for name, knob in KNOBS.items() if knob.mechanism == mechanism)
    for mechanism in ("neuron", "feature", "layer")
}
EFFORT_GRID: dict[str, tuple[float, ...]] = {  # the primary knob's first value is "off"
    "chunk_fraction": (1.0, 0.5, 0.25, 0.1),
    "confidence": (0.2, 0.1, 0.05, 0.02, 0.0),
    "sample_stride": (1, 2, 3),
    "tolerance": (0.1, 0.2, 0.4, 0.6),
    "uniformity": (0.0, 0.001, 0.003, 0.01, 0.02),
}

Knobs = tuple[tuple[str, float], ...]


def _scoped(scope: str, knob: str) -> str:
    """Knob name in a scope: 'confidence' (every layer), 'conv.confidence', 'conv2.confidence'."""
    return f"{scope}.{knob}" if scope else knob


def mechanism_grid(mechanism: str, scope: str = "") -> list[Knobs]:
    """Every setting of one mechanism's knobs on EFFORT_GRID with the mechanism on, in `scope`."""
    primary, *partners = MECHANISM_KNOBS[mechanism]
    values = [EFFORT_GRID[primary][1:]] + [EFFORT_GRID[name] for name in partners]
    return [tuple(sorted((_scoped(scope, name), float(v)) for name, v in zip((primary, *partners), setting)))
            for setting in itertools.product(*values)]


def suggest_knobs(chooser: Chooser, mechanisms: Sequence[str], scopes: Sequence[str] = ("",),
                  prefix: str = "") -> Knobs:
    """A trial's knob setting: per disjoint scope and mechanism, the primary knob, then its partners if it is on.

    Parameters are named '<prefix><knob>' or '<prefix><scope>.<knob>' (`prefix` tells apart the knobs of several
    nets in one trial, e.g. 'big.'; the mechanism's chooser stores them as 'effort.<name>'). Returns sorted (name,
    value) pairs, as `nets.Variant.knobs` wants them; all mechanisms off gives ().
    """
    knobs = []
    for scope in scopes:
        for mechanism in mechanisms:
            primary, *partners = MECHANISM_KNOBS[mechanism]
            for name in (primary, *partners):
                full = _scoped(scope, name)
                value = float(chooser.suggest_categorical(f"{prefix}{full}", list(EFFORT_GRID[name])))
                if name == primary and value == EFFORT_GRID[primary][0]:
                    break
                knobs.append((full, value))
    return tuple(sorted(knobs))


@functools.cache
def applicable_knobs(arch: Architecture, mechanisms: tuple[str, ...],
                     scopes: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """Per knob scope, the knob mechanisms that can act on the net `arch` there (e.g. no feature-level knob on FC
    layers); cached by the architecture itself, not its name."""
    plan = []
    for scope in scopes:
        usable = []
        for mechanism in mechanisms:
            try:
                resolve_knobs(arch, 1.0, mechanism_grid(mechanism, scope)[0])
                usable.append(mechanism)
            except EffortError:
                continue
        plan.append((scope, tuple(usable)))
    return plan


@dataclass(frozen=True)
class EffortSpec:
    """[effort]: knob mechanisms searched for the named stages ("big": the last, "little": the first). Off when empty."""

    mechanisms: tuple[str, ...] = ()
    nets: tuple[str, ...] = ("big",)
    scopes: tuple[str, ...] = ("",)  # knob groups: "" (every layer), "conv", "fc", or layer names like "conv2"


class Effort(Mechanism[EffortSpec]):
    """DyVEDeep-style effort knobs on the cascade's first and/or last stage."""

    name = "effort"
    Section = EffortSpec
    place = Place.INSIDE
    after = frozenset({"little"})  # which net is first and last: a little net may answer alone
    example = {"mechanisms": ["feature", "layer"], "nets": ["big"]}

    def enabled(self, config: EffortSpec) -> bool:
        return bool(config.mechanisms)

    def validate(self, spec: StudySpec, config: EffortSpec) -> None:
        src = spec.source
        check(set(config.mechanisms) <= set(MECHANISM_KNOBS), f"{src}: effort.mechanisms",
              f"must be a subset of {', '.join(MECHANISM_KNOBS)}, got {list(config.mechanisms)}")
        check(set(config.nets) <= {"big", "little"} and len(config.nets) > 0, f"{src}: effort.nets",
              f"must be a non-empty subset of big, little, got {list(config.nets)}")
        scopes = config.scopes
        check(len(scopes) > 0 and all(isinstance(x, str) for x in scopes) and len(set(scopes)) == len(scopes)
              and ("" not in scopes or len(scopes) == 1), f"{src}: effort.scopes",
              f"must be distinct knob groups ('' alone, or e.g. 'conv', 'fc', 'conv2'), got {list(scopes)}")

    def check_nets(self, spec: StudySpec, config: EffortSpec) -> None:
        """Every scope must leave some knob mechanism that can act on each net that may carry knobs."""
        others = [v.net for v in spec_variants(spec) if v.net != spec.nets.big]
        nets = ([spec.nets.big] if "big" in config.nets else []) + (others if "little" in config.nets else [])
        for net in dict.fromkeys(nets):
            check(takes_transforms(spec.models.get(net)), f"{spec.source}: effort.nets", f"'{net}' is scored or priced as given (an "
                  "ONNX, logits or measured model), so it cannot take effort knobs")
            for scope, usable in applicable_knobs(spec.architecture(net), config.mechanisms, config.scopes):
                if not usable:
                    raise SpecError(f"{spec.source}: effort.scopes: no mechanism of {list(config.mechanisms)} can act "
                                    f"on '{net}' in scope '{scope or 'every layer'}' (neuron level needs a ReLU after "
                                    f"the layer; feature and layer level need convolutions)")

    def shape(self, chooser: Chooser, spec: StudySpec, config: EffortSpec, cascade: Cascade) -> Cascade:
        """Knobs (`big.<knob>`, `little.<scope>.<knob>`, ...) on the last stage and/or the first one."""
        stages = list(cascade.stages)
        for role in config.nets:
            position = len(stages) - 1 if role == "big" else 0
            if len(stages) == 1 and (stages[0].net == spec.nets.big) != (role == "big"):
                continue  # the big net alone has no little stage; a little net alone (no big net) no big one
            plan = applicable_knobs(stages[position].net_architecture, config.mechanisms, config.scopes)
            knobs = [knob for scope, mechanisms in plan
                     for knob in suggest_knobs(chooser, mechanisms, scopes=(scope,), prefix=f"{role}.")]
            stages[position] = dataclasses.replace(stages[position], knobs=tuple(sorted(knobs)))
        return dataclasses.replace(cascade, stages=tuple(stages))
