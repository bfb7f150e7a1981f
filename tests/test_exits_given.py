"""Early exit with user-given branch layer lists ([[exits.branch]]): validation naming the field, cache keys, the
torch module, and a study on the embedded digits whose price is the cost model's price of the layers as given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import costmodel
import dse
from costmodel import Accelerator, LayerShape, load_technology, network_cost
from dse.core.loading import check_spec_nets
from nets import FC, Conv, ExitError, Exits, Pool, ReLU, TrainingConfig, Variant, architecture, check_exits, weights_key

ACC = Accelerator(sram_bytes=16 * 1024, partition=(0.25, 0.5, 0.25), bits=16)
CONV3 = (Conv(16, 3, pad=1), ReLU(), Pool(4), FC(10))  # on pool1's 20x12x12: 16x12x12, max pool to 3x3, FC 144 -> 10
CONV3_TOML = ('[{type = "conv", out = 16, kernel = 3, pad = 1}, {type = "relu"}, {type = "pool", mode = "max", '
              'kernel = 4}, {type = "fc", out = 10}]')


def given_variant(answer: str, layers: tuple = CONV3) -> Variant:
    return Variant("lenet", exits=Exits(("pool1", "pool2"), answer, 8, given=(("pool1", layers),)))


def test_a_given_branch_runs_as_given_with_its_layers_named_after_the_exit() -> None:
    shapes = given_variant("pool1").architecture.layer_shapes()
    assert shapes[2:] == [LayerShape("pool1.exit.conv1", "conv", 20, 12, 12, 16, 12, 12, 3, 3, 1, 1),
                          LayerShape("pool1.exit.pool1", "maxpool", 16, 12, 12, 16, 3, 3, 4, 4, 4),
                          LayerShape("pool1.exit.fc1", "fc", 144, 1, 1, 10, 1, 1)]
    # the other exit keeps the default branch (1x1 conv of `channels`)
    assert given_variant("pool2").architecture.layer_shapes()[4].name == "pool2.exit.conv"


def test_a_branch_like_the_next_trunk_layer_is_never_priced_as_shared_trunk() -> None:
    """Conv2's exact shape as pool1's branch: the reuse pricing still runs the trunk's conv2 after it."""
    twin = (Conv(50, 5, name="conv2"), Pool(2), FC(10))
    first = given_variant("pool1", twin).architecture.layer_shapes()
    assert [s.name for s in first[2:]] == ["pool1.exit.conv2", "pool1.exit.pool1", "pool1.exit.fc1"]
    after = costmodel.continuation_cost(first, architecture("lenet").layer_shapes(), ACC)
    assert [lc.name for lc in after.layer_costs] == ["conv2", "pool2", "fc1", "fc2", "pool1[waiting]"]


@pytest.mark.parametrize("layers, message", [
    ((Conv(16, 3), ReLU()), r"branch at 'pool1': must end in an fc layer with one output per class \(10\), "
                            r"got a 16x10x10 map"),
    ((FC(7),), r"must end in an fc layer with one output per class \(10\), got 7 outputs"),
    ((Conv(16, 13), FC(10)), r"branch at 'pool1': layer 0 \(conv\), 'kernel': kernel 13 is larger than its padded "
                             r"12x12 input"),
    ((Conv(16, 1, input="conv1"), FC(10)), r"layer 0 \(conv\): a branch is a plain chain .* \(no 'input'\)"),
])
def test_check_exits_refuses_a_bad_given_branch(layers: tuple, message: str) -> None:
    with pytest.raises(ExitError, match=message):
        check_exits(architecture("lenet"), given_variant("", layers).exits)  # type: ignore[arg-type]


def test_given_branches_must_sit_at_distinct_exit_points() -> None:
    exits = Exits(("pool1",), given=(("pool2", CONV3),))
    with pytest.raises(ExitError, match=r"given branches must be at distinct exit points of \['pool1'\]"):
        check_exits(architecture("lenet"), exits)


def test_the_given_layers_are_part_of_the_weights_key(mnist5k) -> None:  # type: ignore[no-untyped-def]
    config = TrainingConfig(epochs=1)
    default = Variant("lenet", exits=Exits(("pool1", "pool2"), "pool1", 8))
    keys = {weights_key(mnist5k, v, config) for v in
            (default, given_variant("pool1"), given_variant("pool1", (Conv(8, 3, pad=1), ReLU(), Pool(4), FC(10))))}
    assert len(keys) == 3


def test_exit_module_of_a_given_branch_matches_the_branched_pass() -> None:
    torch = pytest.importorskip("torch")
    from nets.training._exits_torch import all_exit_logits, branched_module, exit_module

    trunk, exits = architecture("lenet"), given_variant("").exits
    torch.manual_seed(0)
    module = branched_module(trunk, exits).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        together = all_exit_logits(module, trunk, exits, x)
        first = exit_module(module, trunk, dataclasses.replace(exits, answer="pool1"))  # type: ignore[arg-type]
        assert torch.equal(first(x), together[0])
    convs = [m for m in first if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 20, (5, 5), (0, 0)), (20, 16, (3, 3), (1, 1))]


# --- spec ----------------------------------------------------------------------------------------------------------

def spec_text(branch: str, exits: str = 'points = ["pool1", "pool2"]\nchannels = [8]') -> str:
    return (f'version = 2\nname = "g"\n[data]\ndataset = "mnist5k"\n[training]\nepochs = 1\nbatch_size = 128\n'
            f'[nets]\nbig = "lenet"\n[exits]\n{exits}\n{branch}\n[search]\nmax_accuracy_loss_pct = 5.0\n'
            'criteria = ["margin"]\n')


@pytest.mark.parametrize("branch, message", [
    (f'[[exits.branch]]\nat = "conv2"\nlayers = {CONV3_TOML}',
     r"g\.toml: exits\.branch\[0\]\.at: must be one of the points \['pool1', 'pool2'\], got 'conv2'"),
    ('[[exits.branch]]\nat = "pool1"\nlayers = [{type = "conv", out = 16, kernel = 3}]',
     r"g\.toml: exits\.branch\[0\]\.layers: layer 0 \(conv\), 'type': the network must end in a flat output"),
    ('[[exits.branch]]\nat = "pool2"\nlayers = [{type = "fc", out = 12}]',
     r"g\.toml: exits\.branch\[0\]\.layers: must end in an fc layer with one output per class \(10\), got 12"),
    ('[[exits.branch]]\nat = "pool2"\nlayers = [{type = "fc", out = 10, width = 2}]',
     r"g\.toml: exits\.branch\[0\]\.layers: layer 0 \(fc\), 'width': unknown key"),
    ('[[exits.branch]]\nat = "pool2"\nlayers = [{type = "flatten"}, {type = "fc", out = 10}]',
     r"g\.toml: exits\.branch\[0\]\.layers: layer 0 \(flatten\): a branch is a plain chain of conv, pool"),
    ('[[exits.branch]]\nat = "pool2"\nsize = 3', r"g\.toml: exits\.branch\[0\]: must be a table with exactly the keys"),
    (f'[[exits.branch]]\nat = "pool1"\nlayers = {CONV3_TOML}\n[[exits.branch]]\nat = "pool1"\nlayers = {CONV3_TOML}',
     r"g\.toml: exits\.branch: gives a branch at 'pool1' twice"),
])
def test_spec_errors_name_the_branch_field(branch: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(spec_text(branch))
    with pytest.raises(dse.SpecError, match=message):
        check_spec_nets(dse.load_spec(path))


def test_one_branch_size_when_every_point_has_a_given_branch(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(spec_text(f'[[exits.branch]]\nat = "pool1"\nlayers = {CONV3_TOML}',
                              'points = ["pool1"]\nchannels = [8, 16]'))
    with pytest.raises(dse.SpecError, match=r"g\.toml: exits\.channels: every point has a given branch"):
        dse.load_spec(path)


def test_a_study_with_a_given_branch_trains_scores_and_prices_it_as_given(tiny_study: dict) -> None:
    spec = dse.parse_spec(spec_text(f'[[exits.branch]]\nat = "pool1"\nlayers = {CONV3_TOML}'), "g.toml")
    problem, _ = dse.load_problem(spec, str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    exit1 = problem.index(given_variant("pool1").name)
    exit2 = problem.index(given_variant("pool2").name)
    assert problem.variants[exit1] == given_variant("pool1")
    # trained and scored: above chance on the test split, with a margin per input
    assert problem.correct["test"][exit1].mean() > 0.2 and problem.margin["test"][exit1].shape == (1000,)
    # priced as given: the trunk up to pool1, then exactly these layers, by the cost model
    hand = [LayerShape("conv1", "conv", 1, 28, 28, 20, 24, 24, 5, 5),
            LayerShape("pool1", "maxpool", 20, 24, 24, 20, 12, 12, 2, 2, 2),
            LayerShape("pool1.exit.conv1", "conv", 20, 12, 12, 16, 12, 12, 3, 3, 1, 1),
            LayerShape("pool1.exit.pool1", "maxpool", 16, 12, 12, 16, 3, 3, 4, 4, 4),
            LayerShape("pool1.exit.fc1", "fc", 144, 1, 1, 10, 1, 1)]
    tech = load_technology()
    assert problem.price(exit1).energy_pj == pytest.approx(network_cost(hand, problem.accelerator, tech).energy_pj,
                                                           rel=1e-12)
    escalation = costmodel.continuation_cost(hand, problem.variants[exit2].architecture.layer_shapes(),
                                             problem.accelerator, tech)
    assert problem.stage_costs([exit1, exit2])[1].energy_pj == pytest.approx(escalation.energy_pj, rel=1e-12)
    study = dse.search_study(problem, spec, 10)
    assert any(given_variant("pool1").name in t.cascade for t in dse.study_results(study).trials)
    assert np.isfinite([t.calib.energy_j for t in dse.study_results(study).trials]).all()


# --- [models.*] trunks ----------------------------------------------------------------------------------------------

CHAIN = ('[models.chain]\ninput_shape = [1, 28, 28]\nlayers = [{type = "conv", out = 8, kernel = 5}, '
         '{type = "pool", mode = "max", kernel = 2, name = "tap"}, {type = "conv", out = 16, kernel = 5}, '
         '{type = "relu"}, {type = "pool", mode = "max", kernel = 2}, {type = "fc", out = 32}, {type = "relu"}, '
         '{type = "fc", out = 10}]\n')
RESIDUAL = ('[models.res]\ninput_shape = [1, 28, 28]\nlayers = [{type = "conv", out = 8, kernel = 3, pad = 1, '
            'name = "c1"}, {type = "relu"}, {type = "conv", out = 8, kernel = 3, pad = 1}, {type = "add", from = "c1"}, '
            '{type = "pool", mode = "max", kernel = 2}, {type = "fc", out = 10}]\n')


def models_spec(models: str, big: str, exits: str) -> str:
    return spec_text("", exits).replace("[nets]", f"{models}[nets]").replace('big = "lenet"', f'big = "{big}"')


def test_a_layer_list_trunk_gets_branches_end_to_end(tiny_study: dict) -> None:
    """A [models.*] chain as the trunk: branches at a named layer and at an automatic label, one given; trained on
    the frozen trunk, scored, priced with reuse and searched."""
    exits = (f'points = ["tap", "pool2"]\nchannels = [4]\n[[exits.branch]]\nat = "pool2"\n'
             'layers = [{type = "fc", out = 10}]')
    spec = dse.parse_spec(models_spec(CHAIN, "chain", exits), "g.toml")
    problem, _ = dse.load_problem(spec, str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    names = ["chain", "chain@exit:tap:tap+pool2:c4:given=pool2", "chain@exit:pool2:tap+pool2:c4:given=pool2"]
    assert sorted(problem.names) == sorted(names)
    first, second = (problem.index(n) for n in names[1:])
    assert problem.correct["test"][[first, second]].mean(axis=1).min() > 0.1
    shapes = problem.variants[second].architecture.layer_shapes()
    assert shapes[-1] == LayerShape("pool2.exit.fc1", "fc", 256, 1, 1, 10, 1, 1)  # 16 x 4 x 4 flattened, as given
    escalation = costmodel.continuation_cost(problem.variants[first].architecture.layer_shapes(), shapes,
                                             problem.accelerator, load_technology())
    assert problem.stage_costs([first, second])[1].energy_pj == pytest.approx(escalation.energy_pj, rel=1e-12)
    trials = dse.study_results(dse.search_study(problem, spec, 10)).trials
    assert any(t.feasible for t in trials)


def test_exits_cost_prices_the_given_branches_of_a_spec(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dse.cli import app

    path = tmp_path / "g.toml"
    path.write_text(spec_text(f'[[exits.branch]]\nat = "pool1"\nlayers = {CONV3_TOML}'))
    result = CliRunner().invoke(app, ["exits-cost", "lenet", "--spec", str(path), "--channels", "8"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "(branch 8 channels, given at pool1)" in lines[0]
    alone = network_cost(given_variant("pool1").architecture.layer_shapes(), ACC).energy_pj
    assert lines[2].split()[:2] == ["pool1", f"{alone * 1e-3:.2f}"]
    bad = CliRunner().invoke(app, ["exits-cost", "lenet"])
    assert bad.exit_code == 2 and bad.output.strip() == (
        "error: --points: give the trunk layers with a branch (or --spec with [exits] points)")
