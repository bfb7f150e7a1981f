"""Tann et al. 2016 with real incremental training: the setup of a spec's big net, the golden-model estimate vs the
incrementally trained net, and the storage comparison of Table 6. Shared by `dse train-incremental` and
`benchmarks/tann2016.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

import costmodel
import nets
from dse.core.loading import make_accelerator
from dse.core.spec import StudySpec
from dse.mechanisms.incremental.tann2016 import (IncrementPoint, IncrementSearchError, StorageComparison,
                                                 increment_point, stage_costs, storage_comparison, tune_thresholds)

_UJ = 1e-6  # pJ -> uJ


@dataclass(frozen=True)
class IncrementalSetup:
    """What pricing and training a spec's big net incrementally needs."""

    net: str
    dataset: nets.Dataset
    config: nets.TrainingConfig
    cache: nets.ScoreCache
    accelerator: costmodel.Accelerator
    technology: costmodel.Technology
    priced_layers: str
    max_loss_pct: float

    def layers_at(self, width: float) -> list[costmodel.LayerShape]:
        """Priced layer shapes of the big net at `width` (conv only when the spec prices conv layers only)."""
        layers = nets.architecture(self.net).layer_shapes(width)
        return [shape for shape in layers if shape.kind == "conv"] if self.priced_layers == "conv" else layers

    def full_energy_pj(self) -> float:
        """Energy of one inference of the full net."""
        return costmodel.network_cost(self.layers_at(1.0), self.accelerator, self.technology).energy_pj


def setup_from_spec(spec: StudySpec, cache_dir: str | None = None,
                    max_loss_pct: float | None = None) -> IncrementalSetup:
    """Dataset, training, cache and accelerator of a spec; the loss limit defaults to the spec's (else 1%)."""
    accelerator, technology = make_accelerator(spec)
    limit = max_loss_pct if max_loss_pct is not None else spec.search.max_accuracy_loss_pct
    return IncrementalSetup(spec.nets.big, nets.load_dataset(spec.data.dataset, spec.data.path or None, spec.data.seed),
                            spec.training, nets.ScoreCache(cache_dir), accelerator, technology,
                            spec.accelerator.priced_layers, 1.0 if limit is None else limit)


def stage_rows(scores: dict[nets.Variant, nets.VariantScores], variants: Sequence[nets.Variant],
               split: str) -> tuple[np.ndarray, np.ndarray]:
    """(S, n) margins and correctness of `variants` on `split`."""
    rows = [scores[v].splits[split] for v in variants]
    return np.stack([r.margin for r in rows]), np.stack([r.correct for r in rows])


def build_rows(setup: IncrementalSetup, variants: Sequence[nets.Variant], n_jobs: int,
               log: Callable[[str], None]) -> dict[nets.Variant, nets.VariantScores]:
    """Scores of `variants`, trained and scored into the setup's cache when missing."""
    return nets.build_scores(setup.dataset, list(variants), setup.config, setup.cache, n_jobs=n_jobs, log=log)


def weights_seconds(setup: IncrementalSetup, variant: nets.Variant) -> float | None:
    """Recorded training seconds of a variant's weights (`weights/<key>.json` in the cache), if any."""
    path = setup.cache.root / "weights" / f"{nets.weights_key(setup.dataset, variant, setup.config)}.json"
    try:
        return float(json.loads(path.read_text())["train_seconds"])
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class TrainedComparison:
    """Golden-model estimate vs the incrementally trained net, on the test split."""

    golden: IncrementPoint  # golden models as stages, thresholds tuned on golden calibration rows (or given)
    incremental_same: IncrementPoint  # the incremental net at those same thresholds
    incremental: IncrementPoint  # the incremental net, thresholds re-tuned on its own calibration rows (§5.2)
    golden_stage_accuracy: np.ndarray  # (S,) test accuracy of each golden model
    incremental_stage_accuracy: np.ndarray  # (S,) test accuracy of each incremental stage
    stage_energy_pj: np.ndarray  # (S,) reuse-mode price of each stage
    train_seconds: float | None  # incremental training (stages 2..N), as recorded in the cache


def compare_incremental(setup: IncrementalSetup, fractions: tuple[float, ...], thresholds: np.ndarray | None = None,
                        n_jobs: int = 1, log: Callable[[str], None] = print) -> TrainedComparison:
    """Train (or load) the golden models and the incremental net for `fractions`, then evaluate both on test."""
    nets.check_increments(nets.architecture(setup.net), fractions)
    if thresholds is not None and len(thresholds) != len(fractions) - 1:
        raise IncrementSearchError(f"thresholds: need {len(fractions) - 1} for {len(fractions)} increments "
                                   f"(none for the last), got {len(thresholds)}")
    golden_variants = [nets.Variant(setup.net, f) for f in fractions]
    incremental_variants = [nets.Variant(setup.net, f, fractions) for f in fractions]
    golden = build_rows(setup, golden_variants, n_jobs, log)  # first, so the incremental net finds its golden models
    incremental = build_rows(setup, incremental_variants, n_jobs, log)
    energy = np.array([c.energy_pj for c in stage_costs(setup.layers_at, fractions, setup.accelerator,
                                                         setup.technology)])
    golden_calib, golden_test = (stage_rows(golden, golden_variants, split) for split in ("calib", "test"))
    incremental_calib, incremental_test = (stage_rows(incremental, incremental_variants, split)
                                           for split in ("calib", "test"))
    reference_calib = float(golden_calib[1][-1].mean())
    if thresholds is None:
        thresholds = tune_thresholds(*golden_calib, energy, reference_calib, setup.max_loss_pct)
    retuned = tune_thresholds(*incremental_calib, energy, reference_calib, setup.max_loss_pct)
    full, reference_test = setup.full_energy_pj(), float(golden_test[1][-1].mean())

    def point(rows: tuple[np.ndarray, np.ndarray], chosen: np.ndarray) -> IncrementPoint:
        return increment_point(fractions, *rows, energy, chosen, full, reference_test, setup.max_loss_pct)

    return TrainedComparison(point(golden_test, thresholds), point(incremental_test, thresholds),
                             point(incremental_test, retuned), golden_test[1].mean(axis=1),
                             incremental_test[1].mean(axis=1), energy,
                             weights_seconds(setup, incremental_variants[0]))


def storage_for(setup: IncrementalSetup, fractions: Sequence[float]) -> StorageComparison:
    """Table 6 for the setup's net (all layers: storage is not restricted to priced layers)."""
    return storage_comparison(nets.architecture(setup.net).layer_shapes, fractions, setup.accelerator,
                              setup.technology)


def _row(label: str, p: IncrementPoint) -> str:
    """One line of the comparison table."""
    thresholds = "/".join(f"{t:.4g}" for t in p.thresholds) or "-"
    return (f"{label:<26} {thresholds:>30} {p.energy_pj * _UJ:>10.3f} {p.energy_saving_pct:>8.2f} "
            f"{100 * p.accuracy:>8.2f} {p.accuracy_loss_pct:>7.2f} {p.analytic_fraction:>8.4f} "
            f"{p.simulated_fraction:>8.4f} {100 * p.analytic_accuracy:>9.2f}")


def echo_comparison(comparison: TrainedComparison) -> None:
    """Golden estimate vs incrementally trained net, per stage and as a cascade."""
    print(f"{'stage':>5} {'fraction':>8} {'golden acc %':>12} {'incremental acc %':>17} {'energy uJ':>10}")
    for i, f in enumerate(comparison.golden.fractions):
        print(f"{i + 1:>5} {f:>8g} {100 * comparison.golden_stage_accuracy[i]:>12.2f} "
                   f"{100 * comparison.incremental_stage_accuracy[i]:>17.2f} "
                   f"{comparison.stage_energy_pj[i] * _UJ:>10.3f}")
    print("")
    print(f"{'test split':<26} {'thresholds':>30} {'energy uJ':>10} {'saving %':>8} {'acc %':>8} {'drop %':>7} "
               f"{'E Eq.1':>8} {'E sim':>8} {'acc Eq.3':>9}")
    print(_row("golden-model estimate", comparison.golden))
    print(_row("incremental, same theta", comparison.incremental_same))
    print(_row("incremental, re-tuned theta", comparison.incremental))


def echo_storage(storage: StorageComparison) -> None:
    """Table 6: extra weight storage, % of the full net."""
    print(f"storage (Table 6): full net {storage.full_bytes / 1024:.1f} KiB; extra for the smaller stages: "
               f"incremental {storage.incremental_extra_pct:.2f}% (classifiers), "
               f"golden models {storage.golden_extra_pct:.2f}% (Big/Little style)")


