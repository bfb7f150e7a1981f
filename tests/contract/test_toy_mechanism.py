"""A mechanism defined entirely in this file registers, parses its own spec section and runs a study through the
same contract as the built-in ones; no file of the project changes for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

import dse
from contract.test_mechanisms import check_mechanisms, contract_spec
from nets import Variant


@dataclass(frozen=True)
class HalfSpec:
    """[toy]: put the big net at this width fraction in front of the cascade (0: off)."""

    width: float = 0.0


class HalfWidthFirst(dse.Mechanism[HalfSpec]):
    """A toy: the big net at a reduced width runs first, trained independently (not an increment)."""

    name = "toy"
    Section = HalfSpec
    place = dse.Place.FRONT
    example = {"width": 0.5}

    def validate(self, spec: dse.StudySpec, section: HalfSpec) -> None:
        dse.check(0 < section.width < 1, f"{spec.source}: toy.width", f"must lie in (0, 1), got {section.width}")

    def variants(self, spec: dse.StudySpec, section: HalfSpec) -> list[Variant]:
        return [spec.variant(spec.nets.big, width=section.width)]

    def shape(self, chooser: dse.Chooser, spec: dse.StudySpec, section: HalfSpec, cascade: dse.Cascade) -> dse.Cascade:
        if chooser.suggest_categorical("", ["on", "off"]) == "off" and len(cascade.stages) > 1:
            return cascade
        return dse.Cascade((spec.variant(spec.nets.big, width=section.width), *cascade.stages), cascade.reuse)

    def baseline_kind(self, spec: dse.StudySpec, section: HalfSpec, variant: Variant) -> str | None:
        return "toy only" if variant.width == section.width else None


@pytest.fixture()
def toy() -> Iterator[HalfWidthFirst]:
    mechanism = dse.register(HalfWidthFirst())
    yield mechanism
    dse.unregister(mechanism.name)


def test_toy_mechanism_runs_a_study(toy: HalfWidthFirst, tiny_study: dict, tmp_path: Path) -> None:
    results = check_mechanisms(("toy",), tiny_study["root"] / "cache", tmp_path)
    assert {t.cascade for t in results.trials} == {"lenet@w0.5 > lenet"}
    assert [b.kind for b in results.baselines] == ["big only", "toy only"]
    assert {name for t in results.trials for name in t.params} == {"toy"}  # its one choice, named after it


def test_toy_mechanism_pairs_with_a_builtin(toy: HalfWidthFirst, tiny_study: dict, tmp_path: Path) -> None:
    results = check_mechanisms(("bitwidth", "toy"), tiny_study["root"] / "cache", tmp_path, enumerate_limit=2000)
    assert any(t.cascade.startswith("lenet@w0.5 > lenet@") for t in results.trials)


def test_toy_takes_its_declared_place_whatever_the_registration_order(toy: HalfWidthFirst) -> None:
    """Registered after every built-in, the toy (FRONT) still shapes before the effort knobs (INSIDE), which then
    see the toy's stage first."""
    assert list(dse.registry()) == ["incremental", "bitwidth", "exits", "little", "toy", "effort"]
    spec = dse.parse_spec(contract_spec("toy", {"toy": {"width": 0.5},
                                                "effort": {"mechanisms": ["layer"], "nets": ["little"]}}), "t.toml")
    params = {"toy": "on", "effort.little.uniformity": 0.01}
    first = dse.shape_cascade(spec, optuna.trial.FixedTrial(params)).stages[0]
    assert first == Variant("lenet", width=0.5, knobs=(("uniformity", 0.01),))


def test_toy_parses_without_the_registry() -> None:
    """Mechanisms passed to parse_spec are the ones bound into the spec; the registry is left as it was."""
    text = contract_spec("toy", {"toy": {"width": 0.5}, "bitwidth": {"bitwidths": [8]}})
    spec = dse.parse_spec(text, "t.toml", mechanisms=[*dse.mechanisms.BUILTIN, HalfWidthFirst()])
    assert spec.enabled() == ["bitwidth", "toy"] and "toy" not in dse.registry()
    assert spec.section("toy") == HalfSpec(0.5)
    assert dse.shape_cascade(spec, optuna.trial.FixedTrial({"bitwidths": "8", "toy": "on"})).stages == (
        Variant("lenet", width=0.5), Variant("lenet", bits=8))


def test_toy_section_is_validated_by_the_toy(toy: HalfWidthFirst) -> None:
    with pytest.raises(dse.SpecError, match=r"t\.toml: toy\.width: must lie in \(0, 1\), got 1\.5"):
        dse.parse_spec(contract_spec("toy", {"toy": {"width": 1.5}}), "t.toml")


def test_unregistered_section_is_unknown() -> None:
    with pytest.raises(dse.SpecError, match=r"t\.toml: toy: unknown key"):
        dse.parse_spec(contract_spec("toy", {"toy": {"width": 0.5}}), "t.toml")
