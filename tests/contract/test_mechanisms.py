"""The mechanism contract: every registered mechanism, alone and paired with every other the spec allows, runs a
real study on the embedded digits with its structure space enumerated; what is scored and what is priced agree on
every transform; results are typed; a replayed trial gives the same result; after parsing, nothing reads the registry.

A mechanism of one's own passes the same `check_mechanisms` (see test_toy_mechanism.py).
"""

from __future__ import annotations

import itertools
import json
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
import optuna
import pytest

import dse
from dse.core.objective import CascadeObjective
from dse.core.study import space_queue
from dse.core.study_attrs import RECORD
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


def contract_spec(name: str, sections: dict[str, dict], enumerate_limit: int = 0) -> str:
    """A small study on the embedded digits (LeNet big, one epoch, random sampler) with `sections` switched on; its
    structure space is enumerated when it has at most `enumerate_limit` structures (0: sampled)."""
    text = (f'version = 2\nname = "{name}"\n[data]\ndataset = "mnist5k"\n[training]\nepochs = 1\nbatch_size = 128\n'
            f'[nets]\nbig = "lenet"\n[search]\nsampler = "random"\nmax_accuracy_loss_pct = 5.0\n'
            f'enumerate_limit = {enumerate_limit}\n')
    for section, keys in sections.items():
        text += f"[{section}]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in keys.items())
    return text


def _no_registry() -> ExitStack:
    """A context in which reading the mechanism registry fails the test (the spec already carries its mechanisms)."""
    def refuse() -> None:
        raise AssertionError("the registry was read after the spec was parsed")

    stack = ExitStack()
    for module in ("dse.core.registry", "dse.core.spec", "dse"):
        stack.enter_context(mock.patch(f"{module}.registry", refuse))
    return stack


def check_mechanisms(names: tuple[str, ...], cache: Path, tmp_path: Path, enumerate_limit: int = 0) -> dse.StudyResults:
    """Run the contract on the registered mechanisms `names` (their structure space enumerated when it has at most
    `enumerate_limit` structures, which it must); returns the study's results for further checks."""
    sections = {name: dse.registry()[name].example for name in names}
    spec = dse.parse_spec(contract_spec("contract-" + "-".join(names), sections, enumerate_limit), "contract.toml")
    assert spec.enabled() == [n for n in dse.registry() if n in names]
    with _no_registry():
        problem, _ = dse.load_problem(spec, str(cache), n_jobs=1, log=lambda _: None)
        queue = space_queue(problem, spec)
        assert (queue is not None) == (enumerate_limit > 0)
        study = dse.open_study(spec, dse.open_storage(dse.sqlite_url(tmp_path / "study.db")))
        dse.run_search(study, problem, spec, TRIALS, progress=False)
        results = dse.study_results(study)
        check_replay(study, problem, spec)
    assert len(results.trials) >= (min(TRIALS, len(queue.structures)) if queue is not None else 5)
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


def check_replay(study: optuna.Study, problem: dse.CascadeProblem, spec: dse.StudySpec) -> None:
    """Each finished trial, replayed from its parameters (enqueued in a fresh study), gives the same values and the
    same recorded front."""
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    replay = optuna.create_study(directions=[d for d in study.directions])
    for trial in done:
        replay.enqueue_trial(trial.params)
    replay.optimize(CascadeObjective(problem, spec), n_trials=len(done))
    for old, new in zip(done, replay.get_trials()):
        assert new.params == old.params and new.values == old.values
        assert json.loads(new.user_attrs[RECORD]) == json.loads(old.user_attrs[RECORD]), f"trial {old.number}"


def _allowed_sets() -> list[tuple[str, ...]]:
    names = list(dse.registry())
    pairs = [pair for pair in itertools.combinations(names, 2)
             if not (dse.registry()[pair[0]].unsupported & {pair[1]} or dse.registry()[pair[1]].unsupported & {pair[0]})]
    return [(name,) for name in names] + pairs


@pytest.mark.parametrize("names", _allowed_sets(), ids=lambda names: "+".join(names))
def test_mechanism_contract(names: tuple[str, ...], tiny_study: dict, tmp_path: Path) -> None:
    results = check_mechanisms(names, tiny_study["root"] / "cache", tmp_path, enumerate_limit=2000)
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
