"""Variants: one runnable network configuration, and its cached per-sample results (`VariantScores`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from costmodel import WaitingTensor
from nets.models._arch import Architecture
from nets.models._exits import Exits, exit_architecture, waiting_tensors
from nets.models._models import Model
from nets.scores._scores import SplitScores
from nets.scores._transforms import Transform
from nets.models._zoo import UnknownArchitecture, architecture


@dataclass(frozen=True)
class TrainingConfig:
    """How a candidate is trained (part of the cache key)."""

    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    """One runnable configuration: the unit that is evaluated, cached and priced.

    `net` at width fraction `width`; `increments` names the fractions of an incrementally trained net
    this variant is a stage of (empty: independently trained); `bits` quantizes the trained weights and
    activations post-training (None: float); `rounding` is the quantizer's rounding; `knobs` are effort
    knobs as sorted (name, value) pairs; `exits` puts side branches on the net and names the one answering
    (None: no branches). Variants that differ only in bits/rounding/knobs, or in the answering exit, share weights.
    `model` is the spec's declared model called `net` (None: the shipped architecture of that name): a variant
    carries it, so that a name means the same network wherever the variant goes (no global registry). `extra` are
    transforms a mechanism brings of its own (`nets.Transform`), applied after the others, in order.
    """

    net: str
    width: float = 1.0
    increments: tuple[float, ...] = ()
    bits: int | None = None
    rounding: str = "nearest"
    knobs: tuple[tuple[str, float], ...] = ()
    exits: Exits | None = None
    model: Model | None = field(default=None, repr=False)
    extra: tuple[Transform, ...] = ()

    @property
    def name(self) -> str:
        """Display name, e.g. 'lenet', 'lenet@w0.25', 'lenet@8b', 'lenet@inc0.25/0.5/1@w0.5'."""
        parts = [self.net]
        if self.increments:
            parts.append("inc" + "/".join(f"{f:g}" for f in self.increments))
        if self.width != 1.0 or self.increments:
            parts.append(f"w{self.width:g}")
        if self.bits is not None:
            parts.append(f"{self.bits}b" + ("" if self.rounding == "nearest" else f"-{self.rounding}"))
        parts += [f"{name}={value:g}" for name, value in self.knobs]
        if self.exits is not None:
            e = self.exits
            parts.append(f"exit:{e.answer or 'trunk'}:{'+'.join(e.points)}:c{e.channels}"
                         + ("" if e.training == "frozen" else f":{e.training}")
                         + (":w" + "/".join(f"{w:g}" for w in e.loss_weights) if e.loss_weights else "")
                         + (":given=" + "+".join(point for point, _ in e.given) if e.given else ""))
        parts += [transform.name_part() for transform in self.extra]
        return "@".join(parts)

    @property
    def transforms(self) -> dict[str, object]:
        """Every transform this variant applies to its net, by name (defaults left out): what scoring and pricing
        must both apply, e.g. {'width': 0.5, 'bits': 8, 'rounding': 'nearest', 'knobs': (...)}."""
        out: dict[str, object] = {}
        if self.width != 1.0:
            out["width"] = self.width
        if self.increments:
            out["increments"] = self.increments
        if self.bits is not None:
            out.update(bits=self.bits, rounding=self.rounding)
        if self.knobs:
            out["knobs"] = self.knobs
        if self.exits is not None:
            out["exits"] = self.exits
        out.update((transform.name, transform) for transform in self.extra)
        return out

    @property
    def rewrites(self) -> str | None:
        """The transform that may replace the net's layer list or trunk weights (side exits), if any."""
        return "exits" if self.exits is not None else None

    @property
    def trunk(self) -> "Variant":
        """The variant whose weights run this one's trunk layers (a frozen trunk is the plain net's)."""
        if self.exits is not None and self.exits.training != "frozen":
            return Variant(self.net, self.width, self.increments, exits=replace(self.exits, answer=""),
                           model=self.model)
        return Variant(self.net, self.width, self.increments, model=self.model)

    def continues(self, previous: "Variant") -> bool:
        """True when this stage can pick up the activations `previous` left at its side exit: the same trunk
        weights, precision and knobs, so the shared trunk layers are not run again."""
        return (previous.exits is not None and bool(previous.exits.answer) and self.trunk == previous.trunk
                and (self.bits, self.rounding, self.knobs, self.extra) == (previous.bits, previous.rounding,
                                                                           previous.knobs, previous.extra))

    @property
    def waiting(self) -> tuple[WaitingTensor, ...]:
        """The trunk activations that wait for a stage continuing from this one's side exit (`continues`): the exit
        point's output and any earlier one a later trunk layer reads (a residual shortcut)."""
        if self.exits is None or not self.exits.answer:
            raise ValueError(f"{self.name} answers at no side exit: nothing waits for a continuation")
        return waiting_tensors(self.net_architecture, self.exits.answer)

    @property
    def training(self) -> "Variant":
        """The variant whose weights this one runs (post-training options stripped)."""
        exits = replace(self.exits, answer="") if self.exits is not None else None
        return Variant(self.net, 1.0 if self.increments else self.width, self.increments, exits=exits, model=self.model)

    @property
    def net_architecture(self) -> Architecture:
        """The network's own layer chain: the declared model's layer list, else the shipped architecture."""
        if self.model is None:
            return architecture(self.net)
        if self.model.architecture is None:
            raise UnknownArchitecture(f"model '{self.net}' has no layer list (its scores come from logits and its "
                                      f"price is measured)")
        return self.model.architecture

    @property
    def architecture(self) -> Architecture:
        """The layer chain this variant runs: the net's, or its trunk prefix and the answering branch."""
        trunk = self.net_architecture
        return exit_architecture(trunk, self.exits) if self.exits is not None else trunk


@dataclass(frozen=True)
class VariantScores:
    """A variant's cached results on the calibration and test splits."""

    variant: Variant
    key: str
    splits: dict[str, SplitScores] = field(default_factory=dict)
    applied: tuple[str, ...] = ()  # the transforms scoring applied (names of `Variant.transforms`)
