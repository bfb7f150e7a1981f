"""An ONNX model with batch norm, a residual add and a depthwise block as the big net of a study (scored by
onnxruntime, cached by content), a layer-list model with the same vocabulary trained beside it, `dse cost` on ONNX
files and spec models with MACs checked by hand, and the ONNX errors a study meets."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_onnx import Graph, blocks_graph, depthwise_separable
from typer.testing import CliRunner

import costmodel
import nets
from dse import SpecError, load_problem, parse_spec
from dse.cli import app
from dse.core.results import PJ

RNG = np.random.default_rng(2)
SPEC = """version = 2
name = "onnx-study"
[data]
dataset = "npz"
path = "images.npz"
[training]
epochs = 1
batch_size = 50
[nets]
big = "blocks"
[little]
nets = ["separable"]
[search]
n_trials = 10
sampler = "random"
[models.blocks]
onnx = "blocks.onnx"
energy_j = 5e-8        # measured: the cost model prices "add" layers only after issue 16
input_mean = [0.5, 0.4, 0.3]
input_std = 0.25
[models.separable]
input_shape = [3, 8, 8]
layers = [{type = "conv", out = 8, kernel = 3, pad = 1}, {type = "batchnorm"}, {type = "relu"},
          {type = "conv", out = 8, kernel = 3, pad = 1, groups = 8}, {type = "batchnorm"}, {type = "relu"},
          {type = "conv", out = 16, kernel = 1}, {type = "relu"}, {type = "pool", mode = "global"},
          {type = "fc", out = 10}]
"""


def separable_graph() -> Graph:
    """A stem and a depthwise-separable block (no add: the cost model prices it today)."""
    g = Graph()
    g.conv("stem", 8, 3, 3, pad=1)
    g.bn("stem_bn", 8)
    g.node("Relu", "stem_relu")
    depthwise_separable(g)
    g.node("GlobalAveragePool", "gap")
    g.node("Flatten", "flat", axis=1)
    g.node("Gemm", "fc", g.const("fc.w", RNG.normal(0, 0.5, (10, 16))), g.const("fc.b", RNG.normal(0, 0.1, 10)),
           transB=1)
    return g


@pytest.fixture()
def onnx_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """images.npz (500 RGB 8x8 images, 10 classes), blocks.onnx and the spec, in the working directory."""
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "images.npz", images=RNG.integers(0, 256, (500, 3, 8, 8), dtype=np.uint8),
             labels=np.arange(500) % 10)
    blocks_graph().save(tmp_path / "blocks.onnx")
    (tmp_path / "study.toml").write_text(SPEC)
    return tmp_path


def test_an_onnx_model_with_batch_norm_a_residual_add_and_a_depthwise_block_is_a_study_big_net(
        onnx_study: Path) -> None:
    result = CliRunner().invoke(app, ["run", "study.toml", "--cache-dir", "cache", "--no-progress", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert re.search(r"0 -> [1-9]\d* completed trials?;", result.output)
    assert "1 to train" in result.output  # only the layer-list model trains
    spec = parse_spec((onnx_study / "study.toml").read_text(), "study.toml")
    arch = spec.models["blocks"].architecture
    kinds = {type(layer).__name__ for layer in arch.layers}
    assert {"BatchNorm", "Add", "GlobalPool"} <= kinds
    assert any(isinstance(layer, nets.Conv) and layer.groups == layer.out_channels == 8 for layer in arch.layers)
    logs: list[str] = []
    problem, dataset = load_problem(spec, "cache", log=logs.append)
    assert "2 of 2 variants cached; 0 to train, 0 to score" in logs[0]
    model = spec.models["blocks"]
    big = problem.index("blocks")
    for split in ("calib", "test"):  # onnxruntime's logits with the spec's input scaling, row by row
        images, labels = dataset.split(split)
        logits = nets.onnx_logits(model.onnx, images, (0.5, 0.4, 0.3), (0.25,))
        assert problem.correct[split][big].tolist() == (logits.argmax(axis=1) == labels).tolist()
        unscaled = nets.onnx_logits(model.onnx, images)
        assert not np.allclose(logits, unscaled)  # the scaling was applied
    assert problem.price(big).energy_pj * PJ == pytest.approx(5e-8, rel=1e-12)
    separable = problem.index("separable")
    shapes = problem.variants[separable].architecture.layer_shapes()
    assert [s.groups for s in shapes if s.kind == "conv"] == [1, 8, 1]
    assert problem.price(separable) == costmodel.network_cost(shapes, problem.accelerator, problem.technology)


def test_the_onnx_file_at_another_path_reuses_its_cached_scores(onnx_study: Path) -> None:
    spec = parse_spec(SPEC.replace('big = "blocks"', 'big = "separable"\n').replace(
        '[little]\nnets = ["separable"]', '[little]\nnets = ["blocks"]'), "a.toml")
    first, _ = load_problem(spec, "cache", n_jobs=1, log=lambda _: None)
    shutil.copy(onnx_study / "blocks.onnx", onnx_study / "copy.onnx")
    moved = parse_spec(SPEC.replace('"blocks.onnx"', '"copy.onnx"'), "b.toml")
    logs: list[str] = []
    again, _ = load_problem(moved, "cache", n_jobs=1, log=logs.append)
    assert "2 of 2 variants cached" in logs[0]
    assert again.correct["test"][again.index("blocks")].tolist() == first.correct["test"][first.index("blocks")].tolist()


def test_onnx_errors_in_a_study(onnx_study: Path) -> None:
    np.savez(onnx_study / "five.npz", images=RNG.integers(0, 256, (100, 3, 8, 8), dtype=np.uint8),
             labels=np.arange(100) % 5)
    spec = parse_spec(SPEC.replace('"images.npz"', '"five.npz"').replace("out = 10", "out = 5"), "s.toml")
    with pytest.raises(SpecError, match=r"s\.toml: nets: 'blocks': the model outputs 10 values per sample but the data has 5 "
                                        r"classes"):
        load_problem(spec, "cache", log=lambda _: None)
    g = separable_graph()
    g.node("Sigmoid", "squash")
    g.save(onnx_study / "sigmoid.onnx")
    with pytest.raises(SpecError, match=r"s\.toml: models\.blocks\.onnx: sigmoid\.onnx: node 'squash' \(Sigmoid\): "
                                        r"unsupported operator 'Sigmoid'"):
        parse_spec(SPEC.replace('"blocks.onnx"', '"sigmoid.onnx"'), "s.toml")
    with pytest.raises(SpecError, match=r"s\.toml: models\.blocks\.input_mean: needs 1 or 3 values"):
        parse_spec(SPEC.replace("[0.5, 0.4, 0.3]", "[0.5, 0.4]"), "s.toml")
    bits = parse_spec(SPEC + "[bitwidth]\nbitwidths = [8]\n", "s.toml")
    with pytest.raises(SpecError, match=r"models\.blocks: model 'blocks' cannot run as blocks@8b: it is scored by "
                                        r"onnxruntime as exported, so it cannot take bits, rounding"):
        load_problem(bits, "cache", log=lambda _: None)
    effort = parse_spec(SPEC + "[effort]\nmechanisms = [\"layer\"]\n", "s.toml")
    with pytest.raises(SpecError, match=r"s\.toml: effort\.nets: 'blocks' is scored or priced as given"):
        load_problem(effort, "cache", log=lambda _: None)
    widths = parse_spec(SPEC.replace('big = "blocks"', 'big = "separable"').replace(
        'nets = ["separable"]', 'nets = ["blocks"]') + "[incremental]\nwidths = [0.5]\n", "s.toml")
    load_problem(widths, "cache", n_jobs=1, log=lambda _: None)  # a layer-list model takes widths


def macs_column(output: str) -> dict[str, int]:
    """name -> MACs from the per-layer table `dse cost` prints."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["name", "kind"])
    column = lines[header].split().index("macs")
    rows = {}
    for line in lines[header + 1:]:
        if not line.strip():
            break
        fields = line.split()
        rows[fields[0]] = int(fields[column])
    return rows


def test_dse_cost_prints_the_macs_of_an_onnx_file_and_a_spec_model_as_computed_by_hand(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    separable_graph().save(tmp_path / "separable.onnx")
    result = CliRunner().invoke(app, ["cost", "separable.onnx"])
    assert result.exit_code == 0, result.output
    by_hand = {"stem": 8 * 8 * 8 * (3 * 3 * 3), "dw": 8 * 8 * 8 * (1 * 3 * 3), "pw": 16 * 8 * 8 * 8,
               "gap": 0, "fc": 16 * 10}  # 13,824; 4,608 (depthwise: one input channel per output); 8,192; 160
    assert macs_column(result.output) == by_hand
    assert re.search(rf"MACs {sum(by_hand.values())}\b", result.output)
    (tmp_path / "s.toml").write_text('version = 2\nname = "s"\n[little]\nnets = ["mini7"]\n[models.mine]\n'
                                     'onnx = "separable.onnx"\nenergy_j = 1e-8\n')
    result = CliRunner().invoke(app, ["cost", "mine", "--spec", "s.toml"])
    assert result.exit_code == 0, result.output
    assert macs_column(result.output) == by_hand and "priced by its measured energy_j" in result.output
    result = CliRunner().invoke(app, ["cost", "mine"])
    assert result.exit_code == 2 and "unknown network 'mine'" in result.output


def test_the_resnet_block_is_priced_by_the_cost_model(tmp_path: Path) -> None:
    shapes = nets.load_onnx(blocks_graph().save(tmp_path / "blocks.onnx")).architecture.layer_shapes()
    cost = costmodel.network_cost(shapes, costmodel.Accelerator())
    assert cost.macs == 13_824 + 2 * 36_864 + 4_608 + 8_192 + 160
