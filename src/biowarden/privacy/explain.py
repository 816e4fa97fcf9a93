"""Per-record explanations: the smallest sets of a record's QI values that already make it unique.

For a risky record this says what to generalise: a minimal sample unique (MSU, as in SUDA) is a subset
of the record's quasi-identifier values that no other record shares, none of whose proper subsets is
unique. Computed on the histogram: for every subset of QIs (up to ``max_size``), the histogram is
projected and re-aggregated once, and every combination that is unique on the subset is marked.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biowarden.privacy.data import Histogram


@dataclass(frozen=True)
class Explanation:
    combination: int  # histogram row
    values: dict[str, str]
    minimal_unique_sets: list[list[str]]  # each a list of QI names, smallest first

    def to_dict(self) -> dict:
        return {"values": self.values, "minimal_unique_sets": self.minimal_unique_sets}


def _unique_on(hist: Histogram, cols: Sequence[int]) -> np.ndarray:
    """Boolean per histogram row: its projection on ``cols`` occurs in exactly one record."""
    key = np.zeros(hist.num_classes, dtype=np.int64)
    for i in cols:
        key = key * max(len(hist.dictionaries[i]), 1) + hist.codes[:, i]
    _, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse, weights=hist.counts)
    return total[inverse] == 1


def explain(
    hist: Histogram, combinations: Sequence[int] | None = None, max_size: int | None = None, limit: int = 100
) -> list[Explanation]:
    """Minimal unique QI subsets for the given histogram rows (default: the sample-unique ones, at most
    ``limit``). Subsets are searched by increasing size, up to ``max_size`` QIs (default: all)."""
    q = len(hist.qis)
    if q > 20:
        raise ValueError("explanations are limited to 20 quasi-identifiers")
    if combinations is None:
        combinations = np.flatnonzero(hist.counts == 1)[:limit].tolist()
    targets = np.asarray(list(combinations), dtype=np.int64)
    if len(targets) and (targets.min() < 0 or targets.max() >= hist.num_classes):
        raise IndexError("combination index out of range")
    max_size = q if max_size is None else min(max_size, q)
    found: dict[int, list[tuple[int, ...]]] = {int(t): [] for t in targets}
    for size in range(1, max_size + 1):
        for cols in itertools.combinations(range(q), size):
            unique = _unique_on(hist, cols)[targets]
            if not unique.any():
                continue
            mask = sum(1 << c for c in cols)
            for t in targets[unique]:
                sets = found[int(t)]
                # minimal: no already-found (smaller) unique set is contained in this one
                if not any((m & mask) == m for m in (sum(1 << c for c in s) for s in sets)):
                    sets.append(cols)
    return [
        Explanation(int(t), hist.values(int(t)), [[hist.qis[c] for c in s] for s in found[int(t)]]) for t in targets
    ]


def explain_records(hist: Histogram, records: Sequence[int], max_size: int | None = None) -> list[Explanation]:
    """Explanations for record indices (needs a histogram built from rows)."""
    if hist.row_class is None:
        raise ValueError("record explanations need a histogram built from the table's rows")
    return explain(hist, [int(hist.row_class[r]) for r in records], max_size=max_size)
