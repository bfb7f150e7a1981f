"""Early exit: branched architectures, exit pricing with reuse (a hand-computed LeNet), the exit criteria, training,
cache keys, the [exits] section and the criterion as a search choice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import costmodel
import dse
from dse.core.loading import check_spec_nets
from dse.mechanisms.early_exit.rules import ContinueFromExit
from costmodel import Accelerator, LayerShape, load_technology, network_cost
from nets import (CRITERIA, ExitError, Exits, TrainingConfig, Variant, architecture, check_exits, confidence,
                  variant_key, weights_key)

POINTS = ("pool1", "pool2")
ACC = Accelerator(sram_bytes=16 * 1024, partition=(0.25, 0.5, 0.25), bits=16)  # buffers 4096 / 8192 / 4096 B


def exit_variant(answer: str, channels: int = 8) -> Variant:
    return Variant("lenet", exits=Exits(POINTS, answer, channels))


# --- architectures -------------------------------------------------------------------------------------------------

def test_exit_architecture_is_trunk_prefix_then_branch() -> None:
    shapes = exit_variant("pool2").architecture.layer_shapes()
    assert [s.name for s in shapes] == ["conv1", "pool1", "conv2", "pool2", "pool2.exit.conv", "pool2.exit.pool",
                                        "pool2.exit.fc"]
    assert shapes[4] == LayerShape("pool2.exit.conv", "conv", 50, 4, 4, 8, 4, 4)
    assert shapes[5] == LayerShape("pool2.exit.pool", "avgpool", 8, 4, 4, 8, 2, 2, 2, 2, 2)  # to 2x2 (ceil 4/3 = 2)
    assert shapes[6] == LayerShape("pool2.exit.fc", "fc", 32, 1, 1, 10, 1, 1)
    flat = Variant("lenet", exits=Exits(("fc1",), "fc1")).architecture.layer_shapes()
    assert flat[-1] == LayerShape("fc1.exit.fc", "fc", 500, 1, 1, 10, 1, 1)  # a flat tap gets the FC alone
    assert Variant("lenet", exits=Exits(POINTS)).architecture == architecture("lenet")


@pytest.mark.parametrize("exits, message", [
    (Exits(("pool9",)), r"no layer 'pool9' to branch at \(branchable: conv1, pool1, conv2, pool2, fc1\)"),
    (Exits(("fc2",)), "no layer 'fc2'"),  # the classifier is the trunk's own exit
    (Exits(("pool2", "pool1")), "must be in trunk order"),
    (Exits(("pool1", "pool1")), "must be distinct"),
    (Exits(POINTS, channels=0), "channels must be an integer >= 1"),
    (Exits(POINTS, training="both"), "training must be one of frozen, joint"),
    (Exits(POINTS, loss_weights=(1.0, 1.0)), r"one weight >= 0 per exit, then the trunk's \(3 in all"),
])
def test_check_exits_names_the_problem(exits: Exits, message: str) -> None:
    with pytest.raises(ExitError, match=message):
        check_exits(architecture("lenet"), exits)


# --- pricing: a hand-computed LeNet ---------------------------------------------------------------------------------

def lenet_shapes() -> dict[str, LayerShape]:
    """LeNet's layers written out by hand (Caffe LeNet: 28x28 -> conv5 20 -> pool2 -> conv5 50 -> pool2 -> 500 -> 10)."""
    return {"conv1": LayerShape("conv1", "conv", 1, 28, 28, 20, 24, 24, 5, 5),
            "pool1": LayerShape("pool1", "maxpool", 20, 24, 24, 20, 12, 12, 2, 2, 2),
            "conv2": LayerShape("conv2", "conv", 20, 12, 12, 50, 8, 8, 5, 5),
            "pool2": LayerShape("pool2", "maxpool", 50, 8, 8, 50, 4, 4, 2, 2, 2),
            "fc1": LayerShape("fc1", "fc", 800, 1, 1, 500, 1, 1),
            "fc2": LayerShape("fc2", "fc", 500, 1, 1, 10, 1, 1),
            # branches of 8 channels: 1x1 conv, average pool to about 3x3 (12x12 by 4; 4x4 by 2), FC to 10 classes
            "b1conv": LayerShape("pool1.exit.conv", "conv", 20, 12, 12, 8, 12, 12),
            "b1pool": LayerShape("pool1.exit.pool", "avgpool", 8, 12, 12, 8, 3, 3, 4, 4, 4),
            "b1fc": LayerShape("pool1.exit.fc", "fc", 72, 1, 1, 10, 1, 1),
            "b2conv": LayerShape("pool2.exit.conv", "conv", 50, 4, 4, 8, 4, 4),
            "b2pool": LayerShape("pool2.exit.pool", "avgpool", 8, 4, 4, 8, 2, 2, 2, 2, 2),
            "b2fc": LayerShape("pool2.exit.fc", "fc", 32, 1, 1, 10, 1, 1)}


def cost_of(*names: str) -> float:
    shapes = lenet_shapes()
    return network_cost([shapes[n] for n in names], ACC).energy_pj


def test_exit_pricing_matches_a_hand_computed_lenet() -> None:
    tech = load_technology()
    # pool1's output waits in DRAM: 20 x 12 x 12 x 2 B = 5,760 B > the 4,096 B output buffer; 90 whole 64-byte
    # bursts out and back in = 11,520 B, at the DRAM's energy per bit, for 11,520 B / bandwidth of leakage time.
    dram_seconds = 11520 / tech.dram_bandwidth_bytes_per_s
    leak_mw = sum(tech.sram_pj_per_bit(b)[2] for b in (4096, 8192, 4096)) + tech.dram_background_mw
    wait1 = 11520 * 8 * tech.dram_energy_pj_per_bit + leak_mw * 1e9 * dram_seconds
    # pool2's output waits in SRAM: 50 x 4 x 4 x 2 B = 1,600 B fit; 800 values of 16 bits written and read once.
    read_pj, write_pj, _ = tech.sram_pj_per_bit(4096)
    wait2 = 800 * 16 * (read_pj + write_pj)
    rows = costmodel.exit_costs([(p, exit_variant(p).architecture.layer_shapes()) for p in POINTS]
                                + [("trunk", architecture("lenet").layer_shapes())], ACC, tech)
    leave1, to_exit2, to_trunk = rows
    assert leave1.alone.energy_pj == pytest.approx(cost_of("conv1", "pool1", "b1conv", "b1pool", "b1fc"), rel=1e-12)
    assert to_exit2.alone.energy_pj == pytest.approx(cost_of("conv1", "pool1", "conv2", "pool2", "b2conv", "b2pool",
                                                             "b2fc"), rel=1e-12)
    assert to_exit2.escalation.energy_pj == pytest.approx(cost_of("conv2", "pool2", "b2conv", "b2pool", "b2fc") + wait1,
                                                          rel=1e-12)
    assert to_trunk.escalation.energy_pj == pytest.approx(cost_of("fc1", "fc2") + wait2, rel=1e-12)
    assert to_exit2.escalation.dram_bytes == cost_of_bytes("conv2", "pool2", "b2conv", "b2pool", "b2fc") + 11520
    # answered by the trunk: every trunk layer once, both branches, both waits
    everything = cost_of("conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "b1conv", "b1pool", "b1fc", "b2conv",
                         "b2pool", "b2fc")
    assert to_trunk.answered_here.energy_pj == pytest.approx(everything + wait1 + wait2, rel=1e-12)


def cost_of_bytes(*names: str) -> float:
    shapes = lenet_shapes()
    return network_cost([shapes[n] for n in names], ACC).dram_bytes


def test_conv_only_pricing_waits_on_the_tap_not_the_last_priced_layer() -> None:
    """Park prices conv layers only; the activations that wait are still pool1's, not conv1's."""
    escalation = costmodel.continuation_cost(exit_variant("pool1").architecture.layer_shapes(),
                                             architecture("lenet").layer_shapes(), ACC, None, {"conv"})
    assert [lc.name for lc in escalation.layer_costs] == ["conv2", "pool1[waiting]"]
    assert escalation.layer_costs[-1].dram_bytes == 11520


def problem_of(variants: list[Variant], priced_layers: str = "all") -> dse.CascadeProblem:
    n = 4
    margin = {"calib": np.zeros((len(variants), n), np.float32)}
    correct = {"calib": np.ones((len(variants), n), bool)}
    return dse.CascadeProblem.from_arrays(variants, len(variants) - 1, margin, correct, ACC, load_technology(),
                                          priced_layers, rules=(ContinueFromExit(),))


def test_problem_prices_each_exit_after_the_one_before() -> None:
    variants = [exit_variant("pool1"), exit_variant("pool2"), Variant("lenet")]
    problem = problem_of(variants)
    costs = problem.stage_costs([0, 1, 2])
    assert costs[0].energy_pj == pytest.approx(cost_of("conv1", "pool1", "b1conv", "b1pool", "b1fc"), rel=1e-12)
    assert [lc.name for lc in costs[1].layer_costs] == [s.name for s in lenet_shapes().values()][2:4] + [
        "pool2.exit.conv", "pool2.exit.pool", "pool2.exit.fc", "pool1[waiting]"]
    assert [lc.name for lc in costs[2].layer_costs] == ["fc1", "fc2", "pool2[waiting]"]
    assert problem.priced_transforms(0) == ("exits",) == tuple(variants[0].transforms)
    assert problem.priced_transforms(2) == ()
    # storage: the trunk's weights once, plus each branch
    stored = problem.pricer.stored_bytes(variants)
    branches = sum(network_cost([lenet_shapes()[n]], ACC).weight_bytes for n in ("b1conv", "b1fc", "b2conv", "b2fc"))
    assert stored == problem.price(2).weight_bytes + branches


@pytest.mark.parametrize("second", [Variant("lenet", bits=8), Variant("lenet", knobs=(("uniformity", 0.01),)),
                                    Variant("mini7"), Variant("lenet", exits=Exits(POINTS, training="joint"))])
def test_no_reuse_across_precision_knobs_nets_or_weights(second: Variant) -> None:
    problem = problem_of([exit_variant("pool1"), second])
    assert problem.stage_costs([0, 1])[1].energy_pj == problem.price(1).energy_pj


def test_joint_exits_reuse_the_joint_trunk() -> None:
    joint = Exits(POINTS, "pool1", 8, "joint")
    problem = problem_of([Variant("lenet", exits=joint), Variant("lenet", exits=dataclasses.replace(joint, answer=""))])
    assert problem.stage_costs([0, 1])[1].energy_pj < problem.price(1).energy_pj
    assert problem.priced_transforms(1) == ("exits",)  # the joint trunk's weights are not the plain net's


# --- exit criteria --------------------------------------------------------------------------------------------------

def reference_confidence(probs: np.ndarray, criterion: str) -> list[float]:
    out = []
    for row in probs.astype(np.float64):
        ranked = sorted(row, reverse=True)
        if criterion == "margin":
            out.append(ranked[0] - ranked[1])
        elif criterion == "max_softmax":
            out.append(ranked[0])
        else:
            entropy = -sum(p * np.log(p) for p in row if p > 0)
            out.append(1 - entropy / np.log(len(row)))
    return out


@pytest.mark.parametrize("criterion", CRITERIA)
def test_confidence_matches_a_per_sample_reference(criterion: str) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (200, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[0] = np.eye(10)[3]  # certain: zero entropy
    probs[1] = 0.1  # uniform: no confidence
    got = confidence(probs, criterion)
    assert got == pytest.approx(reference_confidence(probs, criterion), abs=1e-6)
    least = 0.1 if criterion == "max_softmax" else 0.0  # a uniform answer still has top-1 probability 1/classes
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(least, abs=1e-6)


def test_unknown_criterion_is_a_user_error() -> None:
    with pytest.raises(dse.UserError, match="exit criterion must be one of margin, max_softmax, entropy, got 'x'"):
        confidence(np.ones((1, 2)) / 2, "x")


# --- cache keys -----------------------------------------------------------------------------------------------------

def test_cache_keys_without_exits_are_unchanged(mnist5k) -> None:  # type: ignore[no-untyped-def]
    """Keys computed before exits existed (issue 11's code) for the same dataset and training; bits and knobs keys
    as they changed when their ranges moved to training images (issue 26)."""
    config = TrainingConfig(epochs=1, batch_size=128)
    pinned = {Variant("lenet"): ("f63f66919356454e4ae1c542", "f63f66919356454e4ae1c542"),
              Variant("lenet", bits=8): ("f63f66919356454e4ae1c542", "76666b70210cf33719284ee6"),
              Variant("mini7", width=0.5): ("a03cb5580f8d1a564a9a624f", "a03cb5580f8d1a564a9a624f"),
              Variant("lenet", knobs=(("uniformity", 0.01),)): ("f63f66919356454e4ae1c542", "deb7047e6b9d8bce855b330f")}
    for variant, keys in pinned.items():
        assert (weights_key(mnist5k, variant, config), variant_key(mnist5k, variant, config)) == keys
    first, second = exit_variant("pool1"), exit_variant("pool2")
    assert weights_key(mnist5k, first, config) == weights_key(mnist5k, second, config) != keys[0]  # one branched net
    assert variant_key(mnist5k, first, config) != variant_key(mnist5k, second, config)
    assert weights_key(mnist5k, exit_variant("pool1", 16), config) != weights_key(mnist5k, first, config)


def test_branch_design_is_part_of_the_key(mnist5k, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Weights trained for one branch design are never loaded into another."""
    import nets.models._exits

    config, variant = TrainingConfig(epochs=1), exit_variant("pool1")
    before = weights_key(mnist5k, variant, config), variant_key(mnist5k, variant, config)
    monkeypatch.setattr(nets.models._exits, "GRID", 2)
    assert variant.architecture.layer_shapes()[3].out_h == 2
    after = weights_key(mnist5k, variant, config), variant_key(mnist5k, variant, config)
    assert before[0] != after[0] and before[1] != after[1]


# --- torch: modules and training -------------------------------------------------------------------------------------

def test_exit_module_matches_one_pass_over_the_branched_net() -> None:
    torch = pytest.importorskip("torch")
    from nets.training._exits_torch import all_exit_logits, branched_module, exit_module

    trunk, exits = architecture("lenet"), Exits(("pool1", "fc1"), channels=4)
    torch.manual_seed(0)
    module = branched_module(trunk, exits).eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        together = all_exit_logits(module, trunk, exits, x)
        alone = [exit_module(module, trunk, dataclasses.replace(exits, answer=a))(x) for a in ("pool1", "fc1", "")]
    assert len(together) == 3 and all(torch.equal(a, b) for a, b in zip(together, alone))
    weighted = [m for m in exit_module(module, trunk, dataclasses.replace(exits, answer="pool1"))
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.MaxPool2d, torch.nn.AvgPool2d))]
    shapes = Variant("lenet", exits=dataclasses.replace(exits, answer="pool1")).architecture.layer_shapes()
    assert len(weighted) == len(shapes)


def test_frozen_training_keeps_the_trunk_and_is_deterministic(mnist5k) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    from nets.training._exits_torch import train_branched
    from nets.training._torch import init_module

    images, labels = (a[:256] for a in mnist5k.split("train"))
    config, trunk = TrainingConfig(epochs=1, batch_size=64), architecture("lenet")
    trunk_state = init_module(trunk, 1.0, 3).state_dict()
    frozen = Exits(POINTS, channels=4)
    first, _ = train_branched(trunk, frozen, images, labels, config, trunk_state)
    second, _ = train_branched(trunk, frozen, images, labels, config, trunk_state)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(torch.equal(first[f"trunk.{k}"], v) for k, v in trunk_state.items())
    joint, _ = train_branched(trunk, dataclasses.replace(frozen, training="joint", loss_weights=(0.3, 0.3, 1.0)),
                              images, labels, config, None)
    assert not torch.equal(joint["trunk.0.weight"], init_module(trunk, 1.0, config.seed).state_dict()["0.weight"])
    assert not torch.equal(joint["branches.0.0.weight"], first["branches.0.0.weight"])


# --- spec, search ---------------------------------------------------------------------------------------------------

def spec_text(exits: str, search: str = "") -> str:
    return (f'version = 2\nname = "e"\n[data]\ndataset = "mnist5k"\n[nets]\nbig = "lenet"\n[exits]\n{exits}\n'
            f'[search]\nmax_accuracy_loss_pct = 5.0\n{search}')


@pytest.mark.parametrize("exits, search, message", [
    ('points = ["pool1", "poool2"]', "", r"e\.toml: exits\.points: lenet: no layer 'poool2'"),
    ('points = ["pool1"]\nn_active = [1, 2]', "", r"exits\.n_active: must be \[min, max\] with 1 <= min <= max <= 1"),
    ('points = ["pool1"]\nchannels = [0]', "", r"exits\.channels: must be distinct integers >= 1"),
    ('points = ["pool1"]\ntraining = "both"', "", r"exits\.training: must be one of frozen, joint"),
    ('points = ["pool1"]\ntraining = "joint"\nloss_weights = [1.0]', "", r"exits\.loss_weights: .*2 in all"),
    ('points = ["pool1"]', 'criteria = ["margin", "gap"]', r"search\.criteria: must be distinct exit criteria from"),
])
def test_spec_errors_name_the_key(exits: str, search: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "e.toml"
    path.write_text(spec_text(exits, search))
    with pytest.raises(dse.SpecError, match=message):
        check_spec_nets(dse.load_spec(path)) if "poool2" in exits or "loss_weights" in exits \
            else dse.load_spec(path)


def test_default_criteria_and_off_exits_keep_existing_study_digests() -> None:
    """Studies made before exits and criteria existed still resume: neither enters their fingerprint."""
    from dse.core.fingerprint import digest_payload, spec_digest

    spec = dse.load_spec("quickstart")
    payload = digest_payload(spec)
    assert "exits" not in payload and "criteria" not in payload["search"]
    assert {"incremental", "bitwidth", "little", "effort"} <= set(payload)  # off sections that were always there
    assert spec_digest(spec.with_overrides(search={"criteria": ("entropy",)})) != spec_digest(spec)
    assert "exits" in digest_payload(dse.load_spec("early-exit-mnist"))


def test_criterion_is_searched_and_each_trial_is_evaluated_under_it(tiny_study: dict) -> None:
    text = spec_text('points = ["pool1", "pool2"]\nchannels = [8]',
                     'sampler = "random"\ncriteria = ["margin", "max_softmax", "entropy"]\nenumerate_limit = 0\n').replace("[nets]", "[training]\nepochs = 1\n"
                                                                                   "batch_size = 128\n[nets]")
    spec = dse.parse_spec(text, "e.toml")
    problem, _ = dse.load_problem(spec, str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    study = dse.search_study(problem, spec, 30)
    trials = dse.study_results(study).trials
    assert {t.params["criterion"] for t in trials} == set(CRITERIA)
    for trial in trials:
        stages = [problem.index(name) for name in trial.cascade.split(" > ")]
        again = problem.metrics(stages, np.array(trial.thresholds), "calib", criterion=trial.params["criterion"])
        # the front was solved, and is re-evaluated, under the trial's criterion (floats summed in another order)
        assert (again.errors, again.extra_errors) == (trial.calib.errors, trial.calib.extra_errors)
        assert again.energy_j == pytest.approx(trial.calib.energy_j, rel=1e-12)
        assert again.latency_s == pytest.approx(trial.calib.latency_s, rel=1e-12)


def test_exits_cost_command_prints_each_exit_and_refuses_bad_points() -> None:
    from typer.testing import CliRunner

    from dse.cli import app

    result = CliRunner().invoke(app, ["exits-cost", "lenet", "--points", "pool1,pool2", "--channels", "8"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["pool1", "pool2", "trunk"]
    assert "pool1 in DRAM (11520 DRAM bytes" in lines[3] and "pool2 in SRAM (0 DRAM bytes" in lines[4]
    bad = CliRunner().invoke(app, ["exits-cost", "lenet", "--points", "pool3"])
    assert bad.exit_code == 2 and bad.output.strip().splitlines() == [
        "error: lenet: no layer 'pool3' to branch at (branchable: conv1, pool1, conv2, pool2, fc1)"]


@pytest.mark.parametrize("exit_bits, continues", [("8", False), ("same", True)])
def test_exit_at_8_bits_before_the_trunk_at_16(exit_bits: str, continues: bool) -> None:
    """With [bitwidth], an exit runs at 8 bits and the trunk's tail at 16: a branch at another precision than the
    stage after it makes that stage recompute the trunk; at the same precision it continues from the exit."""
    import optuna

    spec = dse.parse_spec(spec_text('points = ["pool1", "pool2"]\nchannels = [8]\nbits = [8]')
                          + '[bitwidth]\nbitwidths = [16]\nmax_stages = 1\n', "e.toml")
    trial = optuna.trial.FixedTrial({"bitwidths": "16", "exits": "pool1", "exit_bits": exit_bits})
    cascade = dse.shape_cascade(spec, trial)
    first, last = cascade.stages
    assert first.exits is not None and first.exits.answer == "pool1" and last == Variant("lenet", bits=16)
    assert first.bits == (8 if exit_bits == "8" else 16)
    problem = problem_of([first, last])
    assert last.continues(first) is continues
    assert (problem.stage_costs([0, 1])[1].energy_pj < problem.price(1).energy_pj) is continues
    assert problem.price(0).energy_pj == network_cost(first.architecture.layer_shapes(),
                                                      dataclasses.replace(ACC, bits=first.bits)).energy_pj
