"""ONNX models: the layer list read from the graph (for pricing) and logits from onnxruntime (for scoring).

Nodes are read in graph order as a chain: a node reads the previous layer's output or, starting a branch (a
projection shortcut), an earlier one; two-operand Adds are residual joins. Concat, Mul and the like are refused.
`onnx` and `onnxruntime` are the optional `onnx` extra, imported when a model is read or run.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nets.models._arch import (FC, INPUT, Add, Architecture, ArchitectureError, BatchNorm, Conv, Flatten, GlobalPool,
                               Layer)
from nets.models._arch import Pool, ReLU, Traced
from nets.models._imported import ImportedModelError, check_logits

_ACTIVATIONS = {"Relu", "Clip"}  # priced as free, like ReLU; onnxruntime computes their real values
SUPPORTED = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Clip", "MaxPool", "AveragePool",
             "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Constant")
_EXTRA = "ONNX models need the 'onnx' extra: pip install 'adaptive-dse[onnx]'"


@dataclass(frozen=True)
class OnnxModel:
    """A parsed ONNX classifier: its architecture, the SHA-256 of the file and the names onnxruntime needs."""

    path: str
    digest: str
    architecture: Architecture
    input_name: str
    output_name: str
    batch: int | None  # the graph's fixed batch size, None when dynamic
    content: bytes = field(repr=False)
    tensors: tuple[str, ...] = ()  # the output tensor of each layer of `architecture` (a folded bias add's included)

    def layer_of(self, name: str) -> str:
        """The name of the layer whose output is tensor `name`, or `name` itself (a node name)."""
        return self.architecture.layers[self.tensors.index(name)].name if name in self.tensors else name


def _import(module: str) -> Any:
    """Import an optional dependency, or fail in one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportedModelError(_EXTRA) from None


def load_onnx(path: str | Path, name: str | None = None) -> OnnxModel:
    """Read an ONNX file once: hash its bytes and parse its graph into an Architecture named `name` (default: stem)."""
    onnx = _import("onnx")
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ImportedModelError(f"{path}: cannot read the ONNX file ({exc.strerror})") from None
    try:
        model = onnx.load_model_from_string(content)
    except Exception as exc:  # the protobuf decoder raises its own DecodeError
        raise ImportedModelError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from None
    reader = _GraphReader(str(path), onnx)
    arch, input_name, output_name, batch = reader.read(model, name or path.stem)
    return OnnxModel(str(path), hashlib.sha256(content).hexdigest(), arch, input_name, output_name, batch, content,
                     tuple(reader.outputs))


def check_class_count(model: OnnxModel, num_classes: int) -> None:
    """Fail in one line unless the model outputs exactly one value per class."""
    check_output_size(model.architecture, num_classes, model.path)


def check_output_size(architecture: Architecture, num_classes: int, where: str) -> None:
    """Fail in one line (naming `where`) unless the network outputs exactly one value per class."""
    if architecture.output_size != num_classes:
        raise ImportedModelError(f"{where}: the model outputs {architecture.output_size} values per sample but the "
                                 f"data has {num_classes} classes")


def onnx_logits(model: OnnxModel, images: np.ndarray, input_mean: float | Sequence[float] | None = None,
                input_std: float | Sequence[float] | None = None, batch_size: int = 256) -> np.ndarray:
    """Logits (n, outputs) float64 of uint8 NCHW `images`, fed as float32 in [0, 1], then (x - mean) / std if given."""
    (logits,) = _run(model, model.content, [model.output_name], images, input_mean, input_std, batch_size)
    logits = logits.reshape(len(logits), -1)
    if logits.shape[1] != model.architecture.output_size:
        raise ImportedModelError(f"{model.path}: onnxruntime returned {logits.shape[1]} values per sample, the graph "
                                 f"reads as {model.architecture.output_size}")
    return check_logits(logits.astype(np.float64), f"{model.path}: output '{model.output_name}'")


def onnx_activations(model: OnnxModel, layers: Sequence[str], images: np.ndarray,
                     input_mean: float | Sequence[float] | None = None,
                     input_std: float | Sequence[float] | None = None, batch_size: int = 256) -> list[np.ndarray]:
    """float32 outputs (n, C, H, W) of the named layers on `images` (fed as `onnx_logits` feeds them), read by
    onnxruntime with those layers' tensors exposed as extra graph outputs, on one thread (deterministic)."""
    onnx = _import("onnx")
    names = [layer.name for layer in model.architecture.layers]
    tensors = [model.tensors[names.index(layer)] for layer in layers]
    probe = onnx.load_model_from_string(model.content)
    declared = {output.name for output in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in dict.fromkeys(tensors) if name not in declared)
    return _run(model, probe.SerializeToString(), tensors, images, input_mean, input_std, batch_size, threads=1)


def _run(model: OnnxModel, content: bytes, outputs: list[str], images: np.ndarray,
         input_mean: float | Sequence[float] | None, input_std: float | Sequence[float] | None, batch_size: int,
         threads: int = 0) -> list[np.ndarray]:
    """The named output tensors of serialised `content` (the model, maybe with more outputs) on `images`, batched."""
    shape = model.architecture.input_shape
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != shape:
        raise ImportedModelError(f"{model.path}: the model takes uint8 images of shape {shape}, got "
                                 f"{images.dtype} {tuple(images.shape[1:])}")
    mean = _per_channel(model, "input_mean", 0.0 if input_mean is None else input_mean)
    std = _per_channel(model, "input_std", 1.0 if input_std is None else input_std)
    if np.any(std <= 0):
        raise ImportedModelError(f"{model.path}: input_std must be positive, got {std.ravel().tolist()}")
    session = _session(content, model.path, threads)
    step = model.batch or batch_size
    results: list[np.ndarray] = []  # allocated whole on the first batch (activations of many images are large)
    for start in range(0, len(images), step):
        batch = (images[start:start + step].astype(np.float32) / np.float32(255.0) - mean) / std
        if model.batch and len(batch) < model.batch:  # a fixed batch size: pad the last batch, keep its rows
            batch = np.concatenate([batch, np.zeros((model.batch - len(batch), *shape), np.float32)])
        ran = session.run(outputs, {model.input_name: batch})
        results = results or [np.empty((len(images), *result.shape[1:]), result.dtype) for result in ran]
        for kept, result in zip(results, ran):
            kept[start:start + step] = result[:min(step, len(images) - start)]
    return results


def _session(content: bytes, path: str, threads: int = 0) -> Any:
    """An onnxruntime CPU session for a serialised model (`threads` intra-op threads, 0: onnxruntime's choice), or a
    one-line error."""
    ort = _import("onnxruntime")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: shape-merge warnings would go to stderr
        options.intra_op_num_threads = threads
        return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ImportedModelError(f"{path}: onnxruntime cannot load the model ({str(exc).splitlines()[0]})") from None


def _per_channel(model: OnnxModel, key: str, value: float | Sequence[float]) -> np.ndarray:
    """A scalar or one value per input channel as a float32 (C, 1, 1) array."""
    channels = model.architecture.input_shape[0]
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if len(array) not in (1, channels):
        raise ImportedModelError(f"{model.path}: {key} needs 1 or {channels} values (one per channel), "
                                 f"got {len(array)}")
    return np.broadcast_to(array, (channels,)).reshape(channels, 1, 1)


class _GraphReader:
    """Walks an ONNX graph in node order, turning each node into a layer of a chain."""

    def __init__(self, path: str, onnx: Any) -> None:
        self.path, self.onnx = path, onnx
        self.constants: dict[str, np.ndarray] = {}
        self.layers: list[Layer] = []
        self.weights: list[tuple[int, str, tuple[int, ...]]] = []  # (layer index, node, weight shape (out, in, ...))
        self.reshapes: list[tuple[int, str, int]] = []  # (layer index, node, target features or -1)
        self.producer: dict[str, int] = {}  # tensor -> index of the layer whose output it is (-1: the input)
        self.outputs: list[str] = []  # each layer's output tensor
        self.names: set[str] = {INPUT}

    def fail(self, node: Any, problem: str) -> ImportedModelError:
        """A one-line error naming the file, the node and its operator."""
        return ImportedModelError(f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type}): {problem}")

    def read(self, model: Any, name: str) -> tuple[Architecture, str, str, int | None]:
        """The architecture, input and output names and fixed batch size (or None) of `model`'s graph."""
        graph, numpy_helper = model.graph, self.onnx.numpy_helper
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        inputs = [tensor for tensor in graph.input if tensor.name not in self.constants]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ImportedModelError(f"{self.path}: needs one image input and one output, found "
                                     f"{len(inputs)} inputs and {len(graph.output)} outputs")
        input_shape, batch = self._input_shape(inputs[0])
        current = inputs[0].name
        self.producer[current] = -1
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                continue
            current = self._node(node, current)
        if graph.output[0].name != current:
            raise ImportedModelError(f"{self.path}: the output '{graph.output[0].name}' is not the last layer's "
                                     f"output '{current}'")
        arch = Architecture(name, input_shape, tuple(self.layers))
        try:
            shapes = {step.index: step for step in arch.trace(1.0, self.path)}
        except ArchitectureError as exc:
            raise ImportedModelError(str(exc)) from None
        for index, node_name, weight in self.weights:
            step = shapes[index]
            features = int(np.prod(step.in_shape))
            if isinstance(step.layer, FC) and not step.flat_in:
                raise ImportedModelError(f"{self.path}: node '{node_name}': a MatMul/Gemm must read a flattened "
                                         f"tensor, got {'x'.join(map(str, step.in_shape))}")
            expected = ((step.out_shape[0], features) if isinstance(step.layer, FC)
                        else (step.out_shape[0], step.in_shape[0] // step.layer.groups))
            if tuple(weight[:2]) != expected:
                raise ImportedModelError(f"{self.path}: node '{node_name}': weight shape {tuple(weight)} does not fit "
                                         f"its {'x'.join(map(str, step.in_shape))} input (expected {expected} first)")
        for index, node_name, target in self.reshapes:
            features = int(np.prod(shapes[index].in_shape))
            if target not in (-1, features):
                raise ImportedModelError(f"{self.path}: node '{node_name}': reshape to {target} features, the input "
                                         f"has {features}; only a flatten is supported")
        self._check_shapes_run(model, list(shapes.values()), inputs[0].name, batch)
        return arch, inputs[0].name, graph.output[0].name, batch

    def _check_shapes_run(self, model: Any, steps: list[Traced], input_name: str, batch: int | None) -> None:
        """Every layer's traced output shape must equal the one onnxruntime computes on a blank batch (a pooling
        rule, stride or pad read wrongly would otherwise misprice the net without a word)."""
        probe = self.onnx.ModelProto()
        probe.CopyFrom(model)
        declared = {output.name for output in probe.graph.output}
        probe.graph.output.extend(self.onnx.helper.make_tensor_value_info(name, self.onnx.TensorProto.FLOAT, None)
                                  for name in self.outputs if name not in declared)
        session = _session(probe.SerializeToString(), self.path)
        blank = np.zeros((batch or 1, *steps[0].in_shape), np.float32)
        for step, output, result in zip(steps, self.outputs, session.run(self.outputs, {input_name: blank})):
            traced = (step.out_shape[0],) if step.flat_out else step.out_shape
            if tuple(result.shape[1:]) != traced:
                raise ImportedModelError(f"{self.path}: layer '{step.layer.name}' reads as {traced} but onnxruntime "
                                         f"computes {tuple(result.shape[1:])} for '{output}'")

    def _input_shape(self, tensor: Any) -> tuple[tuple[int, int, int], int | None]:
        """(C, H, W) of a float NCHW input with fixed C, H, W, and its batch size if fixed."""
        if tensor.type.tensor_type.elem_type != self.onnx.TensorProto.FLOAT:
            raise ImportedModelError(f"{self.path}: input '{tensor.name}' must be float32")
        dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.type.tensor_type.shape.dim]
        if len(dims) != 4 or None in dims[1:]:
            raise ImportedModelError(f"{self.path}: input '{tensor.name}' must be N x C x H x W with fixed C, H, W, "
                                     f"got {['?' if d is None else d for d in dims]}")
        return (dims[1], dims[2], dims[3]), dims[0] or None

    def _attributes(self, node: Any) -> dict[str, Any]:
        """The node's attributes as Python values."""
        return {attr.name: self.onnx.helper.get_attribute_value(attr) for attr in node.attribute}

    def _add_layer(self, node: Any, layer: Layer, output: str, reads: str = "") -> str:
        """Append `layer` (named after the node, reading layer `reads` if not the previous one) and record `output`
        as its tensor."""
        name = node.name or node.output[0]
        while name in self.names:
            name += "'"
        self.names.add(name)
        self.layers.append(replace(layer, name=name, input=reads))
        self.producer[output] = len(self.layers) - 1
        self.outputs.append(output)
        return output

    def _layer_name(self, tensor: str) -> str:
        """The name of the layer whose output `tensor` is ("input" for the graph input)."""
        return INPUT if self.producer[tensor] < 0 else self.layers[self.producer[tensor]].name

    def _node(self, node: Any, current: str) -> str:
        """Turn one node into a layer (or fold it into the previous one); return the running tensor's name."""
        op, attrs = node.op_type, self._attributes(node)
        if op not in SUPPORTED:
            raise self.fail(node, f"unsupported operator '{op}'; supported: {', '.join(SUPPORTED)}")
        data = [name for name in node.input if name and name not in self.constants]
        output = node.output[0]
        if op == "Add" and len(data) == 2:
            if current not in data:
                raise self.fail(node, "neither operand is the previous layer's output")
            other = data[1] if data[0] == current else data[0]
            if other not in self.producer:
                raise self.fail(node, f"operand '{other}' is not an earlier layer's output")
            return self._add_layer(node, Add(self._layer_name(other)), output)
        if len(data) != 1 or data[0] not in self.producer:
            raise self.fail(node, f"reads {data}: a node must read one earlier layer's output (an Add may read two)")
        reads = "" if data[0] == current else self._layer_name(data[0])
        last = len(self.layers) - 1
        previous = self.layers[last] if self.layers and not reads and self.producer[current] == last else None
        if op == "Conv":
            return self._add_layer(node, self._conv(node, attrs), output, reads)
        if op in ("Gemm", "MatMul"):
            return self._add_layer(node, self._fc(node, attrs), output, reads)
        if op == "Add":  # a constant operand: the bias of the MatMul just before
            if not isinstance(previous, (FC, Conv)):
                raise self.fail(node, "adding a constant is supported only as the bias of a MatMul/Gemm/Conv")
            self.producer[output] = self.producer[current]
            self.outputs[self.producer[current]] = output  # the layer's output is the biased tensor
            return output
        if op == "BatchNormalization":
            if not isinstance(previous, (Conv, FC)) or attrs.get("training_mode", 0):
                raise self.fail(node, "batch norm must follow a Conv, Gemm or MatMul directly (it is folded into it)"
                                      " and be in inference mode")
            return self._add_layer(node, BatchNorm(), output)
        if op in _ACTIVATIONS:
            return self._add_layer(node, ReLU(), output, reads)
        if op in ("MaxPool", "AveragePool"):
            return self._add_layer(node, self._pool(node, attrs), output, reads)
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            return self._add_layer(node, GlobalPool("max" if op == "GlobalMaxPool" else "avg"), output, reads)
        if op == "Flatten":
            if attrs.get("axis", 1) != 1:
                raise self.fail(node, f"only axis=1 is supported, got {attrs['axis']}")
            return self._add_layer(node, Flatten(), output, reads)
        return self._add_layer(node, self._reshape(node), output, reads)  # Reshape: the last one supported

    def _conv(self, node: Any, attrs: dict[str, Any]) -> Conv:
        """A square, symmetric-padded, undilated convolution."""
        weight = self.constants.get(node.input[1])
        if weight is None or weight.ndim != 4:
            raise self.fail(node, "the weight must be a constant 4-D tensor")
        kernel = list(attrs.get("kernel_shape", weight.shape[2:]))
        strides, pads = list(attrs.get("strides", [1, 1])), list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.fail(node, "auto_pad is not supported (give explicit pads)")
        if list(attrs.get("dilations", [1, 1])) != [1, 1]:
            raise self.fail(node, f"dilated convolution is not supported ({attrs['dilations']})")
        if kernel[0] != kernel[1] or strides[0] != strides[1] or len(set(pads)) != 1:
            raise self.fail(node, f"only square kernels, equal strides and equal pads are supported "
                                  f"(kernel {kernel}, strides {strides}, pads {pads})")
        self.weights.append((len(self.layers), node.name or node.output[0], weight.shape))
        return Conv(int(weight.shape[0]), int(kernel[0]), int(strides[0]), int(pads[0]), int(attrs.get("group", 1)))

    def _fc(self, node: Any, attrs: dict[str, Any]) -> FC:
        """A Gemm (weight as B, transB honoured) or MatMul by a constant (in, out) matrix."""
        weight = self.constants.get(node.input[1])
        if weight is None or weight.ndim != 2:
            raise self.fail(node, "the weight must be a constant 2-D matrix (the second operand)")
        if attrs.get("transA", 0):
            raise self.fail(node, "transA=1 is not supported")
        out_in = weight.shape if node.op_type == "Gemm" and attrs.get("transB", 0) else weight.shape[::-1]
        self.weights.append((len(self.layers), node.name or node.output[0], tuple(out_in)))
        return FC(int(out_in[0]))

    def _pool(self, node: Any, attrs: dict[str, Any]) -> Pool:
        """A square max or average pooling window with equal strides and pads."""
        kernel = list(attrs.get("kernel_shape", []))
        strides, pads = list(attrs.get("strides", [1, 1])), list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.fail(node, "auto_pad is not supported (give explicit pads)")
        if list(attrs.get("dilations", [1, 1])) != [1, 1]:
            raise self.fail(node, f"dilated pooling is not supported ({attrs['dilations']})")
        if len(kernel) != 2 or kernel[0] != kernel[1] or strides[0] != strides[1] or len(set(pads)) != 1:
            raise self.fail(node, f"only square 2-D windows, equal strides and equal pads are supported "
                                  f"(kernel {kernel}, strides {strides}, pads {pads})")
        mode = "max" if node.op_type == "MaxPool" else "avg"
        return Pool(int(kernel[0]), int(strides[0]), int(pads[0]), mode, bool(attrs.get("ceil_mode", 0)))

    def _reshape(self, node: Any) -> Flatten:
        """A Reshape to (batch, features): a flatten; anything else is refused."""
        target = self.constants.get(node.input[1])
        if target is None or target.ndim != 1 or len(target) != 2 or target[0] not in (0, -1) or target[1] == 0:
            raise self.fail(node, f"only a reshape to (batch, features) is supported, got "
                                  f"{None if target is None else target.tolist()}")
        self.reshapes.append((len(self.layers), node.name or node.output[0], int(target[1])))
        return Flatten()
