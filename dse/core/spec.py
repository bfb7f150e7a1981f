"""Study specs: TOML files parsed once into frozen dataclasses, with one-line errors naming file and key.

The core sections are [data], [training], [nets], [accelerator] and [search]; every mechanism the spec is parsed with
(the registered ones unless given) adds its own section (see `dse.mechanisms`), parsed into the mechanism's frozen
dataclass, validated by it and bound with it into the spec. [models.NAME] tables declare the user's own networks
(`dse.core.models`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args

from costmodel import Dataflow, TilingRule
from dse.core.errors import SpecError, check
from dse.core.registry import Bound, check_declaration, registry, shaping_order
from dse.core.models import parse_models
from nets import CRITERIA, Architecture, TrainingConfig, UnknownArchitecture, Variant, architecture_names

SPEC_VERSION = 2
OBJECTIVES = ("energy", "accuracy_loss", "latency", "storage")
SAMPLERS = ("tpe", "nsga2", "random")
THRESHOLDS = ("exact", "sampled")
PRICED_LAYERS = ("all", "conv")
DATASETS = ("mnist5k", "mnist", "npz", "cifar10", "labels")
EMBEDDED_DATASETS = ("mnist5k",)  # shipped with a package: no data.path


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
    dataflow: str = "auto"  # conv/FC mapping: best per layer, one stationarity, or "diannao" (the first version's)
    technology: str = ""
    priced_layers: str = "all"


@dataclass(frozen=True)
class LossGuarantee:
    """[search] loss_guarantee: certify that the recommended point's risk (its expected accuracy loss on new data
    from the same distribution) is <= alpha_pct with probability >= 1 - delta (`dse.risk`). On by default;
    `loss_guarantee = false` turns it off.

    delta = 0.1 by default: the usual level of Learn-then-Test risk control; one certification in ten may be wrong,
    and halving it costs about one standard error of the paired loss on the certification rows. Half of the
    calibration rows are kept aside to certify (the search chooses on the other half).
    """

    alpha_pct: float | None = None  # None: the search's max_accuracy_loss_pct
    delta: float = 0.1
    certify_fraction: float = 0.5  # share of the calibration rows kept aside to certify (the rest is searched on)


@dataclass(frozen=True)
class SearchSpec:
    """Optuna study settings, objectives and the accuracy-loss constraint."""

    n_trials: int = 200
    sampler: str = "tpe"
    seed: int = 0
    thresholds: str = "exact"  # exact: every trial's threshold front solved (exact up to 3 stages, approximate from 4:
    # coordinate sweeps, hypervolume ratio >= 0.94 against brute force on small cases); sampled: drawn by Optuna
    threshold_range: tuple[float, ...] = (0.0, 1.0)  # (sampled only)
    enumerate_limit: int = 2000  # structure spaces up to this size are enumerated, not sampled (0: never)
    sram_choices: tuple[str, ...] = ()
    partition_step: float = 0.0
    max_accuracy_loss_pct: float | None = None
    loss_confidence_z: float = 0.0  # normal approximation: a cheaper, uncertified margin (see loss_guarantee)
    loss_guarantee: LossGuarantee | None = field(default_factory=LossGuarantee)  # None: explicitly not certified
    objectives: tuple[str, ...] = ("energy", "accuracy_loss")
    criteria: tuple[str, ...] = ("margin",)  # exit criteria a trial may pick (nets.CRITERIA)

    @property
    def guarantee(self) -> LossGuarantee | None:
        """The loss guarantee in force, its alpha the loss budget: None when turned off, when there is no budget, or
        when the uncertified normal-approximation margin (loss_confidence_z) is used instead."""
        budget = self.max_accuracy_loss_pct
        if self.loss_guarantee is None or budget is None or not 0 < budget < 100 or self.loss_confidence_z != 0:
            return None
        return dataclasses.replace(self.loss_guarantee, alpha_pct=self.max_accuracy_loss_pct)


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
    mechanisms: dict[str, Bound] = field(default_factory=dict)  # name -> mechanism bound with its section, shaping order
    models: dict[str, Any] = field(default_factory=dict)  # [models.NAME] -> nets.Model, usable as net names

    def with_overrides(self, **sections: dict[str, Any]) -> "StudySpec":
        """A copy with some section fields replaced, e.g. with_overrides(search={"n_trials": 5})."""
        changes = {name: dataclasses.replace(getattr(self, name), **values)
                   for name, values in sections.items() if values and name in SECTIONS}
        mechanisms = {name: dataclasses.replace(bound, section=dataclasses.replace(bound.section, **sections[name]))
                      if sections.get(name) else bound for name, bound in self.mechanisms.items()}
        return dataclasses.replace(self, **changes, mechanisms=mechanisms)

    def with_data(self, path: Path | str | None) -> "StudySpec":
        """A copy reading its data from `path` (the --data option; None: unchanged); an embedded dataset reads none."""
        if path is None:
            return self
        if self.data.dataset in EMBEDDED_DATASETS:
            raise SpecError(f"--data {path}: the spec's dataset '{self.data.dataset}' is embedded and reads no path "
                            f"(drop --data, or name a dataset that reads one in data.dataset)")
        return self.with_overrides(data={"path": str(path)})

    def variant(self, net: str, **transforms: Any) -> Variant:
        """A variant of `net` as this spec means it: its declared model when it declares one, else the shipped net."""
        return Variant(net, **transforms, model=self.models.get(net))

    def architecture(self, net: str) -> Architecture:
        """The layer chain this spec's net called `net` runs (its declared model's, else the shipped one)."""
        if net not in self.net_names():
            raise UnknownArchitecture(f"unknown network '{net}'; known: {', '.join(self.net_names())}")
        return self.variant(net).net_architecture

    def net_names(self) -> list[str]:
        """Every net name this spec can use: the shipped architectures, then its declared models."""
        return [*architecture_names(), *self.models]

    def section(self, name: str) -> Any:
        """The parsed section of mechanism `name` (its defaults, i.e. off, when the spec has none)."""
        return self.mechanisms[name].section

    def active(self) -> list[Bound]:
        """The mechanisms the spec switches on, bound with their sections, in shaping order."""
        return [bound for bound in self.mechanisms.values() if bound.enabled]

    def enabled(self) -> list[str]:
        """Names of the mechanisms the spec switches on, in shaping order."""
        return [bound.name for bound in self.active()]

    def sections(self) -> dict[str, Any]:
        """Every section (core and mechanism) by name: what defines the study's space and values."""
        return {**{name: getattr(self, name) for name in SECTIONS},
                **{name: bound.section for name, bound in self.mechanisms.items()}}


SECTIONS = {"data": DataSpec, "training": TrainingConfig, "nets": NetsSpec,
            "accelerator": AcceleratorSpec, "search": SearchSpec}


MAX_INT = 2**53  # integers beyond this lose precision as floats: no setting needs them
MAX_SEED = 2**32  # numpy's legacy seeds (Optuna's samplers) stop here
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a study name is a directory name: no '.', '..', '/', 255+


def _finite(value: Any, where: str) -> None:
    """Refuse inf, NaN and integers too large to be a setting, in a value or inside a list."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, float) and not math.isfinite(item):
            raise SpecError(f"{where}: must be a finite number, got {item}")
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= MAX_INT:
            raise SpecError(f"{where}: must be below 2**53 in magnitude, got a {len(str(abs(item)))}-digit number")
        if isinstance(item, str) and len(item) > 1000:
            raise SpecError(f"{where}: a string of {len(item)} characters is too long")


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check a TOML value against the type of the field's default (finite, of sane size; tables of nested sections
    are parsed as such)."""
    if where.endswith(".loss_guarantee"):
        if isinstance(value, bool):
            return LossGuarantee() if value else None
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a table {{ alpha_pct = …, delta = … }} or false, got {value!r}")
        return _section(value, LossGuarantee, where)
    _finite(value, where)
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


def validate(spec: StudySpec) -> StudySpec:
    """Cross-field rules; raises SpecError naming the key."""
    _check_head(spec)
    _check_training(spec.training, spec.source)
    _check_search(spec.search, spec.source)
    _check_accelerator_and_data(spec)
    for bound in spec.active():
        bound.mechanism.validate(spec, bound.section)
    s, guarantee = spec.search, spec.search.loss_guarantee
    if guarantee is not None and s.max_accuracy_loss_pct is None and guarantee.alpha_pct is not None:
        # the search is constrained to the guaranteed budget
        return dataclasses.replace(spec, search=dataclasses.replace(s, max_accuracy_loss_pct=guarantee.alpha_pct))
    return spec


def _check_head(spec: StudySpec) -> None:
    """Version, name, seeds, the big net, and a set of mechanisms that provides a stage and may be combined."""
    src = spec.source
    known = spec.net_names()
    check(spec.version == SPEC_VERSION, f"{src}: version", f"must be {SPEC_VERSION}, got {spec.version}")
    check(NAME.fullmatch(spec.name) is not None, f"{src}: name", "must start with a letter or digit and have at most "
          f"100 letters, digits, '-', '_' or '.' (it names the output directory), got {spec.name[:120]!r}")
    for key, seed in (("data.seed", spec.data.seed), ("search.seed", spec.search.seed),
                      ("training.seed", spec.training.seed)):
        check(0 <= seed < MAX_SEED, f"{src}: {key}", f"must be in [0, 2**32), got {seed}")
    check(spec.nets.big in known, f"{src}: nets.big", f"unknown network '{spec.nets.big}' (known: {', '.join(known)})")
    enabled = spec.enabled()
    check(bool(enabled), f"{src}: nets", "no mechanism section provides a cascade stage (add one of: "
           f"{', '.join(f'[{name}]' for name in spec.mechanisms)})")
    for bound in spec.active():
        clash = sorted(bound.mechanism.unsupported & set(enabled))
        check(not clash, f"{src}: {bound.name}", f"cannot be combined with [{clash[0]}] (unsupported together)"
               if clash else "")


def _check_training(t: TrainingConfig, src: str) -> None:
    """[training]: epochs, batch size, weight decay and learning rate in range."""
    for key in ("epochs", "batch_size"):
        check(getattr(t, key) >= 1, f"{src}: training.{key}", f"must be >= 1, got {getattr(t, key)}")
    check(0 <= t.weight_decay <= 1, f"{src}: training.weight_decay", f"must be in [0, 1], got {t.weight_decay}")
    check(t.epochs <= 10_000 and t.batch_size <= 2**20, f"{src}: training",
          f"epochs <= 10000 and batch_size <= 2**20 must hold, got {t.epochs} and {t.batch_size}")
    check(0 < t.learning_rate <= 10, f"{src}: training.learning_rate", f"must be in (0, 10], got {t.learning_rate}")


def _check_search(s: SearchSpec, src: str) -> None:
    """[search]: trial budget, sampler, thresholds, space, loss budget and guarantee, objectives, criteria."""
    check(s.n_trials >= 0, f"{src}: search.n_trials", f"must be >= 0, got {s.n_trials}")
    check(s.sampler in SAMPLERS, f"{src}: search.sampler", f"must be one of {', '.join(SAMPLERS)}, got '{s.sampler}'")
    low_high = s.threshold_range
    check(len(low_high) == 2 and all(isinstance(v, (int, float)) for v in low_high), f"{src}: search.threshold_range",
           f"must be [low, high], got {list(low_high)}")
    check(0 <= low_high[0] < low_high[1] <= 1, f"{src}: search.threshold_range",
           f"0 <= low < high <= 1 must hold (margins lie in [0, 1]), got {list(low_high)}")
    check(s.thresholds in THRESHOLDS, f"{src}: search.thresholds", f"must be one of {', '.join(THRESHOLDS)}, got '{s.thresholds}'")
    check(s.enumerate_limit >= 0, f"{src}: search.enumerate_limit", f"must be >= 0, got {s.enumerate_limit}")
    check(s.partition_step == 0 or (0 < s.partition_step <= 1 / 3 and abs(1 / s.partition_step - round(1 / s.partition_step)) < 1e-9),
           f"{src}: search.partition_step", f"must be 0 (fixed partition) or 1/k for an integer k >= 3, got {s.partition_step}")
    check(s.max_accuracy_loss_pct is None or 0 <= s.max_accuracy_loss_pct <= 100, f"{src}: search.max_accuracy_loss_pct",
           f"must be in [0, 100], got {s.max_accuracy_loss_pct}")
    for key in ("objectives", "sram_choices"):
        values = list(getattr(s, key))
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        check(not repeated, f"{src}: search.{key}", f"lists {repeated[0]!r} twice" if repeated else "")
    check(s.loss_confidence_z >= 0, f"{src}: search.loss_confidence_z", f"must be >= 0, got {s.loss_confidence_z}")
    if s.loss_guarantee is not None:
        _check_guarantee(s, s.loss_guarantee, src)
    check(len(s.objectives) >= 1 and set(s.objectives) <= set(OBJECTIVES), f"{src}: search.objectives",
           f"must be a non-empty subset of {', '.join(OBJECTIVES)}, got {list(s.objectives)}")
    check(len(s.criteria) >= 1 and len(set(s.criteria)) == len(s.criteria) and set(s.criteria) <= set(CRITERIA),
          f"{src}: search.criteria", f"must be distinct exit criteria from {', '.join(CRITERIA)}, got {list(s.criteria)}")


def _check_guarantee(s: SearchSpec, guarantee: LossGuarantee, src: str) -> None:
    """[search] loss_guarantee: alone (no normal-approximation margin), with a certifiable budget, delta and share."""
    check(s.loss_confidence_z == 0, f"{src}: search.loss_confidence_z",
          "cannot be combined with loss_guarantee, which is on by default (set loss_guarantee = false to use the "
          "uncertified normal-approximation margin)")
    if guarantee.alpha_pct is not None:
        check(0 < guarantee.alpha_pct < 100, f"{src}: search.loss_guarantee.alpha_pct",
              f"must be in (0, 100), got {guarantee.alpha_pct}")
        check(s.max_accuracy_loss_pct is None or s.max_accuracy_loss_pct == guarantee.alpha_pct,
              f"{src}: search.max_accuracy_loss_pct", "must equal loss_guarantee.alpha_pct (or be left out) when "
              "both are set")
    else:
        check(s.max_accuracy_loss_pct is None or 0 < s.max_accuracy_loss_pct < 100,
              f"{src}: search.max_accuracy_loss_pct", f"a budget of {s.max_accuracy_loss_pct} cannot be certified "
              "(it must be in (0, 100)); set loss_guarantee = false to search it uncertified")
    check(0 < guarantee.delta < 1, f"{src}: search.loss_guarantee.delta", f"must be in (0, 1), got {guarantee.delta}")
    check(0 < guarantee.certify_fraction < 1, f"{src}: search.loss_guarantee.certify_fraction",
          f"must be in (0, 1), got {guarantee.certify_fraction}")


def _check_accelerator_and_data(spec: StudySpec) -> None:
    """[accelerator] dataflow, tiling rule and priced layers; [data] dataset and path."""
    src, a = spec.source, spec.accelerator
    flows = get_args(Dataflow)
    check(a.dataflow in flows, f"{src}: accelerator.dataflow", f"must be one of {', '.join(flows)}, got '{a.dataflow}'")
    rules = get_args(TilingRule)
    check(a.tiling_rule in rules, f"{src}: accelerator.tiling_rule", f"must be one of {', '.join(rules)}, got '{a.tiling_rule}'")
    check(a.priced_layers in PRICED_LAYERS, f"{src}: accelerator.priced_layers",
           f"must be one of {', '.join(PRICED_LAYERS)}, got '{a.priced_layers}'")
    check(spec.data.dataset in DATASETS, f"{src}: data.dataset",
           f"must be one of {', '.join(DATASETS)}, got '{spec.data.dataset}'")
    imported_logits = any(getattr(model, "logits", None) is not None for model in spec.models.values())
    check(not (spec.data.path and spec.data.dataset in EMBEDDED_DATASETS) or imported_logits, f"{src}: data.path",
          f"dataset '{spec.data.dataset}' is embedded and reads no path, got {spec.data.path!r}")  # (with imported
    # logits, the models' check says what is wrong: data.dataset = "labels" is missing)


def known_mechanisms(mechanisms: Iterable[Any] | None = None) -> list[Any]:
    """The mechanisms a spec is parsed with (the registered ones when None), checked and in shaping order."""
    if mechanisms is None:
        return list(registry().values())
    given = list(mechanisms)
    for mechanism in given:
        check_declaration(mechanism)
    names = [m.name for m in given]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TypeError(f"two mechanisms are named '{repeated[0]}'")
    return shaping_order(given)


def parse_spec(text: str, source: str, mechanisms: Iterable[Any] | None = None) -> StudySpec:
    """Parse and validate spec TOML `text`, binding `mechanisms` (default: the registered ones) with their sections;
    `source` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML ({exc})") from None

    if raw.get("version") == 1:
        raise SpecError(f"{source}: version: version 1 specs are no longer read; version 2 gives every mechanism its "
                        f"own section and [nets] keeps only `big` (see docs/guide/specs.md, 'Upgrading a version 1 spec')")
    known_list = known_mechanisms(mechanisms)
    top = {"name", "description", "version", "models"}
    known = top | set(SECTIONS) | {m.name for m in known_list}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{source}: {unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    if "name" not in raw:
        raise SpecError(f"{source}: name: missing")
    sections = {key: _section(raw.get(key, {}), cls, f"{source}: {key}") for key, cls in SECTIONS.items()}
    bound = {m.name: Bound(m, _section(raw.get(m.name, {}), m.Section, f"{source}: {m.name}")) for m in known_list}
    head = {key: _coerce(raw[key], default, f"{source}: {key}")
            for key, default in (("name", ""), ("description", ""), ("version", 0)) if key in raw}
    models = parse_models(raw.get("models", {}), source)
    return validate(StudySpec(source=source, **head, **sections, mechanisms=bound, models=models))


def builtin_specs() -> dict[str, Path]:
    """Built-in study specs shipped in the `studies` package, by name."""
    folder = resources.files("studies")
    return {Path(str(entry)).stem: Path(str(entry)) for entry in folder.iterdir() if str(entry).endswith(".toml")}


def load_spec(name_or_path: str | Path, mechanisms: Iterable[Any] | None = None) -> StudySpec:
    """A spec from a file path, or a built-in spec by name (e.g. 'quickstart'), parsed with `mechanisms` (default:
    the registered ones)."""
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
    return parse_spec(text, str(path), mechanisms)
