"""Big/little DNN (Park et al. 2015) and model-zoo cascades: little nets run first, cheapest first, each passing a
sample on when its confidence is low; the big net answers what reaches it.

Section [little]: the candidate little nets, optional bit-widths they may run at, `max_stages` (the most models in one
chain, the big net included: 2 is Park's big/little, 3 chains two little nets before the big one) and `alone` (a
little net may also answer every sample by itself, without the big net, when that meets the budget). A chain runs
its little nets in ascending price at the spec's accelerator (a measured `energy_j`, else the cost model's), each
paying its full price. Brings the little-only baselines and the paper's own static method (the lambda-sweep
threshold at the loss limit) per little net (`dse.mechanisms.big_little.park2015`).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import costmodel
import nets
from dse.core.loading import make_accelerator
from dse.core.mechanism import Cascade, Chooser, Mechanism, Place
from dse.core.problem import CascadeProblem
from dse.core.results import PJ, Baseline
from dse.core.spec import StudySpec, check
from dse.mechanisms.big_little.park2015 import paper_static_choice
from nets import Variant

NONE = "none"  # no little net: the other mechanisms' stages only
CHAIN = ">"  # joins the little nets of a chain in the `little` parameter, e.g. "mini8>mini7"
ALONE = " alone"  # a little net answering every sample itself (no big net), e.g. "mini7 alone"


@dataclass(frozen=True)
class LittleSpec:
    """[little]: little-net candidates (off when empty) and the bit-widths they may also run at."""

    nets: tuple[str, ...] = ()
    bits: tuple[int, ...] = ()
    rounding: str = "nearest"
    max_stages: int = 3  # models in one chain, the big net included (2: one little net before the big one)
    alone: bool = True  # a little net alone (no big net) is a candidate too


class BigLittle(Mechanism[LittleSpec]):
    """Park 2015: a little net in front of the big net's stages."""

    name = "little"
    Section = LittleSpec
    place = Place.FRONT
    legacy_names = {"bits": "little_bits", **{f"bits_{i}": f"little_bits_{i}" for i in range(2, 8)}}
    example = {"nets": ["mini7", "mini8"], "bits": [8]}

    def enabled(self, config: LittleSpec) -> bool:
        return bool(config.nets)

    def validate(self, spec: StudySpec, config: LittleSpec) -> None:
        src, known = spec.source, spec.net_names()
        for i, net in enumerate(config.nets):
            check(net in known, f"{src}: little.nets[{i}]", f"unknown network '{net}' (known: {', '.join(known)})")
        check(spec.nets.big not in config.nets, f"{src}: little.nets",
              f"the big net '{spec.nets.big}' cannot also be a little candidate")
        check(len(set(config.nets)) == len(config.nets), f"{src}: little.nets", "lists a net twice")
        check(all(isinstance(b, int) and not isinstance(b, bool) and 2 <= b <= 32 for b in config.bits)
              and list(config.bits) == sorted(set(config.bits)), f"{src}: little.bits",
              f"must be strictly increasing integers in 2..32, got {list(config.bits)}")
        check(config.rounding in ("nearest", "stochastic"), f"{src}: little.rounding",
              f"must be nearest or stochastic, got '{config.rounding}'")
        check(isinstance(config.max_stages, int) and not isinstance(config.max_stages, bool)
              and 2 <= config.max_stages <= 8, f"{src}: little.max_stages",
              f"must be an integer in 2..8 (models in one chain, the big net included), got {config.max_stages!r}")
        check(isinstance(config.alone, bool), f"{src}: little.alone", f"must be true or false, got {config.alone!r}")

    def variants(self, spec: StudySpec, config: LittleSpec) -> list[Variant]:
        return [spec.variant(net) for net in config.nets] + [spec.variant(net, bits=b, rounding=config.rounding)
                                                              for net in config.nets for b in config.bits]

    def shape(self, chooser: Chooser, spec: StudySpec, config: LittleSpec, cascade: Cascade) -> Cascade:
        """The `little` parameter picks a chain of little nets ("a>b", cheapest first), a little net alone ("a
        alone") or none; then each little net's bits (`little_bits`, `little_bits_2`, ...)."""
        options = chains(spec, config) + ([NONE] if len(spec.enabled()) > 1 else [])
        little = chooser.suggest_categorical("", options)
        if little == NONE:
            return cascade
        names = little.removesuffix(ALONE).split(CHAIN)
        stages = []
        for i, name in enumerate(names):
            key = "bits" + (f"_{i + 1}" if i else "")
            bits = chooser.suggest_categorical(key, ["float", *map(str, config.bits)]) if config.bits else "float"
            stages.append(spec.variant(name) if bits == "float"
                          else spec.variant(name, bits=int(bits), rounding=config.rounding))
        if little.endswith(ALONE):
            return Cascade(tuple(stages))
        return dataclasses.replace(cascade, stages=(*stages, *cascade.stages))

    def baseline_kind(self, spec: StudySpec, config: LittleSpec, variant: Variant) -> str | None:
        return "little only" if variant.net in config.nets and variant.bits is None else None

    def baselines(self, problem: CascadeProblem, spec: StudySpec, config: LittleSpec) -> list[Baseline]:
        """Park's lambda-sweep choice (the paper's static method at the loss limit) for each little net."""
        limit = spec.search.max_accuracy_loss_pct
        if limit is None:
            return []
        margin, correct = problem.margin["calib"], problem.correct["calib"]
        rows = []
        for name in config.nets:
            index = problem.index(name)
            choice = paper_static_choice(margin[index], correct[index], correct[problem.big], limit)
            stages, threshold = [index, problem.big], np.array([choice.threshold])
            rows.append(Baseline("lambda sweep (Park 2015)", name, problem.metrics(stages, threshold, "calib"),
                                 problem.metrics(stages, threshold, "test"),
                                 {"threshold": choice.threshold, "lambda": choice.lam}))
        return rows


def chains(spec: StudySpec, config: LittleSpec) -> list[str]:
    """Every choice of little nets in front of the big net: each ordered (cheapest first) subset of up to
    `max_stages - 1` candidates, as "a>b", then each candidate alone (with `alone`), as "a alone"."""
    order = price_order(spec, config.nets)
    subsets = [CHAIN.join(combo) for k in range(1, min(config.max_stages - 1, len(order)) + 1)
               for combo in itertools.combinations(order, k)]
    return subsets + ([f"{name}{ALONE}" for name in order] if config.alone else [])


def price_order(spec: StudySpec, candidates: tuple[str, ...]) -> list[str]:
    """`candidates` by ascending price per inference at the spec's accelerator (ties: as listed)."""
    if len(candidates) < 2:
        return list(candidates)
    accelerator, technology = make_accelerator(spec)
    priced = spec.accelerator.priced_layers

    def price(net: str) -> float:
        model = spec.models.get(net)
        if model is not None and model.measured:
            return float(model.energy_j)  # type: ignore[arg-type]
        return _energy_j(spec.architecture(net), accelerator, technology, priced)

    return sorted(candidates, key=price)


@lru_cache(maxsize=256)
def _energy_j(architecture: nets.Architecture, accelerator: costmodel.Accelerator,
              technology: costmodel.Technology, priced_layers: str) -> float:
    """The cost model's energy per inference of a full-width, full-precision architecture (J)."""
    shapes = architecture.layer_shapes(1.0)
    if priced_layers == "conv":
        shapes = [shape for shape in shapes if shape.kind == "conv"]
    return costmodel.network_cost(shapes, accelerator, technology).energy_pj * PJ
