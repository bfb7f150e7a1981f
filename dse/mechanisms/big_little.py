"""Big/little DNN (Park et al. 2015): a little net runs first; the big net runs when the little's score margin is low.

Section [little]: the candidate little nets and optional bit-widths they may run at. Brings the little-only baselines
and the paper's own static method (the lambda-sweep threshold at the loss limit) per little net (`dse.papers.park2015`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import optuna

from dse.core.mechanism import Cascade, Mechanism
from dse.core.problem import CascadeProblem
from dse.core.results import Baseline
from dse.core.spec import StudySpec, check
from dse.papers.park2015 import paper_static_choice
from nets import Variant, architecture_names

NONE = "none"  # no little net: the other mechanisms' stages only


@dataclass(frozen=True)
class LittleSpec:
    """[little]: little-net candidates (off when empty) and the bit-widths they may also run at."""

    nets: tuple[str, ...] = ()
    bits: tuple[int, ...] = ()
    rounding: str = "nearest"


class BigLittle(Mechanism):
    """Park 2015: a little net in front of the big net's stages."""

    name = "little"
    Section = LittleSpec
    example = {"nets": ["mini7", "mini8"], "bits": [8]}

    def enabled(self, config: LittleSpec) -> bool:
        return bool(config.nets)

    def validate(self, spec: StudySpec, config: LittleSpec) -> None:
        src, known = spec.source, architecture_names()
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

    def variants(self, spec: StudySpec, config: LittleSpec) -> list[Variant]:
        return [Variant(net) for net in config.nets] + [Variant(net, bits=b, rounding=config.rounding)
                                                         for net in config.nets for b in config.bits]

    def shape(self, trial: optuna.Trial, spec: StudySpec, config: LittleSpec, cascade: Cascade) -> Cascade:
        options = list(config.nets) + ([NONE] if len(spec.enabled()) > 1 else [])
        little = trial.suggest_categorical("little", options)
        if little == NONE:
            return cascade
        bits = trial.suggest_categorical("little_bits", ["float", *map(str, config.bits)]) if config.bits else "float"
        first = Variant(little) if bits == "float" else Variant(little, bits=int(bits), rounding=config.rounding)
        return dataclasses.replace(cascade, stages=(first, *cascade.stages))

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
