"""Parameter importances: the exact functional ANOVA on a full grid against a slow, obvious reference, and the
choice between it and Optuna's fANOVA (which the tiny study, with sampled float thresholds, exercises)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import optuna
import pytest

from reports._anova import full_grid, main_effect_shares
from reports._search import EXACT, search_data


def reference_shares(grid: np.ndarray) -> list[float]:
    """Main-effect variance over total variance, cell by cell: for each parameter and each of its values, the mean
    of the cells holding that value, less the grand mean, squared, averaged over the values."""
    cells = list(itertools.product(*(range(n) for n in grid.shape)))
    mean = sum(grid[c] for c in cells) / len(cells)
    total = sum((grid[c] - mean) ** 2 for c in cells) / len(cells)
    shares = []
    for axis, size in enumerate(grid.shape):
        effects = []
        for value in range(size):
            holding = [grid[c] for c in cells if c[axis] == value]
            effects.append((sum(holding) / len(holding) - mean) ** 2)
        shares.append(sum(effects) / size / total)
    return shares


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (4, 1, 3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_main_effect_shares_equal_the_reference(shape: tuple[int, ...], seed: int) -> None:
    grid = np.random.default_rng(seed).normal(size=shape) * np.random.default_rng(seed + 9).uniform(1, 1e3)
    np.testing.assert_allclose(main_effect_shares(grid), reference_shares(grid), rtol=1e-10, atol=1e-14)


def test_main_effect_shares_of_additive_and_pure_interaction_grids() -> None:
    a, b = np.array([0.0, 1.0, 5.0]), np.array([2.0, -2.0])
    additive = main_effect_shares(a[:, None] + b[None, :])
    assert additive.sum() == pytest.approx(1.0)
    assert additive[0] / additive[1] == pytest.approx(a.var() / b.var())
    np.testing.assert_allclose(main_effect_shares(np.array([[1.0, -1.0], [-1.0, 1.0]])), [0.0, 0.0], atol=1e-15)
    assert main_effect_shares(np.full((2, 3), 4.2)).tolist() == [0.0, 0.0]


def _study(params: list[dict], value: callable) -> optuna.Study:
    """An in-memory study whose trials run the given parameters (categorical `a`, integer `b`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"])
    with warnings.catch_warnings():  # experimental since 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["energy_pj", "accuracy_loss_pct"])
    for p in params:
        study.enqueue_trial(p)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        a, b = trial.suggest_categorical("a", ["x", "y", "z"]), trial.suggest_int("b", 1, 2)
        return value(a, b), float(b)

    study.optimize(objective, n_trials=len(params))
    return study


GRID = [{"a": a, "b": b} for a in "xyz" for b in (1, 2)]
ENERGY = {"x": 1.0, "y": 4.0, "z": 10.0}


def test_full_grid_averages_repeated_cells_and_needs_every_combination() -> None:
    study = _study(GRID + [{"a": "x", "b": 1}], lambda a, b: ENERGY[a] * b)
    trials = study.trials
    energy = [t.values[0] for t in trials]
    energy[-1] = 3.0  # the repeated cell (x, 1) holds 1.0 and 3.0
    grid = full_grid(trials, ["a", "b"], energy)
    assert grid is not None and grid.tolist() == [[2.0, 2.0], [4.0, 8.0], [10.0, 20.0]]
    assert full_grid(trials[1:6], ["a", "b"], energy[1:6]) is None  # (x, 1) never ran


def test_an_enumerated_study_gets_exact_importances() -> None:
    study = _study(GRID, lambda a, b: ENERGY[a] * b)
    search = search_data(study)
    assert search.importance_method == EXACT
    shares = main_effect_shares(np.array([[ENERGY[a] * b for b in (1, 2)] for a in "xyz"]))
    assert search.importances["energy_pj"] == pytest.approx({"a": shares[0] / shares.sum(),
                                                             "b": shares[1] / shares.sum()})
    assert list(search.importances["energy_pj"]) == ["a", "b"]  # most important first, as Optuna orders them
    assert search.importances["accuracy_loss_pct"] == {"b": 1.0, "a": 0.0}  # loss = b exactly


def test_a_constant_objective_is_left_out_and_the_others_keep_their_values() -> None:
    study = _study(GRID, lambda a, b: 7.0)  # energy constant; loss = b
    search = search_data(study)
    assert search.importance_method == EXACT
    assert search.importances == {"accuracy_loss_pct": {"b": 1.0, "a": 0.0}}
