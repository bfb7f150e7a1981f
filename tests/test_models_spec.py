"""[models.NAME] in study specs: logits-only studies on a labels dataset (2 to 100 classes) priced by a measured
energy and by a layer list, content identity of imported files, and every validation error as one line."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import costmodel
import nets
from dse import SpecError, load_problem, parse_spec
from dse.cli import app
from dse.core.results import PJ
from dse.core.fingerprint import spec_digest

RNG = np.random.default_rng(1)
LAYERS = """input_shape = [1, 8, 8]
layers = [{type = "conv", out = 4, kernel = 3, pad = 1}, {type = "batchnorm"}, {type = "relu"},
          {type = "pool", mode = "global"}, {type = "fc", out = CLASSES}]"""


def write_study(root: Path, classes: int = 10, samples: int = 200) -> dict[str, np.ndarray]:
    """labels.npz, big.npz (90% right) and small.npz (60% right) with `classes` classes; returns the arrays."""
    labels = {split: RNG.integers(0, classes, samples) for split in ("calib", "test")}
    np.savez(root / "labels.npz", **{f"{split}_labels": labels[split] for split in labels})
    arrays = {"labels": labels}
    for name, accuracy in (("big", 0.9), ("small", 0.6)):
        logits = {}
        for split, truth in labels.items():
            rows = RNG.normal(0, 1, (samples, classes))
            right = RNG.random(samples) < accuracy
            rows[np.flatnonzero(right), truth[right]] += 4.0
            logits[f"{split}_logits"] = rows
        np.savez(root / f"{name}.npz", **logits)
        arrays[name] = logits
    return arrays


def spec_text(classes: int = 10, extra: str = "", big: str = "", small: str = "", head: str = "") -> str:
    """A logits-only study: 'small' priced by energy_j, 'big' by its layer list."""
    return f"""version = 2
name = "imported"
{head}
[data]
dataset = "labels"
path = "labels.npz"
[nets]
big = "big"
[little]
nets = ["small"]
[search]
n_trials = 15
sampler = "random"
{extra}
[models.small]
logits = "small.npz"
energy_j = 2e-9
{small}
[models.big]
logits = "big.npz"
{LAYERS.replace("CLASSES", str(classes))}
{big}
"""


@pytest.fixture()
def study_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a 10-class logits study (paths in specs are relative to it)."""
    monkeypatch.chdir(tmp_path)
    write_study(tmp_path)
    return tmp_path


@pytest.mark.parametrize("classes", [2, 100])
def test_a_logits_only_study_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, classes: int) -> None:
    monkeypatch.chdir(tmp_path)
    arrays = write_study(tmp_path, classes)
    (tmp_path / "study.toml").write_text(spec_text(classes))
    result = CliRunner().invoke(app, ["run", "study.toml", "--cache-dir", "cache", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert re.search(r"0 -> [1-9]\d* completed trials?; [1-9]\d* distinct feasible Pareto points?", result.output)
    assert (tmp_path / "dse-out" / "imported" / "report.html").is_file()
    spec = parse_spec((tmp_path / "study.toml").read_text(), "study.toml")
    problem, dataset = load_problem(spec, str(tmp_path / "cache"), log=lambda _: None)
    assert dataset.images == {} and dataset.source == "labels.npz"
    for index, name in enumerate(problem.names):
        for split in ("calib", "test"):  # correctness is argmax == label, sample by sample
            expected = [int(np.argmax(row)) == label
                        for row, label in zip(arrays[name][f"{split}_logits"], arrays["labels"][split])]
            assert problem.correct[split][index].tolist() == expected
    small, big = problem.index("small"), problem.index("big")
    assert problem.price(small).energy_pj * PJ == pytest.approx(2e-9, rel=1e-12)  # measured, as given
    assert np.isnan(problem.price(small).latency_s) and np.isnan(problem.price(small).weight_bytes)
    shapes = spec.models["big"].architecture.layer_shapes()
    assert problem.price(big) == costmodel.network_cost(shapes, problem.accelerator, problem.technology)
    assert shapes[-1].out_channels == classes


def test_the_same_files_at_another_path_resume_and_one_changed_byte_does_not(study_dir: Path) -> None:
    spec = parse_spec(spec_text(), "a.toml")
    moved = study_dir / "moved"
    moved.mkdir()
    for name in ("labels.npz", "big.npz", "small.npz"):
        shutil.copy(study_dir / name, moved / name)
    copied = parse_spec(spec_text().replace('"labels.npz"', '"moved/labels.npz"')
                        .replace('"big.npz"', '"moved/big.npz"').replace('"small.npz"', '"moved/small.npz"'), "b.toml")
    assert spec_digest(copied) != spec_digest(spec)  # data.path is part of the spec's text ...
    assert copied.models["big"].fingerprint() == spec.models["big"].fingerprint()  # ... the models are by content
    data = dict(np.load(moved / "big.npz"))
    data["test_logits"][0, 0] += 1e-9
    np.savez(moved / "big.npz", **data)
    changed = parse_spec(spec_text().replace('"big.npz"', '"moved/big.npz"'), "c.toml")
    assert changed.models["big"].digest != spec.models["big"].digest
    assert spec_digest(changed) != spec_digest(parse_spec(spec_text(), "a.toml"))
    first, _ = load_problem(spec, str(study_dir / "cache"), log=lambda _: None)
    again, _ = load_problem(copied, str(study_dir / "cache"), log=lambda _: None)
    assert [s for s in first.correct["test"].tolist()] == [s for s in again.correct["test"].tolist()]


def test_two_specs_with_one_model_name_keep_their_own_models(study_dir: Path) -> None:
    """Two specs in one process each define a model 'big' (other layers, other logits): each problem gets its own
    prices and scores, whichever was loaded last, and the shipped zoo never learns the name."""
    other = study_dir / "other"
    other.mkdir()
    arrays = write_study(other)
    wide = LAYERS.replace("out = 4,", "out = 16,").replace("CLASSES", "10")
    second_text = spec_text().replace(LAYERS.replace("CLASSES", "10"), wide)
    for name in ("labels.npz", "big.npz", "small.npz"):
        second_text = second_text.replace(f'"{name}"', f'"other/{name}"')
    first = parse_spec(spec_text(), "a.toml")
    second = parse_spec(second_text, "b.toml")
    assert "big" not in nets.architecture_names()
    with pytest.raises(nets.UnknownArchitecture, match="unknown network 'big'"):
        nets.architecture("big")
    cache = str(study_dir / "cache")
    problems = [load_problem(spec, cache, log=lambda _: None)[0] for spec in (first, second, first)]
    for problem, spec in zip(problems, (first, second, first)):
        shapes = spec.models["big"].architecture.layer_shapes()
        big = problem.index("big")
        assert problem.price(big) == costmodel.network_cost(shapes, problem.accelerator, problem.technology)
        assert problem.variants[big].architecture is spec.models["big"].architecture
    assert problems[0].price(0).energy_pj < problems[1].price(0).energy_pj  # 4 vs 16 channels
    truth = [int(np.argmax(row)) == label for row, label in zip(arrays["big"]["test_logits"], arrays["labels"]["test"])]
    assert problems[1].correct["test"][problems[1].index("big")].tolist() == truth
    assert problems[2].correct["test"].tolist() == problems[0].correct["test"].tolist()
    assert problems[0].correct["test"].tolist() != problems[1].correct["test"].tolist()


SPEC_ERRORS = [
    ({"small": 'bits = 8'}, r"models\.small\.bits: unknown key"),
    ({"head": "[models.lenet]\nlogits = \"big.npz\"\nenergy_j = 1.0"}, r"models\.lenet: 'lenet' is the name of a "
                                                                       r"shipped network"),
    ({"small": "", "remove": "energy_j = 2e-9"}, r"models\.small\.logits: logits need a price"),
    ({"small": "latency_s = 1e-6", "remove": "energy_j = 2e-9"}, r"models\.small\.logits: logits need a price"),
    ({"big": "onnx = \"m.onnx\""}, r"models\.big\.layers: give the layer list once: from onnx or from layers"),
    ({"small": "", "remove": 'logits = "small.npz"\nenergy_j = 2e-9'}, r"models\.small: needs one of onnx, logits "
                                                                       r"or layers"),
    ({"big": "energy_j = -1.0"}, r"models\.big\.energy_j: must be a number > 0, got -1"),
    ({"big": "latency_s = 1e-3"}, r"models\.big\.latency_s: a measured price needs energy_j"),
    ({"small": "input_mean = 0.5"}, r"models\.small\.input_mean: only an ONNX model run by onnxruntime"),
    ({"big": "", "big_shape_remove": True}, r"models\.big\.input_shape: a layers list needs input_shape"),
    ({"small": "input_shape = [1, 8, 8]"}, r"models\.small\.input_shape: only a layers list takes input_shape"),
    ({"extra": "objectives = [\"energy\", \"storage\"]"}, r"search\.objectives: 'storage' needs a storage for every "
                                                          r"net, but models\.small has only a measured energy"),
    ({"extra": "objectives = [\"energy\", \"latency\"]"}, r"'latency' needs a latency .* \(add latency_s\)"),
    ({"nets_big": "lenet"}, r"data\.dataset: 'labels' brings no images, so every net must be a \[models\] table "
                            r"with logits; 'lenet' is not"),
    ({"head": "[bitwidth]\nbitwidths = [4, 8]"}, r"models\.big: model 'big' cannot run as big@4b: .* cannot take "
                                                 r"bits, rounding"),
    ({"dataset": "mnist5k"}, r"models\.big\.logits: imported logits can be matched to samples only with "
                             r"data\.dataset = \"labels\""),
]


@pytest.mark.parametrize("change, match", SPEC_ERRORS)
def test_spec_errors_name_the_file_and_key(study_dir: Path, change: dict, match: str) -> None:
    text = spec_text(extra=change.get("extra", ""), big=change.get("big", ""), small=change.get("small", ""),
                     head=change.get("head", ""))
    if "remove" in change:
        text = text.replace(change["remove"], "")
    if change.get("big_shape_remove"):
        text = text.replace("input_shape = [1, 8, 8]", "")
    if "nets_big" in change:
        text = text.replace('big = "big"', f'big = "{change["nets_big"]}"')
    if "dataset" in change:
        text = text.replace('dataset = "labels"', f'dataset = "{change["dataset"]}"')
    with pytest.raises(SpecError, match=match) as raised:
        load_problem(parse_spec(text, "s.toml"), str(study_dir / "cache"), log=lambda _: None)
    assert str(raised.value).startswith("s.toml: ") and "\n" not in str(raised.value)


def _write(path: Path, **arrays: np.ndarray) -> None:
    np.savez(path, **arrays)


DATA_ERRORS = [
    ("small.npz", {"calib_logits": np.zeros((200, 10)), "test_logits": np.full((200, 10), np.nan)},
     r"small\.npz: 'test_logits': 2000 values are NaN or inf \(first in sample 0\)"),
    ("small.npz", {"calib_logits": np.zeros((200, 10)), "test_logits": np.zeros((0, 10))},
     r"small\.npz: 'test_logits': the split is empty"),
    ("small.npz", {"calib_logits": np.zeros((200, 10)), "test_logits": np.zeros((199, 10))},
     r"small\.npz: 'test_logits' has 199 samples but labels\.npz 'test_labels' has 200"),
    ("small.npz", {"calib_logits": np.zeros((200, 10))}, r"small\.npz: no array 'test_logits'"),
    ("small.npz", {"calib_logits": np.zeros((200, 10)), "test_logits": np.zeros((200, 9))},
     r"'calib_logits' has 10 classes but 'test_logits' has 9"),
    ("small.npz", {"calib_logits": np.zeros((200, 7)), "test_logits": np.zeros((200, 7))},
     r"models\.small\.logits: 7 classes, but models\.big\.logits has 10"),
    ("labels.npz", {"calib_labels": np.full(200, 10), "test_labels": np.zeros(200, int)},
     r"labels\.npz: 'calib_labels' has 200 labels outside \[0, 10\)"),
    ("labels.npz", {"calib_labels": np.full(200, -1), "test_labels": np.zeros(200, int)},
     r"labels\.npz: 'calib_labels': labels must be >= 0"),
    ("labels.npz", {"calib_labels": np.zeros(200, int), "test_labels": np.zeros((200, 2), int)},
     r"labels\.npz: 'test_labels': labels must be 1-D"),
]


@pytest.mark.parametrize("name, arrays, match", DATA_ERRORS)
def test_data_errors_are_one_line_naming_the_file_and_array(study_dir: Path, name: str, arrays: dict,
                                                            match: str) -> None:
    _write(study_dir / name, **arrays)
    (study_dir / "study.toml").write_text(spec_text())
    result = CliRunner().invoke(app, ["run", "study.toml", "--cache-dir", "cache", "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    assert re.search(match, lines[0]), lines[0]
    assert not (study_dir / "dse-out").exists()  # nothing half-written


def test_logits_whose_class_count_differs_from_the_layer_list(study_dir: Path) -> None:
    with pytest.raises(SpecError, match=r"s\.toml: models\.big\.logits: big\.npz vs the layer list: the model outputs "
                                        r"7 values per sample but the data has 10 classes"):
        parse_spec(spec_text(classes=7), "s.toml")


def test_a_corrupt_npz_dataset_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, images=np.zeros((10, 8, 8), np.uint8), labels=np.zeros(10, int))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(nets.DatasetError, match=r"data\.npz: needs arrays 'images' and 'labels'"):
        nets.load_dataset("npz", path)
    path.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(nets.DatasetError):
        nets.load_dataset("npz", path)
    assert zipfile.is_zipfile(path) is False


def test_worker_processes_run_the_variants_own_models(study_dir: Path) -> None:
    """Training runs in joblib worker processes, which know no spec: a variant carries its model there."""
    from joblib import Parallel, delayed

    spec = parse_spec(spec_text(), "a.toml")
    variant = spec.variant("big", width=0.5)
    jobs = [delayed(lambda v: v.architecture)(variant) for _ in range(2)]
    assert Parallel(n_jobs=2, backend="loky")(jobs) == [spec.models["big"].architecture] * 2
    assert Parallel(n_jobs=2, backend="loky")([delayed(lambda v: v.model == spec.models["big"])(variant)]) == [True]
