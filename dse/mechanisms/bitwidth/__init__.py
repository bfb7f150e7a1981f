"""Dynamic bit-width (Jahier Pagliari et al. 2018): the big net runs at an increasing set of bit-widths.

Section [bitwidth]: the candidate widths, the most stages a cascade may have, and the quantizer's rounding. The last
stage of a trial's cascade becomes the big net at each width of the chosen set, in increasing order. Brings the
minimum-bit-width histogram panel and `dse characterize` (`dse.mechanisms.bitwidth.jahier2018`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.core.mechanism import Cascade, Chooser, Mechanism, Place
from dse.core.problem import CascadeProblem
from dse.core.results import Panel
from dse.core.space import increasing_subsets
from dse.core.spec import StudySpec, check
from dse.mechanisms.bitwidth.jahier2018 import MAX_BITS, MIN_BITS, characterize, merge_bars
from nets import Variant


@dataclass(frozen=True)
class BitwidthSpec:
    """[bitwidth]: the big net at an increasing subset of these bit-widths as stages. Off when empty."""

    bitwidths: tuple[int, ...] = ()
    max_stages: int = 3
    rounding: str = "nearest"


class Bitwidth(Mechanism[BitwidthSpec]):
    """Jahier Pagliari 2018: the same net quantized at increasing bit-widths."""

    name = "bitwidth"
    Section = BitwidthSpec
    place = Place.BIG
    after = frozenset({"incremental"})  # quantizes the full-width stage the increments end with
    legacy_names = {"bitwidths": "bitwidths"}
    example = {"bitwidths": [4, 8], "max_stages": 2}

    def enabled(self, config: BitwidthSpec) -> bool:
        return bool(config.bitwidths)

    def validate(self, spec: StudySpec, config: BitwidthSpec) -> None:
        src = spec.source
        widths = config.bitwidths
        check(all(isinstance(w, int) and not isinstance(w, bool) and MIN_BITS <= w <= MAX_BITS for w in widths),
              f"{src}: bitwidth.bitwidths", f"every bit-width must be an integer in {MIN_BITS}..{MAX_BITS}, got {list(widths)}")
        check(list(widths) == sorted(set(widths)), f"{src}: bitwidth.bitwidths", f"must be strictly increasing, got {list(widths)}")
        check(config.max_stages >= 1, f"{src}: bitwidth.max_stages", f"must be >= 1, got {config.max_stages}")
        check(config.rounding in ("nearest", "stochastic"), f"{src}: bitwidth.rounding",
              f"must be nearest or stochastic, got '{config.rounding}'")

    def variants(self, spec: StudySpec, config: BitwidthSpec) -> list[Variant]:
        return [spec.variant(spec.nets.big, bits=bits, rounding=config.rounding) for bits in config.bitwidths]

    def shape(self, chooser: Chooser, spec: StudySpec, config: BitwidthSpec, cascade: Cascade) -> Cascade:
        """The `bitwidths` parameter: an increasing set of bit-widths the last stage runs at, each a stage."""
        choices = increasing_subsets(config.bitwidths, range(1, config.max_stages + 1))
        bits = [int(b) for b in chooser.suggest_categorical("bitwidths", choices).split("/")]
        last = cascade.stages[-1]
        quantized = tuple(Variant(last.net, last.width, last.increments, b, config.rounding, last.knobs, model=last.model)
                          for b in bits)
        return Cascade(cascade.stages[:-1] + quantized, cascade.reuse)

    def panels(self, problem: CascadeProblem, spec: StudySpec, config: BitwidthSpec) -> list[Panel]:
        """Minimum bit-width histogram of the big net on the calibration split, with the merged candidate set."""
        rows = [problem.ensure(spec.variant(spec.nets.big, bits=bits, rounding=config.rounding))
                for bits in config.bitwidths]
        found = characterize(problem.correct["calib"][rows], problem.correct["calib"][problem.big], config.bitwidths)
        merged = merge_bars(found.fractions, config.bitwidths)
        return [Panel("bar", f"Minimum bit-width of each sample ({spec.nets.big}, calibration split)",
                      f"Share of float-correct samples whose smallest width that stays correct at every larger "
                      f"width is b. Candidate set after the 1% merge: {sorted(merged)}.",
                      x=found.labels, y=(100.0 * found.fractions).round(3).tolist(), y_title="% of samples")]

