"""A mechanism defined entirely in this file registers, parses its own spec section and runs a study through the
same contract as the built-in ones; no file of the project changes for it."""

from __future__ import annotations

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


class HalfWidthFirst(dse.Mechanism):
    """A toy: the big net at a reduced width runs first, trained independently (not an increment)."""

    name = "toy"
    Section = HalfSpec
    example = {"width": 0.5}

    def validate(self, spec: dse.StudySpec, config: HalfSpec) -> None:
        dse.check(0 < config.width < 1, f"{spec.source}: toy.width", f"must lie in (0, 1), got {config.width}")

    def variants(self, spec: dse.StudySpec, config: HalfSpec) -> list[Variant]:
        return [Variant(spec.nets.big, width=config.width)]

    def shape(self, trial: optuna.Trial, spec: dse.StudySpec, config: HalfSpec, cascade: dse.Cascade) -> dse.Cascade:
        if trial.suggest_categorical("toy", ["on", "off"]) == "off" and len(cascade.stages) > 1:
            return cascade
        return dse.Cascade((Variant(spec.nets.big, width=config.width), *cascade.stages), cascade.reuse)

    def baseline_kind(self, spec: dse.StudySpec, config: HalfSpec, variant: Variant) -> str | None:
        return "toy only" if variant.width == config.width else None


@pytest.fixture()
def toy() -> HalfWidthFirst:
    mechanism = dse.register(HalfWidthFirst())
    yield mechanism
    dse.unregister(mechanism.name)


def test_toy_mechanism_runs_a_study(toy: HalfWidthFirst, tiny_study: dict, tmp_path: Path) -> None:
    results = check_mechanisms(("toy",), tiny_study["root"] / "cache", tmp_path)
    assert {t.cascade for t in results.trials} == {"lenet@w0.5 > lenet"}
    assert [b.kind for b in results.baselines] == ["big only", "toy only"]


def test_toy_mechanism_pairs_with_a_builtin(toy: HalfWidthFirst, tiny_study: dict, tmp_path: Path) -> None:
    results = check_mechanisms(("bitwidth", "toy"), tiny_study["root"] / "cache", tmp_path)
    assert any(t.cascade.startswith("lenet@w0.5 > lenet@") for t in results.trials)


def test_toy_section_is_validated_by_the_toy(toy: HalfWidthFirst) -> None:
    with pytest.raises(dse.SpecError, match=r"t\.toml: toy\.width: must lie in \(0, 1\), got 1\.5"):
        dse.parse_spec(contract_spec("toy", {"toy": {"width": 1.5}}), "t.toml")


def test_unregistered_section_is_unknown() -> None:
    with pytest.raises(dse.SpecError, match=r"t\.toml: toy: unknown key"):
        dse.parse_spec(contract_spec("toy", {"toy": {"width": 0.5}}), "t.toml")
