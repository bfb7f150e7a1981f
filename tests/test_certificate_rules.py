"""The rules that keep the certificate valid: nothing fitted on the certification rows, one look at them per study.

The synthetic tests draw many certification sets from a known population and count how often a certified point's
risk (its expected loss on that population) is above the budget: at most delta under the rules, clearly more when
a range is fitted on the certification rows or when a resumed study re-certifies on rows it has looked at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dse
from dse.risk import certifies
from nets import range_images

ALPHA_PCT, DELTA = 1.0, 0.1
ROWS, RESAMPLES, CHOICES = 1000, 300, 20
P_WORSE, P_BETTER = 0.02, 0.01  # every choice's risk: 2 % - 1 % = 1 % = alpha, so certifying any is a violation


def _losses(rng: np.random.Generator, choices: int) -> tuple[np.ndarray, np.ndarray]:
    """Per choice (e.g. an activation range of a quantized variant, or a cascade found by a resumed search), its
    worse and better counts on ROWS fresh rows: each row worse than the reference with P_WORSE, better with
    P_BETTER, independently across choices."""
    u = rng.random((choices, ROWS))
    return (u < P_WORSE).sum(axis=1), ((u >= P_WORSE) & (u < P_WORSE + P_BETTER)).sum(axis=1)


def _certified(worse: int, better: int) -> bool:
    return certifies(int(worse), int(better), ROWS, ALPHA_PCT, DELTA)


def _violation_rates(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    counts = {"rule": 0, "fitted on certification rows": 0, "re-certified on looked-at rows": 0}
    for _ in range(RESAMPLES):
        fit_worse, fit_better = _losses(rng, CHOICES)  # rows the choice is fitted on (training rows)
        worse, better = _losses(rng, CHOICES)  # the certification rows
        fitted = int(np.argmin(fit_worse - fit_better))  # the range that looks best where it is fitted
        counts["rule"] += _certified(worse[fitted], better[fitted])
        leaked = int(np.argmin(worse - better))  # the range fitted on the certification rows themselves
        counts["fitted on certification rows"] += _certified(worse[leaked], better[leaked])
        # a study resumed CHOICES times, each run's new front certified again on the same rows: the headline
        # takes whichever look certified
        counts["re-certified on looked-at rows"] += any(_certified(w, b) for w, b in zip(worse, better))
    return {name: count / RESAMPLES for name, count in counts.items()}


def test_the_certificate_holds_under_the_rules_and_fails_without_them() -> None:
    rates = _violation_rates(seed=1)
    tolerance = 3 * np.sqrt(DELTA * (1 - DELTA) / RESAMPLES)
    assert rates["rule"] <= DELTA + tolerance, rates
    assert rates["fitted on certification rows"] >= 2 * DELTA, rates
    assert rates["re-certified on looked-at rows"] >= 2 * DELTA, rates


def test_ranges_are_fitted_on_training_images_only(mnist5k) -> None:  # type: ignore[no-untyped-def]
    images = range_images(mnist5k)
    train = mnist5k.split("train")[0]
    assert len(images) == len(mnist5k.labels["calib"]) and np.array_equal(images, train[:len(images)])
    for split in ("calib", "test"):
        other = {row.tobytes() for row in mnist5k.split(split)[0]}
        assert not any(row.tobytes() in other for row in images)


GUARANTEE_SPEC = '[search]\nmax_accuracy_loss_pct = 3.0\nn_trials = 4\nsampler = "random"\nenumerate_limit = 0\n'


def test_a_resumed_study_keeps_its_certificate(tiny_study: dict, tmp_path: Path) -> None:
    text = tiny_study["spec"].read_text().split("[search]")[0].replace('name = "tiny"', 'name = "resumed"')
    spec = dse.parse_spec(text + GUARANTEE_SPEC, "r.toml")
    assert spec.search.guarantee is not None and spec.search.guarantee.delta == DELTA  # on by default
    problem, _ = dse.load_problem(spec, str(tiny_study["root"] / "cache"), n_jobs=1, log=lambda _: None)
    study = dse.open_study(spec, dse.open_storage(dse.sqlite_url(tmp_path / "s.db")))
    dse.run_search(study, problem, spec, 4, progress=False)
    first = dse.study_results(study).certificate
    assert first is not None and first.trials == 4 and first.rows == len(problem.rows["certify"][1])
    dse.run_search(study, problem, spec, 4, progress=False)
    again = dse.study_results(study)
    assert again.certificate == first  # kept, not recomputed on rows already looked at
    assert "after 4 trials" in again.certificate_note
    answer = dse.headline(again).to_json()  # optuna-dashboard lists the same recommendation as a study attribute
    shown = study.user_attrs["recommended"]
    assert {key: shown[key] for key in ("certified", "trial", "point", "cascade")} == {
        key: answer[key] for key in ("certified", "trial", "point", "cascade")}


@pytest.mark.parametrize("search, message", [
    ("max_accuracy_loss_pct = 1.0\nloss_confidence_z = 1.64", r"loss_confidence_z: cannot be combined with "
                                                               r"loss_guarantee, which is on by default"),
    ("max_accuracy_loss_pct = 0.0", r"max_accuracy_loss_pct: a budget of 0.0 cannot be certified"),
    ("loss_guarantee = 3", r"loss_guarantee: expected a table"),
])
def test_guarantee_defaults_and_opt_out_errors(search: str, message: str) -> None:
    with pytest.raises(dse.SpecError, match=message):
        dse.parse_spec(f'version = 2\nname = "g"\n[little]\nnets = ["mini7"]\n[search]\n{search}\n', "g.toml")


def test_opt_out_and_no_budget_are_uncertified() -> None:
    base = 'version = 2\nname = "g"\n[little]\nnets = ["mini7"]\n[search]\n'
    off = dse.parse_spec(base + "max_accuracy_loss_pct = 1.0\nloss_guarantee = false\nloss_confidence_z = 1.64\n", "g")
    assert off.search.guarantee is None and off.search.max_accuracy_loss_pct == 1.0
    assert dse.parse_spec(base, "g").search.guarantee is None  # no budget: nothing to certify
    on = dse.parse_spec(base + "max_accuracy_loss_pct = 1.0\n", "g").search.guarantee
    assert on is not None and (on.alpha_pct, on.delta, on.certify_fraction) == (1.0, 0.1, 0.5)


def test_safer_candidates_run_from_the_front_to_everything_passed_on() -> None:
    import costmodel
    from nets import Variant

    rng = np.random.default_rng(3)
    names = ["lenet", "mini7", "mini8"]
    margin = {s: rng.random((3, 400)).astype(np.float32) for s in ("calib", "certify")}
    correct = {s: rng.random((3, 400)) < 0.9 for s in ("calib", "certify")}
    problem = dse.CascadeProblem.from_arrays([Variant(n) for n in names], 0, margin, correct,
                                             costmodel.Accelerator(), costmodel.load_technology())
    front = np.array([[0.2, 0.3], [0.5, 0.1]])
    safer = problem.safer_thresholds([2, 1, 0], front)
    confidence = margin["calib"][[2, 1]]
    shares = np.array([[(confidence[i] < t[i]).mean() for i in range(2)] for t in safer])
    passed = np.array([[(confidence[i] < t[i]).mean() for i in range(2)] for t in front])
    start = passed[np.argmax(passed.sum(axis=1))]  # the front vector passing most samples on
    assert len(safer) == 16 and np.all(shares >= start - 1 / 400) and np.all(np.diff(shares, axis=0) >= 0)
    assert np.all(shares[-1] == 1.0)  # the last passes every sample on to the last stage
    zeroed = dse.CascadeProblem.from_arrays([Variant(n) for n in names], 0, {**margin, "certify": 0 * margin["certify"]},
                                            correct, costmodel.Accelerator(), costmodel.load_technology())
    assert np.array_equal(zeroed.safer_thresholds([2, 1, 0], front), safer)  # the certification rows play no part
