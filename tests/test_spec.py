"""Study specs: built-ins parse; bad specs give one-line errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse import SpecError, builtin_specs, load_spec, parse_spec

GOOD = """
version = 2
name = "t"
[nets]
big = "lenet"
[little]
nets = ["mini7", "mini8"]
[search]
threshold_range = [0.0, 0.9]
max_accuracy_loss_pct = 0.5
"""


def test_builtin_specs_parse() -> None:
    names = builtin_specs()
    assert {"quickstart", "park2015-mnist"} <= set(names)
    quick = load_spec("quickstart")
    assert quick.nets.big == "lenet" and len(quick.section("little").nets) == 8 and quick.data.dataset == "mnist5k"


def test_good_spec_round_trip() -> None:
    spec = parse_spec(GOOD, "good.toml")
    assert spec.section("little").nets == ("mini7", "mini8") and spec.enabled() == ["little"]
    assert spec.search.threshold_range == (0.0, 0.9)
    assert spec.with_overrides(search={"n_trials": 3}).search.n_trials == 3


def test_spec_carries_its_mechanisms_bound_with_their_sections() -> None:
    """Every known mechanism is bound into the spec at parse time, in shaping order; an override rebinds a section."""
    from dse import registry

    spec = parse_spec(GOOD, "good.toml")
    assert list(spec.mechanisms) == list(registry()) and spec.active() == [spec.mechanisms["little"]]
    assert all(bound.mechanism is registry()[name] and bound.section == spec.section(name)
               for name, bound in spec.mechanisms.items())
    changed = spec.with_overrides(little={"max_stages": 2})
    assert changed.section("little").max_stages == 2 and spec.section("little").max_stages == 3
    assert changed.mechanisms["little"].mechanism is spec.mechanisms["little"].mechanism
    assert changed.sections()["little"] == changed.section("little")


def test_mechanisms_given_to_the_parser_are_the_only_ones_known() -> None:
    from dse.mechanisms import BigLittle

    spec = parse_spec(GOOD, "good.toml", mechanisms=[BigLittle()])
    assert list(spec.mechanisms) == ["little"] and spec.enabled() == ["little"]
    with pytest.raises(SpecError, match=r"bad\.toml: bitwidth: unknown key"):
        parse_spec(GOOD + "[bitwidth]\nbitwidths = [8]\n", "bad.toml", mechanisms=[BigLittle()])


@pytest.mark.parametrize("change, message", [
    (('nets = ["mini7", "mini8"]', 'nets = ["mini7", "nonet"]'), r"bad\.toml: little\.nets\[1\]: unknown network 'nonet'"),
    (("[search]", "[search]\nbogus = 1"), r"bad\.toml: search\.bogus: unknown key"),
    (("[search]", "[searchh]"), r"bad\.toml: searchh: unknown key"),
    (("[0.0, 0.9]", "[-0.1, 0.9]"), r"search\.threshold_range: 0 <= low < high <= 1 must hold.*-0\.1"),
    (("[0.0, 0.9]", "[0.5, 0.2]"), r"search\.threshold_range"),
    (('nets = ["mini7", "mini8"]', "nets = []"), r"bad\.toml: nets: no mechanism section provides a cascade stage"),
    (('nets = ["mini7", "mini8"]', 'nets = ["lenet"]'), r"little\.nets: the big net 'lenet'"),
    (("max_accuracy_loss_pct = 0.5", 'max_accuracy_loss_pct = "x"'), r"search\.max_accuracy_loss_pct: expected number"),
    (("version = 2", "version = 3"), r"version: must be 2"),
    (("version = 2", "version = 1"), r"version: version 1 specs are no longer read; version 2 gives every mechanism its own section"),
    (("[search]", "[search]\nlambda_range = [1.0]"), r"search\.lambda_range: unknown key"),
    (('nets = ["mini7", "mini8"]', 'nets = ["mini7"]\nlambda_range = [0.1, 10.0]'), r"little\.lambda_range: unknown key"),
    (("[search]", "[bitwidth]\nbitwidths = [4, 4]\n[search]"),
     r"bitwidth\.bitwidths: must be strictly increasing"),
    (("[search]", "[search]\nthresholds = \"psi\""), r"search\.thresholds: must be one of exact, sampled, got 'psi'"),
    (("[search]", "[search]\nenumerate_limit = -1"), r"search\.enumerate_limit: must be >= 0"),
    (("[search]", "[search]\npartition_step = 0.3"), r"search\.partition_step: must be 0 \(fixed partition\) or 1/k"),
    (("[nets]", "[nets"), r"not valid TOML"),
])
def test_bad_specs(change: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(GOOD.replace(*change), "bad.toml")
    assert "\n" not in str(info.value)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such spec file or built-in study"):
        load_spec(tmp_path / "nope.toml")


def test_spec_digest_covers_mechanisms_but_not_budget() -> None:
    from dse.core.fingerprint import spec_digest

    spec = parse_spec(GOOD, "good.toml")
    assert spec_digest(spec) == spec_digest(spec.with_overrides(search={"n_trials": 7, "seed": 3}))
    assert spec_digest(spec) != spec_digest(spec.with_overrides(bitwidth={"bitwidths": (4, 8)}))
    assert spec_digest(spec) != spec_digest(spec.with_overrides(accelerator={"sram": "32KiB"}))
