"""Vectorised cascade evaluation over cached per-sample margins (pure numpy, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CascadeResult:
    """Outcome of B threshold vectors on one cascade (arrays of length B, or (B, N) for `exit_stage`)."""

    exit_stage: np.ndarray  # (B, N) index of the stage that answered each sample
    accuracy: np.ndarray  # (B,)
    energy_pj: np.ndarray  # (B,) mean per inference
    latency_s: np.ndarray  # (B,) mean per inference
    reach_fraction: np.ndarray  # (B, S) fraction of samples that ran each stage


def exit_stages(margins: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """First stage whose margin reaches its threshold; the last stage always answers.

    margins: (S, N); thresholds: (B, S-1). Returns (B, N) int stage indices.
    """
    n_stages = margins.shape[0]
    passes = margins[None, :-1, :] >= thresholds[:, :, None]  # (B, S-1, N)
    answered = np.full((thresholds.shape[0], margins.shape[1]), n_stages - 1, dtype=np.int64)
    if n_stages > 1:
        any_pass = passes.any(axis=1)
        first = passes.argmax(axis=1)
        answered = np.where(any_pass, first, answered)
    return answered


def evaluate_cascade(margins: np.ndarray, correct: np.ndarray, energy_pj: np.ndarray, latency_s: np.ndarray,
                     thresholds: np.ndarray) -> CascadeResult:
    """Accuracy and expected energy/latency of a cascade for a batch of threshold vectors.

    margins, correct: (S, N) per stage and sample. energy_pj, latency_s: (S,) per-stage cost, or (S, N)
    per-sample costs. A sample answered at stage k pays the cost of stages 0..k. thresholds: (B, S-1)
    or (S-1,).
    """
    margins = np.asarray(margins)
    thresholds = np.atleast_2d(np.asarray(thresholds, dtype=np.float64))
    n_stages, n_samples = margins.shape
    if thresholds.shape[1] != n_stages - 1:
        raise ValueError(f"need {n_stages - 1} thresholds per vector for {n_stages} stages, got {thresholds.shape[1]}")
    answered = exit_stages(margins, thresholds)
    sample_index = np.arange(n_samples)
    accuracy = np.asarray(correct)[answered, sample_index].mean(axis=1)
    reach = (answered[:, None, :] >= np.arange(n_stages)[None, :, None]).mean(axis=2)  # (B, S)
    return CascadeResult(answered, accuracy, _expected_cost(energy_pj, answered, reach),
                         _expected_cost(latency_s, answered, reach), reach)


def _expected_cost(cost: np.ndarray, answered: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Mean cumulative cost of the stages each sample ran."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim == 1:
        return reach @ cost
    cumulative = np.cumsum(cost, axis=0)  # (S, N)
    return cumulative[answered, np.arange(answered.shape[1])].mean(axis=1)


def reference_cascade(margins: np.ndarray, correct: np.ndarray, energy_pj: np.ndarray,
                      thresholds: np.ndarray) -> tuple[float, float]:
    """Slow per-sample reference for one threshold vector: (accuracy, mean energy). For tests."""
    n_stages, n_samples = margins.shape
    energy_pj = np.asarray(energy_pj, dtype=np.float64)
    per_sample = energy_pj if energy_pj.ndim == 2 else np.repeat(energy_pj[:, None], n_samples, axis=1)
    hits, total = 0, 0.0
    for i in range(n_samples):
        for stage in range(n_stages):
            total += per_sample[stage, i]
            if stage == n_stages - 1 or margins[stage, i] >= thresholds[stage]:
                hits += bool(correct[stage, i])
                break
    return hits / n_samples, total / n_samples
