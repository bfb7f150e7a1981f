"""Per-sample prices of one inference whose executed work varies per input (dynamic effort knobs, nets.effort._effort).

Per conv/FC layer, with f = executed MACs / the layer's MACs for that input:
- shrink with f: MAC energy, and the SRAM reads that feed the array (input and weight buffers);
- added: the mechanisms' own operations (comparisons, interpolations, variance sums), priced as MACs in energy and
  in array cycles (tm x tn per cycle);
- unchanged: SRAM fills from DRAM, output-buffer traffic, DRAM traffic, pooling layers; except that the weights of
  input maps the layer-level mechanism replaced by their mean (`skipped_weights`) are neither fetched from DRAM nor
  written into the weight buffer;
- latency: the layer's roofline recomputed, max(cycles x f + extra cycles, DRAM bytes / bandwidth), which assumes the
  array stays as busy on the remaining work (optimistic); leakage and DRAM background energy scale with it.
SRAM fills are taken as the layer's burst-rounded DRAM bytes written once into their buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from costmodel._accelerator import Accelerator
from costmodel._cost import LayerCost, NetworkCost
from costmodel._errors import CostModelError
from costmodel._technology import Technology, default_technology


@dataclass(frozen=True)
class SampleCosts:
    """Energy breakdown (pJ) and latency (s) of one inference per sample: arrays of shape (N,)."""

    mac_pj: np.ndarray
    sram_input_pj: np.ndarray
    sram_weight_pj: np.ndarray
    sram_output_pj: np.ndarray
    dram_pj: np.ndarray
    leakage_pj: np.ndarray
    extra_pj: np.ndarray
    latency_s: np.ndarray

    @property
    def energy_pj(self) -> np.ndarray:
        """(N,) total energy: the sum of the breakdown fields."""
        return sum(getattr(self, f.name) for f in fields(self) if f.name.endswith("_pj"))


def _per_layer(values: np.ndarray, layers: list[LayerCost], name: str) -> np.ndarray:
    """(N, L) per-layer counts: given per layer, or a per-sample total (N,) split in proportion to layer MACs."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        macs = np.array([lc.macs for lc in layers], dtype=np.float64)
        return values[:, None] * (macs / macs.sum())[None, :]
    if values.ndim != 2 or values.shape[1] != len(layers):
        raise CostModelError(f"per_sample_cost: {name} must be (N,) or (N, {len(layers)}) for the conv/FC layers "
                             f"{', '.join(lc.name for lc in layers)}, got shape {values.shape}")
    return values


def per_sample_cost(cost: NetworkCost, executed_macs: np.ndarray, extra_ops: np.ndarray, acc: Accelerator,
                    tech: Technology | None = None, skipped_weights: np.ndarray | None = None) -> SampleCosts:
    """Price each sample's inference from the work it executed: `cost` is the full network on `acc`.

    executed_macs, extra_ops: (N,) per sample, or (N, L) per conv/FC layer of `cost` in order. skipped_weights:
    (N, L) weights of each layer no executed MAC needed (None: all fetched). With every MAC executed, no extra ops and
    no skipped weights, each sample costs exactly `cost`.
    """
    tech = tech or default_technology()
    layers = [lc for lc in cost.layer_costs if lc.kind in ("conv", "fc")]
    if not layers:
        raise CostModelError("per_sample_cost: the network cost has no conv or FC layer")
    macs = _per_layer(executed_macs, layers, "executed_macs")
    extra = _per_layer(extra_ops, layers, "extra_ops")
    skipped = np.zeros_like(macs) if skipped_weights is None else _per_layer(skipped_weights, layers, "skipped_weights")
    if macs.shape != extra.shape or macs.shape != skipped.shape:
        raise CostModelError(f"per_sample_cost: executed_macs {macs.shape}, extra_ops {extra.shape} and "
                             f"skipped_weights {skipped.shape} must cover the same samples")
    if (macs < 0).any() or (extra < 0).any() or (skipped < 0).any():
        raise CostModelError("per_sample_cost: operation and weight counts must be >= 0")
    fixed = [lc for lc in cost.layer_costs if lc.kind not in ("conv", "fc")]
    parts = {f.name: np.full(len(macs), sum(getattr(lc, f.name, 0.0) for lc in fixed), dtype=np.float64)
             for f in fields(SampleCosts)}
    parts["extra_pj"] += cost.extra_pj  # per-sample energy outside the accelerator model (LayerCosts have none)
    for i, lc in enumerate(layers):
        for name, value in _layer_parts(lc, macs[:, i], extra[:, i], skipped[:, i], acc, tech).items():
            parts[name] += value
    return SampleCosts(**parts)


def _layer_parts(lc: LayerCost, macs: np.ndarray, extra: np.ndarray, skipped: np.ndarray, acc: Accelerator,
                 tech: Technology) -> dict[str, np.ndarray]:
    """One conv/FC layer's per-sample energy parts and latency (see the module docstring)."""
    fraction = macs / lc.macs
    (_, input_write, _), (_, weight_write, _), _ = (tech.sram_pj_per_bit(size) for size in acc.buffer_bytes)
    input_fills = min(lc.dram_input_bytes * 8 * input_write, lc.sram_input_pj)
    weight_fills = min(lc.dram_weight_bytes * 8 * weight_write, lc.sram_weight_pj)
    fetched = 1.0 - np.minimum(skipped * acc.bits / 8 / lc.weight_bytes, 1.0)  # of the weight bytes
    saved_bytes = lc.dram_weight_bytes * (1.0 - fetched)
    compute_s = (lc.cycles * fraction + extra / (acc.tm * acc.tn)) / acc.clock_hz
    latency = np.maximum(compute_s, (lc.dram_bytes - saved_bytes) / tech.dram_bandwidth_bytes_per_s)
    return {
        "mac_pj": lc.mac_pj * fraction + extra * tech.mac_energy_pj(acc.bits),
        "sram_input_pj": input_fills + (lc.sram_input_pj - input_fills) * fraction,
        "sram_weight_pj": weight_fills * fetched + (lc.sram_weight_pj - weight_fills) * fraction,
        "sram_output_pj": np.full(len(macs), lc.sram_output_pj),
        "dram_pj": lc.dram_pj - saved_bytes * 8 * tech.dram_energy_pj_per_bit,
        "leakage_pj": lc.leakage_pj * latency / lc.latency_s,
        "latency_s": latency,
    }
