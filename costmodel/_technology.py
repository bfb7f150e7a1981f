"""Technology numbers (MAC, SRAM, DRAM energies) loaded from TOML into a frozen, hashable dataclass."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from costmodel._errors import CostModelError

DEFAULT_TECHNOLOGY_PATH = Path(__file__).with_name("technology.toml")

_ANY = "*"  # schema wildcard: a user-chosen preset name
_SCHEMA: dict[str, Any] = {
    "version": int,
    "mac": {
        "preset": str,
        "pool_op_pj_per_bit": float,
        "presets": {_ANY: {"bits": list, "mac_pj": list}},
    },
    "sram": {
        "preset": str,
        "access_bits": int,
        "presets": {_ANY: {"size_bytes": list, "read_pj": list, "write_pj": list, "leakage_mw": list}},
    },
    "dram": {
        "preset": str,
        "presets": {
            _ANY: {
                "energy_pj_per_bit": float,
                "burst_bytes": int,
                "background_mw": float,
                "bandwidth_bytes_per_s": float,
            }
        },
    },
}


@dataclass(frozen=True)
class Technology:
    """Resolved technology: the selected MAC, SRAM and DRAM presets of a technology file."""

    mac_preset: str
    mac_bits: tuple[int, ...]
    mac_pj: tuple[float, ...]
    pool_op_pj_per_bit: float
    sram_preset: str
    sram_access_bits: int
    sram_size_bytes: tuple[float, ...]
    sram_read_pj: tuple[float, ...]
    sram_write_pj: tuple[float, ...]
    sram_leakage_mw: tuple[float, ...]
    dram_preset: str
    dram_energy_pj_per_bit: float
    dram_burst_bytes: int
    dram_background_mw: float
    dram_bandwidth_bytes_per_s: float
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        """Cache the hash: it is computed on every memoised cost lookup."""
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare)))

    def __hash__(self) -> int:
        """The cached hash of the compared fields."""
        return self._hash  # type: ignore[attr-defined]

    def mac_energy_pj(self, bits: int) -> float:
        """Energy of one bits-wide multiply-accumulate, log-log interpolated between the preset's anchors."""
        return _mac_energy_pj(self, bits)

    def pool_op_energy_pj(self, bits: int) -> float:
        """Energy of one bits-wide pooling comparison or addition."""
        return self.pool_op_pj_per_bit * bits

    def sram_pj_per_bit(self, size_bytes: int) -> tuple[float, float, float]:
        """(read pJ/bit, write pJ/bit, leakage mW) of an SRAM buffer of size_bytes."""
        return _sram_pj_per_bit(self, size_bytes)


@cache
def _mac_energy_pj(tech: Technology, bits: int) -> float:
    """Memoised body of Technology.mac_energy_pj."""
    lo, hi = tech.mac_bits[0], tech.mac_bits[-1]
    if not lo <= bits <= hi:
        raise CostModelError(
            f"technology file {tech.source}: [mac] preset '{tech.mac_preset}' has no MAC energy for {bits}-bit "
            f"(its anchors cover {lo}..{hi} bits)"
        )
    return float(np.exp(np.interp(math.log(bits), np.log(tech.mac_bits), np.log(tech.mac_pj))))


def _loglog_extrapolated(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Log-log interpolation of y(x), extended beyond the table along its end segments."""
    lx, lxs, lys = math.log(x), np.log(xs), np.log(ys)
    if len(xs) == 1:
        return ys[0]
    if lx < lxs[0]:
        i = 0
    elif lx > lxs[-1]:
        i = len(xs) - 2
    else:
        return float(np.exp(np.interp(lx, lxs, lys)))
    slope = (lys[i + 1] - lys[i]) / (lxs[i + 1] - lxs[i])
    return float(np.exp(lys[i] + slope * (lx - lxs[i])))


@cache
def _sram_pj_per_bit(tech: Technology, size_bytes: int) -> tuple[float, float, float]:
    """Memoised body of Technology.sram_pj_per_bit."""
    xs = tech.sram_size_bytes
    return (
        _loglog_extrapolated(size_bytes, xs, tech.sram_read_pj) / tech.sram_access_bits,
        _loglog_extrapolated(size_bytes, xs, tech.sram_write_pj) / tech.sram_access_bits,
        _loglog_extrapolated(size_bytes, xs, tech.sram_leakage_mw),
    )


def load_technology(path: str | Path | None = None) -> Technology:
    """Load the shipped technology file, with the TOML file at `path` (a subset of its keys) merged over it."""
    data = _read_toml(DEFAULT_TECHNOLOGY_PATH)
    source = str(DEFAULT_TECHNOLOGY_PATH)
    if path is not None:
        source = str(path)
        data = _merged(data, _read_toml(Path(path)))
    return _build(data, source)


@cache
def default_technology() -> Technology:
    """The shipped technology, parsed once."""
    return load_technology()


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file, turning I/O and syntax errors into CostModelError."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CostModelError(f"technology file {path}: not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CostModelError(f"technology file {path}: cannot read TOML: {e}") from None


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of tables; arrays and scalars of `override` replace those of `base`."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _where(source: str, keys: list[str]) -> str:
    """Error prefix naming the file and the key path, e.g. "technology file F: [sram] access_bits"."""
    table = f"[{'.'.join(keys[:-1])}] " if len(keys) > 1 else ""
    return f"technology file {source}: {table}{keys[-1]}"


def _check_keys(data: dict[str, Any], schema: dict[str, Any], source: str, at: list[str]) -> None:
    """Reject unknown keys and tables where values belong (and vice versa)."""
    for key, value in data.items():
        sub = schema.get(key, schema.get(_ANY))
        if sub is None:
            allowed = ", ".join(k for k in schema if k != _ANY)
            raise CostModelError(f"{_where(source, at + [key])} is not a known key (allowed: {allowed})")
        if isinstance(sub, dict) != isinstance(value, dict):
            kind = "a table" if isinstance(sub, dict) else "a value"
            raise CostModelError(f"{_where(source, at + [key])} must be {kind}, got {value!r}")
        if isinstance(sub, dict):
            _check_keys(value, sub, source, at + [key])


def _value(table: dict[str, Any], kind: type, source: str, at: list[str]) -> Any:
    """A required scalar of the given kind (int accepted for float), or a CostModelError."""
    key = at[-1]
    if key not in table:
        raise CostModelError(f"{_where(source, at)} is missing")
    value = table[key]
    ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
    if not ok or isinstance(value, bool):
        raise CostModelError(f"{_where(source, at)} must be {kind.__name__}, got {value!r}")
    return value


def _positive(table: dict[str, Any], kind: type, source: str, at: list[str], allow_zero: bool = False) -> Any:
    """A required number that must be > 0 (or >= 0 with allow_zero)."""
    value = _value(table, kind, source, at)
    if not (value >= 0 if allow_zero else value > 0) or (kind is float and not math.isfinite(value)):
        rule = "non-negative" if allow_zero else "positive"
        raise CostModelError(f"{_where(source, at)} must be {rule}, got {value}")
    return value


def _curve(table: dict[str, Any], keys: tuple[str, ...], source: str, at: list[str]) -> tuple[tuple[float, ...], ...]:
    """Anchor arrays of one preset: equal non-zero lengths, positive values, strictly increasing first array."""
    arrays = []
    for key in keys:
        values = _value(table, list, source, at + [key])
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
                raise CostModelError(f"{_where(source, at + [key])} must hold positive numbers, got {v!r}")
        arrays.append(tuple(values))
    if not arrays[0] or any(len(a) != len(arrays[0]) for a in arrays):
        lengths = ", ".join(f"{k}={len(a)}" for k, a in zip(keys, arrays))
        raise CostModelError(
            f"technology file {source}: [{'.'.join(at)}] arrays must be non-empty and of equal length, got {lengths}"
        )
    if any(b <= a for a, b in zip(arrays[0], arrays[0][1:])):
        raise CostModelError(f"{_where(source, at + [keys[0]])} must be strictly increasing, got {list(arrays[0])}")
    return tuple(arrays)


def _mac_preset(table: dict[str, Any], source: str, at: list[str]) -> dict[str, Any]:
    """Technology fields of one [mac.presets.*] table."""
    bits, mac_pj = _curve(table, ("bits", "mac_pj"), source, at)
    if any(not isinstance(b, int) for b in bits):
        raise CostModelError(f"{_where(source, at + ['bits'])} must hold integers, got {list(bits)}")
    return {"mac_bits": bits, "mac_pj": mac_pj}


def _sram_preset(table: dict[str, Any], source: str, at: list[str]) -> dict[str, Any]:
    """Technology fields of one [sram.presets.*] table."""
    sizes, read, write, leak = _curve(table, ("size_bytes", "read_pj", "write_pj", "leakage_mw"), source, at)
    return {"sram_size_bytes": sizes, "sram_read_pj": read, "sram_write_pj": write, "sram_leakage_mw": leak}


def _dram_preset(table: dict[str, Any], source: str, at: list[str]) -> dict[str, Any]:
    """Technology fields of one [dram.presets.*] table."""
    return {
        "dram_energy_pj_per_bit": _positive(table, float, source, at + ["energy_pj_per_bit"]),
        "dram_burst_bytes": _positive(table, int, source, at + ["burst_bytes"]),
        "dram_background_mw": _positive(table, float, source, at + ["background_mw"], allow_zero=True),
        "dram_bandwidth_bytes_per_s": _positive(table, float, source, at + ["bandwidth_bytes_per_s"]),
    }


_PRESET_PARSERS = {"mac": _mac_preset, "sram": _sram_preset, "dram": _dram_preset}


def _build(data: dict[str, Any], source: str) -> Technology:
    """Validate every preset of the merged file, then resolve the selected ones."""
    _check_keys(data, _SCHEMA, source, [])
    if _value(data, int, source, ["version"]) != 1:
        raise CostModelError(f"technology file {source}: version must be 1, got {data['version']}")
    resolved: dict[str, Any] = {}
    for section, parse in _PRESET_PARSERS.items():
        tables = data[section].get("presets", {})
        presets = {name: parse(table, source, [section, "presets", name]) for name, table in tables.items()}
        name = _value(data[section], str, source, [section, "preset"])
        if name not in presets:
            known = ", ".join(presets)
            raise CostModelError(f"{_where(source, [section, 'preset'])} names no preset: got '{name}', known: {known}")
        resolved[f"{section}_preset"] = name
        resolved.update(presets[name])
    return Technology(
        **resolved,
        pool_op_pj_per_bit=_positive(data["mac"], float, source, ["mac", "pool_op_pj_per_bit"], allow_zero=True),
        sram_access_bits=_positive(data["sram"], int, source, ["sram", "access_bits"]),
        source=source,
    )
