"""Loading a spec's problem: its accelerator, the variants its mechanisms need up front (checked before any data is
read), their scores through the cache, and the stage rules its mechanisms price with."""

from __future__ import annotations

import dataclasses
from typing import Callable

import costmodel
import nets
from dse.core.model_checks import check_models
from dse.core.pricer import StageRule
from dse.core.problem import CERTIFY, CascadeProblem
from dse.core.spec import SpecError, StudySpec
from nets import ArchitectureError, Dataset, ScoreCache, Variant, VariantScores, build_scores, load_dataset


def make_accelerator(spec: StudySpec) -> tuple[costmodel.Accelerator, costmodel.Technology]:
    """The spec's accelerator and technology; cost-model errors name the spec key."""
    a = spec.accelerator
    try:
        technology = costmodel.load_technology(a.technology or None)
        accelerator = costmodel.Accelerator(
            tm=a.tm, tn=a.tn, clock_hz=a.clock_hz, sram_bytes=costmodel.parse_bytes(a.sram),
            partition=tuple(a.partition), bits=a.bits, tiling_rule=a.tiling_rule, dataflow=a.dataflow)
    except costmodel.CostModelError as exc:
        raise SpecError(f"{spec.source}: accelerator: {exc}") from None
    for i, size in enumerate(spec.search.sram_choices):
        try:
            dataclasses.replace(accelerator, sram_bytes=costmodel.parse_bytes(size))
        except costmodel.CostModelError as exc:
            raise SpecError(f"{spec.source}: search.sram_choices[{i}]: {exc}") from None
    return accelerator, technology


def spec_variants(spec: StudySpec) -> list[Variant]:
    """Every variant the spec's mechanisms need up front: the big net first, then each mechanism's, without repeats."""
    variants = [spec.variant(spec.nets.big)]
    for bound in spec.active():
        variants += bound.mechanism.variants(spec, bound.section)
    return list(dict.fromkeys(variants))


def stage_rules(spec: StudySpec) -> tuple[StageRule, ...]:
    """How the spec's mechanisms price a stage right after another (e.g. reusing its work), in mechanism order."""
    return tuple(rule for bound in spec.active() for rule in bound.mechanism.stage_rules())


def check_spec_nets(spec: StudySpec) -> list[Variant]:
    """The spec's up-front variants, after every check that needs the architectures (before any data is read)."""
    variants = spec_variants(spec)
    check_models(spec, variants)
    for bound in spec.active():
        bound.mechanism.check_nets(spec, bound.section)
    for variant in variants:
        if variant.model is not None and variant.model.architecture is None:
            continue
        try:
            variant.architecture.layer_shapes(variant.width)
        except ArchitectureError as exc:
            raise SpecError(f"{spec.source}: {variant.name}: {exc}") from None
    return variants


def load_problem(spec: StudySpec, cache_dir: str | None = None, n_jobs: int = -1,
                 log: Callable[[str], None] = print) -> tuple[CascadeProblem, Dataset]:
    """Load data, build or load every variant's scores, and set up pricing."""
    accelerator, technology = make_accelerator(spec)
    variants = check_spec_nets(spec)
    dataset = load_dataset(spec.data.dataset, spec.data.path or None, spec.data.seed)
    for variant in variants if dataset.images else ():  # a labels dataset: every net brings its logits
        if variant.architecture.input_shape != dataset.input_shape:
            raise SpecError(f"{spec.source}: nets: '{variant.net}' expects input {variant.architecture.input_shape}, "
                            f"dataset {spec.data.dataset} has {dataset.input_shape}")
        try:
            nets.check_output_size(variant.architecture, dataset.num_classes, f"{spec.source}: nets: '{variant.net}'")
        except nets.UserError as exc:
            raise SpecError(str(exc)) from None
    cache = ScoreCache(cache_dir)
    scores = build_scores(dataset, variants, spec.training, cache, n_jobs=n_jobs, log=log)

    def builder(extra: list[Variant]) -> list[VariantScores]:
        built = build_scores(dataset, extra, spec.training, cache, n_jobs=1, log=lambda _: None)
        return [built[v] for v in extra]

    problem = CascadeProblem.from_scores([scores[v] for v in variants], 0, accelerator, technology,
                                         spec.accelerator.priced_layers, stage_rules(spec), builder)
    guarantee = spec.search.guarantee
    if guarantee is not None:
        problem = problem.carve(CERTIFY, guarantee.certify_fraction, spec.search.seed)
    return problem, dataset
