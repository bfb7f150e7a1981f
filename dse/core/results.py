"""The typed results schema: what the report, the CSV exports and `dse pareto` read, and nothing else.

Units are part of the schema: energy in joules, latency in seconds, storage in bytes, accuracy as a fraction, error
counts as integers; rendering chooses the prefixes. The accuracy loss is also kept in percentage points, the unit
the loss limit is written in.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from dse.core._exact import allowed_extra_errors

if TYPE_CHECKING:
    from collections.abc import Iterable

    from costmodel import NetworkCost

PJ = 1e-12  # the cost model prices in picojoules
MAPPINGS = "mappings"  # the trial system attribute holding its layers' mappings (one list for all its points)
# The energy components of a cost (costmodel's `<part>_pj` fields), in joules once in the results
ENERGY_PARTS = ("mac", "sram_input", "sram_weight", "sram_output", "dram", "leakage", "extra")


allowed_errors = functools.lru_cache(maxsize=256, typed=True)(allowed_extra_errors)  # once per (limit, n): its
# exact decimal arithmetic is slow


def within_limit(metrics: "Metrics", limit_pct: float) -> bool:
    """Whether a point's loss on its split is within `limit_pct` points, compared exactly on integer extra errors
    (15 extra errors of 5,000 are within 0.3 %, which the float loss 0.30000000000000027 would not be)."""
    return metrics.extra_errors <= allowed_errors(limit_pct, metrics.samples)


@dataclass(frozen=True)
class Metrics:
    """One design point on one split of the samples."""

    accuracy: float
    errors: int
    extra_errors: int  # errors beyond the big net's on the same samples (negative: fewer); limits compare this exactly
    samples: int
    accuracy_loss_pct: float  # points of accuracy lost against the big net (negative: gained)
    accuracy_loss_se_pct: float  # standard error of that paired difference
    energy_j: float
    energy_saving_pct: float  # against the big net alone
    latency_s: float
    storage_bytes: float
    last_stage_fraction: float  # how often the last stage runs

    @classmethod
    def from_row(cls, row: dict[str, Any], prefix: str) -> "Metrics":
        """Read back the flat `<prefix>_<field>` columns that `flat` writes."""
        values = {name: row[f"{prefix}_{name}"] for name in _METRIC_FIELDS}
        for name in ("errors", "extra_errors", "samples"):
            values[name] = int(values[name])
        return cls(**values)

    def check(self, where: str) -> None:
        """Raise ValueError naming `where` unless the values are consistent with each other and in range."""
        problems = [text for ok, text in [
            (isinstance(self.errors, int) and isinstance(self.extra_errors, int) and isinstance(self.samples, int),
             "error counts must be integers"),
            (0 <= self.errors <= self.samples > 0, f"errors {self.errors} outside 0..{self.samples}"),
            (abs(self.accuracy - (1 - self.errors / self.samples)) < 1e-9, "accuracy disagrees with the error count"),
            (abs(self.accuracy_loss_pct - 100 * self.extra_errors / self.samples) < 1e-6,
             "accuracy loss disagrees with the extra errors"),
            (self.energy_j > 0 and self.latency_s > 0 and self.storage_bytes > 0, "prices must be positive"),
            (0 <= self.last_stage_fraction <= 1, "last-stage fraction outside [0, 1]"),
            (self.accuracy_loss_se_pct >= 0, "negative standard error")] if not ok]
        if problems:
            raise ValueError(f"{where}: {problems[0]}")

    def flat(self, prefix: str) -> dict[str, Any]:
        """Flat `<prefix>_<field>` columns (for trial attributes and CSV rows)."""
        return {f"{prefix}_{name}": getattr(self, name) for name in _METRIC_FIELDS}


_METRIC_FIELDS = tuple(f.name for f in fields(Metrics))  # read once: a study reads and writes thousands of points


@dataclass(frozen=True)
class Breakdown:
    """Where one design point's expected energy goes on one split: joules per component (summing to its energy) and
    the fraction of samples that run each stage."""

    energy_j: dict[str, float]  # ENERGY_PARTS -> J per inference
    stage_reach: tuple[float, ...]

    def flat(self, prefix: str) -> dict[str, Any]:
        """Flat `<prefix>_energy_<part>_j` and `<prefix>_reach_stage<i>` columns."""
        return {**{f"{prefix}_energy_{part}_j": value for part, value in self.energy_j.items()},
                **{f"{prefix}_reach_stage{i}": value for i, value in enumerate(self.stage_reach)}}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (one trial user attribute per split)."""
        return {"energy_j": dict(self.energy_j), "stage_reach": list(self.stage_reach)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Breakdown":
        """Inverse of `to_json`."""
        return cls(dict(data["energy_j"]), tuple(data["stage_reach"]))


@dataclass(frozen=True)
class LayerMapping:
    """How one priced layer of one stage runs on the array, as `dse cost` prints it: the dataflow chosen for it
    (a stationarity, "diannao", or "streaming" for pooling and adds) and its tile loop order, outer to inner."""

    stage: int  # index of the stage in its cascade
    layer: str
    mapping: str
    loop_order: str

    @classmethod
    def of_stages(cls, stage_costs: Iterable[NetworkCost]) -> tuple[LayerMapping, ...]:
        """Every priced layer's mapping from each stage's cost (`costmodel.NetworkCost`s, in stage order)."""
        return tuple(cls(stage, layer.name, layer.mapping, layer.loop_order)
                     for stage, cost in enumerate(stage_costs) for layer in cost.layer_costs)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def all_from_json(cls, rows: Iterable[dict[str, Any]] | None) -> tuple[LayerMapping, ...]:
        """Inverse of `to_json` over a trial's stored list (None: a trial stored without mappings)."""
        return tuple(cls(**row) for row in rows or ())


@dataclass(frozen=True)
class TrialResult:
    """One point of a completed trial (a cascade structure and one threshold vector of its front): what it ran and
    its metrics on the calibration split (searched) and the test split."""

    number: int
    cascade: str  # the stages' variant names joined by " > "
    thresholds: tuple[float, ...]
    params: dict[str, Any]
    calib: Metrics
    test: Metrics
    feasible: bool
    point: int = 0  # index of the point in its trial's threshold front
    pareto: bool = False
    stage_bits: tuple[int, ...] = ()  # the precision (bits) each stage runs at
    sram_bytes: int = 0  # the accelerator's SRAM, and its input/weight/output partition, for this trial
    partition: tuple[float, ...] = ()
    breakdown: dict[str, Breakdown] = field(default_factory=dict)  # split -> energy breakdown and stage reach
    mappings: tuple[LayerMapping, ...] = ()  # the same for every point of a trial: stored once, under MAPPINGS
    threshold_front: str = "exact"  # how its thresholds were found: "exact", "approximate" (4+ stages) or "sampled"
    certified: bool = False  # certified within the loss budget by the study's certificate
    recommended: bool = False  # the point the headline recommends

    @property
    def stages(self) -> list[str]:
        """The stages' variant names, in order."""
        return self.cascade.split(" > ")

    @property
    def label(self) -> str:
        """'trial 7' or 'trial 7.3': the trial and, when it has several, the point."""
        return f"trial {self.number}" + (f".{self.point}" if self.point else "")

    def row(self) -> dict[str, Any]:
        """A flat row for tables and CSV files."""
        return {"trial": self.number, "point": self.point, "cascade": self.cascade,
                "thresholds": "/".join(f"{t:.6g}" for t in self.thresholds),
                "stage_bits": "/".join(map(str, self.stage_bits)), "sram_bytes": self.sram_bytes,
                "partition": "/".join(f"{f:g}" for f in self.partition), **self.params,
                **self.calib.flat("calib"), **self.test.flat("test"),
                **{k: v for split, b in self.breakdown.items() for k, v in b.flat(split).items()},
                "threshold_front": self.threshold_front, "feasible": self.feasible, "pareto": self.pareto,
                "certified": self.certified, "recommended": self.recommended}

    def user_attrs(self) -> dict[str, Any]:
        """One Optuna user attribute per metric (what optuna-dashboard lists), plus the configuration."""
        return {"cascade": self.cascade, "thresholds": list(self.thresholds), "stage_bits": list(self.stage_bits),
                "sram_bytes": self.sram_bytes, "partition": list(self.partition),
                **self.calib.flat("calib"), **self.test.flat("test"),
                **{f"{split}_breakdown": b.to_json() for split, b in self.breakdown.items()},
                "threshold_front": self.threshold_front}

    @classmethod
    def from_user_attrs(cls, number: int, params: dict[str, Any], attrs: dict[str, Any], feasible: bool,
                        pareto: bool, point: int = 0, mappings: tuple[LayerMapping, ...] = ()) -> "TrialResult":
        """Inverse of `user_attrs` (one point of a trial's front), given the trial's `mappings` (read once a trial)."""
        return cls(number, attrs["cascade"], tuple(attrs["thresholds"]), dict(params),
                   Metrics.from_row(attrs, "calib"), Metrics.from_row(attrs, "test"), feasible, point, pareto,
                   tuple(attrs["stage_bits"]), int(attrs["sram_bytes"]), tuple(attrs["partition"]),
                   {split: Breakdown.from_json(attrs[f"{split}_breakdown"]) for split in ("calib", "test")
                    if f"{split}_breakdown" in attrs}, mappings, attrs.get("threshold_front", "exact"))


@dataclass(frozen=True)
class Baseline:
    """A reference point drawn beside the front: a variant alone, or a paper's own method."""

    kind: str  # e.g. "big only", "single stage", or a mechanism's own kind
    label: str
    calib: Metrics
    test: Metrics
    params: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """A flat row for tables and CSV files."""
        return {"kind": self.kind, "net": self.label, **self.params, **self.calib.flat("calib"),
                **self.test.flat("test")}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, stored on the study."""
        return {"kind": self.kind, "label": self.label, "calib": asdict(self.calib), "test": asdict(self.test),
                "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Baseline":
        """Inverse of `to_json`."""
        return cls(data["kind"], data["label"], Metrics(**data["calib"]), Metrics(**data["test"]),
                   dict(data.get("params", {})))


@dataclass(frozen=True)
class Panel:
    """A mechanism's report panel: a bar chart (x, y), lines (x, series) or a table (columns, rows)."""

    kind: str  # "bar" | "line" | "table"
    title: str
    caption: str
    x: list[Any] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    y_title: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in ("bar", "line", "table"):
            raise ValueError(f"panel kind must be bar, line or table, got {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, stored on the study."""
        return asdict(self)


@dataclass(frozen=True)
class MarginCurve:
    """One variant's score-margin classifier: ROC, AUC and margin histograms of right and wrong answers."""

    net: str
    auc: float
    fpr: list[float]
    tpr: list[float]
    bin_edges: list[float]
    hist_correct: list[int]
    hist_wrong: list[int]


@dataclass(frozen=True)
class CertifiedPoint:
    """A point whose risk (expected loss on new data from the same distribution) is certified: <= alpha with
    probability >= 1 - delta over the certification rows (`dse.risk`); with its loss on those rows, its metrics on
    the test split, and a single-point upper confidence bound that is a descriptive estimate (the guarantee covers
    the budget, not this bound, which is read off at a point chosen on the same rows)."""

    number: int  # the trial (structure) it comes from
    cascade: str
    thresholds: tuple[float, ...]
    alpha_pct: float
    delta: float  # the level this structure was tested at (the guarantee's delta over the structures tested)
    certify_rows: int
    certify_loss_pct: float
    upper_bound_pct: float  # descriptive estimate, not covered by the guarantee
    certify_energy_j: float
    test: Metrics
    point: int = 0  # index of the point in its trial's recorded front
    certify_energy_saving_pct: float = 0.0  # against the big net alone, on the certification rows

    def row(self) -> dict[str, Any]:
        """A flat row for tables and CSV files."""
        return {"trial": self.number, "point": self.point, "cascade": self.cascade,
                "thresholds": "/".join(f"{t:.6g}" for t in self.thresholds), "alpha_pct": self.alpha_pct,
                "delta": self.delta, "certify_rows": self.certify_rows, "certify_loss_pct": self.certify_loss_pct,
                "upper_bound_pct": self.upper_bound_pct, "certify_energy_j": self.certify_energy_j,
                "certify_energy_saving_pct": self.certify_energy_saving_pct, **self.test.flat("test")}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, stored on the study."""
        return {**asdict(self), "test": asdict(self.test)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CertifiedPoint":
        """Inverse of `to_json`."""
        return cls(**{**data, "thresholds": tuple(data["thresholds"]), "test": Metrics(**data["test"])})


@dataclass(frozen=True)
class Certificate:
    """The loss guarantee's certificate of one front: computed once, when a run ends, on the calibration rows kept
    aside (identified by `rows_sha256`), and stored; a resumed run keeps it rather than look at those rows again."""

    alpha_pct: float
    delta: float
    rows: int  # certification rows
    rows_sha256: str  # digest of which rows of the scored split they are
    trials: int  # completed trials when it was computed
    structures: tuple[int, ...]  # the front's structures (trial numbers), each tested at delta / len(structures)
    points: tuple[CertifiedPoint, ...]  # the most aggressive certified point of each structure that has one

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, stored on the study."""
        return {**{k: v for k, v in asdict(self).items() if k != "points"}, "structures": list(self.structures),
                "points": [p.to_json() for p in self.points]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Certificate":
        """Inverse of `to_json`."""
        return cls(**{**data, "structures": tuple(data["structures"]),
                      "points": tuple(CertifiedPoint.from_json(p) for p in data["points"])})


@dataclass(frozen=True)
class StudyResults:
    """Everything a finished (or running) study reports: its trials, baselines, margin curves and panels."""

    name: str
    big: str
    max_accuracy_loss_pct: float | None
    trials: list[TrialResult]
    baselines: list[Baseline]
    margins: list[MarginCurve]
    panels: list[Panel]
    certified: list[CertifiedPoint] = field(default_factory=list)  # the certificate's points (empty without one)
    settings: dict[str, Any] = field(default_factory=dict)  # the accelerator and technology priced on (SI units)
    guarantee: tuple[float, float] | None = None  # (alpha_pct, delta) of the loss guarantee in force, if any
    certificate: Certificate | None = None  # None: no guarantee, or the search has not ended yet
    spec: dict[str, Any] = field(default_factory=dict)  # the spec the study was made from: name, file, dotted keys

    @property
    def best_certified(self) -> CertifiedPoint | None:
        """The cheapest certified point (on the rows that certified it), if any."""
        return min(self.certified, key=lambda p: p.certify_energy_j) if self.certified else None

    @property
    def certificate_note(self) -> str:
        """Which certificate the results carry: computed on this front, or kept from an earlier one."""
        c = self.certificate
        if c is None:
            return "" if self.guarantee is None else "No certificate yet: it is computed when a run ends."
        front = sorted({t.number for t in self.pareto})
        when = (f"Computed once, after {c.trials} trials, on {c.rows} calibration rows the search never saw "
                f"(rows sha256 {c.rows_sha256[:12]}), testing the {len(c.structures)} structure{'s' * (len(c.structures) != 1)} of "
                f"the front at δ / {len(c.structures)} each.")
        if front == sorted(c.structures):
            return when + " The front has not changed since."
        return (when + " The front has changed since (more trials); the certificate is kept, not recomputed, because "
                "its rows have been looked at: points found later are not certified.")

    @property
    def pareto(self) -> list[TrialResult]:
        """The distinct feasible calibration-Pareto trials, by calibration energy."""
        return sorted((t for t in self.trials if t.pareto), key=lambda t: (t.calib.energy_j, t.number, t.point))

    @property
    def listed(self) -> list[TrialResult]:
        """The points the front's tables list: the Pareto points and the recommended point (a certified point may
        lie beyond the calibration front), by calibration energy."""
        return sorted((t for t in self.trials if t.pareto or t.recommended),
                      key=lambda t: (t.calib.energy_j, t.number, t.point))

    def check(self) -> None:
        """Raise ValueError unless every metric is consistent and the Pareto flags mark non-dominated feasible trials."""
        for trial in self.trials:
            for split in ("calib", "test"):
                getattr(trial, split).check(f"trial {trial.number} {split}")
            for split, breakdown in trial.breakdown.items():
                total = sum(breakdown.energy_j.values())
                if abs(total - getattr(trial, split).energy_j) > 1e-9 * getattr(trial, split).energy_j:
                    raise ValueError(f"trial {trial.number} {split}: energy breakdown sums to {total}, not the energy")
            if trial.pareto and not trial.feasible:
                raise ValueError(f"trial {trial.number}: on the front but infeasible")
        for baseline in self.baselines:
            baseline.calib.check(f"baseline {baseline.label}")
            baseline.test.check(f"baseline {baseline.label}")
        feasible = [t for t in self.trials if t.feasible]
        for point in self.pareto:
            if any(t.calib.energy_j < point.calib.energy_j and t.calib.accuracy_loss_pct < point.calib.accuracy_loss_pct
                   for t in feasible):
                raise ValueError(f"{point.label}: on the front but dominated on the calibration split")


@dataclass(frozen=True)
class Headline:
    """The answer a study gives: under the loss budget, the configuration to pick, whether its budget is certified,
    and what it saves on each split."""

    max_accuracy_loss_pct: float | None
    big: str
    choice: TrialResult | None  # the recommended point; None: none feasible yet, or (certified) the big net alone
    guarantee: tuple[float, float] | None = None  # (alpha_pct, delta) when the budget is certified
    certified: CertifiedPoint | None = None  # the choice's certificate
    certificate_computed: bool = False  # with a guarantee: whether the certificate has been computed

    @property
    def over_limit_on_test(self) -> bool:
        """True when the chosen point's held-out loss exceeds the budget (exactly, on integer extra errors)."""
        limit = self.max_accuracy_loss_pct
        return self.choice is not None and limit is not None and not within_limit(self.choice.test, limit)

    @property
    def is_certified(self) -> bool:
        """Whether the recommendation carries the guarantee (a certified point, or the big net alone)."""
        return self.guarantee is not None and self.certificate_computed

    def _budget(self) -> str:
        if self.max_accuracy_loss_pct is None:
            return "With no accuracy-loss budget"
        text = f"Under an accuracy-loss budget of {_points(self.max_accuracy_loss_pct)}"
        return text + (f", certified at δ = {self.guarantee[1]:g}" if self.guarantee is not None else "")

    def _meaning(self) -> str:
        assert self.guarantee is not None
        alpha, delta = self.guarantee
        return (f" Certified: it loses at most {_points(alpha)} of accuracy against the big net on new data from the "
                f"same distribution (its expected loss), with probability at least {1 - delta:g} (1 − δ).")

    def sentence(self) -> str:
        """The paragraph the report and `dse run` open with."""
        budget = self._budget()
        if self.guarantee is not None and not self.certificate_computed:
            return (f"{budget}, no certificate has been computed yet (it is computed when a run ends): until then "
                    f"the safe choice is the big net alone ({self.big}).")
        if self.guarantee is not None and self.choice is None:
            return (f"{budget}, no point that saves energy certifies on the calibration rows kept aside: the cheapest "
                    f"safe choice is the big net alone ({self.big}), which loses nothing. More calibration rows or a "
                    f"larger budget may certify a cheaper one.")
        if self.choice is None:
            return f"{budget}, no trial is feasible yet: run more trials or relax the budget."
        c = self.choice
        thresholds = (f"threshold{'s' if len(c.thresholds) > 1 else ''} "
                      + ("/".join(f"{t:.4g}" for t in c.thresholds) or "none"))
        flag = " — over the budget on the held-out split" if self.over_limit_on_test else ""
        saves = c.calib.energy_saving_pct > 0
        verdict = "" if saves else " The big net alone is the better choice until a trial saves energy."
        name = "the recommended configuration (certified)" if self.guarantee is not None else "the best configuration"
        text = (f"{budget}, {name} is {c.label}: {c.cascade} ({thresholds}). "
                f"It {'saves' if saves else 'costs'} {abs(c.calib.energy_saving_pct):.1f} % "
                f"{'' if saves else 'more '}energy against the big net alone "
                f"({c.test.energy_saving_pct:.1f} % on the held-out split, loss "
                f"{c.test.accuracy_loss_pct:.2f} points{flag}).{verdict}")
        if self.guarantee is not None:
            return text + self._meaning()
        if self.max_accuracy_loss_pct is not None:
            return text + (" Not certified: the budget is met on the calibration split only, with no guarantee on "
                           "new data (the spec turns the loss guarantee off).")
        return text

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (`dse pareto --json`, `dse --json run`): the recommended point and whether it is
        certified (with a guarantee and no certified point: the big net alone, `trial` null)."""
        c = self.choice
        alone = self.guarantee is not None and c is None
        return {"max_accuracy_loss_pct": self.max_accuracy_loss_pct, "big": self.big, "sentence": self.sentence(),
                "certified": self.is_certified,
                "guarantee": None if self.guarantee is None else {"alpha_pct": self.guarantee[0],
                                                                  "delta": self.guarantee[1]},
                "trial": None if c is None else c.number, "point": None if c is None else c.point,
                "cascade": self.big if alone else None if c is None else c.cascade,
                "thresholds": [] if alone else None if c is None else list(c.thresholds),
                "calib_energy_saving_pct": 0.0 if alone else None if c is None else c.calib.energy_saving_pct,
                "test_energy_saving_pct": 0.0 if alone else None if c is None else c.test.energy_saving_pct,
                "test_accuracy_loss_pct": 0.0 if alone else None if c is None else c.test.accuracy_loss_pct,
                "test_extra_errors": 0 if alone else None if c is None else c.test.extra_errors,
                "over_limit_on_test": self.over_limit_on_test}


def _points(value: float) -> str:
    """'1 point', '0.5 points'."""
    return f"{value:g} point" + ("" if value == 1 else "s")


def _is(point: TrialResult, certified: CertifiedPoint) -> bool:
    return point.number == certified.number and point.thresholds == certified.thresholds


def headline(results: StudyResults) -> Headline:
    """With a loss guarantee: the cheapest certified point that saves energy (none: the big net alone). Without one: the
    least-calibration-energy feasible Pareto point; with no budget, the least-energy one losing no accuracy on
    calibration (else the least lossy)."""
    if results.guarantee is not None:
        saving = [p for p in results.certified if p.certify_energy_saving_pct > 0]  # else the big net alone is cheaper
        best = min(saving, key=lambda p: p.certify_energy_j) if saving else None
        choice = None if best is None else next((t for t in results.trials if _is(t, best)), None)
        return Headline(results.max_accuracy_loss_pct, results.big, choice, results.guarantee,
                        best if choice is not None else None, results.certificate is not None)
    front = results.pareto
    if results.max_accuracy_loss_pct is None and front:
        lossless = [t for t in front if t.calib.extra_errors <= 0]
        front = lossless or [min(front, key=lambda t: (t.calib.accuracy_loss_pct, t.calib.energy_j))]
    return Headline(results.max_accuracy_loss_pct, results.big, front[0] if front else None)


def mark(results: StudyResults) -> StudyResults:
    """The results with each point's `certified` and `recommended` flags set from the certificate and headline."""
    chosen = headline(results).choice
    trials = [replace(t, certified=any(_is(t, p) for p in results.certified),
                      recommended=chosen is not None and (t.number, t.point) == (chosen.number, chosen.point))
              for t in results.trials]
    return replace(results, trials=trials)
