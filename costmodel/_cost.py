"""Cost records: one layer's tiling and prices (`LayerCost`) and their sum over a network (`NetworkCost`)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

ENERGY_FIELDS = ("mac_pj", "sram_input_pj", "sram_weight_pj", "sram_output_pj", "dram_pj", "leakage_pj")
# Per-inference quantities; scaling a cost by an execution frequency scales these. `weight_bytes` is storage: it is
# summed over layers and stages but never scaled.
_PER_INFERENCE = ENERGY_FIELDS + ("latency_s", "cycles", "dram_bytes", "macs")


@dataclass(frozen=True, kw_only=True)
class _Cost:
    """Energy breakdown (pJ), latency and traffic of one inference of a layer or network."""

    mac_pj: float
    sram_input_pj: float
    sram_weight_pj: float
    sram_output_pj: float
    dram_pj: float
    leakage_pj: float
    latency_s: float
    cycles: float
    dram_bytes: float
    weight_bytes: float
    macs: float

    @property
    def energy_pj(self) -> float:
        """Total energy: exactly the sum of the breakdown fields."""
        return sum(getattr(self, name) for name in self._energy_fields())

    @classmethod
    def _energy_fields(cls) -> tuple[str, ...]:
        """Fields summed into `energy_pj`."""
        return ENERGY_FIELDS

    def to_row(self) -> dict[str, Any]:
        """Plain fields and the total energy as one flat dict (a pandas row)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "layer_costs"}
        row["energy_pj"] = self.energy_pj
        return row


@dataclass(frozen=True, kw_only=True)
class LayerCost(_Cost):
    """One layer priced under its chosen tiling.

    `tile` is (output channels, input channels, output rows, output columns) per tile step; pooling and add layers
    have tile (channels, channels, rows, columns). `mapping` is the stationarity inside a tile ("weight_stationary",
    "output_stationary", "input_stationary"), "diannao" (the first version's fixed order) or "streaming" (pooling,
    add); `loop_order` names the tile loops outer to inner over m (output-channel tiles), s (spatial tiles) and
    n (input-channel tiles), e.g. "m>s>n" (see `costmodel._mapping`); "c>s" is pooling and add, "c>k" a global pool
    streamed in row chunks. `dram_*_bytes` are the burst-rounded DRAM reads (input, weights and biases) and writes (output,
    plus partial-sum reads for an incremental stage).
    """

    name: str
    kind: str
    tile: tuple[int, int, int, int]
    mapping: str
    loop_order: str
    dram_input_bytes: float
    dram_weight_bytes: float
    dram_output_bytes: float

    def __mul__(self, factor: float) -> LayerCost:
        """This cost weighted by an execution frequency (storage unchanged)."""
        scaled = _PER_INFERENCE + ("dram_input_bytes", "dram_weight_bytes", "dram_output_bytes")
        return replace(self, **{name: getattr(self, name) * factor for name in scaled})

    __rmul__ = __mul__

    def to_row(self) -> dict[str, Any]:
        """Flat dict with the tile written as "Tm x Tn x Tr x Tc"."""
        row = super().to_row()
        row["tile"] = "x".join(map(str, self.tile))
        return row


@dataclass(frozen=True, kw_only=True)
class NetworkCost(_Cost):
    """Cost of one inference of a network (or the expected cost of a cascade): the sum of `layer_costs`.

    `extra_pj` holds per-sample energy outside the accelerator model (e.g. a variant's reported decision cost).
    `+` adds two costs (stages run one after the other); `* f` weights a cost by an execution frequency.
    """

    layer_costs: tuple[LayerCost, ...] = ()
    extra_pj: float = 0.0

    @classmethod
    def _energy_fields(cls) -> tuple[str, ...]:
        """Fields summed into `energy_pj`, per-sample extras included."""
        return ENERGY_FIELDS + ("extra_pj",)

    @classmethod
    def from_layers(cls, layer_costs: tuple[LayerCost, ...], extra_pj: float = 0.0) -> NetworkCost:
        """Sum of layer costs."""
        sums = {name: sum(getattr(lc, name) for lc in layer_costs) for name in _PER_INFERENCE + ("weight_bytes",)}
        return cls(**sums, layer_costs=layer_costs, extra_pj=extra_pj)

    def __add__(self, other: NetworkCost) -> NetworkCost:
        """Cost of running both: layer costs concatenated, storage summed."""
        if not isinstance(other, NetworkCost):
            return NotImplemented
        return NetworkCost.from_layers(self.layer_costs + other.layer_costs, self.extra_pj + other.extra_pj)

    def __mul__(self, factor: float) -> NetworkCost:
        """This cost weighted by an execution frequency (storage unchanged)."""
        return NetworkCost.from_layers(tuple(lc * factor for lc in self.layer_costs), self.extra_pj * factor)

    __rmul__ = __mul__
