"""Public API of the effort-knob primitives (numpy only): calibrate a trained net, run it with knobs, count work."""

from nets.effort._effort import (KNOBS, EffortCounts, EffortError, EffortNet, calibrate, effort_forward, resolve_knobs,
                                 skipping_forward)

__all__ = ["KNOBS", "EffortCounts", "EffortError", "EffortNet", "calibrate", "effort_forward", "resolve_knobs",
           "skipping_forward"]
