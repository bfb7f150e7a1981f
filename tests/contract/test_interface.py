"""The typed mechanism interface, checked without training: declared places order the shaping (registration order
carries no meaning), a missing section means off, parameter names never collide across mechanisms and the core, and a
mechanism's chooser offers categorical and integer choices only."""

from __future__ import annotations

import itertools
import types
from dataclasses import dataclass

import optuna
import pytest

import dse
from contract.test_mechanisms import _allowed_sets, contract_spec
from dse.core import registry as core_registry
from dse.core.space import CascadeSpace, ScopedChooser

EVERY_CORE_CHOICE = 'sram_choices = ["8KiB", "16KiB"]\npartition_step = 0.25\ncriteria = ["margin", "entropy"]\n'


def space_of(spec: dse.StudySpec) -> CascadeSpace:
    """The structure space of `spec` (no data: drawing a structure scores nothing)."""
    return CascadeSpace(types.SimpleNamespace(accelerator=dse.make_accelerator(spec)[0]), spec)  # type: ignore[arg-type]


def spec_with(names: tuple[str, ...], extra_search: str = "") -> dse.StudySpec:
    """A spec with the examples of `names` switched on (and `extra_search` appended to [search])."""
    text = contract_spec("-".join(names) or "none", {n: dse.registry()[n].example for n in names})
    return dse.parse_spec(text.replace("[search]\n", "[search]\n" + extra_search), "c.toml")


def owners_of_space(spec: dse.StudySpec) -> dict[str, str]:
    """Which owner (a mechanism, or "search") draws each parameter, over every structure of the space."""
    space, owners = space_of(spec), dict[str, str]()
    structures = dse.enumerate_structures(space, 5000)
    assert structures is not None
    for params in structures:
        space.structure(optuna.trial.FixedTrial(params), owners)  # a name claimed by two owners raises
    return owners


@pytest.mark.parametrize("names", _allowed_sets(), ids=lambda names: "+".join(names))
def test_parameter_names_are_the_mechanisms_own(names: tuple[str, ...]) -> None:
    """Every parameter a mechanism draws is stored under its name (or the name it had before prefixes were automatic),
    and no two owners (the mechanisms, the core) ever draw the same name."""
    owners = owners_of_space(spec_with(names, EVERY_CORE_CHOICE))
    assert {owner for owner in owners.values()} == {*names, "search"}
    assert {n for n, owner in owners.items() if owner == "search"} == {"sram", "partition_input", "partition_weight",
                                                                     "criterion"}
    for name, owner in owners.items():
        if owner != "search":
            mechanism = dse.registry()[owner]
            legacy = set(mechanism.legacy_names.values())
            assert name == owner or name.startswith(f"{owner}.") or name in legacy or name.startswith("criterion@exit")


@pytest.mark.parametrize("name", list(dse.registry()))
def test_a_missing_section_means_off(name: str) -> None:
    """Without its section (or with an empty one) a mechanism is off: its defaults, no stage, no parameter."""
    mechanism = dse.registry()[name]
    other = next(o for o in dse.registry() if o != name and not ({o, name} & mechanism.unsupported))
    for text in (contract_spec("off", {other: dse.registry()[other].example}),
                 contract_spec("off", {other: dse.registry()[other].example, name: {}})):
        spec = dse.parse_spec(text, "c.toml")
        assert spec.section(name) == mechanism.Section() and spec.enabled() == [other]
        assert name not in owners_of_space(spec).values()
    assert mechanism.enabled(spec_with((name,)).section(name))  # and its example switches it on


def test_places_order_the_shaping_not_registration() -> None:
    """The built-ins declare their places; registered in reverse, they shape in the same order."""
    builtin = list(dse.mechanisms.BUILTIN)
    assert [m.name for m in core_registry.shaping_order(builtin[::-1])] == [m.name for m in builtin]
    assert [m.place for m in builtin] == sorted(m.place for m in builtin)
    names = {m.name for m in builtin}
    assert all(m.after <= names for m in builtin)  # what each reads is a mechanism that exists
    text = contract_spec("all", {m.name: m.example for m in builtin})
    reverse = dse.parse_spec(text, "c.toml", mechanisms=builtin[::-1])
    forward = dse.parse_spec(text, "c.toml")
    assert list(reverse.mechanisms) == list(forward.mechanisms) == [m.name for m in builtin]
    params = dse.enumerate_structures(space_of(forward), 100)
    if params is not None:  # a large space is compared on drawn structures below
        assert params == dse.enumerate_structures(space_of(reverse), 100)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(40):
        trial = study.ask()
        assert space_of(forward).structure(trial) == space_of(reverse).structure(optuna.trial.FixedTrial(trial.params))
        study.tell(trial, 0.0)


@dataclass(frozen=True)
class _On:
    on: bool = False


def _mechanism(name: str, place: dse.Place | None, after: frozenset[str] = frozenset(), **attrs: object) -> dse.Mechanism:
    """A mechanism class made for one test: it validates nothing and draws the choices `draw` makes."""
    def shape(self, chooser, spec, section, cascade):  # type: ignore[no-untyped-def]
        attrs.get("draw", lambda chooser: None)(chooser)  # type: ignore[operator]
        return cascade

    body = {"name": name, "Section": _On, "after": after, "validate": lambda self, spec, section: None,
            "shape": shape, **{k: v for k, v in attrs.items() if k != "draw"}}
    if place is not None:
        body["place"] = place
    return type(name.title(), (dse.Mechanism,), body)()


def test_declarations_are_checked() -> None:
    with pytest.raises(TypeError, match=r"Nowhere\.place must be a dse\.Place"):
        dse.register(_mechanism("nowhere", None))
    with pytest.raises(TypeError, match=r"\.name must be an identifier other than"):
        dse.register(_mechanism("search", dse.Place.FRONT))
    with pytest.raises(TypeError, match=r"'early' \(BIG\) cannot shape after 'little' \(FRONT\), which shapes later"):
        core_registry.shaping_order([*dse.mechanisms.BUILTIN, _mechanism("early", dse.Place.BIG, frozenset({"little"}))])
    cycle = [_mechanism("a", dse.Place.TRUNK, frozenset({"b"})), _mechanism("b", dse.Place.TRUNK, frozenset({"a"}))]
    with pytest.raises(TypeError, match=r"\['a', 'b'\] wait for one another"):
        core_registry.shaping_order(cycle)
    with pytest.raises(TypeError, match="Can't instantiate abstract class"):
        type("Bare", (dse.Mechanism,), {"name": "bare", "Section": _On, "place": dse.Place.FRONT})()


def test_within_a_place_after_then_name() -> None:
    first, second = _mechanism("zeta", dse.Place.TRUNK), _mechanism("alpha", dse.Place.TRUNK, frozenset({"zeta"}))
    third = _mechanism("beta", dse.Place.TRUNK)
    assert [m.name for m in core_registry.shaping_order([second, third, first])] == ["beta", "zeta", "alpha"]


def _spec_with_test_mechanism(mechanism: dse.Mechanism) -> dse.StudySpec:
    """A spec with one little net (parameter `little`) and `mechanism` on, parsed with the built-ins and it."""
    text = contract_spec("t", {"little": {"nets": ["mini7"]}, mechanism.name: {"on": True}})
    return dse.parse_spec(text, "t.toml", mechanisms=[*dse.mechanisms.BUILTIN, mechanism])


def test_a_name_another_owner_draws_is_refused() -> None:
    """A mechanism whose stored name would be another's parameter (here the little nets') fails the trial loudly."""
    clash = _mechanism("clash", dse.Place.INSIDE, legacy_names={"net": "little"},
                       draw=lambda chooser: chooser.suggest_categorical("net", ["a"]))
    spec = _spec_with_test_mechanism(clash)
    with pytest.raises(ValueError, match=r"parameter 'little' is drawn by both \[little\] and \[clash\]"):
        dse.shape_cascade(spec, optuna.trial.FixedTrial({"little": "mini7"}))
    core = _mechanism("sram", dse.Place.INSIDE, draw=lambda chooser: chooser.suggest_categorical("", ["8KiB"]))
    spec = dse.parse_spec(contract_spec("t", {"little": {"nets": ["mini7"]}, "sram": {"on": True}}).replace(
        "[search]\n", "[search]\n" + EVERY_CORE_CHOICE), "t.toml", mechanisms=[*dse.mechanisms.BUILTIN, core])
    with pytest.raises(ValueError, match=r"parameter 'sram' is drawn by both \[sram\] and \[search\]"):
        space_of(spec).structure(optuna.trial.FixedTrial({"little": "mini7", "sram": "8KiB", "criterion": "margin"}))


@pytest.mark.parametrize("draw, error, match", [
    (lambda chooser: chooser.suggest_float("x", 0.0, 1.0), AttributeError, "suggest_float"),
    (lambda chooser: chooser.suggest_categorical("x", [{"a": 1}]), TypeError,
     r"\[odd\] parameter 'x': choices must be a non-empty list of str, int or float"),
    (lambda chooser: chooser.suggest_categorical("x", []), TypeError, "non-empty list"),
    (lambda chooser: chooser.suggest_int("x", 3, 1), TypeError, r"low <= high must hold .*low=3, high=1"),
])
def test_a_mechanism_chooser_offers_categorical_and_integer_only(draw, error, match) -> None:  # type: ignore[no-untyped-def]
    spec = _spec_with_test_mechanism(_mechanism("odd", dse.Place.INSIDE, draw=draw))
    with pytest.raises(error, match=match):
        dse.shape_cascade(spec, optuna.trial.FixedTrial({"little": "mini7", "odd.x": 0}))


def test_a_mechanism_chooser_prefixes_its_names() -> None:
    drawn: dict[str, object] = {}
    named = _mechanism("named", dse.Place.INSIDE,
                       draw=lambda chooser: drawn.update(k=chooser.suggest_int("k", 1, 3),
                                                         main=chooser.suggest_categorical("", ["x", "y"])))
    spec = _spec_with_test_mechanism(named)
    dse.shape_cascade(spec, optuna.trial.FixedTrial({"little": "mini7", "named.k": 2, "named": "y"}))
    assert drawn == {"k": 2, "main": "y"}
    chooser = ScopedChooser(optuna.trial.FixedTrial({"named.k": 3}), "named", named.param_name, {})
    assert chooser.suggest_int("k", 1, 3) == 3 and not hasattr(chooser, "suggest_float")
    assert list(itertools.islice(dse.registry(), 1)) == ["incremental"]  # the test mechanisms were never registered
