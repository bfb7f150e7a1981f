"""The score table: every variant's per-sample rows per split, immutable; carving and re-splitting return new tables.

A table holds, per split, the (V, N) margins, correctness and the other exit criteria's confidences, and each
knob variant's executed share of its work per sample. Its arrays are read-only and never shared with a table that
may change them: `carve`, `resplit` and `with_variant` build new arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from dse.core.errors import SpecError
from nets import CRITERIA, SplitScores, Variant, VariantScores

POOL = "calib+test"  # the rows a resplit table draws from: the scored calib rows, then the test rows
OTHER_CRITERIA = tuple(c for c in CRITERIA if c != "margin")  # the confidences kept beside the margins


def frozen(array: np.ndarray) -> np.ndarray:
    """`array` marked read-only (a table's arrays are never written after it is built)."""
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class SplitRows:
    """One split of a table: (V, N) margins, correctness and confidences, per-variant work shares, and where its rows
    come from (`source`: the scored split, or POOL; `rows`: indices into it, None for all of them)."""

    margin: np.ndarray
    correct: np.ndarray
    confidences: Mapping[str, np.ndarray]
    work: Mapping[int, np.ndarray]
    source: str
    rows: np.ndarray | None = None

    @property
    def samples(self) -> int:
        """N, the split's number of samples."""
        return int(self.margin.shape[1])

    def take(self, rows: np.ndarray, source: str | None = None) -> "SplitRows":
        """The same variants on a subset of this split's samples (new arrays)."""
        base = rows if self.rows is None else self.rows[rows]
        return _split(self.margin[:, rows], self.correct[:, rows],
                      {c: v[:, rows] for c, v in self.confidences.items()},
                      {i: w[rows] for i, w in self.work.items()}, source or self.source, base)

    def stacked(self, rows: SplitScores, work: np.ndarray | None) -> "SplitRows":
        """This split with one more variant's rows appended (new arrays)."""
        added = {len(self.margin): work} if work is not None else {}
        return _split(np.vstack([self.margin, rows.margin[None]]), np.vstack([self.correct, rows.correct[None]]),
                      {c: np.vstack([v, rows.confidence(c)[None]]) for c, v in self.confidences.items()},
                      {**self.work, **added}, self.source, self.rows)


def _split(margin: np.ndarray, correct: np.ndarray, confidences: dict[str, np.ndarray], work: dict[int, np.ndarray],
           source: str, rows: np.ndarray | None) -> SplitRows:
    """A SplitRows whose arrays are all read-only."""
    return SplitRows(frozen(margin), frozen(correct), MappingProxyType({c: frozen(v) for c, v in confidences.items()}),
                     MappingProxyType({i: frozen(w) for i, w in work.items()}), source,
                     None if rows is None else frozen(np.array(rows)))  # a copy: the caller's indices stay theirs


def work_share(variant: Variant, rows: SplitScores) -> np.ndarray | None:
    """A knob variant's executed share of its MACs per sample (None for a variant whose work does not vary)."""
    return None if rows.ops is None else rows.ops / variant.architecture.macs(variant.width)


def _pooled(calib: SplitScores, test: SplitScores) -> SplitScores:
    """The scored calib rows followed by the test rows."""
    def joined(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else np.concatenate([a, b])

    return SplitScores(*(np.concatenate([a, b]) for a, b in ((calib.prediction, test.prediction),
                                                             (calib.correct, test.correct),
                                                             (calib.margin, test.margin))),
                       joined(calib.scores, test.scores), joined(calib.ops, test.ops),
                       {c: np.concatenate([calib.confidence(c), test.confidence(c)]) for c in OTHER_CRITERIA})


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Per-sample rows of `variants` on every split, aligned with them; `applied`: per variant, the transforms its
    scoring applied (what pricing must apply too)."""

    variants: tuple[Variant, ...]
    splits: Mapping[str, SplitRows]
    applied: tuple[tuple[str, ...], ...] = ()
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(variant.name for variant in self.variants))
        object.__setattr__(self, "splits", MappingProxyType(dict(self.splits)))

    @classmethod
    def from_scores(cls, scores: list[VariantScores]) -> "ScoreTable":
        """Stack per-variant rows into (V, N) arrays per scored split."""
        splits = {}
        for split in scores[0].splits:
            rows = [s.splits[split] for s in scores]
            work = {i: w for i, s in enumerate(scores) if (w := work_share(s.variant, rows[i])) is not None}
            splits[split] = _split(np.stack([r.margin for r in rows]), np.stack([r.correct for r in rows]),
                                   {c: np.stack([r.confidence(c) for r in rows]) for c in OTHER_CRITERIA}, work,
                                   split, None)
        return cls(tuple(s.variant for s in scores), splits, tuple(s.applied for s in scores))

    @classmethod
    def from_arrays(cls, variants: list[Variant], margin: Mapping[str, np.ndarray], correct: Mapping[str, np.ndarray],
                    work: Mapping[str, Mapping[int, np.ndarray]] | None = None,
                    confidences: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> "ScoreTable":
        """A table from (V, N) arrays per split (copied): margins, correctness, optionally the executed work share
        of knob variants and other criteria's confidences."""
        splits = {split: _split(np.array(margin[split]), np.array(correct[split], dtype=bool),
                                {c: np.array(v) for c, v in (confidences or {}).get(split, {}).items()},
                                {i: np.array(w) for i, w in (work or {}).get(split, {}).items()}, split, None)
                  for split in margin}
        return cls(tuple(variants), splits, tuple(() for _ in variants))

    def index(self, name: str) -> int:
        """Position of the variant called `name`."""
        return self.names.index(name)

    def confidence(self, criterion: str, split: str) -> np.ndarray:
        """(V, N) per-sample confidence of every variant under an exit criterion."""
        rows = self.splits[split]
        return rows.margin if criterion == "margin" else rows.confidences[criterion]

    def stage_confidence(self, stages: list[int], criterion: str, split: str) -> np.ndarray:
        """(S, N) confidence of each stage under `criterion`, or under its own when `criterion` lists one per stage
        ('/'-joined, e.g. 'entropy/margin'; stages past the list take the last)."""
        parts = criterion.split("/")
        if len(parts) == 1:
            return self.confidence(criterion, split)[stages]
        return np.stack([self.confidence(parts[min(i, len(parts) - 1)], split)[stage]
                         for i, stage in enumerate(stages)])

    def rows_of(self, scores: VariantScores, split: str) -> SplitScores:
        """A variant's scored rows of one of this table's splits (a carved or re-drawn split takes its rows)."""
        part = self.splits[split]
        if not part.source:
            raise KeyError(f"split '{split}' was re-drawn from carved rows: it cannot take more variants")
        scored = scores.splits[part.source] if part.source != POOL else _pooled(scores.splits["calib"],
                                                                               scores.splits["test"])
        return scored if part.rows is None else scored.take(part.rows)

    def with_variant(self, scores: VariantScores) -> "ScoreTable":
        """A new table with one more variant, its rows taken the way each split takes them."""
        splits = {}
        for split, part in self.splits.items():
            rows = self.rows_of(scores, split)
            splits[split] = part.stacked(rows, work_share(scores.variant, rows))
        return ScoreTable((*self.variants, scores.variant), splits, (*self.applied, scores.applied))

    def carve(self, name: str, fraction: float, seed: int) -> "ScoreTable":
        """A new table with a seeded random `fraction` of the calibration rows moved to a new split `name`."""
        n = self.splits["calib"].samples
        order = np.random.default_rng(seed).permutation(n)
        cut = n - round(fraction * n)
        if not 0 < cut < n:
            raise SpecError(f"carving {fraction:g} of {n} calibration rows leaves one part empty")
        keep, aside = np.sort(order[:cut]), np.sort(order[cut:])
        calib = self.splits["calib"]
        return ScoreTable(self.variants, {**self.splits, "calib": calib.take(keep), name: calib.take(aside)},
                          self.applied)

    def resplit(self, calib: np.ndarray, test: np.ndarray) -> "ScoreTable":
        """A new table whose calib and test rows are re-drawn from the pooled calib+test samples (indices into the
        pool)."""
        a, b = self.splits["calib"], self.splits["test"]
        # a carved table's rows are not re-drawn from the scored ones: it takes no more variants ("" has no rows)
        source = POOL if a.rows is None and b.rows is None and (a.source, b.source) == ("calib", "test") else ""
        pool = _split(np.concatenate([a.margin, b.margin], axis=1), np.concatenate([a.correct, b.correct], axis=1),
                      {c: np.concatenate([v, b.confidences[c]], axis=1) for c, v in a.confidences.items()},
                      {i: np.concatenate([w, b.work[i]]) for i, w in a.work.items()}, source, None)
        return ScoreTable(self.variants, {"calib": pool.take(calib), "test": pool.take(test)}, self.applied)
