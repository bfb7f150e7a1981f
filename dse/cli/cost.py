"""`dse cost`: price one network on the tile accelerator, per layer or as energy vs SRAM size."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from costmodel import Accelerator, CostModelError, NetworkCost, load_technology, network_cost, parse_bytes, sram_sweep
from dse.cli.console import fit_width
from dse.cli.tables import render_table

if TYPE_CHECKING:
    import pandas as pd

    import nets

_UJ = 1e-6  # pJ -> uJ
_COMPONENTS = {
    "mac_pj": "MAC / pooling",
    "sram_input_pj": "SRAM input buffer",
    "sram_weight_pj": "SRAM weight buffer",
    "sram_output_pj": "SRAM output buffer",
    "dram_pj": "DRAM",
    "leakage_pj": "leakage + DRAM background",
}


class Rule(str, Enum):
    """Per-layer tiling choice (see `costmodel.Accelerator`)."""

    fastest = "fastest"
    energy = "energy"
    dram = "dram"


class Dataflow(str, Enum):
    """Mapping of conv/FC layers (see `costmodel.Accelerator`)."""

    auto = "auto"
    weight_stationary = "weight_stationary"
    output_stationary = "output_stationary"
    input_stationary = "input_stationary"
    diannao = "diannao"


# What a narrow terminal loses first (the layer's name, mapping and energy, and the SRAM size, stay longest)
_LAYER_DROP_FIRST = ("cycles", "loop_order", "tile", "kind", "dram_KiB", "latency_us", "macs")
_SWEEP_DROP_FIRST = ("sram_input_uJ", "sram_output_uJ", "leakage_uJ", "mac_uJ", "sram_weight_uJ", "dram_KiB",
                     "latency_ms", "dram_uJ")
_DATAFLOW_HELP = ("Conv/FC mapping: auto (the rule's best per layer), weight_stationary, output_stationary, "
                  "input_stationary, or diannao (the first version's)")
_RULE_HELP = "Tiling: fewest cycles then fewest DRAM bytes; least energy; or fewest DRAM bytes then fewest cycles"


def cost(
    net: Annotated[str, typer.Argument(help="A shipped network (lenet, mini1..mini8, vgg_f, ...), a model of --spec, "
                                            "or an .onnx file")],
    spec: Annotated[Optional[Path], typer.Option("--spec", help="Study spec whose [models.NAME] NET may name")] = None,
    sram: Annotated[str, typer.Option(help="Total on-chip SRAM: B, KiB, MiB (binary) or KB, MB (SI)")] = "16KiB",
    partition: Annotated[str, typer.Option(help="Input,weight,output buffer fractions of the SRAM")] = "0.25,0.5,0.25",
    bits: Annotated[int, typer.Option(help="Bit-width of activations, weights and datapath")] = 16,
    width: Annotated[float, typer.Option(help="Channel width fraction of the network")] = 1.0,
    tm: Annotated[int, typer.Option(help="Output neurons of the MAC array")] = 16,
    tn: Annotated[int, typer.Option(help="Synapses per neuron of the MAC array")] = 16,
    rule: Annotated[Rule, typer.Option(help=_RULE_HELP)] = Rule.fastest,
    dataflow: Annotated[Dataflow, typer.Option(metavar="DATAFLOW", help=_DATAFLOW_HELP)] = Dataflow.auto,
    tech: Annotated[Optional[Path], typer.Option(help="TOML file overriding keys of the shipped technology")] = None,
    sweep_sram: Annotated[Optional[str], typer.Option(
        help="Print energy vs SRAM size for powers of two in LO..HI, e.g. 4KiB..512KiB")] = None,
) -> None:
    """Print the per-layer mapping, tiling and energy breakdown of one inference, or energy vs SRAM size."""
    layers = _architecture(net, spec).layer_shapes(width)
    technology = load_technology(tech)
    acc = Accelerator(tm=tm, tn=tn, sram_bytes=parse_bytes(sram), partition=_fractions(partition), bits=bits,
                      tiling_rule=rule.value, dataflow=dataflow.value)
    if sweep_sram is None:
        _print_network(net, width, acc, network_cost(layers, acc, technology))
    else:
        _print_sweep(net, width, acc, sram_sweep(layers, acc, _sweep_sizes(sweep_sram), technology))


def _architecture(net: str, spec: Path | None) -> "nets.Architecture":
    """The layer list of an .onnx file, else of a model the spec declares, else of a shipped network."""
    import nets

    if net.endswith(".onnx"):
        return nets.load_onnx(net).architecture
    if spec is None:
        return nets.architecture(net)
    from dse.core.spec import load_spec

    loaded = load_spec(spec)
    if net in loaded.models and loaded.models[net].measured:
        typer.echo(f"note: in studies, {net} is priced by its measured energy_j; below is the cost model's price")
    return loaded.architecture(net)


def _fractions(text: str) -> tuple[float, ...]:
    """Parse "0.25,0.5,0.25"; the Accelerator checks count, signs and sum."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise CostModelError(f"--partition {text!r}: expected comma-separated numbers, e.g. 0.25,0.5,0.25") from None


def _sweep_sizes(text: str) -> list[int]:
    """Sizes LO, 2 LO, 4 LO, ... up to HI from "LO..HI"."""
    lo_text, sep, hi_text = text.partition("..")
    if not sep:
        raise CostModelError(f"--sweep-sram {text!r}: expected LO..HI, e.g. 4KiB..512KiB")
    lo, hi = parse_bytes(lo_text), parse_bytes(hi_text)
    if lo > hi:
        raise CostModelError(f"--sweep-sram {text!r}: LO ({lo} B) exceeds HI ({hi} B)")
    return [lo << k for k in range((hi // lo).bit_length())]


def _header(net: str, width: float, acc: Accelerator, swept: bool = False) -> str:
    """One line describing the accelerator being priced."""
    i, w, o = acc.partition if swept else acc.buffer_bytes
    unit = "" if swept else " B"
    size = "SRAM swept" if swept else f"SRAM {acc.sram_bytes} B"
    return (f"{net} at width {width:g}: {acc.tm}x{acc.tn} array, {acc.bits}-bit, {size} = input {i:g} + weight {w:g} "
            f"+ output {o:g}{unit}, rule {acc.tiling_rule}, dataflow {acc.dataflow}")


def _print_network(net: str, width: float, acc: Accelerator, result: NetworkCost) -> None:
    """Per-layer table, energy breakdown and totals."""
    import pandas as pd

    table = pd.DataFrame([lc.to_row() for lc in result.layer_costs])
    table["latency_us"] = table["latency_s"] * 1e6
    table["dram_KiB"] = table["dram_bytes"] / 1024
    table["energy_uJ"] = table["energy_pj"] * _UJ
    columns = ["name", "kind", "mapping", "tile", "loop_order", "macs", "cycles", "latency_us", "dram_KiB", "energy_uJ"]
    total = result.energy_pj
    breakdown = pd.DataFrame(
        {
            "energy_uJ": [getattr(result, key) * _UJ for key in _COMPONENTS],
            "share_%": [100 * getattr(result, key) / total for key in _COMPONENTS],
        },
        index=list(_COMPONENTS.values()),
    )
    typer.echo(fit_width(_header(net, width, acc)))
    typer.echo(_frame_text(table[columns], drop_first=_LAYER_DROP_FIRST))
    typer.echo("")
    typer.echo(_frame_text(breakdown.rename_axis("component"), index=True))
    typer.echo(fit_width(
        f"total {total * _UJ:.3f} uJ, latency {result.latency_s * 1e3:.4f} ms, DRAM {result.dram_bytes / 1024:.1f} "
        f"KiB, weights {result.weight_bytes / 1024:.1f} KiB, MACs {result.macs}"
    ))


def _print_sweep(net: str, width: float, acc: Accelerator, sweep: pd.DataFrame) -> None:
    """Energy breakdown, latency and DRAM traffic per SRAM size."""
    table = sweep.assign(
        sram_KiB=sweep["sram_bytes"] / 1024,
        latency_ms=sweep["latency_s"] * 1e3,
        dram_KiB=sweep["dram_bytes"] / 1024,
        **{key.replace("_pj", "_uJ"): sweep[key] * _UJ for key in [*_COMPONENTS, "energy_pj"]},
    )
    columns = ["sram_KiB", "energy_uJ", *(key.replace("_pj", "_uJ") for key in _COMPONENTS), "latency_ms", "dram_KiB"]
    typer.echo(fit_width(_header(net, width, acc, swept=True)))
    typer.echo(_frame_text(table[columns], drop_first=_SWEEP_DROP_FIRST))


def _fmt(value: float) -> str:
    """Three decimals for the tables."""
    return f"{value:.3f}"


def _frame_text(frame: "pd.DataFrame", index: bool = False, drop_first: tuple[str, ...] = ()) -> str:
    """A frame as a table that fits the terminal (`render_table`), floats with three decimals."""
    columns = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    rows = [([label] if index else []) + [_fmt(v) if isinstance(v, float) else v for v in values]
            for label, values in zip(frame.index, frame.itertuples(index=False))]
    return render_table(columns, rows, drop_first=drop_first)
