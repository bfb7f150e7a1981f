"""The mechanism contract: every registered mechanism, alone and paired with every other the spec allows, runs a
real study on the embedded digits; what is scored and what is priced agree on every transform; results are typed.

A mechanism of one's own passes the same `check_mechanisms` (see test_toy_mechanism.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import dse
from nets import Variant

TRIALS = 6


def toml_value(value: object) -> str:
    """A TOML literal of a str, number, bool or list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def contract_spec(name: str, sections: dict[str, dict]) -> str:
    """A small study on the embedded digits (LeNet big, one epoch, random sampler) with `sections` switched on."""
    text = (f'version = 2\nname = "{name}"\n[data]\ndataset = "mnist5k"\n[training]\nepochs = 1\nbatch_size = 128\n'
            f'[nets]\nbig = "lenet"\n[search]\nsampler = "random"\nmax_accuracy_loss_pct = 5.0\nenumerate_limit = 0\n')
    for section, keys in sections.items():
        text += f"[{section}]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in keys.items())
    return text


def check_mechanisms(names: tuple[str, ...], cache: Path, tmp_path: Path) -> dse.StudyResults:
    """Run the contract on the registered mechanisms `names`; returns the study's results for further checks."""
    sections = {name: dse.registry()[name].example for name in names}
    spec = dse.parse_spec(contract_spec("contract-" + "-".join(names), sections), "contract.toml")
    assert spec.enabled() == [n for n in dse.registry() if n in names]
    problem, _ = dse.load_problem(spec, str(cache), n_jobs=1, log=lambda _: None)
    study = dse.open_study(spec, dse.open_storage(dse.sqlite_url(tmp_path / "study.db")))
    dse.run_search(study, problem, spec, TRIALS, progress=False)
    results = dse.study_results(study)
    assert len(results.trials) >= 5
    for trial in results.trials:
        stages = [problem.index(name) for name in trial.cascade.split(" > ")]
        for index in stages:
            variant = problem.variants[index]
            wanted = set(variant.transforms)
            assert set(problem.applied[index]) == wanted, f"{variant.name}: scored {problem.applied[index]}"
            assert set(problem.priced_transforms(index)) == wanted, f"{variant.name}: priced differently"
            if variant.bits is not None and variant.knobs:  # the quantizer really ran with the knobs
                float_twin = problem.ensure(Variant(variant.net, variant.width, variant.increments, knobs=variant.knobs))
                assert not np.array_equal(problem.margin["calib"][index], problem.margin["calib"][float_twin])
    results.check()
    return results


def _allowed_sets() -> list[tuple[str, ...]]:
    names = list(dse.registry())
    pairs = [pair for pair in itertools.combinations(names, 2)
             if not (dse.registry()[pair[0]].unsupported & {pair[1]} or dse.registry()[pair[1]].unsupported & {pair[0]})]
    return [(name,) for name in names] + pairs


@pytest.mark.parametrize("names", _allowed_sets(), ids=lambda names: "+".join(names))
def test_mechanism_contract(names: tuple[str, ...], tiny_study: dict, tmp_path: Path) -> None:
    results = check_mechanisms(names, tiny_study["root"] / "cache", tmp_path)
    assert results.baselines and results.baselines[0].kind == "big only"


def test_bits_and_knobs_are_scored_and_priced_together(tiny_study: dict, tmp_path: Path) -> None:
    """The combination that was once scored in float but priced at reduced bits: both transforms, both sides."""
    spec = dse.parse_spec(contract_spec("bits-knobs", {"bitwidth": {"bitwidths": [4]},
                                                      "effort": {"mechanisms": ["layer"]}}), "c.toml")
    problem, _ = dse.load_problem(spec, str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    both = problem.ensure(Variant("lenet", bits=4, knobs=(("uniformity", 0.01),)))
    knobs_only = problem.ensure(Variant("lenet", knobs=(("uniformity", 0.01),)))
    assert problem.applied[both] == ("bits", "rounding", "knobs") == problem.priced_transforms(both)
    assert problem.price(both).energy_pj < problem.price(knobs_only).energy_pj  # priced at 4 bits
    assert not np.array_equal(problem.margin["test"][both], problem.margin["test"][knobs_only])  # scored at 4 bits


def test_unsupported_pairs_are_refused(tmp_path: Path) -> None:
    """A pair a mechanism declares unsupported is a one-line spec error, never a silently dropped transform."""
    first, second = list(dse.registry().values())[:2]
    try:
        type(first).unsupported = frozenset({second.name})
        text = contract_spec("refused", {first.name: first.example, second.name: second.example})
        with pytest.raises(dse.SpecError, match=rf"{first.name}: cannot be combined with \[{second.name}\]"):
            dse.parse_spec(text, "refused.toml")
    finally:
        type(first).unsupported = frozenset()
