"""`dse exits-cost` (the early-exit mechanism's command): the price of answering at each exit of a branched net."""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from costmodel import Accelerator, exit_costs, load_technology, parse_bytes
from dse.cli.cost import _fractions
from nets import ExitError, Exits, Model, Variant, check_exits, resolve_points, waiting_tensors

_NJ = 1e-3  # pJ -> nJ


class Priced(str, Enum):
    """Which layers are priced (Park 2015 prices convolutions only)."""

    all = "all"
    conv = "conv"


def exits_cost_command(
    net: Annotated[str, typer.Argument(help="Trunk network name, e.g. lenet, or a model of --spec")],
    points: Annotated[Optional[str], typer.Option(help="Comma-separated trunk layers with a branch, in trunk order "
                                                       "(default: the [exits] points of --spec)")] = None,
    channels: Annotated[int, typer.Option(help="Branch size: channels of each branch's 1x1 conv")] = 16,
    sram: Annotated[str, typer.Option(help="Total on-chip SRAM: B, KiB, MiB (binary) or KB, MB (SI)")] = "16KiB",
    partition: Annotated[str, typer.Option(help="Input,weight,output buffer fractions of the SRAM")] = "0.25,0.5,0.25",
    bits: Annotated[int, typer.Option(help="Bit-width of activations, weights and datapath")] = 16,
    priced: Annotated[Priced, typer.Option(help="Price every layer, or convolutions only")] = Priced.all,
    tech: Annotated[Optional[Path], typer.Option(help="TOML file overriding keys of the shipped technology")] = None,
    spec: Annotated[Optional[Path], typer.Option("--spec", help="Study spec: NET may name one of its [models.*]; "
                                                 "when NET is its big net, its [[exits.branch]] layers are used")] = None,
) -> None:
    """Per exit: the cost of answering there when it runs first, the cost of escalating to it from the exit before
    (trunk segment, its branch, the waiting activations), and the cumulative cost of an input answered there."""
    given, spec_points, model = _from_spec(net, spec)
    if points is None and not spec_points:
        raise ExitError("--points: give the trunk layers with a branch (or --spec with [exits] points)")
    names = resolve_points(model, [p.strip() for p in (points or ",".join(spec_points)).split(",") if p.strip()])
    exits = Exits(names, channels=channels, given=tuple((p, layers) for p, layers in given if p in names))
    trunk = Variant(net, model=model).net_architecture
    check_exits(trunk, exits)
    acc = Accelerator(sram_bytes=parse_bytes(sram), partition=_fractions(partition), bits=bits)
    stages = [(p, Variant(net, exits=dataclasses.replace(exits, answer=p), model=model).architecture.layer_shapes())
              for p in names]
    rows = exit_costs([*stages, ("trunk", trunk.layer_shapes())], acc, load_technology(tech),
                      {"conv"} if priced is Priced.conv else None, [waiting_tensors(trunk, p) for p in names])
    branch = f"branch {channels} channels" + (f", given at {'+'.join(p for p, _ in exits.given)}" if exits.given else "")
    typer.echo(f"{net} with exits at {', '.join(names)} ({branch}), {sram} SRAM, {bits}-bit, "
               f"{priced.value} layers priced; energy in nJ")
    width = max(8, *(len(row.name) for row in rows))  # ONNX node names are long
    typer.echo(f"{'exit':>{width}} {'alone':>10} {'escalation':>11} {'answered here':>14}  waiting activations")
    for row in rows:
        wait = [lc for lc in row.escalation.layer_costs if lc.kind == "wait"]
        where = (f"{wait[0].name.removesuffix('[waiting]')} in {wait[0].loop_order.upper()} "
                 f"({wait[0].dram_bytes:.0f} DRAM bytes, {wait[0].energy_pj * _NJ:.2f} nJ)") if wait else "-"
        typer.echo(f"{row.name:>{width}} {row.alone.energy_pj * _NJ:>10.2f} {row.escalation.energy_pj * _NJ:>11.2f} "
                   f"{row.answered_here.energy_pj * _NJ:>14.2f}  {where}")


def _from_spec(net: str, spec: Path | None) -> tuple[tuple, tuple[str, ...], Model | None]:
    """The given branches and [exits] points of `spec` when `net` is its big net (else none), and the model it
    declares under the name `net` (None: a shipped net)."""
    from dse.core.spec import load_spec
    from dse.mechanisms.early_exit.given import given_branches

    if spec is None:
        return (), (), None
    loaded = load_spec(spec)
    config = loaded.section("exits")
    if net != loaded.nets.big or not config.points:
        return (), (), loaded.models.get(net)
    return given_branches(loaded, config.points, config.branch), tuple(config.points), loaded.models.get(net)


# What `dse` adds for this mechanism: the CLI reads `COMMANDS` of `<mechanism package>.cli` (the mechanism
# itself never imports this module, so the layers read one way).
COMMANDS = [("exits-cost", exits_cost_command)]
