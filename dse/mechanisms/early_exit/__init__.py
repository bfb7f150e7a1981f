"""Early exit (BranchyNet, Teerapittayanon et al. 2016): side branches on the big net's trunk answer confident inputs.

Section [exits]: candidate branch layers of the big net (a shipped net, a [models.*] layer list, residual or not, or
an ONNX model, whose points may also name output tensors), how many exits a cascade keeps, the branch sizes or
user-given branch layer lists ([[exits.branch]] tables: `at` a point, `layers` in the [models.*] vocabulary), how the
branches are trained (on the frozen trained big net, or jointly with weighted losses), optional bit-widths and the
exit criteria each exit may use (a searched choice per exit). A trial keeps an increasing subset of the points; their exits run before the big net's last stage (before its first
stage when the stages widen one another), each continuing from the trunk activations the exit before it left, so an
input escalating from exit k pays only the trunk segment to the next exit, that exit's branch and the waiting
activations, residual shortcuts included (`costmodel.continuation_cost`). Brings the exit-reach, per-exit accuracy and energy-per-exit panels,
and `dse exits-cost`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from dse.core.mechanism import Cascade, Chooser, Mechanism, Place
from dse.core.problem import CascadeProblem
from dse.core.results import Panel
from dse.core.sweep import accept_sweep
from dse.core.spec import SpecError, StudySpec, check
from dse.mechanisms.early_exit.given import given_branches
from dse.core.pricer import StageRule
from dse.mechanisms.early_exit.rules import ContinueFromExit
from nets import CRITERIA, ExitError, Exits, Variant, check_exits, resolve_points

NONE = "none"  # no exits: the other mechanisms' stages only
SAME = "same"  # exits at the precision of the stage they precede (so it can continue from their activations)
TRAININGS = ("frozen", "joint")
CRITERION = "criterion@exit"  # an exit's criterion parameter, numbered by its point's position


@dataclass(frozen=True)
class ExitsSpec:
    """[exits]: candidate branch layers of the big net (off when empty), the [min, max] exits a cascade keeps, branch
    sizes (1x1-conv channels), user-given branches ({at = point, layers = [...]} tables, replacing the default branch
    there), training ('frozen' trunk or 'joint' with `loss_weights`: one per point, then the trunk's), and bit-widths
    the exits may also run at; `criteria`: exit criteria each exit picks from, a searched choice per exit (empty: the
    trial's [search] criterion for every stage)."""

    points: tuple[str, ...] = ()
    n_active: tuple[int, ...] = ()  # empty: 1 up to every point
    channels: tuple[int, ...] = (16,)
    training: str = "frozen"
    loss_weights: tuple[float, ...] = ()
    bits: tuple[int, ...] = ()
    rounding: str = "nearest"
    branch: tuple[dict[str, Any], ...] = ()
    criteria: tuple[str, ...] = ()


def points_of(spec: StudySpec, config: ExitsSpec) -> tuple[str, ...]:
    """The exit points as the big net's layer names (an ONNX model's tensor names resolved to their nodes')."""
    return resolve_points(spec.models.get(spec.nets.big), config.points)


def exits_of(spec: StudySpec, config: ExitsSpec, channels: int, answer: str = "") -> Exits:
    """The exit set every variant of branch size `channels` shares, answering at `answer`."""
    return Exits(points_of(spec, config), answer, channels, config.training, tuple(config.loss_weights),
                 given_branches(spec, config.points, config.branch))


def separator(points: tuple[str, ...]) -> str:
    """What joins the points of an exit set in the search's choice labels: '/' ('pool1/pool2'), or ' | ' when a point
    holds a '/' (ONNX node names such as '/layer1/Relu')."""
    return " | " if any("/" in point for point in points) else "/"


def exit_criterion(chooser: Chooser, config: ExitsSpec, point: str, points: tuple[str, ...]) -> str:
    """The exit criterion of the exit at `point`: a choice among `config.criteria`, named after the point's position
    (`criterion@exit2`: the second point; layer names may hold characters a parameter name cannot)."""
    if len(config.criteria) == 1:
        return config.criteria[0]
    return str(chooser.suggest_categorical(f"{CRITERION}{points.index(point) + 1}", list(config.criteria)))


def active_range(config: ExitsSpec) -> tuple[int, ...]:
    """[min, max] exits a cascade keeps (default: 1 up to every point)."""
    return config.n_active or (1, len(config.points))


def exit_variants(spec: StudySpec, config: ExitsSpec, channels: int, points: tuple[str, ...],
                  bits: int | None = None) -> list[Variant]:
    """The variants answering at each of `points`, at `bits`."""
    return [spec.variant(spec.nets.big, bits=bits, rounding=config.rounding, exits=exits_of(spec, config, channels, p))
            for p in points]


class EarlyExit(Mechanism[ExitsSpec]):
    """Side branches on the big net's trunk, each a stage that continues from the one before."""

    name = "exits"
    Section = ExitsSpec
    place = Place.TRUNK
    after = frozenset({"incremental"})  # reads whether the big net's stages widen one another (`reuse`)
    legacy_names = {"channels": "exit_channels", "bits": "exit_bits"}
    example = {"points": ["pool1", "pool2"], "n_active": [1, 2], "channels": [8], "bits": [8]}
    digest_when_off = False
    later_fields = {"criteria": ()}

    def enabled(self, config: ExitsSpec) -> bool:
        return bool(config.points)

    def validate(self, spec: StudySpec, config: ExitsSpec) -> None:
        src = spec.source
        low_high = active_range(config)
        check(len(low_high) == 2 and all(isinstance(n, int) for n in low_high)
              and 1 <= low_high[0] <= low_high[1] <= len(config.points), f"{src}: exits.n_active",
              f"must be [min, max] with 1 <= min <= max <= {len(config.points)} (the points given), got {list(low_high)}")
        check(len(config.channels) >= 1 and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1
                                                for c in config.channels)
              and len(set(config.channels)) == len(config.channels), f"{src}: exits.channels",
              f"must be distinct integers >= 1, got {list(config.channels)}")
        check(config.training in TRAININGS, f"{src}: exits.training",
              f"must be one of {', '.join(TRAININGS)}, got '{config.training}'")
        check(all(isinstance(b, int) and not isinstance(b, bool) and 2 <= b <= 32 for b in config.bits)
              and list(config.bits) == sorted(set(config.bits)), f"{src}: exits.bits",
              f"must be strictly increasing integers in 2..32, got {list(config.bits)}")
        check(config.rounding in ("nearest", "stochastic"), f"{src}: exits.rounding",
              f"must be nearest or stochastic, got '{config.rounding}'")
        check(set(config.criteria) <= set(CRITERIA) and len(set(config.criteria)) == len(config.criteria),
              f"{src}: exits.criteria",
              f"must be distinct exit criteria from {', '.join(CRITERIA)}, got {list(config.criteria)}")
        given = {table.get("at") for table in config.branch if isinstance(table, dict)}
        check(len(config.channels) == 1 or not given >= set(config.points), f"{src}: exits.channels",
              f"every point has a given branch (exits.branch), so branch sizes {list(config.channels)} would be the "
              "same nets: give one")

    def check_nets(self, spec: StudySpec, config: ExitsSpec) -> None:
        """The points must be branchable layers of the big net, in trunk order; the loss weights must fit them."""
        key = "loss_weights" if config.loss_weights else "points"
        plain = Exits(points_of(spec, config), "", config.channels[0], config.training, tuple(config.loss_weights))
        try:
            check_exits(spec.architecture(spec.nets.big), plain)
        except ExitError as exc:
            raise SpecError(f"{spec.source}: exits.{key}: {exc}") from None
        given_branches(spec, config.points, config.branch)

    def variants(self, spec: StudySpec, config: ExitsSpec) -> list[Variant]:
        out = [v for c in config.channels for v in exit_variants(spec, config, c, points_of(spec, config))]
        if config.training == "joint":
            out += [spec.variant(spec.nets.big, exits=exits_of(spec, config, c)) for c in config.channels]
        return out

    def _choices(self, spec: StudySpec, config: ExitsSpec) -> list[str]:
        low, high = active_range(config)
        points = points_of(spec, config)
        subsets = [separator(points).join(combo) for k in range(low, high + 1)
                   for combo in itertools.combinations(points, k)]
        return subsets + ([NONE] if len(spec.enabled()) > 1 else [])

    def param_name(self, local: str) -> str:
        """As the base's, but an exit's criterion keeps the name it was stored under ('criterion@exit<k>')."""
        return local if local.startswith(CRITERION) else super().param_name(local)

    def shape(self, chooser: Chooser, spec: StudySpec, config: ExitsSpec, cascade: Cascade) -> Cascade:
        """The `exits` parameter: an increasing set of points (or none), then the branch size, the exits' bits and
        each exit's criterion; the exits go before the big net's first stage when its stages widen one another,
        else before its last."""
        chosen = chooser.suggest_categorical("", self._choices(spec, config))
        if chosen == NONE:
            return cascade
        channels = int(chooser.suggest_categorical("channels", list(config.channels))) \
            if len(config.channels) > 1 else config.channels[0]
        position = 0 if cascade.reuse else len(cascade.stages) - 1
        following = cascade.stages[position]
        bits_choice = chooser.suggest_categorical("bits", [SAME, *map(str, config.bits)]) if config.bits else SAME
        bits = following.bits if bits_choice == SAME else int(bits_choice)
        if config.training == "joint" and following == spec.variant(spec.nets.big, bits=following.bits,
                                                               rounding=following.rounding):
            following = dataclasses.replace(following, exits=exits_of(spec, config, channels))  # the joint trunk
        stages = tuple(exit_variants(spec, config, channels, tuple(chosen.split(separator(points_of(spec, config)))),
                                     bits))
        criteria = tuple((stage, exit_criterion(chooser, config, stage.exits.answer, points_of(spec, config)))
                         for stage in stages if config.criteria and stage.exits is not None)
        return Cascade(cascade.stages[:position] + stages + (following,) + cascade.stages[position + 1:],
                       cascade.reuse, cascade.criteria + criteria)

    def baseline_kind(self, spec: StudySpec, config: ExitsSpec, variant: Variant) -> str | None:
        if variant.exits is None:
            return None
        return "exit only" if variant.exits.answer else "jointly trained trunk"

    def panels(self, problem: CascadeProblem, spec: StudySpec, config: ExitsSpec) -> list[Panel]:
        """Per branch size: every exit active, each at the lowest threshold adding no calibration error against the
        big net; on the test split, where inputs leave, each exit's own accuracy and the energy of leaving there."""
        panels = []
        for channels in config.channels:
            stages = [problem.ensure(v) for v in exit_variants(spec, config, channels, points_of(spec, config))]
            final = problem.big if config.training == "frozen" else problem.ensure(
                spec.variant(spec.nets.big, exits=exits_of(spec, config, channels)))
            stages.append(final)
            thresholds = np.array([lossless_threshold(problem, stage) for stage in stages[:-1]])
            labels = [*points_of(spec, config), "trunk"]
            reach = problem.evaluate(stages, thresholds[None], "test")
            answered = exit_fractions(problem.confidence("margin", "test")[stages], thresholds)
            energy = np.cumsum([cost.energy_pj for cost in problem.stage_costs(stages)])
            title = f"branch size {channels}"
            panels += [
                Panel("bar", f"Exit reach: where test inputs leave ({title})",
                      f"Every exit active; thresholds {np.round(thresholds, 3).tolist()} (margin) add no calibration "
                      f"error against the big net. Energy saving {float(reach.energy_saving_pct[0]):.1f}% at "
                      f"{float(reach.accuracy_loss_pct[0]):.2f} points of accuracy loss.",
                      x=labels, y=(100 * answered).round(2).tolist(), y_title="% of test inputs answered"),
                Panel("bar", f"Accuracy of each exit alone ({title}, test split)",
                      f"Big net alone: {100 * problem.correct['test'][problem.big].mean():.2f}%.",
                      x=labels, y=(100 * problem.correct["test"][stages].mean(axis=1)).round(2).tolist(),
                      y_title="accuracy (%)"),
                Panel("line", f"Energy of an input answered at each exit ({title})",
                      "Cumulative: the trunk up to the exit, every earlier exit's branch, and the activations that "
                      "waited at each escalation.", x=labels, series={"energy (nJ)": (energy / 1e3).round(2).tolist()},
                      y_title="energy per input (nJ)"),
            ]
        return panels

    def stage_rules(self) -> tuple[StageRule, ...]:
        return (ContinueFromExit(),)


def lossless_threshold(problem: CascadeProblem, stage: int) -> float:
    """The lowest margin threshold (most inputs leaving at `stage`) adding no calibration error against the big net."""
    correct = problem.correct["calib"]
    delta = correct[problem.big].astype(np.int64) - correct[stage].astype(np.int64)
    thresholds, _, losses = accept_sweep(problem.margin["calib"][stage], delta)
    return float(thresholds[np.flatnonzero(losses <= 0)[-1]])


def exit_fractions(confidence: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of inputs answered at each stage (S,), from the stages' confidences (S, N) and thresholds (S-1,)."""
    from dse.core.evaluate import exit_stages

    answered = exit_stages(confidence, thresholds[None])[0]
    return np.bincount(answered, minlength=confidence.shape[0]) / confidence.shape[1]
