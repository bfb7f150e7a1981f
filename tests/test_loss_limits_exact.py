"""Every place a loss meets a limit compares integer error counts: a point exactly at the budget is within it in every
output, one more error is over it in every output; and no float comparison of a loss with a limit is left in the
code."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import costmodel
from dse import CascadeProblem, StudyResults, TrialResult, headline
from dse.core.results import Certificate, CertifiedPoint, mark
from dse.core.objective import loss_excess
from nets import Variant
from reports import build_report_data

ROOT = Path(__file__).resolve().parents[1]
N, BIG_WRONG, LIMIT_PCT = 5000, 100, 0.3  # 0.3 % of 5,000 rows: 15 extra errors allowed


def _problem(extra: int) -> CascadeProblem:
    """LeNet (big) and mini7 on 5,000 rows per split: the big net is wrong on the first 100 rows; mini7 answers the
    rows whose margin is >= 0.5 and is wrong, where the big net is right, on exactly `extra` of them."""
    big_correct = np.arange(N) >= BIG_WRONG
    little_correct = big_correct.copy()
    little_correct[BIG_WRONG:BIG_WRONG + extra] = False  # answered by mini7 (margin 0.9 below)
    margin = np.where(np.arange(N) < N // 2, 0.9, 0.1).astype(np.float32)
    margins = {split: np.stack([np.full(N, 0.99, np.float32), margin]) for split in ("calib", "test")}
    correct = {split: np.stack([big_correct, little_correct]) for split in ("calib", "test")}
    names = ["lenet", "mini7"]
    return CascadeProblem.from_arrays([Variant(name) for name in names], 0, margins, correct,
                                      costmodel.Accelerator(), costmodel.load_technology())


def _results(extra: int, certified: bool) -> StudyResults:
    """The one-point front of mini7 > lenet at threshold 0.5, as a study reports it (certified or not)."""
    problem = _problem(extra)
    calib, test = (problem.metrics([1, 0], np.array([0.5]), split) for split in ("calib", "test"))
    assert test.extra_errors == extra
    point = TrialResult(0, "mini7 > lenet", (0.5,), {}, calib, test, True, pareto=True)
    if not certified:
        return mark(StudyResults("s", "lenet", LIMIT_PCT, [point], [], [], []))
    proof = CertifiedPoint(0, point.cascade, point.thresholds, LIMIT_PCT, 0.1, N, calib.accuracy_loss_pct,
                           LIMIT_PCT, calib.energy_j, test, 0, calib.energy_saving_pct)
    return mark(StudyResults("s", "lenet", LIMIT_PCT, [point], [], [], [], [proof], {}, (LIMIT_PCT, 0.1),
                             Certificate(LIMIT_PCT, 0.1, N, "0" * 64, 1, (0,), (proof,))))


def _says_over(results: StudyResults) -> list[bool]:
    """Every output's verdict on the one point: headline flag, sentence, JSON, both fronts' flags, the table column,
    and (calibration) the search's constraint."""
    answer = headline(results)
    data = build_report_data(results)
    column = data.pareto_table.columns.index("over the limit on test")
    (point,) = results.pareto
    return [answer.over_limit_on_test, "over the budget" in answer.sentence(), answer.to_json()["over_limit_on_test"],
            *[flag for front in data.fronts for flag in front.over_limit], data.pareto_table.rows[0][column] == "yes",
            loss_excess(point.calib, LIMIT_PCT) > 0]


@pytest.mark.parametrize("certified", [False, True])
def test_exactly_the_allowed_extra_errors_is_within_the_budget_everywhere(certified: bool) -> None:
    at_limit = _results(15, certified)
    assert at_limit.pareto[0].test.accuracy_loss_pct > LIMIT_PCT  # the float loss, 0.30000000000000027, is not
    assert headline(at_limit).choice is not None
    assert not any(_says_over(at_limit))
    assert all(_says_over(_results(16, certified)))


# -- no float comparison of a loss with a limit --------------------------------------------------------------------

LIMIT_WORDS = ("limit", "budget", "alpha", "max_loss", "max_accuracy_loss", "max_drop")
LOSS_WORDS = ("loss", "drop", "accuracy")  # a loss, or the accuracy it is the drop of
COUNT_WORDS = ("allowed", "errors", "worse", "critical")  # integer counts: such a comparison is exact


def _names(node: ast.AST) -> set[str]:
    """Every variable and attribute name in an expression, lower-cased."""
    return {(n.id if isinstance(n, ast.Name) else n.attr).lower() for n in ast.walk(node)
            if isinstance(n, (ast.Name, ast.Attribute))}


def _is_limit(node: ast.AST) -> bool:
    return any(word in name for name in _names(node) for word in LIMIT_WORDS)


def _is_loss(node: ast.AST) -> bool:
    """A loss or an accuracy (`accuracy_loss_pct`, `loss_pct`, `accuracy`, ...), not a limit on one."""
    return any(any(word in name for word in LOSS_WORDS) and not any(word in name for word in LIMIT_WORDS)
               for name in _names(node))


def float_loss_comparisons(source: str) -> list[int]:
    """Lines where an order comparison puts a loss on one side and a limit on the other (heuristic, by name)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for (left, right), op in zip(zip(operands, operands[1:]), node.ops):
            counted = any(word in name for name in _names(left) | _names(right) for word in COUNT_WORDS)
            if isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) and not counted and (
                    (_is_loss(left) and _is_limit(right)) or (_is_limit(left) and _is_loss(right))):
                lines.append(node.lineno)
    return lines


OLD_CODE = [  # as they were before the comparisons went to integer counts
    "over = self.choice is not None and limit is not None and self.choice.test.accuracy_loss_pct > limit",
    "flags = [limit is not None and getattr(t, split).accuracy_loss_pct > limit for t in pareto]",
    'column = ["yes" if m.accuracy_loss_pct > limit else "" for m in test]',
    "feasible = [p for p in points if p.accuracy_loss_pct <= max_loss_pct + 1e-12]",
    "meets = best.loss_pct <= MAX_LOSS_PCT",
    "feasible = np.flatnonzero(accuracy >= reference_accuracy - max_drop_pct / 100 - 1e-12)",
]


@pytest.mark.parametrize("line", OLD_CODE)
def test_the_scan_catches_float_comparisons_of_losses_with_limits(line: str) -> None:
    assert float_loss_comparisons(line) == [1]


def test_the_scan_passes_integer_and_unrelated_comparisons() -> None:
    fine = ["ok = metrics.extra_errors <= allowed_errors(limit_pct, metrics.samples)",
            "dominated = t.calib.accuracy_loss_pct < point.calib.accuracy_loss_pct",
            "valid = 0 <= spec.max_accuracy_loss_pct <= 100"]
    assert [float_loss_comparisons(line) for line in fine] == [[], [], []]


def test_no_float_comparison_of_a_loss_with_a_limit_in_the_code() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for folder in ("dse", "reports", "nets", "costmodel", "benchmarks")
             for path in sorted((ROOT / folder).rglob("*.py")) for line in float_loss_comparisons(path.read_text())]
    assert found == []
