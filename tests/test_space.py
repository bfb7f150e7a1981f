"""The unified search space: big/little, bit-width sets and increments in one study, priced per stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dse._problem import CascadeProblem
from dse._space import increasing_subsets
from dse.cli import app
from nets import Variant

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
    assert "1 to train" in result.output  # only lenet@w0.5 is new; the tiny study trained the rest
    trials = pd.read_csv(out / "trials.csv")
    cascades = set(trials["cascade"])
    assert any(c.startswith("lenet@w0.5 > lenet") for c in cascades)  # an increment cascade
    assert any("lenet@4b" in c or "lenet@8b" in c for c in cascades)  # a precision stage
    assert set(trials["structure"]) == {"little_big", "increments"}
    html = (out / "report.html").read_text()
    assert "Minimum bit-width of each sample" in html and "Runtime controller" in html and "Weight storage" in html


def test_stage_prices_follow_the_variant(mnist5k) -> None:
    from costmodel import Accelerator, load_technology, network_cost
    from nets import architecture

    variants = [Variant("lenet"), Variant("lenet", width=0.5), Variant("lenet", bits=8)]
    n = 10
    problem = CascadeProblem(variants, 0, {"calib": np.zeros((3, n), np.float32)}, {"calib": np.ones((3, n), bool)},
                             [v.architecture.layer_shapes(v.width) for v in variants], Accelerator(), load_technology())
    full = network_cost(architecture("lenet").layer_shapes(), Accelerator())
    assert problem.price(2).energy_pj == network_cost(architecture("lenet").layer_shapes(), Accelerator(bits=8)).energy_pj
    assert problem.price(2).energy_pj < full.energy_pj
    reuse = problem.stage_costs([1, 0], reuse=True)[1]
    recompute = problem.stage_costs([1, 0], reuse=False)[1]
    assert recompute.energy_pj == full.energy_pj and reuse.energy_pj < recompute.energy_pj
