"""Early exits on residual trunks: an ONNX model exported here (branches trained on its activations read by
onnxruntime) and [models.*] layer lists with residual adds; the tensors that wait for a later add are priced; a
criterion per exit is searched."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import costmodel
import dse
from costmodel import Accelerator, LayerShape, WaitingTensor, load_technology, network_cost
from dse.core.loading import check_spec_nets
from nets import Exits, architecture_from_table, branch_points, load_onnx, tap_step, waiting_tensors

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from torch import nn  # noqa: E402

STEM, RELU1 = "/stem_relu/Relu", "/relu1/Relu"  # node names of the exported graph
STEM_TENSOR = "/stem_relu/Relu_output_0"  # the output tensor of STEM


class ResidualCNN(nn.Module):
    """A stride-2 stem (conv, batch norm, ReLU), one residual block of two 3x3 convs with batch norm, a 2x2 max pool
    and an FC layer: 1x28x28 -> 8x14x14 -> 8x7x7 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.stem_bn, self.stem_relu = nn.Conv2d(1, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU()
        self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(392, 10)

    def forward(self, x):  # type: ignore[no-untyped-def]
        x = self.stem_relu(self.stem_bn(self.stem(x)))
        y = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(y)) + x)
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The residual CNN trained one epoch on the embedded digits' train split, exported with its batch norms."""
    from nets import TrainingConfig, load_dataset
    from nets.training import train_module

    torch.manual_seed(0)
    module = ResidualCNN()
    train_module(module, *load_dataset("mnist5k").split("train"), TrainingConfig(epochs=1, batch_size=64, learning_rate=0.01))
    path = tmp_path_factory.mktemp("onnx") / "trunk.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    return path


def onnx_spec(path: Path, points: str, extra: str = "") -> str:
    return (f'version = 2\nname = "onnx-exits"\n[data]\ndataset = "mnist5k"\n[training]\nepochs = 3\n'
            f'batch_size = 64\nlearning_rate = 0.01\n[models.trunk]\nonnx = "{path}"\n[nets]\nbig = "trunk"\n[exits]\npoints = {points}\n'
            f'channels = [4]\ncriteria = ["margin", "entropy"]\n{extra}[accelerator]\nsram = "16KiB"\nbits = 16\n'
            '[search]\nmax_accuracy_loss_pct = 5.0\nn_trials = 8\nenumerate_limit = 64\n')


def test_the_graph_keeps_its_batch_norms_and_lists_its_branch_points(exported: Path) -> None:
    trunk = load_onnx(exported).architecture
    assert [type(layer).__name__ for layer in trunk.layers].count("BatchNorm") == 3
    # a conv whose batch norm is folded into it is no branch point; its batch norm's output is
    assert "/stem/Conv" not in branch_points(trunk) and "/stem_bn/BatchNormalization" in branch_points(trunk)
    assert load_onnx(exported).layer_of(STEM_TENSOR) == STEM


def test_an_invalid_exit_point_is_one_line_naming_it_and_the_valid_ones(exported: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(onnx_spec(exported, '["/conv1/Conv"]'))
    spec = dse.load_spec(path)
    with pytest.raises(dse.SpecError) as error:
        check_spec_nets(spec)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: exits.points: trunk: no layer '/conv1/Conv' to branch at (branchable: "
                              f"/stem_bn/BatchNormalization, {STEM}, /bn1/BatchNormalization, {RELU1}, ")


def test_joint_training_of_an_onnx_trunk_is_refused_naming_the_key(exported: Path, tmp_path: Path) -> None:
    path = tmp_path / "joint.toml"
    path.write_text(onnx_spec(exported, f'["{STEM}"]').replace('channels = [4]', 'channels = [4]\ntraining = "joint"'))
    with pytest.raises(dse.SpecError, match=r"joint\.toml: models\.trunk: model 'trunk' cannot run as trunk@exit:.*"
                                            r"joint: .* its exits train on the frozen trunk \(exits\.training = "):
        check_spec_nets(dse.load_spec(path))


# Hand derivation, 16-bit, on the trunk's 8x14x14 maps (stride-2 3x3 stem on 1x28x28):
#   stem conv   8 * 14*14 * (1*3*3) = 14,112 MACs,   72 weights
#   block conv  8 * 14*14 * (8*3*3) = 112,896 MACs, 576 weights (each of two)
#   exit branch (4 channels): 1x1 conv 4 * 14*14 * 8 = 6,272 MACs, 32 weights; avg pool 5 (ceil(14 / 3)) to 4x3x3;
#               FC 36 -> 10 = 360 MACs and weights
#   exit at the stem:  14,112 + 6,272 + 360 = 20,744 MACs;   72 + 32 + 360 = 464 weights
#   exit in the block: 14,112 + 112,896 + 6,272 + 360 = 133,640 MACs; 72 + 576 + 32 + 360 = 1,040 weights
#   trunk: 14,112 + 2 * 112,896 + 3,920 (max pool to 8x7x7, FC 392 -> 10) = 243,824 MACs
def hand_shapes(prefix: list[LayerShape], point: str) -> list[LayerShape]:
    return prefix + [LayerShape(f"{point}.exit.conv", "conv", 8, 14, 14, 4, 14, 14),
                     LayerShape(f"{point}.exit.pool", "avgpool", 4, 14, 14, 4, 3, 3, 5, 5, 5),
                     LayerShape(f"{point}.exit.fc", "fc", 36, 1, 1, 10, 1, 1)]


STEM_CONV = LayerShape("/stem/Conv", "conv", 1, 28, 28, 8, 14, 14, 3, 3, 2, 1)
CONV1 = LayerShape("/conv1/Conv", "conv", 8, 14, 14, 8, 14, 14, 3, 3, 1, 1)


def test_a_study_on_exits_of_an_exported_residual_trunk(exported: Path, tmp_path: Path) -> None:
    """Two exits (one named by its tensor, one by its node) trained on the frozen ONNX trunk, scored, priced as the
    trunk prefix plus the branch (hand-checked) with the block input waiting for its add, and searched with a
    criterion per exit."""
    path = tmp_path / "onnx.toml"
    path.write_text(onnx_spec(exported, f'["{STEM_TENSOR}", "{RELU1}"]'))
    spec = dse.load_spec(path)
    problem, _ = dse.load_problem(spec, str(tmp_path / "cache"), n_jobs=1, log=lambda _: None)
    first, second = (problem.index(f"trunk@exit:{p}:{STEM}+{RELU1}:c4") for p in (STEM, RELU1))
    accuracy = problem.correct["test"][[first, second, problem.big]].mean(axis=1)
    assert accuracy.min() > 0.5, accuracy  # the trunk and both branches learned (chance: 0.1)

    acc, tech = problem.accelerator, problem.technology
    assert problem.price(first).macs == 20_744 and problem.price(second).macs == 133_640
    assert problem.price(problem.big).macs == 243_824
    assert sum(s.weight_count for s in problem.variants[first].architecture.layer_shapes()) == 464
    assert sum(s.weight_count for s in problem.variants[second].architecture.layer_shapes()) == 1_040
    assert problem.price(first).energy_pj == network_cost(hand_shapes([STEM_CONV], STEM), acc, tech).energy_pj
    assert problem.price(second).energy_pj == network_cost(hand_shapes([STEM_CONV, CONV1], RELU1), acc,
                                                           tech).energy_pj

    # escalating from the stem exit: the block's first conv and the second branch; the stem's output waits
    # (8*14*14 = 1,568 values, 3,136 bytes: they fit the 4 KiB output buffer)
    escalation = problem.price(second, after=first)
    assert escalation.macs == 112_896 + 6_272 + 360
    wait = [lc for lc in escalation.layer_costs if lc.kind == "wait"]
    assert [lc.name for lc in wait] == [f"{STEM}[waiting]"] and wait[0].dram_bytes == 0
    read_pj, write_pj, _ = tech.sram_pj_per_bit(4096)
    assert wait[0].energy_pj == pytest.approx(1568 * 16 * (read_pj + write_pj), rel=1e-12)
    # escalating from the block's exit to the trunk: its tap and the block input (the add's shortcut) both wait,
    # 2 x 3,136 bytes > 4 KiB: both go to DRAM and back, each rounded up to whole bursts
    last = problem.price(problem.big, after=second)
    wait = [lc for lc in last.layer_costs if lc.kind == "wait"]
    assert [lc.name for lc in wait] == [f"{STEM}+{RELU1}[waiting]"]
    burst = tech.dram_burst_bytes
    assert wait[0].dram_bytes == 2 * 2 * math.ceil(3136 / burst) * burst
    assert last.macs == 112_896 + 3_920

    study = dse.search_study(problem, spec, 8)
    params = [trial.params for trial in study.trials]
    assert {key for p in params for key in p if key.startswith("criterion@")} == {"criterion@exit1",
                                                                                  "criterion@exit2"}
    assert all("criterion" not in p for p in params)  # every early stage has its own
    assert any(t.feasible for t in dse.study_results(study).trials)


def test_per_stage_criteria_read_each_stage_under_its_own(exported: Path, tmp_path: Path) -> None:
    """The cascade's confidence rows are each stage's own criterion's (compared with the single-criterion rows)."""
    path = tmp_path / "onnx.toml"
    path.write_text(onnx_spec(exported, f'["{STEM}", "{RELU1}"]'))
    problem, _ = dse.load_problem(dse.load_spec(path), str(tmp_path / "cache"), n_jobs=1, log=lambda _: None)
    stages = [problem.index(f"trunk@exit:{p}:{STEM}+{RELU1}:c4") for p in (STEM, RELU1)] + [problem.big]
    mixed = problem.stage_confidence(stages, "entropy/margin", "calib")
    np.testing.assert_array_equal(mixed[0], problem.confidence("entropy", "calib")[stages[0]])
    np.testing.assert_array_equal(mixed[1:], problem.confidence("margin", "calib")[stages[1:]])


# --- [models.*] residual trunks ------------------------------------------------------------------------------------

BLOCK = [{"type": "conv", "out": 8, "kernel": 3, "pad": 1, "name": "stem"}, {"type": "batchnorm"},
         {"type": "relu", "name": "x"}, {"type": "conv", "out": 8, "kernel": 3, "pad": 1, "name": "c1"},
         {"type": "relu", "name": "r1"}, {"type": "conv", "out": 8, "kernel": 3, "pad": 1, "name": "c2"},
         {"type": "add", "from": "x", "name": "join"}, {"type": "pool", "mode": "max", "kernel": 2, "name": "p"},
         {"type": "fc", "out": 10}]


def residual_trunk():  # type: ignore[no-untyped-def]
    return architecture_from_table("res", (1, 12, 12), BLOCK, "test")


@pytest.mark.parametrize("point, waiting", [
    ("x", [("x", (8, 12, 12))]),  # the block input: both the next conv and the add read it
    ("r1", [("x", (8, 12, 12)), ("r1", (8, 12, 12))]),  # inside the block: the add's shortcut waits too
    ("c2", [("x", (8, 12, 12)), ("c2", (8, 12, 12))]),
    ("join", [("join", (8, 12, 12))]),  # after the block boundary: its output alone
    ("p", [("p", (8, 6, 6))]),
])
def test_what_waits_at_each_point_of_a_residual_trunk(point: str, waiting: list) -> None:
    assert waiting_tensors(residual_trunk(), point) == tuple(WaitingTensor(*w) for w in waiting)


def test_waiting_tensors_by_brute_force_on_random_residual_chains() -> None:
    """Reference: a tensor waits when some layer after the cut reads it (by running the chain's reads one by one)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        layers, names = [{"type": "conv", "out": 4, "kernel": 1, "name": "l0"}], ["l0"]
        for i in range(1, int(rng.integers(3, 9))):
            kind = rng.choice(["conv", "relu", "add"])
            table = {"type": str(kind), "name": f"l{i}"}
            if kind == "conv":
                table |= {"out": 4, "kernel": 1}
            if kind == "add":
                table["from"] = str(rng.choice(names))
            layers.append(table)
            names.append(f"l{i}")
        layers.append({"type": "fc", "out": 10})
        trunk = architecture_from_table("r", (4, 3, 3), layers, "test")
        for cut, name in enumerate(names):
            read_after = set()
            for j, table in enumerate(layers[cut + 1:], start=cut + 1):
                read_after.add(names[j - 1] if j - 1 < len(names) else None)
                if table["type"] == "add":
                    read_after.add(table["from"])
            expected = [n for n in names[:cut + 1] if n in read_after]
            assert [w.name for w in waiting_tensors(trunk, name)] == expected


def test_an_exit_module_on_a_residual_trunk_matches_the_branched_pass() -> None:
    """The exit's own module (trunk prefix, then branch) gives the logits the one-pass branched module gives."""
    from nets.training._exits_torch import all_exit_logits, branched_module, exit_module

    trunk, exits = residual_trunk(), Exits(("r1", "join"), channels=4)
    torch.manual_seed(0)
    module = branched_module(trunk, exits).eval()
    inputs = torch.rand(5, 1, 12, 12)
    with torch.no_grad():
        together = all_exit_logits(module, trunk, exits, inputs)
        for i, point in enumerate(exits.points):
            alone = exit_module(module, trunk, Exits(exits.points, point, 4))(inputs)
            torch.testing.assert_close(alone, together[i], rtol=0, atol=0)
    assert tap_step(trunk, "r1").out_shape == (8, 12, 12)


def test_a_residual_layer_list_trunk_gets_jointly_trained_exits(tmp_path: Path) -> None:
    """A [models.*] residual trunk, exits inside and after its block, trained jointly, scored and priced with the
    shortcut waiting."""
    layers = ('[{type = "conv", out = 8, kernel = 3, pad = 1, name = "stem"}, {type = "batchnorm"}, '
              '{type = "relu", name = "x"}, {type = "conv", out = 8, kernel = 3, pad = 1, name = "c1"}, '
              '{type = "relu", name = "r1"}, {type = "conv", out = 8, kernel = 3, pad = 1, name = "c2"}, '
              '{type = "add", from = "x", name = "join"}, {type = "pool", mode = "max", kernel = 2, name = "p"}, '
              '{type = "fc", out = 10}]')  # BLOCK, on 28x28 digits
    path = tmp_path / "res.toml"
    path.write_text(f'version = 2\nname = "res"\n[data]\ndataset = "mnist5k"\n[training]\nepochs = 2\n'
                    f'batch_size = 128\nlearning_rate = 0.01\n[models.res]\ninput_shape = [1, 28, 28]\nlayers = {layers}\n[nets]\n'
                    'big = "res"\n[exits]\npoints = ["r1", "join"]\nchannels = [4]\ntraining = "joint"\n[search]\n'
                    'max_accuracy_loss_pct = 5.0\n')
    spec = dse.load_spec(path)
    problem, _ = dse.load_problem(spec, str(tmp_path / "cache"), n_jobs=1, log=lambda _: None)
    first = problem.index("res@exit:r1:r1+join:c4:joint")
    second = problem.index("res@exit:join:r1+join:c4:joint")
    assert problem.correct["test"][[first, second]].mean(axis=1).min() > 0.25  # chance: 0.1
    wait = [lc for lc in problem.price(second, after=first).layer_costs if lc.kind == "wait"]
    assert [lc.name for lc in wait] == ["x+r1[waiting]"]
    acc = Accelerator(sram_bytes=16 * 1024, partition=(0.25, 0.5, 0.25), bits=16)
    expected = costmodel.continuation_cost(problem.variants[first].architecture.layer_shapes(),
                                           problem.variants[second].architecture.layer_shapes(), acc,
                                           load_technology(), waiting=(WaitingTensor("x", (8, 28, 28)),
                                                                       WaitingTensor("r1", (8, 28, 28))))
    assert problem.price(second, after=first).energy_pj == pytest.approx(expected.energy_pj, rel=1e-12)
