"""Tann 2016 runtime-configurable nets: incremental training, Eqs. 1-3 vs the simulated cascade, reuse pricing,
threshold tuning, the runtime controller, storage, the CIFAR-10 loader, the CLI and bad input."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import costmodel
from dse import evaluate_cascade, load_spec
from dse.mechanisms.incremental.tann2016 import (IncrementSearchError, budget_schedule, check_golden_widths,
                                                 compare_estimate, increment_energy_table, search_increments,
                                                 simulate_controller, stage_costs, storage_comparison, tune_thresholds)
from nets import DatasetError, ScoreCache, TrainingConfig, architecture
from nets.data._cifar import load_cifar10
from nets import Variant, cached_golden
from nets.training._incremental import IncrementalError, check_increments, stage_module, train_incremental
from nets.training._torch import init_module, predict_logits, train_module

CONFIG = TrainingConfig(epochs=1, batch_size=128, learning_rate=3e-3)
DECAYING = TrainingConfig(epochs=1, batch_size=128, learning_rate=3e-3, weight_decay=0.1)
NET = "mini8"  # conv(10, stride 4), pool, fc 250, relu, fc 10: trains in well under a second
INCREMENTS = (0.3, 0.6, 1.0)


@pytest.fixture(scope="module")
def spied(mnist5k, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Incremental training with weight decay, recording each stage's effective weights and logits after training."""
    import nets.training._incremental as incremental

    golden = cached_golden(ScoreCache(tmp_path_factory.mktemp("golden")), mnist5k, Variant(NET), DECAYING)
    probe = mnist5k.split("test")[0][:64]
    stages: list[dict] = []
    real_train = incremental.train_module

    def train_and_record(module, images, labels, config):  # type: ignore[no-untyped-def]
        seconds = real_train(module, images, labels, config)
        weighted = [m for m in module if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        stages.append({"weights": [(m.weight.detach().clone(), m.bias.detach().clone()) for m in weighted],
                       "logits": predict_logits(module, probe)})
        return seconds

    incremental.train_module = train_and_record
    try:
        state, seconds = train_incremental(architecture(NET), INCREMENTS, mnist5k, DECAYING, golden=golden)
    finally:
        incremental.train_module = real_train
    return {"state": state, "seconds": seconds, "stages": stages, "golden": golden, "probe": probe}


def _weighted(state: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of each conv/FC layer of a mini8 state dict, in order."""
    return [(state[f"{i}.weight"], state[f"{i}.bias"]) for i in (0, 3, 5)]


def _leading(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return tensor[tuple(slice(0, n) for n in like.shape)]


def test_frozen_weights_stay_bit_identical_across_later_increments(spied: dict) -> None:
    final = _weighted(spied["state"])
    first = _weighted(spied["golden"](0.3))  # stage 1 is the golden model at f_1
    second = spied["stages"][0]["weights"]  # stage 2 after its training
    assert len(spied["stages"]) == 2 and spied["seconds"] > 0
    for earlier in (first, second):  # every hidden layer's earlier block survives every later increment (decay 0.1)
        for (w_old, b_old), (w_new, b_new) in zip(earlier[:-1], final[:-1]):
            assert torch.equal(_leading(w_new, w_old), w_old) and torch.equal(_leading(b_new, b_old), b_old)
    grown = torch.ones_like(final[1][0], dtype=torch.bool)
    grown[tuple(slice(0, n) for n in second[1][0].shape)] = False
    assert not torch.equal(final[1][0][grown], spied["golden"](1.0)["3.weight"][grown])  # new channels were trained
    # each increment keeps its own classifier: stage 1's is the golden one, stage 2's is what it trained
    assert torch.equal(spied["state"]["classifiers.0.weight"], first[-1][0])
    assert torch.equal(spied["state"]["classifiers.1.weight"], second[-1][0])


def test_stage_modules_reproduce_each_trained_stage(spied: dict) -> None:
    arch = architecture(NET)
    for width, recorded in zip(INCREMENTS[1:], spied["stages"]):
        module = stage_module(arch, INCREMENTS, width, spied["state"])
        np.testing.assert_array_equal(predict_logits(module, spied["probe"]), recorded["logits"])
    first = init_module(arch, 0.3, 0)
    first.load_state_dict(spied["golden"](0.3))
    np.testing.assert_array_equal(predict_logits(stage_module(arch, INCREMENTS, 0.3, spied["state"]), spied["probe"]),
                                  predict_logits(first, spied["probe"]))


def test_one_increment_equals_ordinary_training(mnist5k, tmp_path: Path) -> None:
    arch = architecture(NET)
    state, _ = train_incremental(arch, (1.0,), mnist5k, CONFIG, golden=cached_golden(ScoreCache(tmp_path), mnist5k,
                                                                                      Variant(NET), CONFIG))
    ordinary = init_module(arch, 1.0, CONFIG.seed)
    train_module(ordinary, *mnist5k.split("train"), CONFIG)
    assert state.keys() == ordinary.state_dict().keys()
    assert all(torch.equal(state[key], value) for key, value in ordinary.state_dict().items())
    images = mnist5k.split("test")[0]
    np.testing.assert_array_equal(predict_logits(stage_module(arch, (1.0,), 1.0, state), images),
                                  predict_logits(ordinary, images))


@pytest.mark.parametrize(("increments", "message"), [
    ((), "at least one"),
    ((0.5, 0.25, 1.0), r"increase strictly, got 0.5, 0.25, 1"),
    ((0.25, 0.25, 1.0), "increase strictly"),
    ((0.25, 0.5), r"last fraction must be 1 \(the full net\), got 0.25, 0.5"),
    ((0.0, 1.0), r"in \(0, 1\]"),
])
def test_bad_increments(increments: tuple, message: str) -> None:
    with pytest.raises(IncrementalError, match=message):
        check_increments(architecture("lenet"), increments)


def test_fraction_rounding_a_layer_to_zero_channels() -> None:
    # mini3's first conv has 2 channels: 2 x 0.2 = 0.4 rounds to 0
    with pytest.raises(IncrementalError, match=r"increment 0.2: .*rounds mini3 layer 0 \(2 channels\) to 0 channels"):
        check_increments(architecture("mini3"), (0.2, 1.0))
    with pytest.raises(IncrementalError, match="width 0.5 is not one of the increments 0.25, 1"):
        stage_module(architecture("lenet"), (0.25, 1.0), 0.5, {})


# ---- Eqs. 1-3 vs the simulated cascade -----------------------------------------------------------------------------

FRACTIONS = np.array([0.25, 0.5, 0.75, 1.0])


def _random_rows(seed: int, stages: int = 4, samples: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((stages, samples)).astype(np.float32), rng.random((stages, samples)) < 0.8


def test_analytic_equals_simulated_when_every_decision_is_deterministic() -> None:
    margin, correct = _random_rows(0)
    # stages before k reject everything (theta above any margin), stage k and later accept everything (theta = 0)
    thresholds = np.array([[1.5] * k + [0.0] * (3 - k) for k in range(4)])
    estimate = compare_estimate(margin, correct, FRACTIONS, thresholds)
    np.testing.assert_allclose(estimate.analytic_cost, np.cumsum(FRACTIONS))
    np.testing.assert_allclose(estimate.analytic_cost, estimate.simulated_cost)
    np.testing.assert_allclose(estimate.analytic_accuracy, estimate.simulated_accuracy)
    np.testing.assert_allclose(estimate.simulated_accuracy, correct.mean(axis=1))


def test_analytic_cost_is_exact_for_nested_decisions_only() -> None:
    margin, correct = _random_rows(1)
    shared = np.repeat(margin[:1], 4, axis=0)  # same margin at every stage and falling thresholds: nested passes
    falling = np.array([[0.9, 0.6, 0.3], [0.5, 0.5, 0.1]])
    nested = compare_estimate(shared, correct, FRACTIONS, falling)
    np.testing.assert_allclose(nested.cost_gap, 0.0, atol=1e-12)
    # accept all at stage 1, reject all at stage 2: Eq. 1 charges stage 3 although every sample stopped at stage 1
    crossed = compare_estimate(margin, correct, FRACTIONS, np.array([0.0, 1.5, 0.0]))
    assert crossed.simulated_cost[0] == pytest.approx(0.25)
    assert crossed.analytic_cost[0] == pytest.approx(0.25 - 0.75 + 1.5)


# ---- reuse pricing -------------------------------------------------------------------------------------------------

def test_reuse_increment_pays_the_new_channels_plus_rereads() -> None:
    lenet, acc = architecture("lenet").layer_shapes, costmodel.Accelerator()
    fractions = (0.25, 0.5, 1.0)
    costs = stage_costs(lenet, fractions, acc)
    assert costs[0] == costmodel.network_cost(lenet(0.25), acc)
    table = increment_energy_table(lenet, fractions, acc)
    np.testing.assert_allclose(table[[3, 0, 1], [0, 1, 2]], [c.energy_pj for c in costs])
    for prev_width, width, cost in zip(fractions, fractions[1:], costs[1:]):
        prev, full = costmodel.network_cost(lenet(prev_width), acc), costmodel.network_cost(lenet(width), acc)
        # exact: only the new channels' MACs run, and the MAC energy is theirs
        assert cost.macs == full.macs - prev.macs
        assert cost.mac_pj == pytest.approx(full.mac_pj - prev.mac_pj, rel=1e-12)
        # exact: the new weights, plus the biases of the old output channels fed by new inputs, fetched again
        reread_bias = sum(p.out_channels for p, s in zip(lenet(prev_width), lenet(width))
                          if s.has_weights and s.in_channels > p.in_channels) * acc.bits // 8
        assert cost.weight_bytes == full.weight_bytes - prev.weight_bytes + reread_bias
        # DRAM traffic adds the activations and partial sums read back; never more than running f_i afresh
        assert cost.dram_bytes >= full.dram_bytes - prev.dram_bytes
        assert cost.energy_pj <= full.energy_pj


def test_storage_comparison_counts_classifiers_against_golden_models() -> None:
    lenet, acc = architecture("lenet").layer_shapes, costmodel.Accelerator(bits=16)
    storage = storage_comparison(lenet, (0.25, 0.5, 1.0), acc)
    # classifier at f: (500 f hidden + 1 bias) x 10 outputs, 2 bytes each: 125 and 250 hidden units
    assert storage.incremental_extra_bytes == (125 * 10 + 10) * 2 + (250 * 10 + 10) * 2
    golden = sum(costmodel.network_cost(lenet(f), acc).weight_bytes for f in (0.25, 0.5))
    assert storage.golden_extra_bytes == golden
    assert storage.full_bytes == costmodel.network_cost(lenet(1.0), acc).weight_bytes
    assert 0 < storage.incremental_extra_pct < 2 < storage.golden_extra_pct


# ---- threshold tuning and the increment search ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_two_stage_tuning_matches_exhaustive_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    margin = rng.random((2, 60)).round(2).astype(np.float32)
    correct = rng.random((2, 60)) < np.array([[0.7], [0.95]])
    energy, limit = np.array([0.3, 1.0]), [0.0, 2.0, 5.0][seed % 3]
    reference = correct[1].mean()
    tuned = evaluate_cascade(margin, correct, energy, np.zeros(2), tune_thresholds(margin, correct, energy, reference,
                                                                                    limit))
    every = np.r_[np.inf, np.unique(margin[0])][:, None]
    brute = evaluate_cascade(margin, correct, energy, np.zeros(2), every)
    feasible = 100 * (reference - brute.accuracy) <= limit + 1e-9
    assert 100 * (reference - tuned.accuracy[0]) <= limit + 1e-9
    assert tuned.energy_pj[0] == pytest.approx(brute.energy_pj[feasible].min())


def test_search_covers_every_ordered_choice_and_respects_the_limit() -> None:
    widths = (0.25, 0.5, 0.75, 1.0)
    margin, correct = _random_rows(2, stages=4, samples=300)
    correct[-1] = True
    table = increment_energy_table(architecture("lenet").layer_shapes, widths, costmodel.Accelerator())
    points = search_increments(widths, margin, correct, table, max_loss_pct=5.0, n_increments=(2, 4))
    choices = {p.fractions for p in points}
    assert choices == {(*c, 1.0) for k in (1, 2, 3) for c in itertools.combinations(widths[:-1], k)}
    assert points[0].feasible and points[0].accuracy_loss_pct <= 5.0 + 1e-9
    energies = [p.energy_pj for p in points if p.feasible]
    assert energies == sorted(energies)


def test_more_increments_than_golden_sizes() -> None:
    with pytest.raises(IncrementSearchError, match=r"N = 5 increments need 5 golden sizes, only 3 available "
                                                   r"\(0.25, 0.5, 1\)"):
        check_golden_widths((0.25, 0.5, 1.0), (2, 5))
    with pytest.raises(IncrementSearchError, match="end at 1"):
        check_golden_widths((0.25, 0.5), (2, 2))


# ---- Algorithm 2 ---------------------------------------------------------------------------------------------------

def test_controller_steps_down_and_jumps_to_full_on_a_rise() -> None:
    energy = np.array([1.0, 2.0, 3.0, 4.0])
    correct = np.tile(np.array([[False], [False], [True], [True]]), (1, 7))
    budget = budget_schedule(energy, levels=(3, 1, 2), segment=4)
    trace = simulate_controller(energy, correct, budget)
    # level 3: full net fits; fall to 1: 3 -> 2 -> 1 (two over-budget inputs); rise to 2: jump to 3, settle at 2
    np.testing.assert_array_equal(trace.capacity, [3, 3, 3, 3, 2, 1, 1, 1, 3, 2, 2, 2])
    assert trace.violations == 2 and trace.energy_pj[8] > trace.budget_pj[8]
    assert trace.violations == int((trace.energy_pj > trace.budget_pj).sum())
    assert trace.accuracy == pytest.approx(np.mean(trace.capacity >= 2))


def test_controller_bad_input() -> None:
    with pytest.raises(IncrementSearchError, match="must increase with capacity"):
        simulate_controller(np.array([2.0, 1.0]), np.ones((2, 3), bool), np.ones(3))
    with pytest.raises(IncrementSearchError, match="capacities 0..1"):
        budget_schedule(np.array([1.0, 2.0]), levels=(0, 2))


# ---- CIFAR-10 loader -----------------------------------------------------------------------------------------------

def _write_cifar(directory: Path, per_batch: int = 20) -> None:
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in np.arange(per_batch) % 10]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with (directory / name).open("wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, handle, protocol=2)


def test_cifar10_loader_reads_standard_batches(tmp_path: Path) -> None:
    _write_cifar(tmp_path, per_batch=100)
    dataset = load_cifar10(tmp_path)
    assert dataset.images["train"].shape == (500, 3, 32, 32) and dataset.input_shape == (3, 32, 32)
    assert len(dataset.labels["calib"]) == 10 and len(dataset.labels["test"]) == 90  # 10% of each test class
    assert np.bincount(dataset.labels["calib"]).tolist() == [1] * 10
    raw = pickle.loads((tmp_path / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    np.testing.assert_array_equal(dataset.images["train"][0, 1].ravel(), raw[0, 1024:2048])  # channel-major rows
    assert architecture("alexnet-cifar10").input_shape == dataset.input_shape


def test_cifar10_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_cifar10(tmp_path / "nothing")
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="lacks data_batch_3"):
        load_cifar10(tmp_path)
    _write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": print}))
    with pytest.raises(DatasetError, match="not a CIFAR-10 python batch .*builtins.print is not allowed"):
        load_cifar10(tmp_path)


# ---- specs and CLI -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tann2016-mnist", "tann2016-cifar10"])
def test_tann_specs_parse(name: str) -> None:
    spec = load_spec(name)
    assert spec.nets.big in ("lenet", "alexnet-cifar10") and spec.enabled() == ["incremental"]
    assert spec.section("incremental").widths[:2] == (0.125, 0.25) and spec.section("incremental").n_increments == (2, 5)


def test_tann_mnist_shares_training_with_park() -> None:
    tann, park = load_spec("tann2016-mnist"), load_spec("park2015-mnist")
    assert tann.data == park.data and tann.training == park.training


SPEC = """
version = 2
name = "tiny-inc"
[data]
dataset = "mnist5k"
[training]
epochs = 1
batch_size = 128
learning_rate = 0.003
[nets]
big = "mini8"
[little]
nets = ["mini7"]
[search]
max_accuracy_loss_pct = 2.0
"""


def test_cli_train_incremental_and_controller(tmp_path: Path) -> None:
    from dse.cli import app

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    runner = CliRunner(env={"DSE_CACHE_DIR": str(tmp_path / "cache")})
    result = runner.invoke(app, ["train-incremental", str(spec), "--fractions", "0.5,1", *cache])
    assert result.exit_code == 0, result.output
    assert "golden-model estimate" in result.output and "incremental, re-tuned theta" in result.output
    assert "storage (Table 6)" in result.output
    result = runner.invoke(app, ["simulate-controller", str(spec), "--fractions", "0.3,0.6,1", "--schedule", "2,0,1",
                                 "--segment", "50", *cache])
    assert result.exit_code == 0, result.output
    assert "budget violations in 150 inputs" in result.output


def test_point_reads_fractions_and_thresholds_of_a_trial(tmp_path: Path) -> None:
    import optuna

    from dse import parse_spec, sqlite_url
    from dse.mechanisms.incremental.cli import point_settings

    spec = parse_spec(SPEC, "spec.toml")
    study = optuna.create_study(storage=sqlite_url(tmp_path / "study.db"), study_name=spec.name)
    uniform = optuna.distributions.FloatDistribution(0.0, 1.0)
    study.add_trial(optuna.trial.create_trial(  # as dse._space writes an increments point
        params={"fractions": "0.25/0.5", "threshold_0": 0.9, "threshold_1": 0.8},
        distributions={"fractions": optuna.distributions.CategoricalDistribution(["0.25/0.5"]),
                       "threshold_0": uniform, "threshold_1": uniform}, value=1.0))
    fractions, thresholds = point_settings(spec, 0, tmp_path, None)
    assert fractions == (0.25, 0.5, 1.0) and thresholds.tolist() == [0.9, 0.8]
    with pytest.raises(IncrementSearchError, match=r"--point 4: no such trial in study 'tiny-inc' \(trials 0..0\)"):
        point_settings(spec, 4, tmp_path, None)


@pytest.mark.parametrize(("args", "message"), [
    (["train-incremental", "SPEC", "--fractions", "0.5,0.25,1"], "error: fractions must increase strictly"),
    (["train-incremental", "SPEC", "--fractions", "0.25,0.5"], "error: the last fraction must be 1"),
    (["train-incremental", "SPEC"], "error: give exactly one of --point and --fractions"),
    (["train-incremental", "SPEC", "--fractions", "a,1"], "error: --fractions 'a,1': expected comma-separated"),
    (["train-incremental", "SPEC", "--fractions", "0.5,1", "--thresholds", "0.9,0.8"],
     "error: thresholds: need 1 for 2 increments (none for the last), got 2"),
    (["train-incremental", "SPEC", "--point", "3"], "error: no study database"),
    (["simulate-controller", "SPEC", "--schedule", "0,7"], "error: budget levels must be capacities 0..3"),
])
def test_cli_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    from dse.cli import app

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    args = [str(spec) if a == "SPEC" else a for a in args] + ["--cache-dir", str(tmp_path / "cache")]
    if args[0] == "train-incremental":
        args += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_tann_cifar10_spec_runs_on_synthetic_batches(tmp_path: Path) -> None:
    """The CIFAR-10 spec end to end (loader, golden widths, search) on tiny synthetic batches, one epoch."""
    from dse import load_problem, search_study
    from nets import TrainingConfig

    _write_cifar(tmp_path, per_batch=100)
    spec = load_spec("tann2016-cifar10").with_overrides(
        data={"path": str(tmp_path)}, training={"epochs": 1}, incremental={"widths": (0.25,), "n_increments": (2, 2)},
        search={"max_accuracy_loss_pct": None})
    assert spec.training == TrainingConfig(epochs=1, batch_size=100, learning_rate=0.001, seed=0)
    problem, _ = load_problem(spec, str(tmp_path / "cache"), n_jobs=1, log=lambda _: None)
    assert problem.names == ["alexnet-cifar10", "alexnet-cifar10@w0.25"]
    study = search_study(problem, spec, 4)
    assert {t.user_attrs["cascade"] for t in study.trials} == {"alexnet-cifar10@w0.25 > alexnet-cifar10"}
