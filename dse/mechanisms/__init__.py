"""The built-in mechanisms, one home each; importing this package registers them.

Each declares where its stages go (`dse.core.mechanism.Place`), so a trial's cascade is shaped in this order: the big
net's own stages first (increments, then bit-widths), then side exits on its trunk, then little nets before them, then
effort knobs on the chosen nets.
"""

from __future__ import annotations

from dse.core.mechanism import Mechanism
from dse.core.registry import register
from dse.mechanisms.big_little import BigLittle
from dse.mechanisms.bitwidth import Bitwidth
from dse.mechanisms.early_exit import EarlyExit
from dse.mechanisms.effort import Effort
from dse.mechanisms.incremental import Incremental

BUILTIN: tuple[Mechanism, ...] = (Incremental(), Bitwidth(), EarlyExit(), BigLittle(), Effort())
for _mechanism in BUILTIN:
    register(_mechanism)

__all__ = ["BUILTIN", "BigLittle", "Bitwidth", "EarlyExit", "Effort", "Incremental"]
