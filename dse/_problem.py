"""The search problem of one spec: cached per-sample rows of every variant plus their prices."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

import costmodel
from dse._evaluate import evaluate_cascade
from dse._spec import SpecError, StudySpec
from nets import Dataset, ScoreCache, TrainingConfig, Variant, VariantScores, build_scores, load_dataset


@dataclass(frozen=True)
class StageCosts:
    """Per-variant prices on one accelerator: arrays aligned with `CascadeProblem.names`."""

    energy_pj: np.ndarray
    latency_s: np.ndarray
    weight_bytes: np.ndarray


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
    """Everything a trial needs, in arrays: margins/correctness per split and per-variant layer shapes."""

    names: list[str]
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
            names=[s.variant.name for s in scores], big=big,
            margin={sp: np.stack([s.splits[sp].margin for s in scores]) for sp in splits},
            correct={sp: np.stack([s.splits[sp].correct for s in scores]) for sp in splits},
            layers=layers, accelerator=accelerator, technology=technology)

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

    def costs(self, accelerator: costmodel.Accelerator | None = None) -> StageCosts:
        """Energy, latency and weight bytes of every variant (memoised inside the cost model)."""
        acc = accelerator or self.accelerator
        priced = [costmodel.network_cost(layers, acc, self.technology) for layers in self.layers]
        return StageCosts(np.array([p.energy_pj for p in priced]), np.array([p.latency_s for p in priced]),
                          np.array([p.weight_bytes for p in priced], dtype=np.float64))

    def evaluate(self, stages: list[int], thresholds: np.ndarray, split: str,
                 costs: StageCosts | None = None) -> dict[str, np.ndarray]:
        """Metrics of cascade `stages` for a batch of threshold vectors (B, S-1) on `split`."""
        costs = costs or self.costs()
        result = evaluate_cascade(self.margin[split][stages], self.correct[split][stages],
                                  costs.energy_pj[stages], costs.latency_s[stages], thresholds)
        big_accuracy = self.correct[split][self.big].mean()
        big_energy = costs.energy_pj[self.big]
        storage = float(costs.weight_bytes[list(dict.fromkeys(stages))].sum())
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
    t = spec.training
    config = TrainingConfig(t.epochs, t.batch_size, t.learning_rate, t.weight_decay, t.seed)
    variants = [Variant(spec.nets.big)] + [Variant(name) for name in spec.nets.little]
    for variant in variants:
        if variant.architecture.input_shape != dataset.input_shape:
            raise SpecError(f"{spec.source}: nets: '{variant.net}' expects input {variant.architecture.input_shape}, "
                            f"dataset {spec.data.dataset} has {dataset.input_shape}")
    scores = build_scores(dataset, variants, config, ScoreCache(cache_dir), n_jobs=n_jobs, log=log)
    problem = CascadeProblem.from_scores([scores[v] for v in variants], 0, accelerator, technology,
                                         spec.accelerator.priced_layers)
    return problem, dataset
