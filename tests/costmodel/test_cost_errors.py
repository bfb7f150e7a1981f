"""Bad technology files, accelerators, layers and arguments give one-line CostModelErrors naming field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from costmodel import (
    Accelerator,
    CostModelError,
    LayerShape,
    cascade_cost,
    increment_cost,
    load_technology,
    network_cost,
    parse_bytes,
)

CONV = LayerShape("conv1", "conv", 1, 28, 28, 20, 24, 24, 5, 5)


def _tech_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tech.toml"
    path.write_text(text)
    return path


def test_default_technology_loads_and_cites_sources() -> None:
    tech = load_technology()
    assert (tech.mac_preset, tech.sram_preset, tech.dram_preset) == ("horowitz45", "cacti65_hp", "ddr3_streaming")
    assert tech.mac_energy_pj(8) == pytest.approx(0.23)
    assert tech.mac_energy_pj(8) < tech.mac_energy_pj(12) < tech.mac_energy_pj(16)  # interpolated between anchors
    assert hash(tech) == hash(load_technology())


def test_user_file_overrides_a_subset(tmp_path: Path) -> None:
    path = _tech_file(tmp_path, '[sram]\npreset = "cacti65_lowleak"\n[dram.presets.ddr3_streaming]\nenergy_pj_per_bit = 30\n')
    tech = load_technology(path)
    assert tech.sram_preset == "cacti65_lowleak"
    assert tech.dram_energy_pj_per_bit == 30
    assert tech.mac_pj == load_technology().mac_pj


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[sram.presets.cacti65_hp]\nread_pj = [-1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n",
         r"\[sram\.presets\.cacti65_hp\] read_pj must hold positive numbers, got -1"),
        ("[sram.presets.cacti65_hp]\nsize_bytes = [1024, 512]\nread_pj = [1, 2]\nwrite_pj = [1, 2]\nleakage_mw = [1, 2]\n",
         r"size_bytes must be strictly increasing, got \[1024, 512\]"),
        ("[sram.presets.cacti65_hp]\nread_pj = [1, 2]\n", r"arrays must be non-empty and of equal length"),
        ("[dram.presets.ddr3_streaming]\nbandwidth_bytes_per_s = 0\n", r"bandwidth_bytes_per_s must be positive, got 0"),
        ("[dram.presets.ddr3_streaming]\nburst_bytes = 1.5\n", r"burst_bytes must be int, got 1.5"),
        ("[sram]\nraed_pj = 3\n", r"\[sram\] raed_pj is not a known key"),
        ("colour = 3\n", r"colour is not a known key"),
        ('[mac]\npreset = "nope"\n', r"\[mac\] preset names no preset: got 'nope'"),
        ("[mac.presets.mine]\nbits = [8]\n", r"\[mac\.presets\.mine\] mac_pj is missing"),
        ("version = 2\n", r"version must be 1, got 2"),
        ("[sram\n", r"cannot read TOML"),
    ],
)
def test_bad_technology_file(tmp_path: Path, text: str, match: str) -> None:
    path = _tech_file(tmp_path, text)
    with pytest.raises(CostModelError, match=match) as info:
        load_technology(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_technology_file(tmp_path: Path) -> None:
    with pytest.raises(CostModelError, match="not found"):
        load_technology(tmp_path / "absent.toml")


def test_bit_width_without_energy_entry(tmp_path: Path) -> None:
    envision = load_technology(_tech_file(tmp_path, '[mac]\npreset = "envision"\n'))
    assert network_cost([CONV], Accelerator(bits=8), envision).mac_pj > 0
    with pytest.raises(CostModelError, match=r"preset 'envision' has no MAC energy for 32-bit \(its anchors cover 4\.\.16"):
        network_cost([CONV], Accelerator(bits=32), envision)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sram_bytes": -16}, r"sram_bytes must be a positive integer, got -16"),
        ({"tm": 0}, r"tm must be a positive integer, got 0"),
        ({"bits": 8.5}, r"bits must be a positive integer, got 8.5"),
        ({"clock_hz": 0.0}, r"clock_hz must be positive"),
        ({"partition": (0.5, 0.6, 0.1)}, r"partition fractions must sum to at most 1, got 0.5 \+ 0.6 \+ 0.1 = 1.2"),
        ({"partition": (0.5, -0.1, 0.1)}, r"partition must be three positive fractions"),
        ({"partition": (0.5, 0.5)}, r"partition must be three positive fractions"),
        ({"tiling_rule": "slowest"}, r"tiling_rule must be one of"),
        ({"sram_bytes": 2, "partition": (0.25, 0.5, 0.25)}, r"input buffer is empty"),
    ],
)
def test_bad_accelerator(changes: dict, match: str) -> None:
    with pytest.raises(CostModelError, match=match):
        Accelerator(**changes)


def test_layer_that_fits_no_tiling() -> None:
    with pytest.raises(CostModelError, match=r"layer conv1 .* fits no tiling in buffers input/weight/output = 16/32/16 B at 16-bit"):
        network_cost([CONV], Accelerator(sram_bytes=64))


def test_bad_layer() -> None:
    with pytest.raises(CostModelError, match=r"layer g: groups=3 must divide in_channels=4"):
        network_cost([LayerShape("g", "conv", 4, 8, 8, 6, 8, 8, 3, 3, 1, 1, 3)], Accelerator())


def test_bad_increment_and_cascade() -> None:
    wide = [LayerShape("conv1", "conv", 1, 28, 28, 40, 24, 24, 5, 5)]
    with pytest.raises(CostModelError, match=r"layer conv1 shrinks from 1->40 to 1->20"):
        increment_cost(wide, [CONV], Accelerator())
    with pytest.raises(CostModelError, match=r"previous stage has 1 layers, this one 2"):
        increment_cost([CONV], [CONV, CONV], Accelerator())
    with pytest.raises(CostModelError, match=r"mode must be 'reuse' or 'recompute'"):
        increment_cost([CONV], [CONV], Accelerator(), mode="partial")  # type: ignore[arg-type]
    cost = network_cost([CONV], Accelerator())
    with pytest.raises(CostModelError, match=r"got 2 stages and 1 fractions"):
        cascade_cost([cost, cost], [1.0])
    with pytest.raises(CostModelError, match=r"reach fraction of stage 1 must be in \[0, 1\], got 1.5"):
        cascade_cost([cost, cost], [1.0, 1.5])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16384", 16384), ("16KiB", 16384), ("16 kib", 16384), ("1.5MiB", 1572864), ("16KB", 16000), ("64B", 64), (512, 512)],
)
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(("text", "match"), [("16kq", "expected a number"), ("KiB", "expected a number"),
                                             ("0.3B", "not a whole number"), ("0", "at least 1 byte")])
def test_parse_bytes_rejects_garbage(text: str, match: str) -> None:
    with pytest.raises(CostModelError, match=match):
        parse_bytes(text)
