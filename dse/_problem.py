"""The search problem of one spec: cached per-sample rows of every variant plus their prices."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

import costmodel
from dse._evaluate import evaluate_cascade
from dse._spec import SpecError, StudySpec
from nets import Dataset, ScoreCache, Variant, VariantScores, build_scores, load_dataset


def make_accelerator(spec: StudySpec) -> tuple[costmodel.Accelerator, costmodel.Technology]:
    """The spec's accelerator and technology; cost-model errors name the spec key."""
    a = spec.accelerator
    try:
        technology = costmodel.load_technology(a.technology or None)
        accelerator = costmodel.Accelerator(
            tm=a.tm, tn=a.tn, clock_hz=a.clock_hz, sram_bytes=costmodel.parse_bytes(a.sram),
            partition=tuple(a.partition), bits=a.bits, tiling_rule=a.tiling_rule)
    except costmodel.CostModelError as exc:
        raise SpecError(f"{spec.source}: accelerator: {exc}") from None
    for i, size in enumerate(spec.search.sram_choices):
        try:
            dataclasses.replace(accelerator, sram_bytes=costmodel.parse_bytes(size))
        except costmodel.CostModelError as exc:
            raise SpecError(f"{spec.source}: search.sram_choices[{i}]: {exc}") from None
    return accelerator, technology


@dataclass
class CascadeProblem:
    """Everything a trial needs, in arrays: per-variant margins/correctness per split, layer shapes, pricing."""

    variants: list[Variant]
    big: int
    margin: dict[str, np.ndarray]  # split -> (V, N) float32
    correct: dict[str, np.ndarray]  # split -> (V, N) bool
    layers: list[list[costmodel.LayerShape]]
    accelerator: costmodel.Accelerator
    technology: costmodel.Technology

    @classmethod
    def from_scores(cls, scores: list[VariantScores], big: int, accelerator: costmodel.Accelerator,
                    technology: costmodel.Technology, priced_layers: str = "all") -> "CascadeProblem":
        """Stack per-variant rows into (V, N) arrays per split; price all layers or conv layers only."""
        splits = scores[0].splits.keys()
        layers = [s.variant.architecture.layer_shapes(s.variant.width) for s in scores]
        if priced_layers == "conv":  # Park 2015 §5.1 prices convolutional layers only
            layers = [[shape for shape in net if shape.kind == "conv"] for net in layers]
        return cls(
            variants=[s.variant for s in scores], big=big,
            margin={sp: np.stack([s.splits[sp].margin for s in scores]) for sp in splits},
            correct={sp: np.stack([s.splits[sp].correct for s in scores]) for sp in splits},
            layers=layers, accelerator=accelerator, technology=technology)

    @property
    def names(self) -> list[str]:
        """Variant display names, aligned with the arrays."""
        return [variant.name for variant in self.variants]

    def resplit(self, calib: np.ndarray, test: np.ndarray) -> "CascadeProblem":
        """The same variants with calib and test re-drawn from the pooled calib+test samples (indices into the pool)."""
        pooled_margin = np.concatenate([self.margin["calib"], self.margin["test"]], axis=1)
        pooled_correct = np.concatenate([self.correct["calib"], self.correct["test"]], axis=1)
        return dataclasses.replace(
            self, margin={"calib": pooled_margin[:, calib], "test": pooled_margin[:, test]},
            correct={"calib": pooled_correct[:, calib], "test": pooled_correct[:, test]})

    def index(self, name: str) -> int:
        """Position of variant `name`."""
        return self.names.index(name)

    def price(self, index: int, accelerator: costmodel.Accelerator | None = None,
              after: int | None = None) -> costmodel.NetworkCost:
        """One stage's cost: at the variant's own bit-width, and, when it widens the previous stage of the
        same incrementally trained net (`after`), only the new channels' work (the cost model's reuse mode)."""
        variant = self.variants[index]
        acc = accelerator or self.accelerator
        if variant.bits is not None:
            acc = dataclasses.replace(acc, bits=variant.bits)
        previous = self.variants[after] if after is not None else None
        if (previous is not None and variant.increments and previous.increments == variant.increments
                and previous.width < variant.width and previous.bits == variant.bits):
            return costmodel.increment_cost(self.layers[after], self.layers[index], acc, self.technology, "reuse")
        return costmodel.network_cost(self.layers[index], acc, self.technology)

    def stage_costs(self, stages: list[int], accelerator: costmodel.Accelerator | None = None
                    ) -> list[costmodel.NetworkCost]:
        """Cost of each stage of a cascade, in order (a later stage may reuse an earlier one's work)."""
        return [self.price(stage, accelerator, stages[i - 1] if i else None) for i, stage in enumerate(stages)]

    def evaluate(self, stages: list[int], thresholds: np.ndarray, split: str,
                 accelerator: costmodel.Accelerator | None = None) -> dict[str, np.ndarray]:
        """Metrics of cascade `stages` for a batch of threshold vectors (B, S-1) on `split`."""
        priced = self.stage_costs(stages, accelerator)
        result = evaluate_cascade(self.margin[split][stages], self.correct[split][stages],
                                  np.array([p.energy_pj for p in priced]), np.array([p.latency_s for p in priced]),
                                  thresholds)
        big_accuracy = self.correct[split][self.big].mean()
        big_energy = self.price(self.big, accelerator).energy_pj
        storage = float(sum(self.price(stage, accelerator).weight_bytes for stage in dict.fromkeys(stages)))
        return {
            "accuracy": result.accuracy,
            "accuracy_loss_pct": 100.0 * (big_accuracy - result.accuracy),
            "energy_pj": result.energy_pj,
            "energy_saving_pct": 100.0 * (1.0 - result.energy_pj / big_energy),
            "latency_s": result.latency_s,
            "storage_bytes": np.full(len(result.accuracy), storage),
            "big_fraction": result.reach_fraction[:, -1],
        }


def load_problem(spec: StudySpec, cache_dir: str | None = None, n_jobs: int = -1,
                 log: Callable[[str], None] = print) -> tuple[CascadeProblem, Dataset]:
    """Load data, build or load every variant's scores, and set up pricing."""
    accelerator, technology = make_accelerator(spec)
    dataset = load_dataset(spec.data.dataset, spec.data.path or None, spec.data.seed)
    config = spec.training
    variants = [Variant(spec.nets.big)] + [Variant(name) for name in spec.nets.little]
    for variant in variants:
        if variant.architecture.input_shape != dataset.input_shape:
            raise SpecError(f"{spec.source}: nets: '{variant.net}' expects input {variant.architecture.input_shape}, "
                            f"dataset {spec.data.dataset} has {dataset.input_shape}")
    scores = build_scores(dataset, variants, config, ScoreCache(cache_dir), n_jobs=n_jobs, log=log)
    problem = CascadeProblem.from_scores([scores[v] for v in variants], 0, accelerator, technology,
                                         spec.accelerator.priced_layers)
    return problem, dataset
