"""A mechanism defined entirely in this file brings a transform of its own (drop a net's first filters after
training) and a stage rule (the full net after its dropped version computes only the dropped filters' work), and
runs a study: scored and priced alike, cached under its own key, with no file of the project changed for it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import costmodel
import dse
from contract.test_mechanisms import check_mechanisms
from nets import Variant


@dataclass(frozen=True)
class DropFilters:
    """Zero the last `count` filters of the first convolution of a trained net (what pruning them leaves)."""

    count: int
    name: str = "drop"

    def name_part(self) -> str:
        return f"drop{self.count}"

    def key_part(self) -> dict[str, Any]:
        return {"count": self.count}

    def shapes(self, shapes: tuple[costmodel.LayerShape, ...]) -> tuple[costmodel.LayerShape, ...]:
        """The first conv loses `count` output channels; the layers up to the next weighted one carry fewer."""
        out, dropping = [], False
        for shape in shapes:
            if dropping and shape.has_weights:
                out.append(dataclasses.replace(shape, in_channels=shape.in_channels - self.count))
                dropping = False
                continue
            if dropping:
                shape = dataclasses.replace(shape, in_channels=shape.in_channels - self.count,
                                            out_channels=shape.out_channels - self.count)
            elif shape.kind == "conv" and not any(s.kind == "conv" for s in out):
                shape, dropping = dataclasses.replace(shape, out_channels=shape.out_channels - self.count), True
            out.append(shape)
        return tuple(out)

    def module(self, module: Any) -> Any:
        import torch

        conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
        with torch.no_grad():
            conv.weight[-self.count:] = 0.0
            conv.bias[-self.count:] = 0.0
        return module


@dataclass(frozen=True)
class ComputeDropped:
    """The full net after its dropped version on the same input computes only the dropped filters' work."""

    name: str = "compute dropped filters"
    optional: bool = False

    def applies(self, previous: Variant, variant: Variant) -> bool:
        return (any(isinstance(t, DropFilters) for t in previous.extra)
                and dataclasses.replace(previous, extra=()) == variant)

    def cost(self, previous: Variant, variant: Variant, accelerator: costmodel.Accelerator,
             context: Any) -> costmodel.NetworkCost:
        return costmodel.increment_cost(list(context.shapes(previous)), list(context.shapes(variant)), accelerator,
                                        context.technology, "reuse")


@dataclass(frozen=True)
class DropSpec:
    """[drop]: filter counts the search may drop from the big net's first convolution (empty: off)."""

    counts: tuple[int, ...] = ()


class DropFirst(dse.Mechanism[DropSpec]):
    """The big net with some first-layer filters dropped runs first; the full net escalates."""

    name = "drop"
    Section = DropSpec
    place = dse.Place.BIG
    example = {"counts": [4, 8]}
    digest_when_off = False

    def validate(self, spec: dse.StudySpec, section: DropSpec) -> None:
        dse.check(all(0 < c < 20 for c in section.counts), f"{spec.source}: drop.counts", "must lie in 1..19")

    def variants(self, spec: dse.StudySpec, section: DropSpec) -> list[Variant]:
        return [spec.variant(spec.nets.big, extra=(DropFilters(c),)) for c in section.counts]

    def shape(self, chooser: dse.Chooser, spec: dse.StudySpec, section: DropSpec,
              cascade: dse.Cascade) -> dse.Cascade:
        count = int(chooser.suggest_categorical("count", list(section.counts)))
        last = cascade.stages[-1]
        return dataclasses.replace(cascade, stages=(*cascade.stages[:-1], dataclasses.replace(
            last, extra=(*last.extra, DropFilters(count))), last))

    def stage_rules(self) -> tuple[ComputeDropped, ...]:
        return (ComputeDropped(),)


@pytest.fixture()
def drop() -> DropFirst:
    mechanism = dse.register(DropFirst())
    yield mechanism
    dse.unregister(mechanism.name)


def test_a_plugin_transform_and_stage_rule_run_a_study(drop: DropFirst, tiny_study: dict, tmp_path: Path) -> None:
    cache = tiny_study["root"] / "cache"
    results = check_mechanisms(("drop",), cache, tmp_path)  # scored and priced alike on every stage
    assert {t.cascade for t in results.trials} == {"lenet@drop4 > lenet", "lenet@drop8 > lenet"}
    assert {name for t in results.trials for name in t.params} == {"drop.count"}  # named after the mechanism
    spec = dse.parse_spec(
        'version = 2\nname = "d"\n[data]\ndataset = "mnist5k"\n[training]\nepochs = 1\nbatch_size = 128\n'
        '[nets]\nbig = "lenet"\n[drop]\ncounts = [4, 8]\n', "d.toml")
    problem, _ = dse.load_problem(spec, str(cache), n_jobs=1, log=lambda _: None)
    plain, dropped = problem.index("lenet"), problem.index("lenet@drop8")
    assert problem.applied[dropped] == ("drop",) == problem.priced_transforms(dropped)
    assert not np.array_equal(problem.margin["test"][dropped], problem.margin["test"][plain])  # the module changed
    shapes = problem.pricer.shapes(problem.variants[dropped])
    assert shapes[0].out_channels == 20 - 8 and shapes[2].in_channels == 20 - 8  # conv1, then conv2 after the pool
    alone = problem.price(dropped).energy_pj
    assert alone < problem.price(plain).energy_pj
    escalation = problem.stage_costs([dropped, plain])[1]  # priced by the mechanism's stage rule
    assert escalation.energy_pj < problem.price(plain).energy_pj
    assert escalation == costmodel.increment_cost(list(shapes), list(problem.pricer.shapes(problem.variants[plain])),
                                                  problem.accelerator, problem.technology, "reuse")
