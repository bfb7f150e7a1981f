"""The tile accelerator being priced (DianNao-like Tm x Tn array with three SRAM buffers) and byte-size parsing."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Literal, get_args

from costmodel._errors import CostModelError

TilingRule = Literal["fastest", "energy", "dram"]
Dataflow = Literal["auto", "weight_stationary", "output_stationary", "input_stationary", "diannao"]

_BUFFERS = ("input", "weight", "output")


@dataclass(frozen=True)
class Accelerator:
    """A Tm x Tn MAC array with input/weight/output SRAM buffers; change fields with `dataclasses.replace`.

    `tm` output neurons each take `tn` synapses per cycle (DianNao, Tann 2016: 16 x 16). `partition` splits
    `sram_bytes` into the input, weight and output buffers. `bits` is the datapath and storage width of activations
    and weights. `tiling_rule` picks each layer's tiling: "fastest" = fewest compute cycles, then fewest DRAM bytes
    (Park 2015's rule); "energy" = least energy; "dram" = fewest DRAM bytes, then fewest cycles (Zhang 2015's
    communication-minimising choice). `dataflow` is the mapping of conv/FC layers (see `costmodel._mapping`): one
    stationarity for every layer, "auto" = the rule's best per layer, or "diannao" = the fixed DianNao order of the
    first version of this model (the Park 2015 reproduction's figures).
    """

    tm: int = 16
    tn: int = 16
    clock_hz: float = 500e6
    sram_bytes: int = 16384
    partition: tuple[float, float, float] = (0.25, 0.5, 0.25)
    bits: int = 16
    tiling_rule: TilingRule = "fastest"
    dataflow: Dataflow = "auto"

    def __post_init__(self) -> None:
        """Validate every field; store the partition as a tuple of floats."""
        for name in ("tm", "tn", "sram_bytes", "bits"):
            value = getattr(self, name)
            try:
                whole = operator.index(value)  # numpy integers too; floats and bools are refused
            except TypeError:
                whole = 0
            if whole < 1 or isinstance(value, bool):
                raise CostModelError(f"Accelerator: {name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, whole)
        if not isinstance(self.clock_hz, (int, float)) or not math.isfinite(self.clock_hz) or self.clock_hz <= 0:
            raise CostModelError(f"Accelerator: clock_hz must be positive, got {self.clock_hz!r}")
        if self.tiling_rule not in get_args(TilingRule):
            raise CostModelError(
                f"Accelerator: tiling_rule must be one of {get_args(TilingRule)}, got {self.tiling_rule!r}"
            )
        if self.dataflow not in get_args(Dataflow):
            raise CostModelError(f"Accelerator: dataflow must be one of {get_args(Dataflow)}, got {self.dataflow!r}")
        try:
            partition = tuple(float(p) for p in self.partition)
        except (TypeError, ValueError):
            raise CostModelError(f"Accelerator: partition must be three numbers, got {self.partition!r}") from None
        if len(partition) != 3 or not all(math.isfinite(p) and p > 0 for p in partition):
            raise CostModelError(
                f"Accelerator: partition must be three positive fractions (input, weight, output), "
                f"got {self.partition!r}"
            )
        if sum(partition) > 1 + 1e-9:
            terms = " + ".join(map(str, partition))
            raise CostModelError(
                f"Accelerator: partition fractions must sum to at most 1, got {terms} = {sum(partition):g}"
            )
        object.__setattr__(self, "partition", partition)
        for name, size in zip(_BUFFERS, self.buffer_bytes):
            if size < 1:
                raise CostModelError(f"Accelerator: {name} buffer is empty ({self.sram_bytes} B x {partition})")

    @property
    def buffer_bytes(self) -> tuple[int, int, int]:
        """Sizes of the input, weight and output buffers in bytes (rounded down)."""
        i, w, o = (int(self.sram_bytes * p + 1e-9) for p in self.partition)
        return i, w, o


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str | int) -> int:
    """Parse a byte count: "16384", "16384B", "16KiB", "1.5MiB" (binary) or "16KB", "1MB" (SI, powers of 1000).

    Units are case-insensitive; the result must be a whole positive number of bytes.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise CostModelError(
                f"size {text!r}: expected a number with an optional unit B, KiB, MiB, GiB, KB, MB or GB"
            )
        exact = float(match.group(1)) * _UNITS[unit]
        if not exact < 2**53:  # also inf: a 400-digit size
            raise CostModelError(f"size {text[:40]!r}: must be below 2**53 bytes")
        value = round(exact)
        if abs(exact - value) > 1e-6:
            raise CostModelError(f"size {text!r} is not a whole number of bytes ({exact:g})")
    if value < 1:
        raise CostModelError(f"size {text!r} must be at least 1 byte")
    return value
