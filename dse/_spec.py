"""Study specs: TOML files parsed once into frozen dataclasses, with one-line errors naming file and key."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nets import TrainingConfig

SPEC_VERSION = 1
OBJECTIVES = ("energy", "accuracy_loss", "latency", "storage")
SAMPLERS = ("tpe", "nsga2", "random")
THRESHOLD_MODES = ("threshold", "lambda", "loss_budget")
TILING_RULES = ("fastest", "energy", "dram")
PRICED_LAYERS = ("all", "conv")


class SpecError(ValueError):
    """A study spec that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class DataSpec:
    """Which dataset and split seed."""

    dataset: str = "mnist5k"
    path: str = ""
    seed: int = 0


@dataclass(frozen=True)
class NetsSpec:
    """The big net and the little candidates."""

    big: str = "lenet"
    little: tuple[str, ...] = ()


@dataclass(frozen=True)
class AcceleratorSpec:
    """The tile accelerator every point is priced on (see costmodel.Accelerator)."""

    tm: int = 16
    tn: int = 16
    clock_hz: float = 500e6
    sram: str = "16KiB"
    partition: tuple[float, ...] = (0.25, 0.5, 0.25)
    bits: int = 16
    tiling_rule: str = "fastest"
    technology: str = ""
    priced_layers: str = "all"


@dataclass(frozen=True)
class SearchSpec:
    """Optuna study settings, objectives and the accuracy-loss constraint."""

    n_trials: int = 200
    sampler: str = "tpe"
    seed: int = 0
    threshold_range: tuple[float, ...] = (0.0, 1.0)
    threshold_modes: tuple[str, ...] = ("threshold",)
    lambda_range: tuple[float, ...] = (0.01, 100.0)
    sram_choices: tuple[str, ...] = ()
    partition_step: float = 0.0
    max_accuracy_loss_pct: float | None = None
    loss_confidence_z: float = 0.0
    objectives: tuple[str, ...] = ("energy", "accuracy_loss")


@dataclass(frozen=True)
class BitwidthSpec:
    """Dynamic bit-width (Jahier Pagliari 2018): stages of the big net at increasing bit-widths. Off when empty."""

    bitwidths: tuple[int, ...] = ()
    max_stages: int = 3
    rounding: str = "nearest"
    little_bits: tuple[int, ...] = ()


@dataclass(frozen=True)
class IncrementalSpec:
    """Runtime-configurable DNN (Tann 2016): stages are channel fractions of the big net. Off when empty."""

    widths: tuple[float, ...] = ()
    n_increments: tuple[int, ...] = (2, 5)


@dataclass(frozen=True)
class EffortSpec:
    """Dynamic effort knobs (DyVEDeep-style) searched for the named stages. Off when empty."""

    mechanisms: tuple[str, ...] = ()
    nets: tuple[str, ...] = ("big",)
    scopes: tuple[str, ...] = ("",)  # knob groups: "" (every layer), "conv", "fc", or layer names like "conv2"


@dataclass(frozen=True)
class StudySpec:
    """A whole study: name, data, training, nets, accelerator, search."""

    name: str
    source: str
    description: str = ""
    version: int = SPEC_VERSION
    data: DataSpec = field(default_factory=DataSpec)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    nets: NetsSpec = field(default_factory=NetsSpec)
    accelerator: AcceleratorSpec = field(default_factory=AcceleratorSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    bitwidth: BitwidthSpec = field(default_factory=BitwidthSpec)
    incremental: IncrementalSpec = field(default_factory=IncrementalSpec)
    effort: EffortSpec = field(default_factory=EffortSpec)

    def with_overrides(self, **sections: dict[str, Any]) -> "StudySpec":
        """A copy with some section fields replaced, e.g. with_overrides(search={"n_trials": 5})."""
        changes = {name: dataclasses.replace(getattr(self, name), **values)
                   for name, values in sections.items() if values}
        return dataclasses.replace(self, **changes)


SECTIONS = {"data": DataSpec, "training": TrainingConfig, "nets": NetsSpec,
            "accelerator": AcceleratorSpec, "search": SearchSpec, "bitwidth": BitwidthSpec,
            "incremental": IncrementalSpec, "effort": EffortSpec}


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check a TOML value against the type of the field's default."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int) and not isinstance(default, bool):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float) or default is None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, list)
        value = tuple(value) if ok else value
    else:
        ok = False
    if not ok:
        raise SpecError(f"{where}: expected {type(default).__name__ if default is not None else 'number'}, "
                        f"got {value!r}")
    return value


def _section(table: Any, cls: type, where: str) -> Any:
    """Build one section dataclass, rejecting unknown keys and wrong types."""
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
                for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(defaults)})")
    return cls(**{key: _coerce(value, defaults[key], f"{where}.{key}") for key, value in table.items()})


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise SpecError(f"{where}: {message}")


def validate(spec: StudySpec) -> StudySpec:
    """Cross-field rules; raises SpecError naming the key."""
    from nets import architecture_names

    src = spec.source
    known = architecture_names()
    _check(spec.version == SPEC_VERSION, f"{src}: version", f"must be {SPEC_VERSION}, got {spec.version}")
    _check(bool(spec.name) and all(c.isalnum() or c in "-_." for c in spec.name), f"{src}: name",
           f"must be a non-empty word of letters, digits, '-', '_' or '.', got {spec.name!r}")
    for where, net in [("nets.big", spec.nets.big)] + [(f"nets.little[{i}]", n) for i, n in enumerate(spec.nets.little)]:
        _check(net in known, f"{src}: {where}", f"unknown network '{net}' (known: {', '.join(known)})")
    mechanisms_on = bool(spec.bitwidth.bitwidths or spec.incremental.widths or spec.effort.mechanisms)
    _check(len(spec.nets.little) > 0 or mechanisms_on, f"{src}: nets.little",
           "the candidate list is empty (and no [bitwidth], [incremental] or [effort] section provides stages)")
    _check(spec.nets.big not in spec.nets.little, f"{src}: nets.little",
           f"the big net '{spec.nets.big}' cannot also be a little candidate")
    _check(len(set(spec.nets.little)) == len(spec.nets.little), f"{src}: nets.little", "lists a net twice")
    t = spec.training
    for key in ("epochs", "batch_size"):
        _check(getattr(t, key) >= 1, f"{src}: training.{key}", f"must be >= 1, got {getattr(t, key)}")
    _check(t.learning_rate > 0, f"{src}: training.learning_rate", f"must be > 0, got {t.learning_rate}")
    s = spec.search
    _check(s.n_trials >= 0, f"{src}: search.n_trials", f"must be >= 0, got {s.n_trials}")
    _check(s.sampler in SAMPLERS, f"{src}: search.sampler", f"must be one of {', '.join(SAMPLERS)}, got '{s.sampler}'")
    low_high = s.threshold_range
    _check(len(low_high) == 2 and all(isinstance(v, (int, float)) for v in low_high), f"{src}: search.threshold_range",
           f"must be [low, high], got {list(low_high)}")
    _check(0 <= low_high[0] < low_high[1] <= 1, f"{src}: search.threshold_range",
           f"0 <= low < high <= 1 must hold (margins lie in [0, 1]), got {list(low_high)}")
    _check(len(s.threshold_modes) >= 1 and set(s.threshold_modes) <= set(THRESHOLD_MODES), f"{src}: search.threshold_modes",
           f"must be a non-empty subset of {', '.join(THRESHOLD_MODES)}, got {list(s.threshold_modes)}")
    _check(len(s.lambda_range) == 2 and all(isinstance(v, (int, float)) for v in s.lambda_range), f"{src}: search.lambda_range",
           f"must be [low, high], got {list(s.lambda_range)}")
    _check(0 < s.lambda_range[0] < s.lambda_range[1], f"{src}: search.lambda_range",
           f"0 < low < high must hold (lambda >= 0, sampled on a log scale), got {list(s.lambda_range)}")
    _check(s.partition_step == 0 or (0 < s.partition_step <= 1 / 3 and abs(1 / s.partition_step - round(1 / s.partition_step)) < 1e-9),
           f"{src}: search.partition_step", f"must be 0 (fixed partition) or 1/k for an integer k >= 3, got {s.partition_step}")
    _check(s.max_accuracy_loss_pct is None or s.max_accuracy_loss_pct >= 0, f"{src}: search.max_accuracy_loss_pct",
           f"must be >= 0, got {s.max_accuracy_loss_pct}")
    _check(s.loss_confidence_z >= 0, f"{src}: search.loss_confidence_z", f"must be >= 0, got {s.loss_confidence_z}")
    _check(len(s.objectives) >= 1 and set(s.objectives) <= set(OBJECTIVES), f"{src}: search.objectives",
           f"must be a non-empty subset of {', '.join(OBJECTIVES)}, got {list(s.objectives)}")
    a = spec.accelerator
    _check(a.tiling_rule in TILING_RULES, f"{src}: accelerator.tiling_rule",
           f"must be one of {', '.join(TILING_RULES)}, got '{a.tiling_rule}'")
    _check(a.priced_layers in PRICED_LAYERS, f"{src}: accelerator.priced_layers",
           f"must be one of {', '.join(PRICED_LAYERS)}, got '{a.priced_layers}'")
    _check(spec.data.dataset in ("mnist5k", "mnist", "npz", "cifar10"), f"{src}: data.dataset",
           f"must be mnist5k, mnist, npz or cifar10, got '{spec.data.dataset}'")
    _validate_mechanisms(spec)
    return spec


def _validate_mechanisms(spec: StudySpec) -> None:
    """Rules of the [bitwidth], [incremental] and [effort] sections."""
    src, b, inc, eff = spec.source, spec.bitwidth, spec.incremental, spec.effort
    for key, widths in (("bitwidths", b.bitwidths), ("little_bits", b.little_bits)):
        _check(all(isinstance(w, int) and not isinstance(w, bool) and 2 <= w <= 32 for w in widths),
               f"{src}: bitwidth.{key}", f"every bit-width must be an integer in 2..32, got {list(widths)}")
        _check(list(widths) == sorted(set(widths)), f"{src}: bitwidth.{key}",
               f"must be strictly increasing, got {list(widths)}")
    _check(b.max_stages >= 1, f"{src}: bitwidth.max_stages", f"must be >= 1, got {b.max_stages}")
    _check(b.rounding in ("nearest", "stochastic"), f"{src}: bitwidth.rounding",
           f"must be nearest or stochastic, got '{b.rounding}'")
    _check(all(isinstance(w, (int, float)) and 0 < w < 1 for w in inc.widths) and list(inc.widths) == sorted(set(inc.widths)),
           f"{src}: incremental.widths", f"must be increasing fractions in (0, 1) (1 is the full net), got {list(inc.widths)}")
    low_high = inc.n_increments
    _check(len(low_high) == 2 and 2 <= low_high[0] <= low_high[1], f"{src}: incremental.n_increments",
           f"must be [min, max] with 2 <= min <= max, got {list(low_high)}")
    if inc.widths:
        _check(low_high[0] <= len(inc.widths) + 1, f"{src}: incremental.n_increments",
               f"{low_high[0]} increments need {low_high[0] - 1} golden widths below 1, only {len(inc.widths)} given")
    known = ("neuron", "feature", "layer")
    _check(set(eff.mechanisms) <= set(known), f"{src}: effort.mechanisms",
           f"must be a subset of {', '.join(known)}, got {list(eff.mechanisms)}")
    _check(set(eff.nets) <= {"big", "little"} and len(eff.nets) > 0, f"{src}: effort.nets",
           f"must be a non-empty subset of big, little, got {list(eff.nets)}")
    _check(len(eff.scopes) > 0 and all(isinstance(x, str) for x in eff.scopes) and len(set(eff.scopes)) == len(eff.scopes)
           and ("" not in eff.scopes or len(eff.scopes) == 1), f"{src}: effort.scopes",
           f"must be distinct knob groups ('' alone, or e.g. 'conv', 'fc', 'conv2'), got {list(eff.scopes)}")


def parse_spec(text: str, source: str) -> StudySpec:
    """Parse and validate spec TOML `text`; `source` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML ({exc})") from None
    top = {"name", "description", "version"}
    unknown = sorted(set(raw) - top - set(SECTIONS))
    if unknown:
        raise SpecError(f"{source}: {unknown[0]}: unknown key (known: {', '.join(sorted(top | set(SECTIONS)))})")
    if "name" not in raw:
        raise SpecError(f"{source}: name: missing")
    sections = {key: _section(raw.get(key, {}), cls, f"{source}: {key}") for key, cls in SECTIONS.items()}
    head = {key: _coerce(raw[key], default, f"{source}: {key}")
            for key, default in (("name", ""), ("description", ""), ("version", 0)) if key in raw}
    return validate(StudySpec(source=source, **head, **sections))


def builtin_specs() -> dict[str, Path]:
    """Built-in study specs shipped in the `studies` package, by name."""
    folder = resources.files("studies")
    return {Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir() if str(entry).endswith(".toml")}


def load_spec(name_or_path: str | Path) -> StudySpec:
    """A spec from a file path, or a built-in spec by name (e.g. 'quickstart')."""
    path = Path(name_or_path)
    if not path.is_file():
        builtins = builtin_specs()
        if str(name_or_path) not in builtins:
            raise SpecError(f"{name_or_path}: no such spec file or built-in study (built-in: {', '.join(sorted(builtins))})")
        path = builtins[str(name_or_path)]
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: unreadable ({exc})") from None
    return parse_spec(text, str(path))
