"""Model-zoo cascades ([little] max_stages, alone): a hand-built zoo where a 3-model cascade strictly beats every
2-model cascade at the same budget, found by the tool, its front checked against a brute force over thresholds."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from dse import SpecError, load_problem, parse_spec, search_study
from dse.core.readback import trial_results
from dse.mechanisms.big_little import chains

CLASSES = 4
PRICES_J = {"cheap": 1e-3, "mid": 3e-3, "big": 10e-3}


def logits_for(truth: np.ndarray, right: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """Logits answering the true class where `right` (else the next class), confidently where `sure`."""
    answer = np.where(right, truth, (truth + 1) % CLASSES)
    rows = np.zeros((len(truth), CLASSES))
    rows[np.arange(len(truth)), answer] = np.where(sure, 6.0, 0.4) + np.linspace(0, 0.3, len(truth))
    return rows


def write_zoo(root: Path, samples: int = 40) -> None:
    """Three kinds of samples, in shares 1/2, 3/10, 1/5: easy (the cheap model is right and sure), medium (only the
    mid and big models are right; the mid one is sure) and hard (only the big model is right; nobody else is sure)."""
    rng = np.random.default_rng(3)
    labels = {}
    for split in ("calib", "test"):
        truth = rng.integers(0, CLASSES, samples)
        kind = np.repeat([0, 1, 2], [samples // 2, samples * 3 // 10, samples - samples // 2 - samples * 3 // 10])
        labels[f"{split}_labels"] = truth
        for name, right, sure in (("cheap", kind == 0, kind == 0), ("mid", kind <= 1, kind <= 1),
                                  ("big", np.ones(samples, bool), np.ones(samples, bool))):
            path = root / f"{name}.npz"
            old = dict(np.load(path)) if path.exists() else {}
            np.savez(path, **old, **{f"{split}_logits": logits_for(truth, right, sure)})
    np.savez(root / "labels.npz", **labels)


def spec(root: Path, little: str = "", budget: str = "max_accuracy_loss_pct = 0.0") -> str:
    models = "".join(f'[models.{name}]\nlogits = "{root / name}.npz"\nenergy_j = {price}\n'
                     for name, price in PRICES_J.items())
    return (f'version = 2\nname = "zoo"\n[data]\ndataset = "labels"\npath = "{root / "labels.npz"}"\n[nets]\n'
            f'big = "big"\n[little]\nnets = ["mid", "cheap"]\n{little}\n[search]\nn_trials = 20\n{budget}\n'
            f'loss_guarantee = false\n{models}')  # hand-built rows: the fronts are the point, not a certificate


def brute_front(confidence: np.ndarray, correct: np.ndarray, prices: list[float]) -> set[tuple[float, int]]:
    """(mean energy, errors) of the Pareto front over every pair of thresholds, one sample at a time."""
    n = confidence.shape[1]
    points = set()
    for t0, t1 in itertools.product(*[sorted(set(confidence[k].tolist())) + [np.inf] for k in (0, 1)]):
        energy, errors = 0.0, 0
        for i in range(n):
            for stage, threshold in enumerate((t0, t1, -np.inf)):
                energy += prices[stage]
                if confidence[stage, i] >= threshold:
                    errors += not correct[stage, i]
                    break
        points.add((round(energy / n, 9), errors))
    return {p for p in points if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)}


def test_a_three_model_cascade_beats_every_two_model_one_and_its_front_is_the_brute_force_one(tmp_path: Path) -> None:
    write_zoo(tmp_path)
    study_spec = parse_spec(spec(tmp_path), str(tmp_path / "zoo.toml"))
    problem, _ = load_problem(study_spec, str(tmp_path / "cache"), n_jobs=1, log=lambda _: None)
    assert chains(study_spec, study_spec.section("little")) == ["cheap", "mid", "cheap>mid", "cheap alone",
                                                               "mid alone"]  # cheapest first, whatever the list order
    points = [p for p in trial_results(search_study(problem, study_spec, 20)) if p.feasible]
    assert {p.cascade for p in points} >= {"cheap > mid > big", "cheap > big", "mid > big"}
    best = min(points, key=lambda p: p.calib.energy_j)
    best_two = min((p for p in points if len(p.stages) <= 2), key=lambda p: p.calib.energy_j)
    assert best.cascade == "cheap > mid > big" and best.calib.energy_j < best_two.calib.energy_j - 1e-6
    assert best.calib.extra_errors <= 0
    stages = [problem.index(name) for name in ("cheap", "mid", "big")]
    thresholds = problem.threshold_front(stages)
    metrics = problem.point_metrics(stages, thresholds, "calib")
    got = {(round(m.energy_j, 9), m.errors) for m in metrics}
    assert got == brute_front(problem.margin["calib"][stages], problem.correct["calib"][stages],
                              list(PRICES_J.values()))
    reach = best.breakdown["calib"].stage_reach  # every sample runs the cheap model, half of them the mid one...
    assert reach[0] == 1.0 and reach[0] > reach[1] > reach[2] > 0


def test_a_little_net_alone_is_recommended_when_it_meets_the_budget(tmp_path: Path) -> None:
    write_zoo(tmp_path)
    study_spec = parse_spec(spec(tmp_path, budget="max_accuracy_loss_pct = 60.0"), str(tmp_path / "zoo.toml"))
    problem, _ = load_problem(study_spec, str(tmp_path / "cache"), n_jobs=1, log=lambda _: None)
    points = [p for p in trial_results(search_study(problem, study_spec, 20)) if p.pareto]
    assert min(points, key=lambda p: p.calib.energy_j).cascade == "cheap"  # the cheap model alone, no big net
    without = parse_spec(spec(tmp_path, "alone = false\nmax_stages = 2", "max_accuracy_loss_pct = 60.0"), "z.toml")
    assert chains(without, without.section("little")) == ["cheap", "mid"]


@pytest.mark.parametrize("line, message", [
    ("max_stages = 1", r"little.max_stages: must be an integer in 2..8"),
    ("max_stages = 9", r"little.max_stages: must be an integer in 2..8 \(models in one chain"),
    ("max_stages = 2.5", r"little.max_stages: expected int, got 2.5"),
    ("alone = 1", r"little.alone: (must be true or false|expected bool)"),
])
def test_bad_zoo_options_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    write_zoo(tmp_path)
    with pytest.raises(SpecError, match=message):
        parse_spec(spec(tmp_path, line), str(tmp_path / "zoo.toml"))
