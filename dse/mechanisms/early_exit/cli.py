"""`dse exits-cost` (the early-exit mechanism's command): the price of answering at each exit of a branched net."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from costmodel import Accelerator, exit_costs, load_technology, parse_bytes
from dse.cli.cost import _fractions
from nets import Exits, Variant, architecture, check_exits

_NJ = 1e-3  # pJ -> nJ


class Priced(str, Enum):
    """Which layers are priced (Park 2015 prices convolutions only)."""

    all = "all"
    conv = "conv"


def exits_cost_command(
    net: Annotated[str, typer.Argument(help="Trunk network name, e.g. lenet")],
    points: Annotated[str, typer.Option(help="Comma-separated trunk layers with a branch, in trunk order")],
    channels: Annotated[int, typer.Option(help="Branch size: channels of each branch's 1x1 conv")] = 16,
    sram: Annotated[str, typer.Option(help="Total on-chip SRAM: B, KiB, MiB (binary) or KB, MB (SI)")] = "16KiB",
    partition: Annotated[str, typer.Option(help="Input,weight,output buffer fractions of the SRAM")] = "0.25,0.5,0.25",
    bits: Annotated[int, typer.Option(help="Bit-width of activations, weights and datapath")] = 16,
    priced: Annotated[Priced, typer.Option(help="Price every layer, or convolutions only")] = Priced.all,
    tech: Annotated[Optional[Path], typer.Option(help="TOML file overriding keys of the shipped technology")] = None,
) -> None:
    """Per exit: the cost of answering there when it runs first, the cost of escalating to it from the exit before
    (trunk segment, its branch, the waiting activations), and the cumulative cost of an input answered there."""
    trunk = architecture(net)
    names = tuple(p.strip() for p in points.split(",") if p.strip())
    check_exits(trunk, Exits(names, channels=channels))
    acc = Accelerator(sram_bytes=parse_bytes(sram), partition=_fractions(partition), bits=bits)
    stages = [(p, Variant(net, exits=Exits(names, p, channels)).architecture.layer_shapes()) for p in names]
    rows = exit_costs([*stages, ("trunk", trunk.layer_shapes())], acc, load_technology(tech),
                      {"conv"} if priced is Priced.conv else None)
    typer.echo(f"{net} with exits at {', '.join(names)} (branch {channels} channels), {sram} SRAM, {bits}-bit, "
               f"{priced.value} layers priced; energy in nJ")
    typer.echo(f"{'exit':>8} {'alone':>10} {'escalation':>11} {'answered here':>14}  waiting activations")
    for row in rows:
        wait = [lc for lc in row.escalation.layer_costs if lc.kind == "wait"]
        where = (f"{wait[0].name.removesuffix('[waiting]')} in {wait[0].loop_order.upper()} "
                 f"({wait[0].dram_bytes:.0f} DRAM bytes, {wait[0].energy_pj * _NJ:.2f} nJ)") if wait else "-"
        typer.echo(f"{row.name:>8} {row.alone.energy_pj * _NJ:>10.2f} {row.escalation.energy_pj * _NJ:>11.2f} "
                   f"{row.answered_here.energy_pj * _NJ:>14.2f}  {where}")
