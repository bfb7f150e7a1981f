"""Malformed input, as a new user would try it: specs, data, technology, logits and label files, ONNX models, storage
URLs, study databases, output paths and the arguments of every command.

Each case must end in one line that names the file, field or option, a non-zero exit, no traceback, and leave every
file that existed before byte-identical, with no new file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sqlite3
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import nets
from conftest import TINY_SPEC
from costmodel import UserError
from dse.cli import main


@dataclass(frozen=True)
class Case:
    """One malformed input: `make(ws)` writes its files and returns the `dse` arguments (or calls an API)."""

    id: str
    make: Callable[[Path], list[str]]
    message: str  # a piece of the one-line error: the file, field or option it names


TINY = TINY_SPEC


def spec_run(*changes: tuple[str, str], extra: tuple[str, ...] = ()) -> Callable[[Path], list[str]]:
    """`dse run` on the tiny spec with text replacements applied."""
    def make(ws: Path) -> list[str]:
        text = TINY
        for old, new in changes:
            assert old in text, old
            text = text.replace(old, new, 1)
        (ws / "bad.toml").write_text(text)
        return ["run", str(ws / "bad.toml"), "--out", str(ws / "out"), "--cache-dir", str(ws / "cache"),
                "--no-progress", *extra]
    return make


def search(line: str) -> tuple[str, str]:
    """A line added to [search]."""
    return ("[search]\n", f"[search]\n{line}\n")


def training(line: str) -> tuple[str, str]:
    """A line added to [training]."""
    return ("[training]\n", f"[training]\n{line}\n")


def accelerator(line: str) -> tuple[str, str]:
    """An [accelerator] section with one line."""
    return ("[nets]\n", f"[accelerator]\n{line}\n[nets]\n")


def data(lines: str) -> tuple[str, str]:
    """The [data] section replaced."""
    return ('[data]\ndataset = "mnist5k"\n', f"[data]\n{lines}\n")


def write(path: Path, content: bytes | str) -> Path:
    """Write a fixture file (parents created) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def npz_run(**arrays: object) -> Callable[[Path], list[str]]:
    """`dse run` on an npz dataset holding `arrays`."""
    def make(ws: Path) -> list[str]:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        write(ws / "data.npz", buffer.getvalue())
        return spec_run(data(f'dataset = "npz"\npath = "{ws / "data.npz"}"'))(ws)
    return make


def npz_bytes_run(content: bytes) -> Callable[[Path], list[str]]:
    """`dse run` on an npz path holding raw bytes."""
    def make(ws: Path) -> list[str]:
        write(ws / "data.npz", content)
        return spec_run(data(f'dataset = "npz"\npath = "{ws / "data.npz"}"'))(ws)
    return make


IMAGES = np.zeros((100, 28, 28), np.uint8)
LABELS = np.arange(100) % 10


def idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """A gzip-compressed IDX file."""
    return gzip.compress(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload)


def mnist_run(**override: bytes) -> Callable[[Path], list[str]]:
    """`dse run` on an MNIST IDX directory with some files replaced."""
    def make(ws: Path) -> list[str]:
        files = {"train-images-idx3-ubyte.gz": idx(0x803, (20, 28, 28), bytes(20 * 784)),
                 "train-labels-idx1-ubyte.gz": idx(0x801, (20,), bytes(range(10)) * 2),
                 "t10k-images-idx3-ubyte.gz": idx(0x803, (20, 28, 28), bytes(20 * 784)),
                 "t10k-labels-idx1-ubyte.gz": idx(0x801, (20,), bytes(range(10)) * 2)}
        files.update({name.replace("_", "-") + ".gz": content for name, content in override.items()})
        for name, content in files.items():
            write(ws / "mnist" / name, content)
        return spec_run(data(f'dataset = "mnist"\npath = "{ws / "mnist"}"'))(ws)
    return make


def tech_run(content: bytes | str) -> Callable[[Path], list[str]]:
    """`dse run` with a technology file holding `content`."""
    def make(ws: Path) -> list[str]:
        write(ws / "tech.toml", content)
        return spec_run(accelerator(f'technology = "{ws / "tech.toml"}"'))(ws)
    return make


def storage_run(url: Callable[[Path], str]) -> Callable[[Path], list[str]]:
    """`dse run` with `--storage url(ws)`."""
    def make(ws: Path) -> list[str]:
        return spec_run()(ws) + ["--storage", url(ws)]
    return make


def foreign_sqlite(ws: Path) -> Path:
    """Someone else's SQLite database."""
    path = ws / "theirs.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE accounts (name TEXT)")
        connection.execute("INSERT INTO accounts VALUES ('alice')")
    connection.close()
    return path


def with_study(make: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    """Provide ws/study/study.db, a copy of the tiny study (made by the session fixture), before `make`."""
    def wrapped(ws: Path) -> list[str]:
        target = ws / "study" / "study.db"
        target.parent.mkdir(exist_ok=True)
        source = sqlite3.connect(STUDY_DB[0])
        copy = sqlite3.connect(target)
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=WAL")
        source.close()
        copy.close()
        return make(ws)
    return wrapped


def api(call: Callable[[Path], object]) -> Callable[[Path], list[str]]:
    """A library call instead of a command (returns [] after raising, which the runner expects)."""
    def make(ws: Path) -> list[str]:
        call(ws)
        return []
    return make


def labels_file(ws: Path, **arrays: np.ndarray) -> Path:
    """An .npz of imported arrays."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return write(ws / "imported.npz", buffer.getvalue())


def tar_with(ws: Path, name: str, content: bytes) -> Path:
    """A tar file with one member."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return write(ws / "cache.tar", buffer.getvalue())


STUDY_DB: list[Path] = []
LOGITS = np.random.default_rng(0).normal(size=(20, 10))

CASES = [
    # spec: numbers finite and in range, names safe, no duplicates
    Case("negative-data-seed", spec_run(("[data]\n", "[data]\nseed = -1\n")), "data.seed"),
    Case("negative-search-seed", spec_run(search("seed = -5")), "search.seed"),
    Case("negative-training-seed", spec_run(training("seed = -1")), "training.seed"),
    Case("huge-seed", spec_run(search("seed = 99999999999")), "search.seed"),
    Case("sram-400-digits", spec_run(accelerator(f'sram = "{"9" * 400}KiB"')), "accelerator"),
    Case("tm-400-digits", spec_run(accelerator(f"tm = {'9' * 400}")), "accelerator.tm"),
    Case("lambda-range-inf", spec_run(("[little]\n", "[little]\nlambda_range = [0.01, inf]\n")), "little.lambda_range"),
    Case("loss-confidence-z-inf", spec_run(search("loss_confidence_z = inf")), "search.loss_confidence_z"),
    Case("loss-confidence-z-nan", spec_run(search("loss_confidence_z = nan")), "search.loss_confidence_z"),
    Case("learning-rate-inf", spec_run(training("learning_rate = inf")), "training.learning_rate"),
    Case("learning-rate-huge", spec_run(training("learning_rate = 1e9")), "training.learning_rate"),
    Case("learning-rate-zero", spec_run(training("learning_rate = 0.0")), "training.learning_rate"),
    Case("weight-decay-negative", spec_run(training("weight_decay = -1.0")), "training.weight_decay"),
    Case("epochs-zero", spec_run(("epochs = 1", "epochs = 0")), "training.epochs"),
    Case("epochs-huge", spec_run(("epochs = 1", "epochs = 1000000000")), "training"),
    Case("batch-size-zero", spec_run(("batch_size = 128", "batch_size = 0")), "training.batch_size"),
    Case("duplicate-objective", spec_run(search('objectives = ["energy", "energy"]')), "search.objectives"),
    Case("duplicate-threshold-mode", spec_run(search('threshold_modes = ["threshold", "threshold"]')),
         "search.threshold_modes"),
    Case("duplicate-sram-choice", spec_run(search('sram_choices = ["4KiB", "4KiB"]')), "search.sram_choices"),
    Case("unknown-objective", spec_run(search('objectives = ["speed"]')), "search.objectives"),
    Case("no-objective", spec_run(search("objectives = []")), "search.objectives"),
    Case("name-dotdot", spec_run(('name = "tiny"', 'name = ".."')), "name"),
    Case("name-dot", spec_run(('name = "tiny"', 'name = "."')), "name"),
    Case("name-too-long", spec_run(('name = "tiny"', f'name = "{"a" * 300}"')), "name"),
    Case("name-slash", spec_run(('name = "tiny"', 'name = "a/b"')), "name"),
    Case("name-empty", spec_run(('name = "tiny"', 'name = ""')), "name"),
    Case("n-trials-negative", spec_run(("n_trials = 12", "n_trials = -1")), "search.n_trials"),
    Case("unknown-sampler", spec_run(('sampler = "random"', 'sampler = "cmaes"')), "search.sampler"),
    Case("threshold-range-reversed", spec_run(search("threshold_range = [0.5, 0.2]")), "search.threshold_range"),
    Case("threshold-range-inf", spec_run(search("threshold_range = [0.0, inf]")), "search.threshold_range"),
    Case("partition-step", spec_run(search("partition_step = 0.3")), "search.partition_step"),
    Case("loss-limit-negative", spec_run(("max_accuracy_loss_pct = 5.0", "max_accuracy_loss_pct = -1.0")),
         "search.max_accuracy_loss_pct"),
    Case("loss-limit-over-100", spec_run(("max_accuracy_loss_pct = 5.0", "max_accuracy_loss_pct = 1000.0")),
         "search.max_accuracy_loss_pct"),
    Case("clock-inf", spec_run(accelerator("clock_hz = inf")), "accelerator.clock_hz"),
    Case("partition-nan", spec_run(accelerator("partition = [0.5, 0.5, nan]")), "accelerator.partition"),
    Case("bits-zero", spec_run(accelerator("bits = 0")), "accelerator"),
    Case("tiling-rule", spec_run(accelerator('tiling_rule = "best"')), "accelerator.tiling_rule"),
    Case("priced-layers", spec_run(accelerator('priced_layers = "some"')), "accelerator.priced_layers"),
    Case("unknown-dataset", spec_run(("mnist5k", "imagenet")), "data.dataset"),
    Case("version-3", spec_run(("version = 2", "version = 3")), "version"),
    Case("unknown-section", spec_run(("[nets]\n", "[extras]\nx = 1\n[nets]\n")), "extras"),
    Case("wrong-type", spec_run(("epochs = 1", 'epochs = "one"')), "training.epochs"),
    Case("unknown-big-net", spec_run(('big = "lenet"', 'big = "nosuch"')), "nets.big"),
    Case("unknown-little-net", spec_run(('"mini8"', '"nosuch"')), "nosuch"),
    Case("not-toml", lambda ws: ["run", str(write(ws / "bad.toml", "version = = 2")), "--no-progress"], "bad.toml"),
    Case("binary-spec", lambda ws: ["run", str(write(ws / "bad.toml", bytes(range(256)))), "--no-progress"], "bad.toml"),
    Case("spec-is-directory", lambda ws: ["run", str((ws / "adir").resolve()), "--no-progress"], "adir"),
    Case("no-such-spec", lambda ws: ["run", str(ws / "missing.toml"), "--no-progress"], "missing.toml"),
    # technology files
    Case("technology-missing", spec_run(accelerator('technology = "/nonexistent/tech.toml"')), "tech.toml"),
    Case("technology-binary", tech_run(bytes(range(256)) * 4), "tech.toml"),
    Case("technology-garbage", tech_run("this is = = not toml"), "tech.toml"),
    Case("technology-unknown-key", tech_run("version = 1\nbogus = 3\n"), "bogus"),
    Case("technology-negative-energy", tech_run("version = 1\n[mac]\npool_op_pj_per_bit = -1.0\n"),
         "pool_op_pj_per_bit"),
    # npz data: labels, counts, corrupt files
    Case("npz-labels-out-of-range", npz_run(images=IMAGES, labels=LABELS + 70000), "'labels'"),
    Case("npz-labels-negative", npz_run(images=IMAGES, labels=LABELS - 5), "'labels'"),
    Case("npz-labels-nan", npz_run(images=IMAGES, labels=np.where(LABELS == 3, np.nan, LABELS)), "'labels'"),
    Case("npz-labels-fractional", npz_run(images=IMAGES, labels=LABELS + 0.5), "'labels'"),
    Case("npz-labels-2d", npz_run(images=IMAGES, labels=LABELS.reshape(50, 2)), "'labels'"),
    Case("npz-labels-strings", npz_run(images=IMAGES, labels=LABELS.astype(str)), "'labels'"),
    Case("npz-labels-bool", npz_run(images=IMAGES, labels=LABELS > 4), "'labels'"),
    Case("npz-fewer-labels", npz_run(images=IMAGES, labels=LABELS[:60]), "60 labels for 100 images"),
    Case("npz-images-float", npz_run(images=IMAGES.astype(float), labels=LABELS), "'images'"),
    Case("npz-images-empty", npz_run(images=IMAGES[:0], labels=LABELS[:0]), "'images'"),
    Case("npz-too-few", npz_run(images=IMAGES[:2], labels=LABELS[:2]), "too few"),
    Case("npz-no-labels", npz_run(images=IMAGES), "data.npz"),
    Case("npz-truncated", lambda ws: npz_run(images=IMAGES, labels=LABELS)(ws) and npz_bytes_run(
        (ws / "data.npz").read_bytes()[:300])(ws), "data.npz"),
    Case("npz-garbage", npz_bytes_run(b"not a zip file at all" * 10), "data.npz"),
    Case("npz-path-directory", spec_run(data('dataset = "npz"\npath = "/tmp"')), "/tmp"),
    Case("npz-no-path", spec_run(data('dataset = "npz"')), "npz"),
    # IDX data: corrupt gzip, headers, labels
    Case("idx-corrupt-gzip", mnist_run(train_labels_idx1_ubyte=b"\x1f\x8b\x08\x00garbage-garbage"), "train-labels"),
    Case("idx-not-gzip", mnist_run(train_images_idx3_ubyte=b"plain bytes, not gzip"), "train-images"),
    Case("idx-truncated-gzip", mnist_run(t10k_images_idx3_ubyte=idx(0x803, (20, 28, 28), bytes(20 * 784))[:60]),
         "t10k-images"),
    Case("idx-bad-magic", mnist_run(train_labels_idx1_ubyte=idx(0x901, (20,), bytes(20))), "train-labels"),
    Case("idx-header-overflow", mnist_run(train_images_idx3_ubyte=idx(0x803, (2**32 - 1, 2**32 - 1, 2**32 - 1),
                                                                          bytes(64))), "train-images"),
    Case("idx-header-truncated", mnist_run(train_images_idx3_ubyte=gzip.compress(struct.pack(">II", 0x803, 20))),
         "train-images"),
    Case("idx-labels-out-of-range", mnist_run(t10k_labels_idx1_ubyte=idx(0x801, (20,), bytes([12] * 20))),
         "t10k-labels"),
    Case("idx-label-count", mnist_run(train_labels_idx1_ubyte=idx(0x801, (12,), bytes(12))), "12 labels for 20"),
    Case("idx-images-are-labels", mnist_run(train_images_idx3_ubyte=idx(0x801, (20,), bytes(20))), "mnist"),
    Case("idx-missing-directory", spec_run(data('dataset = "mnist"\npath = "/nonexistent/mnist"')), "/nonexistent"),
    Case("idx-missing-files", lambda ws: (ws / "emptydir").mkdir() or spec_run(
        data(f'dataset = "mnist"\npath = "{ws / "emptydir"}"'))(ws), "emptydir"),
    # storage URLs and study files
    Case("storage-garbage", storage_run(lambda ws: "garbage"), "--storage garbage"),
    Case("storage-unknown-scheme", storage_run(lambda ws: "redis://localhost/0"), "--storage redis"),
    Case("storage-sqlite-empty", storage_run(lambda ws: "sqlite:///"), "--storage sqlite:///"),
    Case("storage-sqlite-directory", storage_run(lambda ws: f"sqlite:///{ws}"), "directory"),
    Case("storage-sqlite-under-file", storage_run(lambda ws: f"sqlite:///{write(ws / 'f', 'x')}/study.db"),
         "is a file"),
    Case("storage-journal-empty", storage_run(lambda ws: "journal:///"), "--storage journal:///"),
    Case("storage-journal-directory", storage_run(lambda ws: f"journal:///{ws}"), "directory"),
    Case("storage-journal-under-file", storage_run(lambda ws: f"journal:///{write(ws / 'f', 'x')}/j.log"),
         "is a file"),
    Case("storage-journal-garbage", storage_run(lambda ws: f"journal:///{write(ws / 'j.log', bytes(range(256)))}"),
         "j.log"),
    Case("storage-mysql-no-driver", storage_run(lambda ws: "mysql://user:pw@127.0.0.1/db"), "driver"),
    Case("storage-postgresql-no-driver", storage_run(lambda ws: "postgresql+pg8000://u:p@127.0.0.1:1/db"), "driver"),
    Case("storage-postgresql-unreachable", storage_run(lambda ws: "postgresql+psycopg2://u:p@127.0.0.1:1/db"),
         "--storage postgresql"),
    Case("storage-foreign-sqlite", storage_run(lambda ws: f"sqlite:///{foreign_sqlite(ws)}"), "not a study database"),
    Case("garbage-study-db", lambda ws: write(ws / "out" / "study.db", b"garbage " * 100) and spec_run()(ws),
         "study.db"),
    Case("spec-differs-from-study", with_study(lambda ws: spec_run(("epochs = 1", "epochs = 2"))(ws)[:2] + [
        "--out", str(ws / "study"), "--cache-dir", str(ws / "cache")]), "training.epochs: 1 -> 2"),
    # options that cannot apply, or not together
    Case("data-on-embedded-dataset", lambda ws: spec_run()(ws) + ["--data", "/nonexistent"], "--data /nonexistent"),
    Case("data-on-embedded-dataset-existing-study", with_study(lambda ws: spec_run()(ws)[:2] + [
        "--out", str(ws / "study"), "--data", "/nonexistent"]), "--data /nonexistent"),
    Case("spec-path-on-embedded-dataset", spec_run(data('dataset = "mnist5k"\npath = "/nonexistent"')), "data.path"),
    Case("run-trials-and-until", lambda ws: ["run", "--trials", "5", "--until", "3"], "--trials 5 --until 3"),
    Case("worker-trials-and-until", lambda ws: ["worker", "quickstart", "--storage", "sqlite:///x.db", "--trials", "5",
                                                "--until", "3"], "--trials 5 --until 3"),
    Case("characterize-data-on-embedded-dataset", lambda ws: ["characterize", "quickstart", "--data", "/nonexistent"],
         "--data /nonexistent"),
    # output paths of the wrong kind
    Case("out-is-file", lambda ws: spec_run()(ws)[:2] + ["--out", str(write(ws / "f", "x"))], "--out"),
    Case("out-under-file", lambda ws: spec_run()(ws)[:2] + ["--out", str(write(ws / "f", "x") / "o")], "--out"),
    Case("cache-dir-is-file", lambda ws: spec_run()(ws)[:4] + ["--cache-dir", str(write(ws / "f", "x"))],
         "--cache-dir"),
    Case("pareto-csv-directory", with_study(lambda ws: ["pareto", "tiny", "--out", str(ws / "study"), "--csv",
                                                        str(ws)]), "--csv"),
    Case("pareto-csv-under-file", with_study(lambda ws: ["pareto", "tiny", "--out", str(ws / "study"), "--csv",
                                                         str(write(ws / "f", "x") / "front.csv")]), "--csv"),
    Case("run-report-html-is-directory", lambda ws: (ws / "out" / "report.html").mkdir(parents=True) or spec_run()(ws),
         "report.html"),
    Case("report-html-is-directory", with_study(lambda ws: (ws / "study" / "report.html").mkdir() or [
        "report", "tiny", "--out", str(ws / "study")]), "report.html"),
    Case("report-trials-csv-is-directory", with_study(lambda ws: (ws / "study" / "trials.csv").mkdir() or [
        "report", "tiny", "--out", str(ws / "study")]), "trials.csv"),
    Case("trials-csv-directory", with_study(lambda ws: ["trials", "tiny", "--out", str(ws / "study"), "--csv",
                                                        str(ws)]), "--csv"),
    Case("trials-parquet-under-file", with_study(lambda ws: ["trials", "tiny", "--out", str(ws / "study"),
                                                             "--parquet", str(write(ws / "f", "x") / "t.parquet")]),
         "--parquet"),
    Case("report-out-is-file", lambda ws: ["report", "tiny", "--out", str(write(ws / "f", "x"))], "--out"),
    Case("report-foreign-sqlite", lambda ws: ["report", "tiny", "--storage", f"sqlite:///{foreign_sqlite(ws)}"],
         "not a study database"),
    Case("report-garbage-db", lambda ws: ["report", str(write(ws / "g" / "study.db", b"junk" * 300).parent)],
         "study.db"),
    Case("report-no-such-study", with_study(lambda ws: ["report", "other", "--out", str(ws / "study")]),
         "no study 'other'"),
    Case("report-missing-journal", lambda ws: ["report", "tiny", "--storage", f"journal:///{ws / 'none.log'}"],
         "none.log"),
    # arguments of every command
    Case("run-trials-negative", lambda ws: ["run", "--trials", "-1"], "--trials"),
    Case("run-until-zero", lambda ws: ["run", "--until", "0"], "--until"),
    Case("run-workers-zero", lambda ws: ["run", "--workers", "0"], "--workers"),
    Case("run-heartbeat-zero", lambda ws: ["run", "--heartbeat", "0"], "--heartbeat"),
    Case("run-unknown-option", lambda ws: ["run", "--bogus"], "--bogus"),
    Case("run-jobs-text", lambda ws: ["run", "--jobs", "many"], "--jobs"),
    Case("worker-no-storage", lambda ws: ["worker", "quickstart"], "--storage"),
    Case("worker-negative-id", lambda ws: ["worker", "quickstart", "--storage", "sqlite:///x.db", "--worker-id", "-1"],
         "--worker-id"),
    Case("worker-bad-storage", lambda ws: ["worker", "quickstart", "--storage", "nonsense"], "--storage nonsense"),
    Case("report-no-argument", lambda ws: ["report"], "study"),
    Case("pareto-missing-study", lambda ws: ["pareto", "nosuch", "--out", str(ws / "none")], "study.db"),
    Case("studies-extra-argument", lambda ws: ["studies", "extra"], "extra"),
    Case("studies-out-without-study", lambda ws: ["studies", "--out", str(ws / "adir")], "--out"),
    Case("studies-bad-storage", lambda ws: ["studies", "--storage", "nonsense"], "--storage nonsense"),
    Case("report-file-not-a-study", lambda ws: ["report", "notes.txt"], "notes.txt"),
    Case("specs-extra-argument", lambda ws: ["specs", "extra"], "extra"),
    Case("no-such-command", lambda ws: ["nosuch"], "nosuch"),
    Case("cost-unknown-net", lambda ws: ["cost", "nosuch"], "nosuch"),
    Case("cost-bad-sram", lambda ws: ["cost", "lenet", "--sram", "lots"], "lots"),
    Case("cost-huge-sram", lambda ws: ["cost", "lenet", "--sram", "9" * 400], "size"),
    Case("cost-bad-partition", lambda ws: ["cost", "lenet", "--partition", "1,2"], "partition"),
    Case("cost-bits-zero", lambda ws: ["cost", "lenet", "--bits", "0"], "bits"),
    Case("cost-width-zero", lambda ws: ["cost", "lenet", "--width", "0"], "width"),
    Case("cost-bad-sweep", lambda ws: ["cost", "lenet", "--sweep-sram", "bad"], "sweep"),
    Case("cost-missing-tech", lambda ws: ["cost", "lenet", "--tech", str(ws / "none.toml")], "none.toml"),
    Case("cost-binary-tech", lambda ws: ["cost", "lenet", "--tech", str(write(ws / "t.toml", bytes(range(256))))],
         "t.toml"),
    Case("characterize-no-spec", lambda ws: ["characterize", str(ws / "none.toml")], "none.toml"),
    Case("characterize-bad-bits", lambda ws: ["characterize", "jahier2018-mnist", "--bits", "x"], "--bits"),
    Case("train-incremental-no-point", lambda ws: ["train-incremental", "tann2016-mnist"], "--point"),
    Case("train-incremental-bad-fractions", lambda ws: ["train-incremental", "tann2016-mnist", "--fractions", "a,b"],
         "--fractions"),
    Case("controller-fractional-levels", lambda ws: ["simulate-controller", "tann2016-mnist", "--schedule", "0.5,1"],
         "--schedule"),
    Case("controller-infinite-fraction", lambda ws: ["simulate-controller", "tann2016-mnist", "--fractions", "inf"],
         "--fractions"),
    Case("cache-import-missing", lambda ws: ["cache", "import", str(ws / "none.tar")], "none.tar"),
    Case("cache-import-garbage", lambda ws: ["cache", "import", str(write(ws / "g.tar", b"junk" * 500)),
                                             "--cache-dir", str(ws / "c")], "g.tar"),
    Case("cache-import-escape", lambda ws: ["cache", "import", str(tar_with(ws, "../evil.json", b"{}")),
                                            "--cache-dir", str(ws / "c")], "../evil.json"),
    Case("cache-import-bad-hash", lambda ws: ["cache", "import", str(tar_with(ws, "0" * 24 + ".json",
                                                                                 b'{"sha256": "00"}')),
                                              "--cache-dir", str(ws / "c")], "0" * 24 + ".json"),
    Case("cache-export-to-directory", lambda ws: ["cache", "export", str(ws), "--cache-dir", str(ws)], "FILE"),
    Case("cache-export-no-cache", lambda ws: ["cache", "export", str(ws / "c.tar"), "--cache-dir",
                                              str(ws / "none")], "--cache-dir"),
    # imported logits and labels, ONNX models (library calls)
    Case("logits-nan", api(lambda ws: nets.load_logits(labels_file(
        ws, calib_logits=np.where(LOGITS > 2, np.nan, LOGITS), test_logits=LOGITS))), "calib_logits"),
    Case("logits-1d", api(lambda ws: nets.load_logits(labels_file(ws, calib_logits=LOGITS[:, 0],
                                                                  test_logits=LOGITS))), "calib_logits"),
    Case("logits-missing-split", api(lambda ws: nets.load_logits(labels_file(ws, calib_logits=LOGITS))),
         "test_logits"),
    Case("labels-negative", api(lambda ws: nets.load_labels(labels_file(
        ws, calib_labels=LABELS[:20] - 3, test_labels=LABELS[:20]))), "calib_labels"),
    Case("labels-fractional", api(lambda ws: nets.load_labels(labels_file(
        ws, calib_labels=LABELS[:20] + 0.5, test_labels=LABELS[:20]))), "calib_labels"),
    Case("labels-file-missing", api(lambda ws: nets.load_labels(ws / "none.npz")), "none.npz"),
    Case("onnx-garbage", api(lambda ws: nets.load_onnx(write(ws / "model.onnx", b"\x08\x01garbage" * 50))),
         "model.onnx"),
    Case("onnx-missing", api(lambda ws: nets.load_onnx(ws / "none.onnx")), "none.onnx"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root` (SQLite's -wal/-shm side files excepted)."""
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(root.rglob("*"))
            if path.is_file() and not path.name.endswith(("-wal", "-shm"))}


@pytest.fixture(scope="module")
def study_db(tiny_study: dict) -> Path:
    """The tiny study's database, made by the session fixture."""
    assert tiny_study["first"].exit_code == 0, tiny_study["first"].output
    STUDY_DB[:] = [tiny_study["out"] / "study.db"]
    return STUDY_DB[0]


def test_the_suite_is_large_enough() -> None:
    assert len(CASES) >= 80 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_input(case: Case, study_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    (ws / "adir").mkdir(parents=True)
    monkeypatch.chdir(ws)
    monkeypatch.setenv("DSE_CACHE_DIR", str(ws / "default-cache"))
    (ws / "notes.txt").write_text("a file of the user's, there before the command")
    try:
        argv = case.make(ws)
    except UserError as exc:  # a library call: the error itself is the outcome
        message, code = f"error: {exc}", 2
    else:
        before = _snapshot(ws)
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        code = stopped.value.code
        captured = capsys.readouterr()
        message = captured.err.strip()
        assert _snapshot(ws) == before, "a file changed, or one was created"
        assert "Traceback" not in captured.out + captured.err
    assert code not in (0, None), message
    assert message.startswith("error: ") and "\n" not in message, message
    assert case.message in message, message
