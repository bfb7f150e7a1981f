"""Study specs: TOML files parsed once into frozen dataclasses, with one-line errors naming file and key.

The core sections are [data], [training], [nets], [accelerator] and [search]; every registered mechanism adds its
own section (see `dse.mechanisms`), parsed into the mechanism's frozen dataclass and validated by it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args

from costmodel import TilingRule, UserError
from dse.core.mechanism import registry
from nets import CRITERIA, TrainingConfig

SPEC_VERSION = 2
OBJECTIVES = ("energy", "accuracy_loss", "latency", "storage")
SAMPLERS = ("tpe", "nsga2", "random")
CORE_THRESHOLD_MODES = ("threshold", "loss_budget")  # mechanisms may add more (Mechanism.threshold_modes)
PRICED_LAYERS = ("all", "conv")
DATASETS = ("mnist5k", "mnist", "npz", "cifar10")


class SpecError(UserError):
    """A study spec that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class DataSpec:
    """Which dataset and split seed."""

    dataset: str = "mnist5k"
    path: str = ""
    seed: int = 0


@dataclass(frozen=True)
class NetsSpec:
    """The big net: the reference every cascade is compared with, and the last stage of every cascade."""

    big: str = "lenet"


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
    sram_choices: tuple[str, ...] = ()
    partition_step: float = 0.0
    max_accuracy_loss_pct: float | None = None
    loss_confidence_z: float = 0.0
    objectives: tuple[str, ...] = ("energy", "accuracy_loss")
    criteria: tuple[str, ...] = ("margin",)  # exit criteria a trial may pick (nets.CRITERIA)


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
    mechanisms: dict[str, Any] = field(default_factory=dict)  # section name -> the mechanism's parsed section

    def with_overrides(self, **sections: dict[str, Any]) -> "StudySpec":
        """A copy with some section fields replaced, e.g. with_overrides(search={"n_trials": 5})."""
        changes = {name: dataclasses.replace(getattr(self, name), **values)
                   for name, values in sections.items() if values and name in SECTIONS}
        mechanisms = {name: dataclasses.replace(config, **sections[name]) if sections.get(name) else config
                      for name, config in self.mechanisms.items()}
        return dataclasses.replace(self, **changes, mechanisms=mechanisms)

    def section(self, name: str) -> Any:
        """The parsed section of mechanism `name` (its defaults, i.e. off, when the spec has none)."""
        return self.mechanisms[name]

    def enabled(self) -> list[str]:
        """Names of the mechanisms the spec switches on, in registry order."""
        return [name for name, mechanism in registry().items()
                if name in self.mechanisms and mechanism.enabled(self.mechanisms[name])]

    def sections(self) -> dict[str, Any]:
        """Every section (core and mechanism) by name: what defines the study's space and values."""
        return {**{name: getattr(self, name) for name in SECTIONS}, **self.mechanisms}


SECTIONS = {"data": DataSpec, "training": TrainingConfig, "nets": NetsSpec,
            "accelerator": AcceleratorSpec, "search": SearchSpec}


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


def check(ok: bool, where: str, message: str) -> None:
    """Raise SpecError(f"{where}: {message}") unless `ok`: the one shape of every spec error."""
    if not ok:
        raise SpecError(f"{where}: {message}")


def validate(spec: StudySpec) -> StudySpec:
    """Cross-field rules; raises SpecError naming the key."""
    from nets import architecture_names

    src = spec.source
    known = architecture_names()
    check(spec.version == SPEC_VERSION, f"{src}: version", f"must be {SPEC_VERSION}, got {spec.version}")
    check(bool(spec.name) and all(c.isalnum() or c in "-_." for c in spec.name), f"{src}: name",
           f"must be a non-empty word of letters, digits, '-', '_' or '.', got {spec.name!r}")
    check(spec.nets.big in known, f"{src}: nets.big", f"unknown network '{spec.nets.big}' (known: {', '.join(known)})")
    enabled = spec.enabled()
    check(bool(enabled), f"{src}: nets", "no mechanism section provides a cascade stage (add one of: "
           f"{', '.join(f'[{name}]' for name in spec.mechanisms)})")
    for name in enabled:
        clash = sorted(registry()[name].unsupported & set(enabled))
        check(not clash, f"{src}: {name}", f"cannot be combined with [{clash[0]}] (unsupported together)"
               if clash else "")
    t = spec.training
    for key in ("epochs", "batch_size"):
        check(getattr(t, key) >= 1, f"{src}: training.{key}", f"must be >= 1, got {getattr(t, key)}")
    check(t.learning_rate > 0, f"{src}: training.learning_rate", f"must be > 0, got {t.learning_rate}")
    s = spec.search
    check(s.n_trials >= 0, f"{src}: search.n_trials", f"must be >= 0, got {s.n_trials}")
    check(s.sampler in SAMPLERS, f"{src}: search.sampler", f"must be one of {', '.join(SAMPLERS)}, got '{s.sampler}'")
    low_high = s.threshold_range
    check(len(low_high) == 2 and all(isinstance(v, (int, float)) for v in low_high), f"{src}: search.threshold_range",
           f"must be [low, high], got {list(low_high)}")
    check(0 <= low_high[0] < low_high[1] <= 1, f"{src}: search.threshold_range",
           f"0 <= low < high <= 1 must hold (margins lie in [0, 1]), got {list(low_high)}")
    modes = threshold_mode_names(spec)
    check(len(s.threshold_modes) >= 1 and set(s.threshold_modes) <= set(modes), f"{src}: search.threshold_modes",
           f"must be a non-empty subset of {', '.join(modes)} (with this spec's sections), got {list(s.threshold_modes)}")
    check(s.partition_step == 0 or (0 < s.partition_step <= 1 / 3 and abs(1 / s.partition_step - round(1 / s.partition_step)) < 1e-9),
           f"{src}: search.partition_step", f"must be 0 (fixed partition) or 1/k for an integer k >= 3, got {s.partition_step}")
    check(s.max_accuracy_loss_pct is None or s.max_accuracy_loss_pct >= 0, f"{src}: search.max_accuracy_loss_pct",
           f"must be >= 0, got {s.max_accuracy_loss_pct}")
    check(s.loss_confidence_z >= 0, f"{src}: search.loss_confidence_z", f"must be >= 0, got {s.loss_confidence_z}")
    check(len(s.objectives) >= 1 and set(s.objectives) <= set(OBJECTIVES), f"{src}: search.objectives",
           f"must be a non-empty subset of {', '.join(OBJECTIVES)}, got {list(s.objectives)}")
    check(len(s.criteria) >= 1 and len(set(s.criteria)) == len(s.criteria) and set(s.criteria) <= set(CRITERIA),
          f"{src}: search.criteria", f"must be distinct exit criteria from {', '.join(CRITERIA)}, got {list(s.criteria)}")
    a = spec.accelerator
    rules = get_args(TilingRule)
    check(a.tiling_rule in rules, f"{src}: accelerator.tiling_rule", f"must be one of {', '.join(rules)}, got '{a.tiling_rule}'")
    check(a.priced_layers in PRICED_LAYERS, f"{src}: accelerator.priced_layers",
           f"must be one of {', '.join(PRICED_LAYERS)}, got '{a.priced_layers}'")
    check(spec.data.dataset in DATASETS, f"{src}: data.dataset",
           f"must be one of {', '.join(DATASETS)}, got '{spec.data.dataset}'")
    for name in enabled:
        registry()[name].validate(spec, spec.mechanisms[name])
    return spec


def threshold_mode_names(spec: StudySpec) -> list[str]:
    """The threshold modes a spec may use: the core's and those of its enabled mechanisms."""

    extra = [mode for name in spec.enabled() for mode in registry()[name].threshold_modes(spec, spec.section(name))]
    return [*CORE_THRESHOLD_MODES, *extra]


def parse_spec(text: str, source: str) -> StudySpec:
    """Parse and validate spec TOML `text`; `source` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML ({exc})") from None

    if raw.get("version") == 1:
        raise SpecError(f"{source}: version: version 1 specs are no longer read; version 2 gives every mechanism its "
                        f"own section and [nets] keeps only `big` (see the README's 'Study specs')")
    mechanism_sections = {name: mechanism.Section for name, mechanism in registry().items()}
    top = {"name", "description", "version"}
    known = top | set(SECTIONS) | set(mechanism_sections)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{source}: {unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    if "name" not in raw:
        raise SpecError(f"{source}: name: missing")
    sections = {key: _section(raw.get(key, {}), cls, f"{source}: {key}") for key, cls in SECTIONS.items()}
    mechanisms = {key: _section(raw.get(key, {}), cls, f"{source}: {key}") for key, cls in mechanism_sections.items()}
    head = {key: _coerce(raw[key], default, f"{source}: {key}")
            for key, default in (("name", ""), ("description", ""), ("version", 0)) if key in raw}
    return validate(StudySpec(source=source, **head, **sections, mechanisms=mechanisms))


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
