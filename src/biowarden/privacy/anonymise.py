"""Optimal global recoding with record suppression, searched over the lattice of generalisation levels.

The search works on the histogram of distinct QI combinations: a transformation (one level per QI) maps
every distinct combination to its generalised combination with NumPy indexing, and the counts are
re-aggregated (``bincount`` on a mixed-radix key; when the key space is large, the keys hashed and only the
distinct ones sorted, as ``unique`` would number them). Regrouping is
incremental: generalisation is monotone, so a node's classes are unions of the classes of any finer node;
a node is derived from the cached finer node with the fewest classes by mapping only the changed QIs'
codes up their hierarchies (where a hierarchy is not a tree, from the histogram's rows instead). Records in
classes that fail a per-class criterion (k-anonymity, l-diversity, t-closeness, k-map, highest risk)
are suppressed; a transformation is *anonymous* when at most ``suppression * n`` records are suppressed
and the aggregate criteria (average risk, population uniqueness) hold on what remains.

The optimum is the anonymous transformation of least information loss. Metrics:

- ``loss``: ARX's Loss (Iyengar), generalisation/suppression factor 0.5, geometric-mean aggregate. Per
  QI: the share of the domain covered by each record's generalised value (suppressed records count 1),
  normalised so that level 0 is 0 and ``*`` is 1; aggregate prod(1 + v_i)^(1/q) - 1.
- ``precision``: Sweeney's precision (level / height per record and QI, suppressed 1), arithmetic mean.
- ``discernibility``: sum of squared class sizes, suppressed records cost n each.
- ``aecs``: average equivalence class size (n / classes; suppressed records form one class).

Pruning: (1) every node has a lower bound on its loss (its generalisation-only loss, independent of
grouping, for loss and precision); nodes are visited in increasing bound order and the search stops
when the bound exceeds the best loss found, which is exact. (2) predictive tagging as in Flash/ARX:
when all criteria are monotone (k-anonymity, distinct l-diversity, k-map, highest risk), a node that is
not anonymous makes all its specialisations non-anonymous, so they are never evaluated.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from biowarden.privacy.data import (
    DataError,
    Histogram,
    as_strings,
    histogram_from_table,
    is_set_valued,
    set_codes,
    unique_inverse,
)
from biowarden.privacy.diversity import SensitiveData, class_diversity
from biowarden.privacy.hierarchy import Hierarchy, HierarchyError, SetHierarchy
from biowarden.privacy.population import ClassSizes, population_uniqueness

METRICS = ("loss", "precision", "discernibility", "aecs")


@dataclass(frozen=True)
class Criteria:
    """Privacy criteria; ``None`` switches a criterion off. At least one must be set."""

    k: int | None = None
    l: float | None = None  # noqa: E741 - the criterion's name
    l_variant: str = "distinct"  # distinct | entropy | recursive
    c: float = 2.0  # for recursive (c,l)-diversity
    t: float | None = None
    t_distance: str = "equal"  # equal | ordered
    sensitive: str | None = None
    k_map: int | None = None
    max_average_risk: float | None = None
    max_population_uniqueness: float | None = None
    max_highest_risk: float | None = None
    population: float | None = None

    def __post_init__(self) -> None:
        if all(
            v is None
            for v in (
                self.k,
                self.l,
                self.t,
                self.k_map,
                self.max_average_risk,
                self.max_population_uniqueness,
                self.max_highest_risk,
            )
        ):
            raise ValueError("give at least one privacy criterion (k, l, t, k-map, a risk threshold)")
        if self.k is not None and self.k < 1:
            raise ValueError("k must be at least 1")
        if (self.l is not None or self.t is not None) and not self.sensitive:
            raise ValueError("l-diversity and t-closeness need a sensitive attribute")
        if self.l is not None and self.l < 1:
            raise ValueError("l must be at least 1")
        if self.l_variant not in ("distinct", "entropy", "recursive"):
            raise ValueError(f"unknown l-diversity variant {self.l_variant!r}")
        if self.t is not None and not 0 <= self.t <= 1:
            raise ValueError("t must be in [0, 1]")
        if self.t_distance not in ("equal", "ordered"):
            raise ValueError(f"unknown t-closeness distance {self.t_distance!r}")
        for name in ("max_average_risk", "max_highest_risk", "max_population_uniqueness"):
            v = getattr(self, name)
            if v is not None and not 0 < v <= 1:
                raise ValueError(f"{name.replace('_', ' ')} must be in (0, 1]")
        if (self.k_map is not None or self.max_population_uniqueness is not None) and not self.population:
            raise ValueError("k-map and population uniqueness need the population size")

    @property
    def min_class_size(self) -> int:
        k = self.k or 1
        if self.max_highest_risk is not None:
            k = max(k, math.ceil(1.0 / self.max_highest_risk - 1e-12))
        return k

    @property
    def monotone(self) -> bool:
        """Whether predictive tagging is sound (all criteria monotone under generalisation)."""
        return (
            (self.l is None or self.l_variant == "distinct")
            and self.t is None
            and self.max_average_risk is None
            and self.max_population_uniqueness is None
        )

    def describe(self) -> str:
        parts = []
        if self.min_class_size > 1:
            parts.append(f"k={self.min_class_size}")
        if self.l is not None:
            parts.append(f"{self.l_variant}-l={self.l:g}" + (f" c={self.c:g}" if self.l_variant == "recursive" else ""))
        if self.t is not None:
            parts.append(f"t={self.t:g} ({self.t_distance})")
        if self.k_map is not None:
            parts.append(f"k-map={self.k_map}")
        if self.max_average_risk is not None:
            parts.append(f"average risk<={self.max_average_risk:g}")
        if self.max_population_uniqueness is not None:
            parts.append(f"population uniqueness<={self.max_population_uniqueness:g}")
        return ", ".join(parts)


@dataclass
class NodeResult:
    levels: tuple[int, ...]
    anonymous: bool
    suppressed: int
    classes: int
    loss: float
    utility: dict[str, float]


@dataclass
class AnonymisationResult:
    qis: list[str]
    levels: list[int]
    criteria: Criteria
    metric: str
    suppression_limit: float
    records: int
    suppressed: int
    classes: int
    utility: dict[str, float]
    nodes_total: int
    nodes_evaluated: int
    seconds: float
    found: bool = True
    hierarchies: dict[str, Hierarchy] = field(default_factory=dict, repr=False)
    suppressed_rows: np.ndarray | None = field(default=None, repr=False)  # histogram rows suppressed
    row_class: np.ndarray | None = field(default=None, repr=False)  # each record's histogram row
    kept_class_sizes: np.ndarray | None = field(default=None, repr=False)  # the optimum's classes not suppressed

    @property
    def suppressed_records(self) -> np.ndarray | None:
        """Boolean per record of the searched table: suppressed (None when the search ran on a histogram
        without records)."""
        if self.suppressed_rows is None or self.row_class is None:
            return None
        return self.suppressed_rows[self.row_class]

    def released_class_sizes(self, suppressed_marker: str = "*") -> np.ndarray | None:
        """The sizes of the equivalence classes of the released table (:meth:`apply`), from the search: the
        optimum's classes that are kept, and the suppressed records as one class (every QI the marker).
        None when that cannot be told without the table: when every QI at its level has a label that reads
        as the marker, so a kept class could look like the suppressed records."""
        if not self.found or self.kept_class_sizes is None:
            return None
        levels = zip(self.qis, self.levels, strict=True)
        if all(_may_read_as(self.hierarchies[q], lv, suppressed_marker) for q, lv in levels):
            return None
        sizes = self.kept_class_sizes
        return np.append(sizes, self.suppressed) if self.suppressed else sizes.copy()

    @property
    def transformation(self) -> dict[str, int]:
        return dict(zip(self.qis, self.levels, strict=True))

    def to_dict(self) -> dict:
        return {
            "found": self.found,
            "qis": self.qis,
            "levels": self.levels,
            "transformation": self.transformation,
            "criteria": self.criteria.describe(),
            "metric": self.metric,
            "suppression_limit": self.suppression_limit,
            "records": self.records,
            "suppressed": self.suppressed,
            "classes": self.classes,
            "utility": self.utility,
            "nodes_total": self.nodes_total,
            "nodes_evaluated": self.nodes_evaluated,
            "seconds": self.seconds,
        }

    def apply(self, table: pa.Table, suppressed_marker: str = "*") -> pa.Table:
        """Apply the optimum to the table the search ran on (same rows, same order): the records the search
        suppressed are suppressed (found again from the criteria when the search ran on a histogram)."""
        if not self.found:
            raise ValueError("no transformation satisfies the criteria within the suppression limit")
        suppress = self.suppressed_records
        if suppress is not None and len(suppress) != table.num_rows:
            raise ValueError(f"the search ran on {len(suppress)} records, the table has {table.num_rows}")
        return apply_transformation(
            table,
            self.hierarchies,
            self.levels,
            suppressed_marker,
            criteria=self.criteria,
            qis=self.qis,
            suppress=suppress,
        )


def _may_read_as(h: Hierarchy, level: int, marker: str) -> bool:
    """Whether a value generalised to ``level`` can read as ``marker`` once released: a label that is the
    marker, or (for a set) an element label that is (a one-element list of it reads as a suppressed list)."""
    if level >= h.height - 1:
        return True  # the top: everything reads as the top label, or (for a list) as [marker]
    if isinstance(h, SetHierarchy) and h.element is not None:
        return marker in h.element.labels[level]  # a set's own labels are lists below the top
    return marker in h.labels[level]


class Lattice:
    """The generalisation lattice of a histogram and its hierarchies, with a fast node evaluator."""

    def __init__(
        self,
        hist: Histogram,
        hierarchies: Mapping[str, Hierarchy],
        criteria: Criteria,
        suppression: float,
        sensitive: SensitiveData | None = None,
        cache_bytes: int = 128 << 20,
    ) -> None:
        missing = [q for q in hist.qis if q not in hierarchies]
        if missing:
            raise HierarchyError(f"no hierarchy for quasi-identifier(s): {', '.join(missing)}")
        if not 0 <= suppression <= 1:
            raise ValueError("the suppression limit must be in [0, 1]")
        self.hist, self.criteria, self.sensitive = hist, criteria, sensitive
        self.hier = [hierarchies[q] for q in hist.qis]
        self.q = len(hist.qis)
        self.n = hist.n
        self.counts = hist.counts.astype(np.int64)
        self.max_outliers = math.floor(suppression * self.n + 1e-9)
        self.heights = [h.height for h in self.hier]
        # generalised codes and domain shares per (QI, level), per histogram row
        self.gen: list[list[np.ndarray]] = []
        self.share: list[list[np.ndarray]] = []  # per label: leaves / domain size
        self.nlabels: list[list[int]] = []
        for i, h in enumerate(self.hier):
            rows = h.rows_of(hist.dictionaries[i])[hist.codes[:, i]]
            self.gen.append([h.codes[lv][rows].astype(np.int32) for lv in range(h.height)])
            self.share.append([h.leaves[lv] / h.domain_size for lv in range(h.height)])
            self.nlabels.append([h.num_labels(lv) for lv in range(h.height)])
        # generalisation-only loss per (QI, level): the lower bound's ingredients
        self.gen_loss = np.zeros((self.q, max(self.heights)))
        self.gen_prec = np.zeros((self.q, max(self.heights)))
        self.gen_raw = np.zeros((self.q, max(self.heights)))
        for i, h in enumerate(self.hier):
            d = h.domain_size
            lo = self.n / d
            for lv in range(h.height):
                raw = float((self.counts * self.share[i][lv][self.gen[i][lv]]).sum())
                self.gen_raw[i, lv] = raw
                self.gen_loss[i, lv] = _norm_loss(raw, lo, self.n)
                self.gen_prec[i, lv] = lv / (h.height - 1) if h.height > 1 else 0.0
        # up[i][a, b]: label of level a -> its label at level b (None where the hierarchy is not a tree)
        self.up = [_UpMaps(h) for h in self.hier]
        self.track_rows = sensitive is not None
        self.cache = _GroupCache(self.q, cache_bytes)
        self.root = (0,) * self.q
        # the histogram's rows are distinct combinations and level 0 maps distinct values to distinct rows, so
        # the finest node's classes are the histogram's rows: a node without a cached finer node is grouped
        # from them (the finest node itself is grouped, and cached, when it is evaluated)
        self.root_is_hist = True

    # ------------------------------------------------------------------ nodes
    def nodes(self) -> np.ndarray:
        """Every transformation, in ``itertools.product`` (C) order over the hierarchies' heights."""
        return np.indices(self.heights, dtype=np.int64).reshape(self.q, -1).T.copy()

    def bounds(self, nodes: np.ndarray, metric: str) -> np.ndarray:
        idx = np.arange(self.q)
        if metric == "loss":
            vals = self.gen_loss[idx, nodes]
            return _round(np.exp(np.log1p(vals).mean(axis=1)) - 1.0)
        if metric == "precision":
            return _round(self.gen_prec[idx, nodes].mean(axis=1))
        return np.zeros(len(nodes))

    def group(self, levels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(class of every histogram row, record count of every class) for a transformation."""
        g = self._group_full(tuple(int(x) for x in levels), rows=True)
        return g.rows, g.sizes

    def _group_full(self, levels: tuple[int, ...], rows: bool | None = None) -> _Groups:
        """Group the histogram's rows for a transformation (from scratch)."""
        cols = [self.gen[i][lv] for i, lv in enumerate(levels)]
        radices = [self.nlabels[i][lv] for i, lv in enumerate(levels)]
        codes, sizes, inverse = _regroup(cols, radices, self.counts)
        track = self.track_rows if rows is None else rows
        return _Groups(codes, sizes, inverse if track else None)

    def groups(self, levels: tuple[int, ...]) -> _Groups:
        """The classes of a transformation, derived from the finest cached node below it.

        Generalisation is monotone: the classes of a coarser node are unions of the classes of any finer
        node, so only the finer node's (few) classes are mapped up the changed dimensions and re-counted.
        """
        hit = self.cache.get(levels)
        if hit is not None:
            return hit
        for base_levels, base in self.cache.below(levels):
            maps = []
            for i, (a, b) in enumerate(zip(base_levels, levels, strict=True)):
                maps.append(None if a == b else self.up[i][a, b])
                if a != b and maps[-1] is None:
                    break
            else:
                if base_levels == self.root and self.root_is_hist:
                    g = self._group_full(levels)  # the histogram's own rows: no mapping needed
                    break
                cols = [base.codes[i] if mp is None else mp[base.codes[i]] for i, mp in enumerate(maps)]
                radices = [self.nlabels[i][lv] for i, lv in enumerate(levels)]
                codes, sizes, inverse = _regroup(cols, radices, base.sizes)
                g = _Groups(codes, sizes, inverse[base.rows] if base.rows is not None else None)
                break
        else:
            g = self._group_full(levels)
        self.cache.put(levels, g)
        return g

    def failing_classes(self, cls: np.ndarray | None, sizes: np.ndarray) -> np.ndarray:
        """Boolean per class: the class violates a per-class criterion and must be suppressed."""
        c = self.criteria
        fail = sizes < c.min_class_size
        if c.k_map is not None:
            pi = self.n / float(c.population)
            fail |= np.maximum(sizes, sizes / pi) < c.k_map
        if self.sensitive is not None and cls is not None and (c.l is not None or c.t is not None):
            fail |= ~class_diversity(self.sensitive, cls, len(sizes), c)
        return fail

    def evaluate(self, levels: Sequence[int], metrics: Sequence[str] = METRICS, lazy: bool = False) -> NodeResult:
        """Evaluate a transformation; with ``lazy`` the utility is only computed for anonymous nodes."""
        levels = tuple(int(x) for x in levels)
        g = self.groups(levels)
        sizes = g.sizes
        fail = self.failing_classes(g.rows, sizes)
        suppressed = int(sizes[fail].sum())
        anonymous = suppressed <= self.max_outliers
        if anonymous and (self.criteria.max_average_risk is not None or self.criteria.max_population_uniqueness):
            kept = sizes[~fail]
            c = self.criteria
            if kept.size and c.max_average_risk is not None:
                anonymous = len(kept) / kept.sum() <= c.max_average_risk + 1e-12
            if kept.size and anonymous and c.max_population_uniqueness is not None:
                pu = population_uniqueness(ClassSizes.from_counts(kept), float(c.population), ("pitman", "zayatz"))
                anonymous = pu.dankar <= c.max_population_uniqueness + 1e-12
        classes = len(sizes) - int(np.count_nonzero(fail))
        if lazy and not anonymous:
            return NodeResult(levels, False, suppressed, classes, math.nan, {})
        utility = self.utility(levels, g, fail, metrics)
        # classes as ARX counts them: the suppressed records are not a class
        return NodeResult(levels, anonymous, suppressed, classes, utility.get("loss", math.nan), utility)

    def utility(
        self,
        levels: tuple[int, ...],
        g: _Groups,
        fail: np.ndarray,
        metrics: Sequence[str],
    ) -> dict[str, float]:
        """Utility from the classes: every record of a class shares its generalised values."""
        out: dict[str, float] = {}
        n = self.n
        supp_idx = np.flatnonzero(fail)
        supp_counts = g.sizes[supp_idx]
        n_supp = float(supp_counts.sum())
        if "loss" in metrics:
            vals = []
            for i, lv in enumerate(levels):
                raw = float(self.gen_raw[i, lv])
                if n_supp:
                    share = self.share[i][lv][g.codes[i, supp_idx]]
                    raw += float((supp_counts * (1.0 - share)).sum())
                vals.append(_norm_loss(raw, n / self.hier[i].domain_size, n))
            out["loss"] = float(_round(math.exp(math.fsum(map(math.log1p, vals)) / len(vals)) - 1.0))
        if "precision" in metrics:
            vals = [(self.gen_prec[i, lv] * (n - n_supp) + n_supp) / n for i, lv in enumerate(levels)]
            out["precision"] = float(_round(math.fsum(vals) / len(vals)))
        if "discernibility" in metrics:
            kept = g.sizes[~fail].astype(float)
            out["discernibility"] = float((kept * kept).sum() + n_supp * n)
        if "aecs" in metrics:
            classes = int((~fail).sum()) + (1 if n_supp else 0)
            out["aecs"] = n / classes if classes else math.nan
        return out


@dataclass
class _Groups:
    """The classes of one transformation: generalised codes per class and QI, sizes, and (optionally) the
    class of every histogram row."""

    codes: np.ndarray  # (q, classes) label codes at the transformation's levels
    sizes: np.ndarray  # records per class
    rows: np.ndarray | None  # histogram row -> class (kept only when a criterion needs it)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.sizes.nbytes + (self.rows.nbytes if self.rows is not None else 0)


class _UpMaps(Mapping[tuple[int, int], "np.ndarray | None"]):
    """``[a, b]``: every label of level ``a`` mapped to its label at level ``b`` of one hierarchy, or None
    where the hierarchy is not a tree between the two levels; each map built on first use."""

    def __init__(self, h: Hierarchy) -> None:
        self.h = h
        self._maps: dict[tuple[int, int], np.ndarray | None] = {}

    def __getitem__(self, key: tuple[int, int]) -> np.ndarray | None:
        if key not in self._maps:
            a, b = key
            h = self.h
            if not 0 <= a < b < h.height:
                raise KeyError(key)
            parent = np.zeros(h.num_labels(a), dtype=np.int32)
            parent[h.codes[a]] = h.codes[b]
            self._maps[key] = parent if np.array_equal(parent[h.codes[a]], h.codes[b]) else None
        return self._maps[key]

    def __iter__(self):
        height = self.h.height
        return ((a, b) for a in range(height) for b in range(a + 1, height))

    def __len__(self) -> int:
        return self.h.height * (self.h.height - 1) // 2


class _GroupCache:
    """Grouped histograms of evaluated nodes, bounded in bytes (least recently used leave first).

    The all-zeros node (the finest) is never evicted, so every node can be derived from something.
    """

    def __init__(self, q: int, max_bytes: int) -> None:
        self.q, self.max_bytes, self.bytes = q, max_bytes, 0
        self.entries: dict[tuple[int, ...], _Groups] = {}
        self.levels = np.zeros((64, q), dtype=np.int64)
        self.classes = np.zeros(64, dtype=np.int64)
        self.keys: list[tuple[int, ...]] = []

    def get(self, levels: tuple[int, ...]) -> _Groups | None:
        g = self.entries.pop(levels, None)
        if g is not None:
            self.entries[levels] = g  # most recently used
        return g

    def below(self, levels: tuple[int, ...]):
        """Cached nodes at or below ``levels`` (finer or equal in every QI), fewest classes first."""
        k = len(self.keys)
        ok = np.flatnonzero((self.levels[:k] <= np.asarray(levels)).all(axis=1))
        if not len(ok):
            return
        first = int(ok[np.argmin(self.classes[ok])])
        yield self.keys[first], self.entries[self.keys[first]]
        rest = ok[ok != first]  # only needed when the first cannot be used (a hierarchy that is not a tree)
        for j in rest[np.argsort(self.classes[rest], kind="stable")]:
            yield self.keys[j], self.entries[self.keys[j]]

    def put(self, levels: tuple[int, ...], g: _Groups) -> None:
        if levels in self.entries:
            return
        root = (0,) * self.q
        while self.entries and self.bytes + g.nbytes > self.max_bytes:
            victim = next((key for key in self.entries if key != root), None)
            if victim is None:
                break
            self.bytes -= self.entries.pop(victim).nbytes
            j = self.keys.index(victim)
            last = len(self.keys) - 1
            self.levels[j], self.classes[j], self.keys[j] = self.levels[last], self.classes[last], self.keys[last]
            self.keys.pop()
        k = len(self.keys)
        if k == len(self.levels):
            self.levels = np.concatenate([self.levels, np.zeros_like(self.levels)])
            self.classes = np.concatenate([self.classes, np.zeros_like(self.classes)])
        self.levels[k], self.classes[k] = levels, len(g.sizes)
        self.keys.append(levels)
        self.entries[levels] = g
        self.bytes += g.nbytes


def _regroup(
    cols: Sequence[np.ndarray], radices: Sequence[int], weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group weighted code tuples: (distinct tuples as a (q, classes) matrix, summed weights, inverse).

    The tuple is packed into one mixed-radix integer key; a dense ``bincount`` when the key space is
    small, otherwise a hash of the keys and a sort of the distinct ones (``data.unique_inverse``: ``unique``'s
    result), a row-wise unique when the key would overflow 64 bits.
    """
    m = len(weights)
    q = len(cols)
    space = 1
    for r in radices:
        space *= max(int(r), 1)
    if q == 0:
        return (
            np.zeros((0, 1 if m else 0), np.int64),
            np.array([weights.sum()] if m else [], np.int64),
            np.zeros(m, np.int64),
        )
    if space >= 2**62:
        mat = np.stack(cols, axis=1)
        codes, inverse = np.unique(mat, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        sizes = np.bincount(inverse, weights=weights, minlength=len(codes))
        return np.ascontiguousarray(codes.T, dtype=np.int32), np.rint(sizes).astype(np.int64), inverse
    key = np.array(cols[0], dtype=np.int64, copy=True)
    for col, r in zip(cols[1:], radices[1:], strict=True):
        key *= max(int(r), 1)
        key += col
    if space <= 4 * m:
        dense = np.bincount(key, weights=weights, minlength=space)
        uniq = np.flatnonzero(dense)
        remap = np.empty(space, dtype=np.int32)
        remap[uniq] = np.arange(len(uniq))
        inverse = remap[key]
        sizes = dense[uniq]
    else:
        uniq, inverse = unique_inverse(key)
        sizes = np.bincount(inverse, weights=weights, minlength=len(uniq))
    codes = np.empty((q, len(uniq)), dtype=np.int32)  # label counts are far below 2**31
    rest = uniq.astype(np.int64, copy=True)
    for i in range(q - 1, 0, -1):
        r = max(int(radices[i]), 1)
        codes[i] = rest % r
        rest //= r
    codes[0] = rest
    return codes, np.rint(sizes).astype(np.int64), inverse


def _norm_loss(raw: float, lo: float, n: float) -> float:
    if n <= lo:
        return 0.0
    return max((raw - lo) / (n - lo), 0.0)


def _round(x):
    return np.round(x, 12)


def _better(a: NodeResult, b: NodeResult | None, metric: str) -> bool:
    if b is None:
        return True
    va, vb = a.utility[metric], b.utility[metric]
    if va != vb:
        return va < vb
    return (sum(a.levels), a.levels) < (sum(b.levels), b.levels)


class _Search:
    """The lattice walk: exhaustive, bound-pruned, or bound-pruned with predictive tagging.

    Nodes are numbered in C order over the lattice's shape (``itertools.product`` order), so the nodes
    above (or below) a node form a box of the status array and are tagged with one slice assignment.
    """

    def __init__(self, lat: Lattice, nodes: np.ndarray, bounds: np.ndarray, metric: str, progress) -> None:
        self.lat, self.nodes, self.bounds, self.metric, self.progress = lat, nodes, bounds, metric, progress
        self.best: NodeResult | None = None
        self.evaluated = 0
        self.shape = tuple(lat.heights)
        self.status = np.zeros(self.shape, dtype=np.int8)  # 0 unknown, 1 anonymous, -1 not
        self.flat = self.status.reshape(-1)  # a view: tagging the box tags the flat index too
        self.scored = np.zeros(len(nodes), dtype=bool)
        self.node_list = list(itertools.product(*(range(h) for h in lat.heights)))
        self.bound_list = bounds.tolist()
        radix = [1] * lat.q
        for i in range(lat.q - 2, -1, -1):
            radix[i] = radix[i + 1] * lat.heights[i + 1]
        self.radix = radix
        self.top = [h - 1 for h in lat.heights]

    def successors(self, j: int) -> list[int]:
        """The nodes one level above node j in one QI."""
        node = self.node_list[j]
        return [j + self.radix[i] for i in range(len(node)) if node[i] < self.top[i]]

    def consider(self, j: int) -> NodeResult:
        res = self.lat.evaluate(self.node_list[j], (self.metric,), lazy=True)
        self.evaluated += 1
        self.scored[j] = True
        if self.progress is not None and self.evaluated % 64 == 0:
            self.progress(min(self.evaluated, len(self.nodes)), len(self.nodes))
        if res.anonymous and _better(res, self.best, self.metric):
            self.best = res
        return res

    def limit(self) -> float:
        return math.inf if self.best is None else self.best.utility[self.metric] + 1e-12

    def exhaustive(self) -> None:
        for j in range(len(self.nodes)):
            self.consider(j)

    def bounded(self) -> None:
        for j in np.lexsort((self.nodes.sum(axis=1), self.bounds)).tolist():
            if self.bound_list[j] > self.limit():
                break
            self.consider(j)

    def _check(self, j: int) -> bool:
        """Anonymity of node j, from tags or by evaluating it (and tagging the lattice)."""
        if self.flat[j] != 0:
            return bool(self.flat[j] > 0)
        res = self.consider(j)
        node = self.node_list[j]
        if res.anonymous:
            above = self.status[tuple(slice(lv, None) for lv in node)]
            above[above == 0] = 1
        else:
            self.status[tuple(slice(0, lv + 1) for lv in node)] = -1
        return res.anonymous

    def tagged(self) -> None:
        order = np.lexsort((self.nodes.sum(axis=1), self.bounds)).tolist()
        bounds, flat = self.bound_list, self.flat
        for j in order:
            if bounds[j] > self.limit():
                break
            if flat[j] < 0:
                continue
            if flat[j] == 0:
                # a chain from this node to the top, climbing where the bound grows least
                chain = [j]
                k = j
                while succ := self.successors(k):
                    k = min(succ, key=lambda s: (bounds[s], s))
                    chain.append(k)
                # binary search for the lowest anonymous node on the chain
                lo, hi = 0, len(chain) - 1
                if not self._check(chain[hi]):
                    continue  # nothing on this chain is anonymous (the top is not)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self._check(chain[mid]):
                        hi = mid
                    else:
                        lo = mid + 1
                if flat[j] < 0:
                    continue
            if not self.scored[j] and bounds[j] <= self.limit():
                self.consider(j)


def anonymise(
    source: pa.Table | Histogram,
    qis: Sequence[str] | None,
    hierarchies: Mapping[str, Hierarchy],
    criteria: Criteria,
    suppression: float = 0.0,
    metric: str = "loss",
    sensitive: SensitiveData | None = None,
    exhaustive: bool = False,
    progress=None,
) -> AnonymisationResult:
    """Search the optimal transformation. ``source`` is a table (QIs and the sensitive column) or a histogram.

    ``exhaustive=True`` evaluates every node (no pruning), for checking the pruned search.
    ``progress`` is an optional callable(done, total).
    """
    started = time.perf_counter()
    if metric not in METRICS:
        raise ValueError(f"unknown utility metric {metric!r} ({', '.join(METRICS)})")
    if isinstance(source, Histogram):
        hist = source
    else:
        if not qis:
            raise DataError("name the quasi-identifiers")
        hist = histogram_from_table(source, qis)
        if criteria.sensitive and sensitive is None:
            if criteria.sensitive not in source.column_names:
                raise DataError(f"unknown sensitive column {criteria.sensitive!r}")
            sensitive = SensitiveData.from_column(source.column(criteria.sensitive), hist.row_class, hist.num_classes)
    if (criteria.l is not None or criteria.t is not None) and sensitive is None:
        raise ValueError("l-diversity and t-closeness need the sensitive attribute's values")
    lat = Lattice(hist, hierarchies, criteria, suppression, sensitive)
    nodes = lat.nodes()
    bounds = lat.bounds(nodes, metric)
    search = _Search(lat, nodes, bounds, metric, progress)
    if exhaustive:
        search.exhaustive()
    elif criteria.monotone:
        search.tagged()
    else:
        search.bounded()
    best, evaluated = search.best, search.evaluated
    if progress is not None:
        progress(len(nodes), len(nodes))
    if best is None:
        return AnonymisationResult(
            list(hist.qis),
            [],
            criteria,
            metric,
            suppression,
            lat.n,
            0,
            0,
            {},
            len(nodes),
            evaluated,
            time.perf_counter() - started,
            found=False,
            hierarchies=dict(hierarchies),
        )
    final = lat.evaluate(best.levels, METRICS)
    cls, sizes = lat.group(best.levels)
    fail = lat.failing_classes(cls, sizes)
    return AnonymisationResult(
        qis=list(hist.qis),
        levels=list(best.levels),
        criteria=criteria,
        metric=metric,
        suppression_limit=suppression,
        records=lat.n,
        suppressed=final.suppressed,
        classes=final.classes,
        utility=final.utility,
        nodes_total=len(nodes),
        nodes_evaluated=evaluated,
        seconds=time.perf_counter() - started,
        hierarchies={q: hierarchies[q] for q in hist.qis},
        suppressed_rows=fail[cls],
        row_class=hist.row_class,
        kept_class_sizes=sizes[~fail],
    )


def apply_transformation(
    table: pa.Table,
    hierarchies: Mapping[str, Hierarchy],
    levels: Sequence[int] | Mapping[str, int],
    suppressed_marker: str = "*",
    criteria: Criteria | None = None,
    qis: Sequence[str] | None = None,
    suppress: np.ndarray | None = None,
) -> pa.Table:
    """Generalise the QI columns of ``table`` to ``levels`` and suppress records.

    Records are suppressed (all QIs set to ``suppressed_marker``) when ``suppress`` (a boolean per row)
    says so, or, given ``criteria``, when their class violates a per-class criterion. Other columns are
    kept as they are; generalised QI columns become strings.
    """
    if isinstance(levels, Mapping):
        qis = list(levels)
        lv = [int(levels[q]) for q in qis]
    else:
        qis = list(qis) if qis is not None else list(hierarchies)
        lv = [int(x) for x in levels]
    if len(qis) != len(lv):
        raise ValueError("one level per quasi-identifier")
    gen_cols: dict[str, np.ndarray] = {}
    key = np.zeros(table.num_rows, dtype=np.int64)
    for q, level in zip(qis, lv, strict=True):
        if q not in table.column_names:
            raise DataError(f"unknown quasi-identifier column {q!r}")
        h = hierarchies.get(q)
        if h is None:
            raise HierarchyError(f"no hierarchy for quasi-identifier {q!r}")
        if not 0 <= level < h.height:
            raise HierarchyError(f"level {level} out of range for {q!r} (0..{h.height - 1})")
        if suppress is not None and _element_wise(h, table.schema.field(q).type):
            continue  # generalised element by element below; its codes are only needed to find classes
        codes = h.codes[level][_value_rows(table.column(q), h)]
        gen_cols[q] = codes
        key = key * h.num_labels(level) + codes if h.num_labels(level) else key
    if suppress is None and criteria is not None:
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        fail = counts < criteria.min_class_size
        if criteria.k_map is not None and criteria.population:
            pi = table.num_rows / float(criteria.population)
            fail |= np.maximum(counts, counts / pi) < criteria.k_map
        if criteria.sensitive and (criteria.l is not None or criteria.t is not None):
            sens = SensitiveData.from_column(table.column(criteria.sensitive), inverse.reshape(-1), len(uniq))
            fail |= ~class_diversity(sens, np.arange(len(uniq)), len(uniq), criteria)
        suppress = fail[inverse.reshape(-1)]
    out = table
    for q, level in zip(qis, lv, strict=True):
        h = hierarchies[q]
        if _element_wise(h, table.schema.field(q).type):
            col = _generalise_set(table.column(q), h, level, suppress, suppressed_marker)
            out = out.set_column(out.column_names.index(q), q, col)
            continue
        labels = pa.concat_arrays([h.label_array(level).cast(pa.string()), pa.array([suppressed_marker], pa.string())])
        codes = gen_cols[q].copy()
        if suppress is not None:
            codes[np.asarray(suppress, dtype=bool)] = len(labels) - 1
        col = labels.take(pa.array(codes))
        out = out.set_column(out.column_names.index(q), q, col)
    return out


def _element_wise(h: Hierarchy, typ: pa.DataType) -> bool:
    """A set hierarchy on a list column: generalised element by element (see :func:`_generalise_set`)."""
    return isinstance(h, SetHierarchy) and is_set_valued(typ)


def _value_rows(column: pa.ChunkedArray | pa.Array, h: Hierarchy) -> np.ndarray:
    """Every record's row in the hierarchy (values as :func:`as_strings` renders them; a set by its
    canonical text, rendered once per distinct set)."""
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if is_set_valued(arr.type):
        sets = set_codes(arr)
        return h.encode(sets.texts())[sets.codes]
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    enc = pc.dictionary_encode(arr, null_encoding="encode")  # each distinct value rendered once
    return h.encode(as_strings(enc.dictionary))[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]


def _generalise_set(
    column: pa.ChunkedArray | pa.Array,
    h: SetHierarchy,
    level: int,
    suppress: np.ndarray | None,
    suppressed_marker: str,
) -> pa.Array:
    """A list column generalised element by element, in place (positions kept, so a paired list such as
    the operation codes still lines up); at the top level, or for a suppressed record, the whole list is
    ``[suppressed_marker]`` (its length hidden too). A missing list stays missing below the top. Built with
    Arrow: only the distinct elements pass through Python."""
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    hide = np.zeros(n, dtype=bool) if suppress is None else np.asarray(suppress, dtype=bool).copy()
    if level >= h.height - 1:
        hide[:] = True
    lens = np.asarray(pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool) & ~hide
    elem = h.element
    if elem is None:
        raise HierarchyError(f"set hierarchy {h.name!r} has no element hierarchy")
    keep = ~hide
    new_lens = np.where(keep, lens, 1)
    offsets = np.concatenate([[0], np.cumsum(new_lens)]).astype(np.int64)
    top = level >= h.height - 1
    # the level's element labels with the marker after them (the marker alone at the top)
    labels = pa.array([suppressed_marker], pa.string())
    if not top:
        labels = pa.concat_arrays([elem.label_array(level).cast(pa.string()), labels])
    picks = np.full(int(offsets[-1]), len(labels) - 1, dtype=np.int64)
    if not top and lens.sum():
        # element texts, as the hierarchy was built from; their labels at this level, element by element
        enc = pc.dictionary_encode(arr.flatten(), null_encoding="encode")
        rows = elem.encode(as_strings(enc.dictionary))
        gen = elem.codes[level][rows][np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        owner = np.repeat(np.arange(n, dtype=np.int64), lens)
        src_start = np.concatenate([[0], np.cumsum(lens)])[:-1]
        dest = offsets[:-1][owner] + (np.arange(len(gen)) - src_start[owner])
        kept = keep[owner]
        picks[dest[kept]] = gen[kept]
    values = labels.take(pa.array(picks))
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values, mask=pa.array(null)).cast(
        pa.list_(pa.string())
    )
