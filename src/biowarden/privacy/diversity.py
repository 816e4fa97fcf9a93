"""l-diversity and t-closeness over a sensitive attribute, single- or set-valued.

The sensitive values are held as sparse (histogram row, value, count) triples, so that a transformation
that merges histogram rows into classes only re-aggregates these triples. A set-valued attribute (an
Arrow list column such as a participant's ICD-10 diagnoses) contributes each of a record's items to its
class's distribution (an empty set contributes the item ``(none)``); the class's distribution is then
over items, normalised by the class's item count.

- distinct l-diversity: at least l distinct values per class;
- entropy l-diversity: entropy of the class distribution >= log(l);
- recursive (c,l)-diversity: r_1 < c * (r_l + ... + r_m) with r_i the i-th largest count;
- t-closeness: earth mover's distance between the class and the whole table <= t, with the equal
  distance (half the L1 distance, for categorical values) or the ordered distance (values in numeric or
  lexical order: (1/(m-1)) * sum_i |cumulative difference up to i|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biowarden.privacy.data import as_strings

if TYPE_CHECKING:
    from biowarden.privacy.anonymise import Criteria

NONE_ITEM = "(none)"


def _order(values: list[str]) -> np.ndarray:
    """Rank of each value in numeric order when all are numbers, else lexical order."""
    try:
        keys = [float(v) for v in values]
    except ValueError:
        keys = values  # type: ignore[assignment]
    order = sorted(range(len(values)), key=lambda i: keys[i])
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return rank


@dataclass
class SensitiveData:
    """Sparse sensitive-value counts per histogram row."""

    name: str
    values: list[str]
    row: np.ndarray  # histogram row of each triple
    val: np.ndarray  # value code of each triple
    cnt: np.ndarray  # count of each triple
    set_valued: bool = False

    @property
    def num_values(self) -> int:
        return len(self.values)

    @property
    def overall(self) -> np.ndarray:
        tot = np.bincount(self.val, weights=self.cnt, minlength=self.num_values)
        return tot / tot.sum()

    @classmethod
    def from_column(
        cls, column: pa.ChunkedArray | pa.Array, row_class: np.ndarray, num_rows: int, name: str = ""
    ) -> SensitiveData:
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        set_valued = pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
        if set_valued:
            lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
            flat = pc.list_flatten(arr)
            parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
            empty = np.flatnonzero(lengths == 0)
            items = pa.concat_arrays([as_strings(flat), pa.array([NONE_ITEM] * len(empty), pa.string())])
            owner = np.concatenate([parents, empty]).astype(np.int64)
        else:
            items = as_strings(arr)
            owner = np.arange(len(arr), dtype=np.int64)
        enc = pc.dictionary_encode(items)
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        values = enc.dictionary.to_pylist()
        v = len(values)
        key = row_class[owner].astype(np.int64) * v + codes
        uniq, counts = np.unique(key, return_counts=True)
        return cls(name, values, uniq // v, uniq % v, counts.astype(np.int64), set_valued)


def class_pairs(sens: SensitiveData, cls: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class, value, count) triples, sorted by class, for a row -> class map."""
    v = sens.num_values
    key = cls[sens.row] * v + sens.val
    space = n_classes * v
    if space <= max(4 * len(key), 1 << 16):
        tot = np.bincount(key, weights=sens.cnt, minlength=space)
        present = np.flatnonzero(tot)
        return present // v, present % v, tot[present]
    uniq, inverse = np.unique(key, return_inverse=True)
    tot = np.bincount(inverse.reshape(-1), weights=sens.cnt, minlength=len(uniq))
    return uniq // v, uniq % v, tot


def distinct_l(c: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(c, minlength=n_classes)


def entropy_l(c: np.ndarray, w: np.ndarray, n_classes: int) -> np.ndarray:
    """exp(entropy) per class (the largest l for which the class is entropy l-diverse)."""
    tot = np.bincount(c, weights=w, minlength=n_classes)
    p = w / tot[c]
    h = np.bincount(c, weights=-p * np.log(p), minlength=n_classes)
    return np.exp(h)


def recursive_ok(c: np.ndarray, w: np.ndarray, n_classes: int, cval: float, lval: float) -> np.ndarray:
    """Recursive (c,l)-diversity per class."""
    l_int = math.ceil(lval)
    order = np.lexsort((-w, c))
    cs, ws = c[order], w[order]
    starts = np.searchsorted(cs, np.arange(n_classes))
    rank = np.arange(len(cs)) - starts[cs]
    r1 = np.zeros(n_classes)
    r1[cs[rank == 0]] = ws[rank == 0]
    tail = np.bincount(cs[rank >= l_int - 1], weights=ws[rank >= l_int - 1], minlength=n_classes)
    ndist = np.bincount(cs, minlength=n_classes)
    return (ndist >= l_int) & (r1 < cval * tail)


def t_distance(
    c: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    n_classes: int,
    overall: np.ndarray,
    kind: str,
    values: list[str] | None = None,
) -> np.ndarray:
    """Earth mover's distance of each class's distribution to ``overall``."""
    tot = np.bincount(c, weights=w, minlength=n_classes)
    p = w / tot[c]
    if kind == "equal":
        q = overall[v]
        part = np.bincount(c, weights=np.abs(p - q) - q, minlength=n_classes)
        return np.clip(0.5 * (part + 1.0), 0.0, 1.0)
    m = len(overall)
    if m < 2:
        return np.zeros(n_classes)
    rank = _order(values) if values is not None else np.arange(m)
    out = np.empty(n_classes)
    ordered_overall = np.empty(m)
    ordered_overall[rank] = overall
    chunk = max(1, int(2e7 // m))
    for lo in range(0, n_classes, chunk):
        hi = min(n_classes, lo + chunk)
        sel = (c >= lo) & (c < hi)
        dense = np.zeros((hi - lo, m))
        np.add.at(dense, (c[sel] - lo, rank[v[sel]]), p[sel])
        diff = np.cumsum(dense - ordered_overall, axis=1)
        out[lo:hi] = np.abs(diff[:, :-1]).sum(axis=1) / (m - 1)
    return out


def class_diversity(sens: SensitiveData, cls: np.ndarray, n_classes: int, criteria: Criteria) -> np.ndarray:
    """Boolean per class: the class meets the criteria's l-diversity and t-closeness."""
    c, v, w = class_pairs(sens, cls, n_classes)
    ok = np.ones(n_classes, dtype=bool)
    if criteria.l is not None:
        if criteria.l_variant == "distinct":
            ok &= distinct_l(c, n_classes) >= criteria.l
        elif criteria.l_variant == "entropy":
            ok &= entropy_l(c, w, n_classes) >= criteria.l - 1e-9
        else:
            ok &= recursive_ok(c, w, n_classes, criteria.c, criteria.l)
    if criteria.t is not None:
        ok &= t_distance(c, v, w, n_classes, sens.overall, criteria.t_distance, sens.values) <= criteria.t + 1e-12
    return ok


@dataclass(frozen=True)
class DiversityReport:
    sensitive: str
    set_valued: bool
    distinct_l: int  # smallest number of distinct values in a class
    entropy_l: float  # smallest exp(entropy)
    recursive_c: float  # smallest c for which the data is recursive (c,2)-diverse (inf if impossible)
    t_equal: float  # largest equal-distance EMD
    t_ordered: float  # largest ordered-distance EMD

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        for k, val in d.items():
            if isinstance(val, float) and math.isinf(val):
                d[k] = None
        return d


def measure_diversity(sens: SensitiveData, cls: np.ndarray, n_classes: int) -> DiversityReport:
    """The l-diversity and t-closeness a grouping achieves (the worst class decides)."""
    c, v, w = class_pairs(sens, cls, n_classes)
    dl = distinct_l(c, n_classes)
    el = entropy_l(c, w, n_classes)
    # recursive (c,2): r1 < c * (r2 + ... + rm)  ->  smallest c is max over classes of r1 / tail (+ epsilon)
    order = np.lexsort((-w, c))
    cs, ws = c[order], w[order]
    starts = np.searchsorted(cs, np.arange(n_classes))
    rank = np.arange(len(cs)) - starts[cs]
    r1 = np.zeros(n_classes)
    r1[cs[rank == 0]] = ws[rank == 0]
    tail = np.bincount(cs[rank >= 1], weights=ws[rank >= 1], minlength=n_classes)
    with np.errstate(divide="ignore"):
        ratio = np.where(tail > 0, r1 / np.where(tail > 0, tail, 1), np.inf)
    return DiversityReport(
        sensitive=sens.name,
        set_valued=sens.set_valued,
        distinct_l=int(dl.min()),
        entropy_l=float(el.min()),
        recursive_c=float(ratio.max()),
        t_equal=float(t_distance(c, v, w, n_classes, sens.overall, "equal").max()),
        t_ordered=float(t_distance(c, v, w, n_classes, sens.overall, "ordered", sens.values).max()),
    )
