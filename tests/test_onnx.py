"""ONNX import: layer lists read from graphs built with onnx.helper (and one exported from torch), MACs checked by
hand, scored with onnxruntime against a torch reference on the same weights; every refusal is one line naming the
file and node."""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import onnx
from onnx import TensorProto, helper, numpy_helper

from nets import ImportedModelError, architecture_from_table, check_class_count, file_digest, load_onnx, onnx_logits
from nets.training._torch import build_module, predict_logits

RNG = np.random.default_rng(0)


class Graph:
    """A chain of ONNX nodes with random constant weights, written to a file."""

    def __init__(self, input_shape: tuple = ("N", 3, 8, 8)) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.weights: dict[str, np.ndarray] = {}
        self.input_shape = input_shape
        self.current = "image"

    def const(self, name: str, array: np.ndarray) -> str:
        self.weights[name] = array.astype(np.float32) if array.dtype.kind == "f" else array
        self.inits.append(numpy_helper.from_array(self.weights[name], name))
        return name

    def node(self, op: str, name: str, *extra: str, inputs: list[str] | None = None, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs or [self.current, *extra], [name], name=name, **attrs))
        self.current = name
        return name

    def conv(self, name: str, out: int, cin: int, kernel: int, groups: int = 1, pad: int = 0, stride: int = 1) -> str:
        weight = self.const(f"{name}.w", RNG.normal(0, 0.4, (out, cin // groups, kernel, kernel)))
        bias = self.const(f"{name}.b", RNG.normal(0, 0.1, out))
        return self.node("Conv", name, weight, bias, kernel_shape=[kernel, kernel], pads=[pad] * 4, group=groups,
                         strides=[stride, stride])

    def bn(self, name: str, channels: int) -> str:
        params = [RNG.uniform(0.5, 1.5, channels), RNG.normal(0, 0.2, channels), RNG.normal(0, 0.3, channels),
                  RNG.uniform(0.5, 2.0, channels)]
        names = [self.const(f"{name}.{p}", a) for p, a in zip(("scale", "bias", "mean", "var"), params)]
        return self.node("BatchNormalization", name, *names, epsilon=1e-5)

    def save(self, path: Path, output: str | None = None, outputs: int = 10) -> Path:
        graph = helper.make_graph(
            self.nodes, "test", [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(self.input_shape))],
            [helper.make_tensor_value_info(output or self.current, TensorProto.FLOAT, [self.input_shape[0], outputs])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, path)
        return path


def depthwise_separable(g: Graph) -> None:
    """A depthwise 3x3 (8 groups) with batch norm and ReLU6, then a pointwise 1x1 to 16 channels with batch norm."""
    g.conv("dw", 8, 8, 3, groups=8, pad=1)
    g.bn("dw_bn", 8)
    g.node("Clip", "dw_relu6", g.const("zero", np.array(0.0)), g.const("six", np.array(6.0)))
    g.conv("pw", 16, 8, 1)
    g.bn("pw_bn", 16)
    g.node("Relu", "pw_relu")


def blocks_graph() -> Graph:
    """Stem, a ResNet-style basic block (identity shortcut), a depthwise-separable block, pools and a Gemm."""
    g = Graph()
    g.conv("stem", 8, 3, 3, pad=1)
    g.bn("stem_bn", 8)
    stem = g.node("Relu", "stem_relu")
    g.conv("res_conv1", 8, 8, 3, pad=1)
    g.bn("res_bn1", 8)
    g.node("Relu", "res_relu1")
    g.conv("res_conv2", 8, 8, 3, pad=1)
    g.bn("res_bn2", 8)
    g.node("Add", "res_add", inputs=[stem, g.current])
    g.node("Relu", "res_relu2")
    depthwise_separable(g)
    g.node("MaxPool", "pool", kernel_shape=[2, 2], strides=[2, 2])
    g.node("GlobalAveragePool", "gap")
    g.node("Flatten", "flat", axis=1)
    g.node("Gemm", "fc", g.const("fc.w", RNG.normal(0, 0.5, (10, 16))), g.const("fc.b", RNG.normal(0, 0.1, 10)),
           transB=1)
    return g


def reference_logits(g: Graph, x: np.ndarray) -> np.ndarray:
    """The blocks graph computed with torch.nn.functional on the same weights."""
    w = {name: torch.from_numpy(array) for name, array in g.weights.items()}

    def conv_bn(conv: str, bn: str, y: torch.Tensor, groups: int = 1, pad: int = 1) -> torch.Tensor:
        y = F.conv2d(y, w[f"{conv}.w"], w[f"{conv}.b"], padding=pad, groups=groups)
        return F.batch_norm(y, w[f"{bn}.mean"], w[f"{bn}.var"], w[f"{bn}.scale"], w[f"{bn}.bias"], False, 0.0, 1e-5)

    stem = F.relu(conv_bn("stem", "stem_bn", torch.from_numpy(x)))
    block = F.relu(conv_bn("res_conv2", "res_bn2", F.relu(conv_bn("res_conv1", "res_bn1", stem))) + stem)
    separable = F.relu(conv_bn("pw", "pw_bn", torch.clamp(conv_bn("dw", "dw_bn", block, groups=8), 0, 6), pad=0))
    pooled = F.max_pool2d(separable, 2).mean(dim=(2, 3))
    return F.linear(pooled, w["fc.w"], w["fc.b"]).numpy()


@pytest.fixture()
def blocks(tmp_path: Path) -> tuple[Graph, Path]:
    g = blocks_graph()
    return g, g.save(tmp_path / "blocks.onnx")


def test_blocks_layers_and_macs_by_hand(blocks: tuple[Graph, Path]) -> None:
    model = load_onnx(blocks[1], "mine")
    arch = model.architecture
    assert (arch.name, arch.input_shape, model.batch, model.input_name, model.output_name) == (
        "mine", (3, 8, 8), None, "image", "fc")
    shapes = {s.name: s for s in arch.layer_shapes()}
    assert list(shapes) == ["stem", "res_conv1", "res_conv2", "res_add", "dw", "pw", "pool", "gap", "fc"]
    assert shapes["stem"].macs == 8 * 8 * 8 * (3 * 3 * 3)  # 13,824
    assert shapes["res_conv1"].macs == shapes["res_conv2"].macs == 8 * 8 * 8 * (8 * 3 * 3)  # 36,864 each
    assert shapes["dw"].macs == 8 * 8 * 8 * (1 * 3 * 3) and shapes["dw"].groups == 8  # 4,608
    assert shapes["pw"].macs == 16 * 8 * 8 * 8  # 8,192
    assert shapes["fc"].macs == 16 * 10  # 160
    assert (shapes["res_add"].kind, shapes["res_add"].output_count) == ("add", 8 * 8 * 8)
    assert (shapes["gap"].kind, shapes["gap"].kernel_h, shapes["gap"].out_h) == ("avgpool", 4, 1)
    assert arch.macs() == 13_824 + 2 * 36_864 + 4_608 + 8_192 + 160
    assert [d["type"] for d in arch.describe()].count("BatchNorm") == 5
    assert arch.layers[8].source == "stem_relu"  # the add names the shortcut's layer
    check_class_count(model, 10)


def test_blocks_scores_match_the_torch_reference(blocks: tuple[Graph, Path]) -> None:
    g, path = blocks
    model = load_onnx(path)
    images = RNG.integers(0, 256, (7, 3, 8, 8), dtype=np.uint8)
    x = images.astype(np.float32) / 255.0
    logits = onnx_logits(model, images, batch_size=3)
    assert logits.shape == (7, 10) and logits.dtype == np.float64
    np.testing.assert_allclose(logits, reference_logits(g, x), rtol=1e-4, atol=1e-4)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    normalised = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(onnx_logits(model, images, mean, std), reference_logits(g, normalised),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(onnx_logits(model, images, 0.5, 0.25),
                               reference_logits(g, (x - 0.5) / np.float32(0.25)), rtol=1e-4, atol=1e-4)


def test_file_digest_is_the_streamed_sha256_of_the_bytes(blocks: tuple[Graph, Path], tmp_path: Path) -> None:
    path = blocks[1]
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_digest(path) == file_digest(path, chunk=7) == load_onnx(path).digest == expected
    copy = tmp_path / "elsewhere" / "copy.onnx"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert load_onnx(copy).digest == expected
    changed = bytearray(path.read_bytes())
    changed[-1] ^= 1
    copy.write_bytes(bytes(changed))
    assert file_digest(copy) != expected


def test_matmul_bias_reshape_ceil_pool_and_a_fixed_batch(tmp_path: Path) -> None:
    g = Graph(input_shape=(1, 1, 5, 5))
    g.conv("c", 2, 1, 1)
    g.node("AveragePool", "avg", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    g.node("Reshape", "rs", g.const("shape", np.array([-1, 18], np.int64)))
    g.node("MatMul", "mm", g.const("mm.w", RNG.normal(0, 0.5, (18, 4))))
    g.node("Add", "mm_bias", g.const("mm.b", RNG.normal(0, 0.1, 4)))
    model = load_onnx(g.save(tmp_path / "mm.onnx", outputs=4))
    shapes = model.architecture.layer_shapes()
    assert [(s.name, s.kind, s.out_h, s.macs) for s in shapes] == [
        ("c", "conv", 5, 2 * 25), ("avg", "avgpool", 3, 0), ("mm", "fc", 1, 18 * 4)]
    assert model.batch == 1
    images = RNG.integers(0, 256, (3, 1, 5, 5), dtype=np.uint8)
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    w = {k: torch.from_numpy(v) for k, v in g.weights.items() if v.dtype == np.float32}
    pooled = F.avg_pool2d(F.conv2d(x, w["c.w"], w["c.b"]), 2, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(onnx_logits(model, images), (pooled.flatten(1) @ w["mm.w"] + w["mm.b"]).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_exported_from_torch_reads_back_the_same_shapes(tmp_path: Path) -> None:
    """The legacy TorchScript exporter works offline (the dynamo one needs onnxscript); it folds batch norm."""
    table = [{"type": "conv", "out": 6, "kernel": 3, "pad": 1}, {"type": "batchnorm"}, {"type": "relu", "name": "r"},
             {"type": "conv", "out": 6, "kernel": 3, "pad": 1, "groups": 6}, {"type": "add", "from": "r"},
             {"type": "pool", "mode": "avg", "kernel": 2}, {"type": "flatten"}, {"type": "fc", "out": 5}]
    arch = architecture_from_table("t", (2, 6, 6), table, "test")
    torch.manual_seed(0)
    module = build_module(arch).eval()
    path = tmp_path / "t.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 2, 6, 6),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    model = load_onnx(path)

    def dims(shapes: list) -> list:
        return [(s.kind, s.in_channels, s.in_h, s.out_channels, s.out_h, s.kernel_h, s.groups) for s in shapes]

    assert dims(model.architecture.layer_shapes()) == dims(arch.layer_shapes())
    images = RNG.integers(0, 256, (4, 2, 6, 6), dtype=np.uint8)
    np.testing.assert_allclose(onnx_logits(model, images), predict_logits(module, images), rtol=1e-4, atol=1e-5)


def _after_conv(op: str, name: str, *consts: np.ndarray, relu_first: bool = False, **attrs: object) -> Graph:
    """A one-conv graph (optionally with a ReLU) followed by one `op` node taking `consts` as constant inputs."""
    g = Graph()
    g.conv("c", 4, 3, 3)
    if relu_first:
        g.node("Relu", "r")
    extra = [g.const(f"{name}.{i}", array) for i, array in enumerate(consts)]
    g.node(op, name, *extra, **attrs)
    return g


BN_PARAMS = (np.ones(4), np.zeros(4), np.zeros(4), np.ones(4))


@pytest.mark.parametrize(("graph", "match"), [
    (lambda: _after_conv("Softmax", "probs"), r"node 'probs' \(Softmax\): unsupported operator 'Softmax'"),
    (lambda: _after_conv("Sigmoid", "s"), r"node 's' \(Sigmoid\): unsupported operator 'Sigmoid'"),
    (lambda: _after_conv("BatchNormalization", "late_bn", *BN_PARAMS, relu_first=True),
     r"node 'late_bn' \(BatchNormalization\): batch norm must follow a Conv"),
    (lambda: _after_conv("MaxPool", "p", kernel_shape=[2, 3]), r"node 'p' \(MaxPool\): only square 2-D windows"),
    (lambda: _after_conv("Conv", "dil", RNG.normal(size=(4, 4, 3, 3)), dilations=[2, 2]),
     r"node 'dil' \(Conv\): dilated convolution is not supported"),
    (lambda: _after_conv("Flatten", "f", axis=2), r"node 'f' \(Flatten\): only axis=1"),
    (lambda: _after_conv("Reshape", "rs", np.array([2, 2, -1], np.int64)),
     r"node 'rs' \(Reshape\): only a reshape to \(batch, features\)"),
    (lambda: _after_conv("Add", "shift", np.ones(1), relu_first=True),
     r"node 'shift' \(Add\): adding a constant is supported only as the bias"),
])
def test_unsupported_graphs_name_the_operator_and_node(tmp_path: Path, graph, match: str) -> None:
    with pytest.raises(ImportedModelError, match=match) as caught:
        load_onnx(graph().save(tmp_path / "bad.onnx", outputs=4))
    assert str(caught.value).startswith(str(tmp_path / "bad.onnx")) and "\n" not in str(caught.value)


def test_a_projection_shortcut_block(tmp_path: Path) -> None:
    """A ResNet downsampling block: the shortcut is a strided 1x1 conv + batch norm on the block input."""
    g = Graph(input_shape=("N", 4, 8, 8))
    g.conv("stem", 8, 4, 3, pad=1)
    block_in = g.node("Relu", "stem_relu")
    g.conv("down_conv1", 16, 8, 3, pad=1, stride=2)
    g.bn("down_bn1", 16)
    g.node("Relu", "down_relu1")
    g.conv("down_conv2", 16, 16, 3, pad=1)
    main = g.bn("down_bn2", 16)
    g.current = block_in
    g.conv("proj", 16, 8, 1, stride=2)
    g.bn("proj_bn", 16)
    g.node("Add", "down_add", inputs=[main, g.current])
    g.node("Relu", "down_relu2")
    g.node("GlobalAveragePool", "gap")
    g.node("Flatten", "flat", axis=1)
    g.node("Gemm", "fc", g.const("fc.w", RNG.normal(0, 0.5, (10, 16))), transB=1)
    model = load_onnx(g.save(tmp_path / "down.onnx"))
    shapes = {s.name: s for s in model.architecture.layer_shapes()}
    assert shapes["stem"].macs == 8 * 8 * 8 * (4 * 3 * 3)  # 18,432
    assert shapes["down_conv1"].macs == 16 * 4 * 4 * (8 * 3 * 3)  # 18,432
    assert shapes["down_conv2"].macs == 16 * 4 * 4 * (16 * 3 * 3)  # 36,864
    assert (shapes["proj"].macs, shapes["proj"].in_h, shapes["proj"].out_h) == (16 * 4 * 4 * 8, 8, 4)  # 2,048
    assert (shapes["down_add"].kind, shapes["down_add"].output_count) == ("add", 16 * 4 * 4)
    proj = next(layer for layer in model.architecture.layers if layer.name == "proj")
    assert proj.input == "stem_relu"
    w = {name: torch.from_numpy(array) for name, array in g.weights.items()}

    def bn(name: str, y: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(y, w[f"{name}.mean"], w[f"{name}.var"], w[f"{name}.scale"], w[f"{name}.bias"], False,
                            0.0, 1e-5)

    images = RNG.integers(0, 256, (4, 4, 8, 8), dtype=np.uint8)
    stem = F.relu(F.conv2d(torch.from_numpy(images.astype(np.float32) / 255.0), w["stem.w"], w["stem.b"], padding=1))
    main_out = F.relu(bn("down_bn1", F.conv2d(stem, w["down_conv1.w"], w["down_conv1.b"], stride=2, padding=1)))
    main_out = bn("down_bn2", F.conv2d(main_out, w["down_conv2.w"], w["down_conv2.b"], padding=1))
    shortcut = bn("proj_bn", F.conv2d(stem, w["proj.w"], w["proj.b"], stride=2))
    expected = F.relu(main_out + shortcut).mean(dim=(2, 3)) @ w["fc.w"].T
    np.testing.assert_allclose(onnx_logits(model, images), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_concatenating_branches_is_refused(tmp_path: Path) -> None:
    g = Graph()
    stem = g.conv("stem", 4, 3, 3, pad=1)
    a = g.conv("a", 4, 4, 1)
    g.node("Concat", "cat", inputs=[stem, a], axis=1)
    with pytest.raises(ImportedModelError, match=r"node 'cat' \(Concat\): unsupported operator 'Concat'"):
        load_onnx(g.save(tmp_path / "cat.onnx", outputs=4))


def test_output_size_class_count_and_input_errors(blocks: tuple[Graph, Path], tmp_path: Path) -> None:
    model = load_onnx(blocks[1])
    with pytest.raises(ImportedModelError, match=r"blocks.onnx: the model outputs 10 values per sample but the "
                                                 r"data has 100 classes"):
        check_class_count(model, 100)
    with pytest.raises(ImportedModelError, match=r"takes uint8 images of shape \(3, 8, 8\), got uint8 \(1, 8, 8\)"):
        onnx_logits(model, np.zeros((2, 1, 8, 8), np.uint8))
    with pytest.raises(ImportedModelError, match=r"takes uint8 images .* got float32"):
        onnx_logits(model, np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ImportedModelError, match=r"input_mean needs 1 or 3 values \(one per channel\), got 2"):
        onnx_logits(model, np.zeros((2, 3, 8, 8), np.uint8), input_mean=[0.1, 0.2])
    with pytest.raises(ImportedModelError, match=r"input_std must be positive"):
        onnx_logits(model, np.zeros((2, 3, 8, 8), np.uint8), input_std=0.0)
    with pytest.raises(ImportedModelError, match=r"missing.onnx: cannot read the ONNX file"):
        load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07junk that is not protobuf\xff\xff")
    with pytest.raises(ImportedModelError, match=r"junk.onnx: not an ONNX model"):
        load_onnx(tmp_path / "junk.onnx")
    g = Graph(input_shape=("N", 3, "H", 8))
    g.conv("c", 4, 3, 3)
    with pytest.raises(ImportedModelError, match=r"input 'image' must be N x C x H x W with fixed C, H, W"):
        load_onnx(g.save(tmp_path / "dynamic.onnx", outputs=4))


def test_nan_logits_from_the_model_are_refused(tmp_path: Path) -> None:
    g = Graph(input_shape=("N", 1, 2, 2))
    g.node("Flatten", "f", axis=1)
    g.node("Gemm", "fc", g.const("w", np.full((2, 4), np.inf)), transB=1)
    model = load_onnx(g.save(tmp_path / "inf.onnx", outputs=2))
    with pytest.raises(ImportedModelError, match=r"inf.onnx: output 'fc': \d+ values are NaN or inf"):
        onnx_logits(model, np.zeros((3, 1, 2, 2), np.uint8))


def test_padded_ceil_pooling_reads_as_onnxruntime_runs_it(tmp_path: Path) -> None:
    """ONNX shape inference says 4x4 here; onnxruntime (and Caffe's rule) drop the window that starts in the pad."""
    g = Graph(input_shape=("N", 1, 5, 5))
    g.node("MaxPool", "pool", kernel_shape=[2, 2], strides=[2, 2], pads=[1] * 4, ceil_mode=1)
    g.node("Flatten", "f", axis=1)
    model = load_onnx(g.save(tmp_path / "pool.onnx", outputs=9))
    assert model.architecture.layer_shapes()[0].out_h == 3 and model.architecture.output_size == 9


def test_a_shape_read_differently_from_onnxruntime_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The layer list is checked against onnxruntime's own shapes, so a misread pooling rule cannot misprice."""
    g = Graph(input_shape=("N", 1, 5, 5))
    g.node("MaxPool", "pool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    g.node("GlobalMaxPool", "gmp")
    g.node("Flatten", "f", axis=1)
    path = g.save(tmp_path / "pool.onnx", outputs=1)
    assert load_onnx(path).architecture.layer_shapes()[0].out_h == 3
    monkeypatch.setattr("nets.models._arch.pool_out", lambda size, kernel, stride, pad, ceil=True: size // stride)
    with pytest.raises(ImportedModelError, match=r"pool.onnx: layer 'pool' reads as \(1, 2, 2\) but onnxruntime "
                                                 r"computes \(1, 3, 3\) for 'pool'"):
        load_onnx(path)


def test_without_the_extra_the_error_says_what_to_install(blocks: tuple[Graph, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_onnx(blocks[1])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportedModelError, match=r"ONNX models need the 'onnx' extra: pip install "
                                                 r"'adaptive-dse\[onnx\]'"):
        onnx_logits(model, np.zeros((1, 3, 8, 8), np.uint8))
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportedModelError, match=r"ONNX models need the 'onnx' extra"):
        load_onnx(blocks[1])
