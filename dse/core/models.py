"""[models.NAME] spec tables: networks a study declares itself, read once when the spec loads.

Keys: `onnx` (a graph: layer list, and scores from onnxruntime unless `logits` is given), `logits` (an .npz or a
directory of .npy/.parquet with calib_logits and test_logits), `layers` (a layer list trained like a zoo net, with
`input_shape`), `input_mean` / `input_std` (an ONNX model's input scaling), `energy_j` / `latency_s` (a measured
price per inference that replaces the cost model). Relative paths are relative to the working directory, like
`data.path`.
"""

from __future__ import annotations

from typing import Any, Callable

import nets
from dse.core.errors import SpecError, check

KEYS = ("onnx", "logits", "layers", "input_shape", "input_mean", "input_std", "energy_j", "latency_s")


def parse_models(raw: Any, source: str) -> dict[str, nets.Model]:
    """Every [models.NAME] table, its files read and checked; names must not shadow the zoo."""
    check(isinstance(raw, dict), f"{source}: models", "must hold [models.NAME] tables")
    zoo = set(nets.architecture_names())
    models = {}
    for name, table in raw.items():
        where = f"{source}: models.{name}"
        check(all(c.isalnum() or c in "-_." for c in name), where, "a model name is a word of letters, digits, "
              "'-', '_' or '.'")
        check(name.lower() not in zoo, where, f"'{name}' is the name of a shipped network; choose another")
        check(isinstance(table, dict), where, "must be a table")
        models[name] = _model(name, table, where)
    return models


def _path(table: dict, key: str, where: str) -> str | None:
    """A non-empty path string, or None when the key is absent."""
    value = table.get(key)
    check(value is None or (isinstance(value, str) and bool(value)), f"{where}.{key}",
          f"must be a file path, got {value!r}")
    return value


def _positive(table: dict, key: str, where: str) -> float | None:
    """A finite number > 0, or None when the key is absent."""
    value = table.get(key)
    if value is None:
        return None
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf"),
          f"{where}.{key}", f"must be a number > 0, got {value!r}")
    return float(value)


def _numbers(table: dict, key: str, where: str) -> tuple[float, ...] | None:
    """A number or a list of numbers (one per input channel), or None when the key is absent."""
    value = table.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    check(bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values),
          f"{where}.{key}", f"must be a number or a list of numbers (one per input channel), got {value!r}")
    return tuple(float(v) for v in values)


def _model(name: str, table: dict, where: str) -> nets.Model:
    """One model: keys checked, their combination checked, then its files read."""
    unknown = sorted(set(table) - set(KEYS))
    check(not unknown, f"{where}.{unknown[0] if unknown else ''}", f"unknown key (known: {', '.join(KEYS)})")
    onnx, logits = _path(table, "onnx", where), _path(table, "logits", where)
    energy, latency = _positive(table, "energy_j", where), _positive(table, "latency_s", where)
    mean, std = _numbers(table, "input_mean", where), _numbers(table, "input_std", where)
    layers = "layers" in table
    check(bool(onnx) or bool(logits) or layers, where, "needs one of onnx, logits or layers")
    check(not (onnx and layers), f"{where}.layers", "give the layer list once: from onnx or from layers, not both")
    check(not logits or bool(onnx) or layers or energy is not None, f"{where}.logits",
          "logits need a price: onnx = \"model.onnx\" (its layer list), layers = [...] or energy_j = ...")
    check(latency is None or energy is not None, f"{where}.latency_s",
          "a measured price needs energy_j (latency_s alone would mix measured and modelled figures)")
    for key, value in (("input_mean", mean), ("input_std", std)):
        check(value is None or (bool(onnx) and not logits), f"{where}.{key}",
              "only an ONNX model run by onnxruntime (onnx without logits) takes an input scaling")
    check(std is None or all(v > 0 for v in std), f"{where}.input_std", f"must be > 0, got {list(std or ())}")
    check(layers == ("input_shape" in table), f"{where}.input_shape",
          "a layers list needs input_shape = [channels, height, width]" if layers
          else "only a layers list takes input_shape (an ONNX graph and logits bring their own)")
    architecture = None
    if layers:
        shape = table["input_shape"]
        check(isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                   and v >= 1 for v in shape),
              f"{where}.input_shape", f"must be [channels, height, width] of integers >= 1, got {shape!r}")
        architecture = nets.architecture_from_table(name, tuple(shape), table["layers"], f"{where}.layers")
    model = _read(f"{where}.onnx", nets.load_onnx, onnx, name) if onnx else None
    if model is not None:
        architecture = model.architecture
        channels = architecture.input_shape[0]
        for key, value in (("input_mean", mean), ("input_std", std)):
            check(value is None or len(value) in (1, channels), f"{where}.{key}",
                  f"needs 1 or {channels} values (the model takes {channels} input channels), got {len(value or ())}")
    read = _read(f"{where}.logits", nets.load_logits, logits) if logits else None
    if read is not None and architecture is not None:
        _read(f"{where}.logits", nets.check_output_size, architecture, read.num_classes, f"{logits} vs the layer list")
    return nets.Model(name, architecture, model, read, mean, std, energy, latency)


def _read(where: str, function: Callable[..., Any], *args: Any) -> Any:
    """Call a nets reader; its one-line error (naming the file and array or node) gets the spec key in front."""
    try:
        return function(*args)
    except nets.UserError as exc:
        raise SpecError(f"{where}: {exc}") from None
