"""The search space: the mechanisms shape mixed cascades in one study, priced per stage."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dse import CascadeProblem
from dse.core.space import increasing_subsets
from dse.cli import app
from nets import Variant, architecture

MIXED = """
[bitwidth]
bitwidths = [4, 8]
max_stages = 2
[incremental]
widths = [0.5]
n_increments = [2, 2]
"""


def test_increasing_subsets() -> None:
    assert increasing_subsets((4, 8, 16), range(1, 3)) == ["4", "8", "16", "4/8", "4/16", "8/16"]
    assert increasing_subsets((0.25, 0.5), range(1, 2)) == ["0.25", "0.5"]


@pytest.fixture(scope="module")
def mixed_run(tiny_study: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    root = tmp_path_factory.mktemp("mixed")
    spec = root / "mixed.toml"
    text = tiny_study["spec"].read_text().replace('name = "tiny"', 'name = "mixed"').replace("n_trials = 12", "n_trials = 40")
    spec.write_text(text + MIXED)
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(root / "out"), "--cache-dir",
                                      str(tiny_study["root"] / "cache"), "--no-progress", "--jobs", "1"])
    return result, root / "out"


def test_mixed_study_explores_every_mechanism(mixed_run: tuple) -> None:
    result, out = mixed_run
    assert result.exit_code == 0, result.output
    assert re.search(r"; [01] to train", result.output)  # at most lenet@w0.5 is new; the tiny study trained the rest
    trials = pd.read_csv(out / "trials.csv")
    cascades = set(trials["cascade"])
    assert any(c.startswith("lenet@w0.5 > lenet") for c in cascades)  # an increment cascade
    assert any("lenet@4b" in c or "lenet@8b" in c for c in cascades)  # a precision stage
    assert set(trials["fractions"].astype(str)) == {"0.5", "none"}  # with and without increments
    assert "none" in set(trials["little"])  # the other mechanisms' stages alone
    html = (out / "report.html").read_text()
    assert "Minimum bit-width of each sample" in html and "Runtime controller" in html and "Weight storage" in html


def test_stage_prices_follow_the_variant(mnist5k) -> None:
    from costmodel import Accelerator, load_technology, network_cost
    from nets import architecture

    variants = [Variant("lenet"), Variant("lenet", width=0.5), Variant("lenet", bits=8)]
    n = 10
    from dse.mechanisms.incremental.rules import ReuseNarrower

    problem = CascadeProblem.from_arrays(variants, 0, {"calib": np.zeros((3, n), np.float32)},
                                         {"calib": np.ones((3, n), bool)}, Accelerator(), load_technology(),
                                         rules=(ReuseNarrower(),))
    full = network_cost(architecture("lenet").layer_shapes(), Accelerator())
    assert problem.price(2).energy_pj == network_cost(architecture("lenet").layer_shapes(), Accelerator(bits=8)).energy_pj
    assert problem.price(2).energy_pj < full.energy_pj
    reuse = problem.stage_costs([1, 0], reuse=True)[1]
    recompute = problem.stage_costs([1, 0], reuse=False)[1]
    assert recompute.energy_pj == full.energy_pj and reuse.energy_pj < recompute.energy_pj


def test_effort_stage_is_priced_per_sample() -> None:
    from costmodel import Accelerator, load_technology

    variants = [Variant("lenet"), Variant("lenet", knobs=(("tolerance", 0.2),))]
    n = 6
    def problem(work: np.ndarray) -> CascadeProblem:
        return CascadeProblem.from_arrays(variants, 0, {"test": np.zeros((2, n), np.float32)},
                                          {"test": np.ones((2, n), bool)}, Accelerator(), load_technology(),
                                          work={"test": {1: work}})

    varying = problem(np.array([1.0, 1.0, 0.5, 0.5, 0.25, 0.25]))
    plain = varying.evaluate([0], np.zeros((1, 0)), "test").energy_j[0]
    knobbed = varying.evaluate([1], np.zeros((1, 0)), "test").energy_j[0]
    assert knobbed < plain  # less executed work, less energy on average
    full_only = problem(np.ones(n))  # every MAC executed: the plain price
    assert full_only.evaluate([1], np.zeros((1, 0)), "test").energy_j[0] == pytest.approx(plain)


def test_effort_knobs_in_the_search(tiny_study: dict, tmp_path: Path) -> None:
    spec = tmp_path / "effort.toml"
    text = tiny_study["spec"].read_text().replace('name = "tiny"', 'name = "effort"').replace("n_trials = 12", "n_trials = 6")
    spec.write_text(text + '[effort]\nmechanisms = ["feature"]\nnets = ["big"]\n')
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "--cache-dir",
                                      str(tiny_study["root"] / "cache"), "--no-progress", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert any("sample_stride=" in cascade for cascade in trials["cascade"])


def test_resplit_keeps_per_sample_work_aligned() -> None:
    from costmodel import Accelerator, load_technology

    variants = [Variant("lenet"), Variant("lenet", knobs=(("tolerance", 0.2),))]
    margin = {"calib": np.array([[0.1, 0.2], [0.3, 0.4]]), "test": np.array([[0.5, 0.6], [0.7, 0.8]])}
    correct = {split: np.ones((2, 2), bool) for split in margin}
    work = {"calib": {1: np.array([0.9, 0.8])}, "test": {1: np.array([0.7, 0.6])}}
    problem = CascadeProblem.from_arrays(variants, 0, margin, correct, Accelerator(), load_technology(), work=work)
    halves = problem.resplit(np.array([3, 0]), np.array([1, 2]))
    assert halves.margin["calib"][1].tolist() == [0.8, 0.3] and halves.work["calib"][1].tolist() == [0.6, 0.9]
    assert halves.work["test"][1].tolist() == [0.8, 0.7]


def test_effort_scopes_get_only_applicable_mechanisms() -> None:
    from dse.mechanisms.effort import applicable_knobs

    plan = dict(applicable_knobs(architecture("lenet-relu"), ("neuron", "feature", "layer"), ("conv", "fc")))
    assert plan == {"conv": ("neuron", "feature", "layer"), "fc": ("neuron",)}
    assert dict(applicable_knobs(architecture("lenet"), ("neuron",), ("conv",))) == {"conv": ()}  # Caffe LeNet: no ReLU after convs


def test_effort_scope_without_mechanism_is_a_spec_error(tiny_study: dict, tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(tiny_study["spec"].read_text() + '[effort]\nmechanisms = ["feature"]\nscopes = ["fc"]\n')
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 2 and "effort.scopes: no mechanism of ['feature'] can act on 'lenet' in scope 'fc'" \
        in result.output
    assert not (tmp_path / "out").exists()


def test_enumeration_lists_every_structure_once(tiny_study: dict) -> None:
    from dse import load_spec
    from dse.core.space import CascadeSpace, enumerate_structures

    spec = load_spec("park2015-mnist")
    problem = CascadeProblem.from_arrays([Variant("lenet")], 0, {}, {}, *dse_accelerator(spec))
    structures = enumerate_structures(CascadeSpace(problem, spec), 5000)
    assert len(structures) == 8 * 6 * 21  # little nets x SRAM sizes x (input, weight) partitions in eighths
    assert len({tuple(sorted(s.items())) for s in structures}) == len(structures)
    assert {s["sram"] for s in structures} == set(spec.search.sram_choices)
    assert all(1 <= s["partition_weight"] <= 7 - s["partition_input"] for s in structures)
    assert enumerate_structures(CascadeSpace(problem, spec), 100) is None


def dse_accelerator(spec):  # type: ignore[no-untyped-def]
    from dse import make_accelerator

    return make_accelerator(spec)


def test_exact_study_enumerates_then_resumes_with_nothing_new(tiny_study: dict, tmp_path: Path) -> None:
    spec = tmp_path / "exact.toml"
    text = tiny_study["spec"].read_text().replace('name = "tiny"', 'name = "exact"')
    spec.write_text(text.replace("enumerate_limit = 0\n", "").replace('thresholds = "sampled"\n', ""))
    args = ["run", str(spec), "--out", str(tmp_path / "out"), "--cache-dir", str(tiny_study["root"] / "cache"),
            "--no-progress", "--jobs", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "0 -> 2 completed trials" in first.output  # two structures: mini7 or mini8 before lenet
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert set(trials["little"]) == {"mini7", "mini8"} and trials["point"].max() > 0  # whole fronts per trial
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "2 -> 2 completed trials" in second.output
