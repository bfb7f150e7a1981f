"""The search problem of one spec: cached per-sample rows of every variant plus their prices."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

import costmodel
import nets
from dse.core._batch import BatchEvaluator, Outcomes
from dse.core._exact import front
from dse.core.evaluate import evaluate_cascade, exit_stages
from dse.core.models import check_models
from dse.core.results import ENERGY_PARTS, PJ, Breakdown, Metrics
from dse.core.spec import SpecError, StudySpec
from nets import (CRITERIA, ArchitectureError, Dataset, ScoreCache, SplitScores, Variant, VariantScores, build_scores,
                  load_dataset)


CERTIFY = "certify"  # calibration rows kept aside to certify a loss guarantee (never searched on)
SAFER_STEPS = 16  # safer candidates a loss guarantee adds beyond a trial's front (`safer_thresholds`)


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


POOL = "calib+test"  # the rows a resplit problem draws from: the scored calib rows, then the test rows


OTHER_CRITERIA = tuple(c for c in CRITERIA if c != "margin")  # the confidences kept beside the margins


def _pooled(calib: SplitScores, test: SplitScores) -> SplitScores:
    """The scored calib rows followed by the test rows."""
    def joined(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else np.concatenate([a, b])

    return SplitScores(*(np.concatenate([a, b]) for a, b in ((calib.prediction, test.prediction),
                                                             (calib.correct, test.correct),
                                                             (calib.margin, test.margin))),
                       joined(calib.scores, test.scores), joined(calib.ops, test.ops),
                       {c: np.concatenate([calib.confidence(c), test.confidence(c)]) for c in OTHER_CRITERIA})


def _confidences(rows: list[SplitScores]) -> dict[str, np.ndarray]:
    """criterion -> (V, N) confidences of the variants' rows, for every criterion but the margin."""
    return {criterion: np.stack([r.confidence(criterion) for r in rows]) for criterion in OTHER_CRITERIA}


@dataclass
class CascadeProblem:
    """Everything a trial needs, in arrays: per-variant margins/correctness per split, layer shapes, pricing.

    `margin` is the top-1 minus top-2 confidence; `confidence(criterion, split)` gives any exit criterion's (the
    others are kept in `confidences`: the full scores are not kept).
    """

    variants: list[Variant]
    big: int
    margin: dict[str, np.ndarray]  # split -> (V, N) float32
    correct: dict[str, np.ndarray]  # split -> (V, N) bool
    layers: list[list[costmodel.LayerShape]]
    accelerator: costmodel.Accelerator
    technology: costmodel.Technology
    priced_layers: str = "all"
    builder: Callable[[list[Variant]], list[VariantScores]] | None = None  # scores variants not built yet
    applied: list[tuple[str, ...]] = field(default_factory=list)  # per variant, the transforms its scoring applied
    rows: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # split -> (scored split, its rows) if carved
    work: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)  # split -> variant -> executed fraction (N,)
    scoring_s: float = 0.0  # time spent scoring variants on demand (`ensure`)
    measured: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # net -> (energy_j, latency_s)
    confidences: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # split -> criterion -> (V, N)
    _batches: dict[tuple, tuple] = field(default_factory=dict, repr=False)  # recent cascades' batch evaluators

    @classmethod
    def from_scores(cls, scores: list[VariantScores], big: int, accelerator: costmodel.Accelerator,
                    technology: costmodel.Technology, priced_layers: str = "all") -> "CascadeProblem":
        """Stack per-variant rows into (V, N) arrays per split; price all layers or conv layers only."""
        splits = scores[0].splits.keys()
        problem = cls(
            variants=[s.variant for s in scores], big=big,
            margin={sp: np.stack([s.splits[sp].margin for s in scores]) for sp in splits},
            correct={sp: np.stack([s.splits[sp].correct for s in scores]) for sp in splits},
            layers=[_priced_shapes(s.variant, priced_layers) for s in scores], accelerator=accelerator,
            technology=technology, priced_layers=priced_layers, work={sp: {} for sp in splits},
            applied=[s.applied for s in scores],
            confidences={sp: _confidences([s.splits[sp] for s in scores]) for sp in splits})
        for index, variant_scores in enumerate(scores):
            problem._record_work(index, variant_scores)
        return problem

    def _split_rows(self, scores: VariantScores, split: str) -> SplitScores:
        """A variant's scored rows of one of this problem's splits (a carved split takes its rows of the scored one)."""
        source, rows = self.rows.get(split, (split, None))
        scored = scores.splits[source] if source != POOL else _pooled(scores.splits["calib"], scores.splits["test"])
        return scored if rows is None else scored.take(rows)

    def _record_work(self, index: int, scores: VariantScores) -> None:
        """Keep the per-sample executed fraction of the work of a variant that varies it (knobs)."""
        variant = scores.variant
        for split in self.margin:
            rows = self._split_rows(scores, split)
            if rows.ops is not None:
                self.work.setdefault(split, {})[index] = rows.ops / variant.architecture.macs(variant.width)

    def carve(self, name: str, fraction: float, seed: int) -> "CascadeProblem":
        """The same problem with a seeded random `fraction` of the calibration rows moved to a new split `name`
        (e.g. rows kept aside to certify what the search chose on the others)."""
        n = self.margin["calib"].shape[1]
        order = np.random.default_rng(seed).permutation(n)
        cut = n - round(fraction * n)
        if not 0 < cut < n:
            raise SpecError(f"carving {fraction:g} of {n} calibration rows leaves one part empty")
        keep, aside = np.sort(order[:cut]), np.sort(order[cut:])

        def split_rows(arrays: dict) -> dict:
            return {**arrays, "calib": arrays["calib"][:, keep], name: arrays["calib"][:, aside]}

        work = {**self.work, "calib": {i: w[keep] for i, w in self.work.get("calib", {}).items()},
                name: {i: w[aside] for i, w in self.work.get("calib", {}).items()}}
        calib = self.confidences.get("calib", {})
        confidences = {**self.confidences, "calib": {c: v[:, keep] for c, v in calib.items()},
                       name: {c: v[:, aside] for c, v in calib.items()}}
        source, base = self.rows.get("calib", ("calib", None))  # a resplit or carved problem's calib rows

        def rows_of(part: np.ndarray) -> tuple[str, np.ndarray]:
            return source, part if base is None else base[part]

        return dataclasses.replace(self, variants=list(self.variants), applied=list(self.applied),
                                   layers=list(self.layers), margin=split_rows(self.margin),
                                   correct=split_rows(self.correct), work=work, confidences=confidences,
                                   rows={**self.rows, "calib": rows_of(keep), name: rows_of(aside)})

    def ensure(self, variant: Variant) -> int:
        """Index of `variant`, scoring it first (through the cache) if the problem does not hold it yet."""
        if variant in self.variants:
            return self.variants.index(variant)
        if self.builder is None:
            raise KeyError(f"variant {variant.name} is not part of this problem")
        start = time.perf_counter()
        (scores,) = self.builder([variant])
        self.scoring_s += time.perf_counter() - start
        for split in self.margin:
            rows = self._split_rows(scores, split)
            self.margin[split] = np.vstack([self.margin[split], rows.margin[None]])
            self.correct[split] = np.vstack([self.correct[split], rows.correct[None]])
            self.confidences[split] = {c: np.vstack([v, rows.confidence(c)[None]])
                                       for c, v in self.confidences[split].items()}
        self.variants.append(variant)
        self.applied.append(scores.applied)
        self.layers.append(_priced_shapes(variant, self.priced_layers))
        self._record_work(len(self.variants) - 1, scores)
        return len(self.variants) - 1

    def confidence(self, criterion: str, split: str) -> np.ndarray:
        """(V, N) per-sample confidence of every variant under an exit criterion ('margin': the cached margins)."""
        return self.margin[split] if criterion == "margin" else self.confidences[split][criterion]

    def stage_confidence(self, stages: list[int], criterion: str, split: str) -> np.ndarray:
        """(S, N) confidence of each stage under `criterion`, or under its own when `criterion` lists one per stage
        ('/'-joined, e.g. 'entropy/margin'; stages past the list take the last)."""
        parts = criterion.split("/")
        if len(parts) == 1:
            return self.confidence(criterion, split)[stages]
        return np.stack([self.confidence(parts[min(i, len(parts) - 1)], split)[stage]
                         for i, stage in enumerate(stages)])

    @property
    def names(self) -> list[str]:
        """Variant display names, aligned with the arrays."""
        return [variant.name for variant in self.variants]

    def resplit(self, calib: np.ndarray, test: np.ndarray) -> "CascadeProblem":
        """The same variants with calib and test re-drawn from the pooled calib+test samples (indices into the pool)."""
        pooled_margin = np.concatenate([self.margin["calib"], self.margin["test"]], axis=1)
        pooled_correct = np.concatenate([self.correct["calib"], self.correct["test"]], axis=1)
        pooled_work = {i: np.concatenate([w, self.work["test"][i]]) for i, w in self.work.get("calib", {}).items()}
        pooled_confidences = {c: np.concatenate([v, self.confidences["test"][c]], axis=1)
                              for c, v in self.confidences.get("calib", {}).items()}
        # own lists, and rows into the pool, so that a variant scored on demand gets its re-drawn rows (a carved
        # problem's rows are not re-drawn: it scores nothing on demand)
        return dataclasses.replace(
            self, variants=list(self.variants), applied=list(self.applied), layers=list(self.layers),
            builder=None if self.rows else self.builder, rows={} if self.rows else {"calib": (POOL, calib),
                                                                                     "test": (POOL, test)},
            margin={"calib": pooled_margin[:, calib], "test": pooled_margin[:, test]},
            confidences={split: {c: v[:, rows] for c, v in pooled_confidences.items()}
                         for split, rows in (("calib", calib), ("test", test))},
            correct={"calib": pooled_correct[:, calib], "test": pooled_correct[:, test]},
            work={"calib": {i: w[calib] for i, w in pooled_work.items()},
                  "test": {i: w[test] for i, w in pooled_work.items()}})

    def index(self, name: str) -> int:
        """Position of variant `name`."""
        return self.names.index(name)

    def price(self, index: int, accelerator: costmodel.Accelerator | None = None,
              after: int | None = None, widen: bool = True) -> costmodel.NetworkCost:
        """One stage's cost at the variant's own bits, after stage `after` ran on the same input (if given): when it
        widens that stage (more channels, same everything else, and `widen`), only the new channels' work (the cost
        model's reuse mode); when it continues from the activations that stage left waiting on a shared trunk, only
        the layers past the shared ones plus the waiting activations' traffic."""
        variant = self.variants[index]
        if variant.net in self.measured:
            return _measured_cost(*self.measured[variant.net])
        acc = accelerator or self.accelerator
        if variant.bits is not None:
            acc = dataclasses.replace(acc, bits=variant.bits)
        if after is not None and widen and _widens(self.variants[after], variant):
            return costmodel.increment_cost(self.layers[after], self.layers[index], acc, self.technology, "reuse")
        if after is not None and variant.continues(self.variants[after]):
            kinds = {"conv"} if self.priced_layers == "conv" else None
            return costmodel.continuation_cost(_shapes(self.variants[after]), _shapes(variant), acc, self.technology,
                                               kinds, _waiting(self.variants[after]))
        return costmodel.network_cost(self.layers[index], acc, self.technology)

    def priced_transforms(self, index: int, after: int | None = None) -> tuple[str, ...]:
        """The transforms `price` applies to variant `index`, read off what it prices: the layer shapes' width, the
        accelerator's bits, per-sample work (knobs), increments in reuse mode."""
        variant = self.variants[index]
        if variant.net in self.measured:
            return ()  # as measured: such a model takes no transforms (`nets.check_variant`)
        full = variant.architecture.layer_shapes(1.0)
        applied = []
        if [s.out_channels for s in self.layers[index]] != [s.out_channels for s in _filter(full, self.priced_layers)]:
            applied.append("width")
        if variant.increments:
            applied.append("increments")
        if variant.bits is not None:
            applied += ["bits", "rounding"]
        if any(index in work for work in self.work.values()):
            applied.append("knobs")
        own = Variant(variant.net, variant.width, variant.increments)
        if variant.rewrites and (self.layers[index] != _priced_shapes(own, self.priced_layers)
                                 or variant.trunk != own.trunk):
            applied.append(variant.rewrites)  # a layer list or trunk weights other than the net's own
        return tuple(applied)

    def stage_costs(self, stages: list[int], accelerator: costmodel.Accelerator | None = None,
                    reuse: bool = False) -> list[costmodel.NetworkCost]:
        """Cost of each stage of a cascade, in order, each after the one before; with `reuse`, a stage that widens
        the previous one pays only for its new channels."""
        return [self.price(stage, accelerator, stages[i - 1] if i else None, reuse) for i, stage in enumerate(stages)]

    def _per_sample(self, stage: int, cost: costmodel.NetworkCost, split: str,
                    accelerator: costmodel.Accelerator | None) -> costmodel.SampleCosts:
        """A stage whose work varies per sample (knobs), priced by the cost model's per-sample rule from its executed
        fraction of the MACs (the mechanisms' own operations included, priced as MACs)."""
        work = self.work[split][stage]
        acc = accelerator or self.accelerator
        bits = self.variants[stage].bits
        return costmodel.per_sample_cost(cost, cost.macs * work, np.zeros(work.size),
                                         dataclasses.replace(acc, bits=bits) if bits else acc, self.technology)

    def _stage_arrays(self, stages: list[int], split: str, accelerator: costmodel.Accelerator | None,
                      reuse: bool) -> tuple[np.ndarray, np.ndarray]:
        """Energy and latency per stage: (S,), or (S, N) when a stage's work varies per sample (knobs)."""
        priced = self.stage_costs(stages, accelerator, reuse)
        work = self.work.get(split, {})
        if not any(stage in work for stage in stages):
            return np.array([p.energy_pj for p in priced]), np.array([p.latency_s for p in priced])
        n = self.margin[split].shape[1]
        energy, latency = np.empty((len(stages), n)), np.empty((len(stages), n))
        for row, (stage, cost) in enumerate(zip(stages, priced)):
            if stage in work:
                per_sample = self._per_sample(stage, cost, split, accelerator)
                energy[row], latency[row] = per_sample.energy_pj, per_sample.latency_s
            else:
                energy[row], latency[row] = cost.energy_pj, cost.latency_s
        return energy, latency

    def breakdowns(self, stages: list[int], thresholds: np.ndarray, split: str,
                   accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                   criterion: str = "margin", chunk_cells: int = 2**24) -> list[Breakdown]:
        """Expected energy per inference by component (J) and each stage's reach, for threshold vectors (P, S-1): the
        sum over stages of the samples reaching it times its cost components (per sample for stages whose work
        varies). Stages are priced once for all the vectors, which go through in chunks of bounded memory."""
        priced = self.stage_costs(stages, accelerator, reuse)
        work = self.work.get(split, {})
        varying = {row: self._per_sample(stage, cost, split, accelerator)
                   for row, (stage, cost) in enumerate(zip(stages, priced)) if stage in work}
        if not varying:  # every stage costs the same for every sample: each stage's reach prices it
            reach = self._outcomes(stages, thresholds, split, priced, criterion).reach
            parts = {part: reach @ np.array([getattr(cost, f"{part}_pj") for cost in priced]) for part in ENERGY_PARTS}
            return [Breakdown({part: float(parts[part][p]) * PJ for part in ENERGY_PARTS},
                              tuple(float(r) for r in reach[p])) for p in range(len(reach))]
        confidence = self.stage_confidence(stages, criterion, split)
        step = max(1, chunk_cells // max(confidence.size, 1))
        out = []
        for start in range(0, len(thresholds), step):
            answered = exit_stages(confidence, thresholds[start:start + step])  # (P, N)
            reach = np.stack([(answered >= row).mean(axis=1) for row in range(len(stages))], axis=1)  # (P, S)
            parts = {part: np.zeros(len(answered)) for part in ENERGY_PARTS}
            for row, cost in enumerate(priced):
                for part in ENERGY_PARTS:
                    if row in varying:
                        parts[part] += (getattr(varying[row], f"{part}_pj")[None, :] * (answered >= row)).mean(axis=1)
                    else:
                        parts[part] += reach[:, row] * getattr(cost, f"{part}_pj")
            out += [Breakdown({part: float(parts[part][p]) * PJ for part in ENERGY_PARTS},
                              tuple(float(r) for r in reach[p])) for p in range(len(answered))]
        return out

    def _outcomes(self, stages: list[int], thresholds: np.ndarray, split: str, priced: list[costmodel.NetworkCost],
                  criterion: str) -> Outcomes:
        """Errors, errors where the big net is right, mean energy (pJ) and latency, reach: the fast batch path for
        stages priced the same for every sample (`dse.core._batch`), its set-up kept for the last few cascades (keyed
        by the arrays it reads, held with it, so that a copy of the problem with other rows never matches)."""
        bases = tuple(self.confidence(part, split) for part in dict.fromkeys(criterion.split("/")))
        correct = self.correct[split]
        energy, latency = tuple(p.energy_pj for p in priced), tuple(p.latency_s for p in priced)
        key = (criterion, tuple(map(id, bases)), id(correct), tuple(stages), self.big, energy,
               tuple(np.nan_to_num(latency, nan=-1.0)))
        if key not in self._batches:
            if len(self._batches) >= 2:  # a trial reads one cascade on two splits
                self._batches.pop(next(iter(self._batches)))
            self._batches[key] = (bases, correct, BatchEvaluator(  # the arrays held with it, so their ids stay theirs
                self.stage_confidence(stages, criterion, split), correct[stages], correct[self.big], np.array(energy),
                np.array(latency)))
        return self._batches[key][2].outcomes(thresholds)

    def evaluate(self, stages: list[int], thresholds: np.ndarray, split: str,
                 accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                 criterion: str = "margin") -> dict[str, np.ndarray]:
        """Metrics of cascade `stages` for a batch of threshold vectors (B, S-1) on `split`, a stage answering when
        its confidence under `criterion` reaches its threshold."""
        energy, latency = self._stage_arrays(stages, split, accelerator, reuse)
        big_correct = self.correct[split][self.big]
        n = big_correct.size
        big_errors = int(n - big_correct.sum())
        if energy.ndim == 1:  # every stage costs the same for every sample: the fast batch path
            outcomes = self._outcomes(stages, np.atleast_2d(thresholds), split,
                                      self.stage_costs(stages, accelerator, reuse), criterion)
            errors, worse = outcomes.errors, outcomes.worse
            energy_pj, latency_s, reach = outcomes.energy, outcomes.latency, outcomes.reach
            better = worse - (errors - big_errors)
            # the paired difference (big right) - (cascade right) is +1 on `worse` samples, -1 on `better` ones
            mean = (worse - better) / n
            loss_sd = np.sqrt(np.maximum((worse + better) / n - mean ** 2, 0.0))
        else:
            result = evaluate_cascade(self.stage_confidence(stages, criterion, split), self.correct[split][stages],
                                      energy, latency, thresholds)
            final_correct = self.correct[split][stages][result.exit_stage, np.arange(n)].astype(bool)  # (B, N)
            big_right = big_correct[None, :].astype(bool)
            errors = n - final_correct.sum(axis=1).astype(np.int64)
            worse = (big_right & ~final_correct).sum(axis=1)  # wrong where the big net is right
            better = (~big_right & final_correct).sum(axis=1)
            energy_pj, latency_s, reach = result.energy_pj, result.latency_s, result.reach_fraction
            loss_sd = (big_right.astype(np.float64) - final_correct).std(axis=1)
        accuracy = 1.0 - errors / n
        big_energy = self.price(self.big, accelerator).energy_pj
        storage = float(sum(self._stored_bytes(stages, accelerator)))
        return {
            "accuracy": accuracy,
            "errors": errors,
            "worse": worse,
            "better": better,
            "extra_errors": errors - big_errors,  # integer: limits are compared exactly on it
            "accuracy_loss_pct": 100.0 * (big_correct.mean() - accuracy),
            "accuracy_loss_se_pct": 100.0 * loss_sd / np.sqrt(n),
            "energy_pj": energy_pj,
            "energy_saving_pct": 100.0 * (1.0 - energy_pj / big_energy),
            "latency_s": latency_s,
            "storage_bytes": np.full(len(accuracy), storage),
            "big_fraction": reach[:, -1],
        }

    def _stored_bytes(self, stages: list[int], accelerator: costmodel.Accelerator | None) -> list[float]:
        """Weight bytes each distinct stage adds (a stage continuing a shared trunk adds only its own layers)."""
        return [self.price(stage, accelerator, stages[i - 1] if i and self.variants[stage].continues(
                    self.variants[stages[i - 1]]) else None, widen=False).weight_bytes
                for i, stage in enumerate(stages) if stage not in stages[:i]]

    def metrics(self, stages: list[int], thresholds: np.ndarray, split: str,
                accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                criterion: str = "margin") -> Metrics:
        """The typed metrics of one threshold vector (S-1,) on `split` (energy in joules)."""
        return self.point_metrics(stages, np.atleast_2d(thresholds), split, accelerator, reuse, criterion)[0]

    def point_metrics(self, stages: list[int], thresholds: np.ndarray, split: str,
                      accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                      criterion: str = "margin", chunk_cells: int = 2**24) -> list[Metrics]:
        """The typed metrics of threshold vectors (P, S-1) on `split`, evaluated in chunks of bounded memory."""
        n = int(self.margin[split].shape[1])
        fast = not any(stage in self.work.get(split, {}) for stage in stages)  # bounded memory at any batch size
        step = max(len(thresholds), 1) if fast else max(1, chunk_cells // max(n * len(stages), 1))
        out = []
        for start in range(0, len(thresholds), step):
            values = self.evaluate(stages, thresholds[start:start + step], split, accelerator, reuse, criterion)
            out += [Metrics(accuracy=float(values["accuracy"][i]), errors=int(values["errors"][i]),
                            extra_errors=int(values["extra_errors"][i]), samples=n,
                            accuracy_loss_pct=float(values["accuracy_loss_pct"][i]),
                            accuracy_loss_se_pct=float(values["accuracy_loss_se_pct"][i]),
                            energy_j=float(values["energy_pj"][i]) * PJ,
                            energy_saving_pct=float(values["energy_saving_pct"][i]),
                            latency_s=float(values["latency_s"][i]), storage_bytes=float(values["storage_bytes"][i]),
                            last_stage_fraction=float(values["big_fraction"][i]))
                    for i in range(len(values["accuracy"]))]
        return out

    def safer_thresholds(self, stages: list[int], thresholds: np.ndarray, criterion: str = "margin",
                         split: str = "calib", steps: int = SAFER_STEPS) -> np.ndarray:
        """Threshold vectors (steps, S-1) from the safest of `thresholds` (the one passing most `split` samples on)
        to passing every sample on to the last stage, in each stage's share of samples passed on (quadratic steps,
        finer near the front): candidates that a loss guarantee can certify when even the front's safest point loses
        too much on new rows."""
        if thresholds.shape[1] == 0 or len(thresholds) == 0:
            return np.zeros((0, thresholds.shape[1]))
        ordered = np.sort(self.stage_confidence(stages[:-1], criterion, split), axis=1)  # (S-1, N)
        n = ordered.shape[1]
        passed = np.stack([np.searchsorted(row, thresholds[:, i], side="left") for i, row in enumerate(ordered)], 1)
        start = passed[np.argmax(passed.sum(axis=1))] / n  # (S-1,) share passed on by the safest vector
        step = (np.arange(1, steps + 1)[:, None] / steps) ** 2  # denser near the front, where the cheap ones are
        shares = start[None, :] + step * (1 - start[None, :])  # (steps, S-1)
        index = np.ceil(shares * n).astype(np.int64)
        top = np.nextafter(ordered[:, -1], np.inf)  # above every sample: all passed on
        safer = np.where(index < n, np.take_along_axis(ordered, np.minimum(index, n - 1).T, axis=1).T, top[None, :])
        seen = {tuple(row) for row in thresholds.tolist()}
        fresh = [row for row in dict.fromkeys(tuple(row) for row in safer.tolist()) if row not in seen]
        return np.array(fresh, dtype=np.float64).reshape(len(fresh), thresholds.shape[1])

    def threshold_front(self, stages: list[int], accelerator: costmodel.Accelerator | None = None,
                        reuse: bool = False, split: str = "calib", criterion: str = "margin") -> np.ndarray:
        """Threshold vectors (P, S-1) of the exact (energy, errors) Pareto front of a cascade on `split`, over every
        threshold vector (per-sample prices included); fronts of 4 stages and more are approximate (`_exact`)."""
        energy, _ = self._stage_arrays(stages, split, accelerator, reuse)
        return front(self.stage_confidence(stages, criterion, split), self.correct[split][stages], energy).thresholds


def _filter(shapes: list[costmodel.LayerShape], priced_layers: str) -> list[costmodel.LayerShape]:
    """All layers, or convolutional layers only (as papers that price only the convolutions do)."""
    return [shape for shape in shapes if shape.kind == "conv"] if priced_layers == "conv" else shapes


def _priced_shapes(variant: Variant, priced_layers: str) -> list[costmodel.LayerShape]:
    """Layer shapes the cost model prices for `variant`, at its width (none for a model known only by its logits)."""
    model = nets.user_model(variant.net)
    if model is not None and model.architecture is None:
        return []
    return _filter(variant.architecture.layer_shapes(variant.width), priced_layers)


def _measured_cost(energy_j: float, latency_s: float | None) -> costmodel.NetworkCost:
    """A measured price per inference: its energy and latency replace the cost model's; the rest is not known (NaN:
    a model priced so cannot be asked for its storage or, without latency_s, its latency)."""
    unknown = float("nan")
    return dataclasses.replace(costmodel.NetworkCost.from_layers((), extra_pj=energy_j / PJ),
                               latency_s=unknown if latency_s is None else latency_s, weight_bytes=unknown,
                               cycles=unknown, dram_bytes=unknown, macs=unknown)


@lru_cache(maxsize=4096)
def _shapes(variant: Variant) -> tuple[costmodel.LayerShape, ...]:
    """Every layer shape `variant` runs (priced or not), memoised: continuation pricing compares them."""
    return tuple(variant.architecture.layer_shapes(variant.width))


@lru_cache(maxsize=4096)
def _waiting(variant: Variant) -> tuple[costmodel.WaitingTensor, ...]:
    """The activations that wait when a stage continues from `variant`, memoised."""
    return variant.waiting


def _widens(previous: Variant, variant: Variant) -> bool:
    """True when `variant` is `previous` with more channels (same net, precision and knobs)."""
    return (previous.net == variant.net and previous.width < variant.width and previous.bits == variant.bits
            and previous.knobs == variant.knobs)


def spec_variants(spec: StudySpec) -> list[Variant]:
    """Every variant the spec's mechanisms need up front: the big net first, then each mechanism's, without repeats."""
    variants = [Variant(spec.nets.big)]
    for bound in spec.active():
        variants += bound.mechanism.variants(spec, bound.section)
    return list(dict.fromkeys(variants))


def check_spec_nets(spec: StudySpec) -> list[Variant]:
    """The spec's up-front variants, after every check that needs the architectures (before any data is read)."""
    variants = spec_variants(spec)
    check_models(spec, variants)
    for bound in spec.active():
        bound.mechanism.check_nets(spec, bound.section)
    for variant in variants:
        model = nets.user_model(variant.net)
        if model is not None and model.architecture is None:
            continue
        try:
            variant.architecture.layer_shapes(variant.width)
        except ArchitectureError as exc:
            raise SpecError(f"{spec.source}: {variant.name}: {exc}") from None
    return variants


def load_problem(spec: StudySpec, cache_dir: str | None = None, n_jobs: int = -1,
                 log: Callable[[str], None] = print) -> tuple[CascadeProblem, Dataset]:
    """Load data, build or load every variant's scores, and set up pricing."""
    nets.use_models(spec.models.values())  # this spec's models, whichever spec was loaded last
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
    problem = CascadeProblem.from_scores([scores[v] for v in variants], 0, accelerator, technology,
                                         spec.accelerator.priced_layers)
    problem.measured = {name: (model.energy_j, model.latency_s) for name, model in spec.models.items()
                        if model.measured}

    def builder(extra: list[Variant]) -> list[VariantScores]:
        built = build_scores(dataset, extra, spec.training, cache, n_jobs=1, log=lambda _: None)
        return [built[v] for v in extra]

    problem.builder = builder
    guarantee = spec.search.guarantee
    if guarantee is not None:
        problem = problem.carve(CERTIFY, guarantee.certify_fraction, spec.search.seed)
    return problem, dataset
