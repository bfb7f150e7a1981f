"""Effort knobs as search variables: the values each knob is searched over, and a trial's knob setting.

Knobs are searched on a small grid (categorical), so that trials reuse cached variants. Each mechanism has a primary
knob whose first grid value switches it off (`chunk_fraction` 1, `sample_stride` 1, `uniformity` 0); its partner is
only drawn when it is on. Pure: no torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import optuna

from nets._effort import KNOBS

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


def suggest_knobs(trial: optuna.Trial, mechanisms: Sequence[str], scopes: Sequence[str] = ("",),
                  prefix: str = "") -> Knobs:
    """A trial's knob setting: per disjoint scope and mechanism, the primary knob, then its partners if it is on.

    Parameters are named 'effort.<prefix><knob>' or 'effort.<prefix><scope>.<knob>' (`prefix` tells apart the
    knobs of several nets in one trial, e.g. 'big.'). Returns sorted (name, value) pairs, as `nets.Variant.knobs`
    wants them; all mechanisms off gives ().
    """
    knobs = []
    for scope in scopes:
        for mechanism in mechanisms:
            primary, *partners = MECHANISM_KNOBS[mechanism]
            for name in (primary, *partners):
                full = _scoped(scope, name)
                value = float(trial.suggest_categorical(f"effort.{prefix}{full}", list(EFFORT_GRID[name])))
                if name == primary and value == EFFORT_GRID[primary][0]:
                    break
                knobs.append((full, value))
    return tuple(sorted(knobs))
