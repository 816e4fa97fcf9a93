"""Linking a leak to the master cohort: which master column each leaked column is, and which participant
each leaked row is (core layer: Arrow, NumPy, SciPy; no web framework, no ORM).

Columns (:func:`map_columns`, :func:`map_columns_detailed`)
    A leaked column is mapped to a master column by its header when the header names one (``50-0.0``,
    ``f.50.0.0``, ``p50_i0``, a bare field id, or a dictionary field name such as ``Standing height``),
    otherwise by its values: categorical columns by the overlap and the total-variation distance of their
    category frequencies, numeric columns by the Kolmogorov-Smirnov distance to a sample of the master
    column plus a penalty for values outside its range. Leak and master columns are paired one to one by
    the Hungarian method (``scipy.optimize.linear_sum_assignment``). The value-based pairing is then
    *refined by linkage*: rows are linked with the confident pairs, and every column is re-paired by how
    closely its cells agree with the linked participants' master values, which separates look-alike
    columns (left and right grip strength) that no marginal distribution can. Columns that look like
    identifiers (nearly all values distinct, matching nothing) are reported and skipped.

Rows (:class:`MasterIndex`, :func:`link_rows`)
    Categorical fields (sex, centre, ethnicity: by the dictionary, or integer codes that look like labels)
    and generalised ranges (``[1950, 1955)``, ``2008-05``) block exactly; every other column (measures,
    years, dates as day numbers) is standardised by the master's spread. Both go into one
    ``scipy.spatial.cKDTree`` in which block codes sit ``BLOCK_SCALE`` apart, so a nearest neighbour always
    lies in the leak row's block. A row is linked to its nearest participant when that neighbour is within
    ``max_distance``, clearly nearer than the runner-up (``d1 < ratio * d2``), and the runner-up lies
    outside the error ball ``tau`` that marks (one unit of a measure's last digit) and the leak's rounding
    can explain; otherwise the row stays unlinked (``-1``): ambiguous rows are refused, not guessed.
    Missing values: a null matches a null; a row whose nulls stop it from linking is retried without
    those columns. The index (column encodings and one tree per column set) is built once and reused.

Erasures
    A cell whose value carries fewer decimals than its field's recorded precision (or a null) cannot carry
    a mark in its last digit; :attr:`LinkResult.erased` flags those cells per leaked column so the
    accusation counts them as erasures, not evidence. Because a genuine value ends in zero one time in
    ten, short cells count as erased only when a column holds significantly more of them than that.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from biowarden.cohort.fields import PARTICIPANT_COLUMN, parse_column
from biowarden.trace.read import decimals_of

BLOCK_SCALE = 1.0e4  # distance between two categorical codes in the tree: blocks never mix
NULL_SENTINEL = -50.0  # standardised value standing for a null (a null matches a null)
MAX_CATEGORIES = 64  # at most this many distinct integer codes may be a categorical (label) column
PROFILE_SAMPLE = 20_000
DEFAULT_RATIO = 0.6
DEFAULT_MAX_COST = 0.45
HEADER_MAX_COST = 0.6  # value cost above which a column's header is not believed
REFINE_MAX_COST = 0.25  # trimmed mean |leak - master| / master sd (numeric), or share of disagreeing cells
_TREE_CACHE = 4  # trees kept per index (one per column set a leak presented)


class LinkError(ValueError):
    """The leak cannot be linked (no usable mapped column, unknown master column...)."""


# ------------------------------------------------------------------------------------------ results


@dataclass
class ColumnMatch:
    leak: str
    master: str
    method: str  # "header", "dictionary", "values", "linkage"
    cost: float  # 0 is certain; values up to max_cost are accepted
    confidence: float  # 1 - cost, clipped to [0, 1]
    reason: str


@dataclass
class ColumnMapping:
    matches: list[ColumnMatch]
    identifier_like: list[str]  # leak columns that look like IDs (pseudonyms) and match no master column
    unmapped: list[str]  # other leak columns that match nothing
    notes: list[str] = field(default_factory=list)

    @property
    def mapping(self) -> dict[str, str]:
        return {m.leak: m.master for m in self.matches}


@dataclass
class LinkResult:
    """Per leaked row: the linked participant (``eids``, -1 if unlinked) and how near it was.

    ``rows`` are positions in the master table (-1 if unlinked); ``distance`` the standardised Euclidean
    distance to the nearest participant (inf when none was comparable) and ``second_distance`` to the
    runner-up (inf when none lies within the distance the acceptance test needed to look).
    ``erased`` maps each mapped *leak* column to a boolean per row: the cell is null or lost its last
    recorded digit(s), so it must count as an erasure. ``precision`` gives each mapped leak column's
    recorded precision (decimals) and ``observed_decimals`` the decimals the leak column carries.
    ``blocking`` and ``numeric`` list the leak columns used to block exactly and as distances.
    """

    eids: np.ndarray
    rows: np.ndarray
    distance: np.ndarray
    second_distance: np.ndarray
    erased: dict[str, np.ndarray]
    blocking: list[str]
    numeric: list[str]
    precision: dict[str, int]
    observed_decimals: dict[str, int]

    @property
    def linked(self) -> np.ndarray:
        return self.eids >= 0

    @property
    def n_linked(self) -> int:
        return int(self.linked.sum())


# ------------------------------------------------------------------------------------------ intervals

_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_IV_BRACKET = re.compile(rf"^([\[(])\s*({_NUM})\s*[,;]\s*({_NUM})\s*([\])])$")
_IV_DASH = re.compile(r"^(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)$")
_IV_PLUS = re.compile(rf"^({_NUM})\s*\+$|^>=\s*({_NUM})$")
_IV_BELOW = re.compile(rf"^<\s*({_NUM})$")
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)
_EPS = 1e-9


def _days(y: int, m: int = 1, d: int = 1) -> float:
    return float((np.datetime64(f"{y:04d}-{m:02d}-{d:02d}", "D") - np.datetime64("1970-01-01", "D")).astype(int))


def _interval_of(key: str, date: bool) -> tuple[float, float] | None:
    """The half-open range ``[lo, hi)`` a generalised label stands for (dates in days), or None."""
    if date:
        if m := _YEAR.match(key):
            y = int(m.group(1))
            return _days(y), _days(y + 1)
        if m := _MONTH.match(key):
            y, mo = int(m.group(1)), int(m.group(2))
            if not 1 <= mo <= 12:
                return None
            return _days(y, mo), (_days(y + 1) if mo == 12 else _days(y, mo + 1))
        if m := _QUARTER.match(key):
            y, q = int(m.group(1)), int(m.group(2))
            return _days(y, 3 * q - 2), (_days(y + 1) if q == 4 else _days(y, 3 * q + 1))
        if (m := _IV_DASH.match(key)) and float(m.group(1)).is_integer() and float(m.group(2)).is_integer():
            a, b = int(float(m.group(1))), int(float(m.group(2)))
            return (_days(a), _days(b + 1)) if 1000 <= a <= b <= 9999 else None
        return None
    if m := _IV_BRACKET.match(key):
        a, b = float(m.group(2)), float(m.group(3))
        lo = a if m.group(1) == "[" else a + _EPS
        hi = b if m.group(4) == ")" else b + _EPS
        return (lo, hi) if lo < hi else None
    if m := _IV_DASH.match(key):
        a, b = float(m.group(1)), float(m.group(2))
        return (a, b + _EPS) if a < b else None
    if m := _IV_PLUS.match(key):
        return float(m.group(1) or m.group(2)), math.inf
    if m := _IV_BELOW.match(key):
        return -math.inf, float(m.group(1))
    return None


def _intervals(col: pa.ChunkedArray | pa.Array, date: bool) -> dict[str, tuple[float, float]] | None:
    """Generalised labels of a leaked column (``[1950, 1955)``, ``2008-05``, ``80+``...) -> ranges, when at
    least 90% of its values are such labels and they do not overlap; otherwise None."""
    t = col.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or (date and pa.types.is_integer(t))):
        return None
    codes, keys = _category_codes(col)
    if not keys:
        return None
    counts = np.bincount(codes[codes >= 0], minlength=len(keys))
    parsed = {k: _interval_of(k, date) for k in keys}
    ok = sum(int(c) for k, c in zip(keys, counts, strict=True) if parsed[k] is not None)
    if ok < 0.9 * counts.sum():
        return None
    ivs = {k: v for k, v in parsed.items() if v is not None}
    spans = sorted(ivs.values())
    if any(b[0] < a[1] for a, b in itertools.pairwise(spans)):
        return None  # overlapping labels (several generalisation levels mixed): not a partition
    return ivs


# ------------------------------------------------------------------------------------------ profiles


@dataclass
class _Profile:
    name: str
    kind: str  # "numeric", "categorical", "text", "other"
    n: int
    distinct: int
    integral: bool
    decimals: int
    lo: float = math.nan
    hi: float = math.nan
    sample: np.ndarray | None = None  # sorted float sample (numeric)
    freqs: dict[str, float] | None = None  # category key -> frequency (categorical)
    intervals: dict[str, tuple[float, float]] | None = None  # generalised label -> range ("interval")
    date: bool = False  # a date column (master), or date-range labels (leak)


def _numeric_values(col: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """float64 values with NaN for nulls, or None for a non-numeric column (dates become day numbers)."""
    t = col.type
    if pa.types.is_dictionary(t):
        return None
    if pa.types.is_date(t):
        col = pc.cast(col, pa.date32()).cast(pa.int32())
        t = col.type
    elif pa.types.is_timestamp(t):
        col = pc.cast(col, pa.timestamp("s")).cast(pa.int64())
        col = pc.divide(col, 86400.0)
        t = col.type
    if pa.types.is_boolean(t):
        col = col.cast(pa.int8())
        t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        return None
    arr = pc.cast(col, pa.float64())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _category_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Vectorised category coding: (codes, keys) with ``codes[i]`` indexing ``keys`` or -1 for a null.

    Keys are normalised so that 1, 1.0 and "1" all give "1" (strings are trimmed).
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_boolean(t):
        col = col.cast(pa.int8())
        t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        vals = _numeric_values(col)
        assert vals is not None
        codes = np.full(len(vals), -1, dtype=np.int64)
        fin = np.isfinite(vals)
        uniq, inv = np.unique(vals[fin], return_inverse=True)
        codes[fin] = inv
        keys = [str(int(u)) if u == round(u) and abs(u) < 1e15 else repr(float(u)) for u in uniq]
        return codes, keys
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        col = pc.cast(col, pa.string())
    col = pc.utf8_trim_whitespace(col)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    enc = pc.dictionary_encode(col)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    codes = np.where(np.isnan(idx.astype(np.float64)), -1, np.nan_to_num(idx, nan=-1)).astype(np.int64)
    return codes, [str(k) for k in enc.dictionary.to_pylist()]


def _category_keys(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Object array of normalised category keys (``None`` for nulls)."""
    codes, keys = _category_codes(col)
    table = np.array([*keys, None], dtype=object)
    return table[codes]  # -1 picks the trailing None


def _precision_of(vals: np.ndarray) -> int:
    """Recorded decimals of a column: the most decimals carried by at least 0.5% of its values."""
    fin = vals[np.isfinite(vals)]
    if len(fin) == 0:
        return 0
    d = decimals_of(fin).astype(np.int64)
    best = int(d.min())
    for k in range(int(d.max()), int(d.min()) - 1, -1):
        if (d >= k).mean() >= 0.005:
            best = k
            break
    return max(best, 0)


def _profile(name: str, col: pa.ChunkedArray | pa.Array, *, categorical_hint: bool | None = None) -> _Profile:
    n = len(col)
    t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t) or pa.types.is_map(t):
        return _Profile(name, "other", n, 0, False, 0)
    vals = _numeric_values(col)
    if vals is None:
        keys = _category_keys(col)
        present = keys[keys != None]  # noqa: E711 - elementwise comparison on an object array
        uniq, counts = np.unique(present.astype(str), return_counts=True) if len(present) else ([], [])
        distinct = len(uniq)
        for date in (False, True):
            ivs = _intervals(col, date)
            if ivs:
                freqs = {str(u): c / max(1, len(present)) for u, c in zip(uniq, counts, strict=True)}
                return _Profile(name, "interval", n, distinct, False, 0, freqs=freqs, intervals=ivs, date=date)
        kind = "categorical" if distinct <= max(MAX_CATEGORIES, 0) or categorical_hint else "text"
        freqs = {str(u): c / max(1, len(present)) for u, c in zip(uniq, counts, strict=True)}
        return _Profile(name, kind, n, distinct, False, 0, freqs=freqs)
    fin = vals[np.isfinite(vals)]
    if len(fin) == 0:
        return _Profile(name, "other", n, 0, False, 0)
    uniq = np.unique(fin)
    integral = bool(np.all(uniq == np.round(uniq)))
    is_date = pa.types.is_date(t) or pa.types.is_timestamp(t)
    if categorical_hint is None:
        # integer codes block exactly only when they look like labels (11001, 11010, 1001...); a run of
        # consecutive integers (sex 0/1, months, years, grip strength) is an ordered quantity, compared as
        # a number so that a mark or a rounding of one unit costs a little distance instead of the link
        span = float(uniq[-1] - uniq[0] + 1)
        ordinal = span <= 2 * len(uniq)
        categorical = integral and len(uniq) <= MAX_CATEGORIES and not is_date and not ordinal
    else:
        categorical = categorical_hint and not is_date
    prof = _Profile(
        name,
        "categorical" if categorical else "numeric",
        n,
        len(uniq),
        integral,
        _precision_of(fin) if not is_date else 0,
        float(fin.min()),
        float(fin.max()),
        np.sort(fin),
        date=is_date,
    )
    if categorical or (integral and len(uniq) <= 4 * MAX_CATEGORIES):
        keys = _category_keys(col)
        present = keys[keys != None]  # noqa: E711
        u, c = np.unique(present.astype(str), return_counts=True)
        prof.freqs = {str(a): b / max(1, len(present)) for a, b in zip(u, c, strict=True)}
    return prof


def _ks(a: np.ndarray, b: np.ndarray, points: int = 2048) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of two sorted samples (each thinned to ``points``
    evenly spaced order statistics, which changes the statistic by at most ``1 / points``)."""
    if len(a) == 0 or len(b) == 0:
        return 1.0
    if len(a) > points:
        a = a[np.linspace(0, len(a) - 1, points).round().astype(np.int64)]
    if len(b) > points:
        b = b[np.linspace(0, len(b) - 1, points).round().astype(np.int64)]
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


# ---------------------------------------------------------------------------------------- the index


def _fields_of(dictionary: Any) -> list[Any]:
    if dictionary is None:
        return []
    if isinstance(dictionary, Mapping):
        return list(dictionary.values())
    if hasattr(dictionary, "fields") and not callable(dictionary.fields):
        return list(dictionary.fields)
    return list(dictionary) if isinstance(dictionary, Iterable) else []


class MasterIndex:
    """The master cohort prepared for mapping and linking; build once, reuse for every leak.

    Column encodings (standardised numbers, category codes), profiles and KD-trees (one per set of columns
    a leak presents) are computed on first use and cached.
    """

    def __init__(
        self,
        master: pa.Table,
        dictionary: Any = None,
        *,
        sample_size: int = PROFILE_SAMPLE,
        seed: int = 0,
    ) -> None:
        if PARTICIPANT_COLUMN not in master.column_names:
            raise LinkError(f"the master table has no {PARTICIPANT_COLUMN!r} column")
        self.master = master
        self.n = master.num_rows
        eid = master.column(PARTICIPANT_COLUMN)
        self.eids = pc.cast(eid, pa.int64()).to_numpy().astype(np.int64, copy=False)
        self.fields = _fields_of(dictionary)
        self._by_id: dict[int, Any] = {int(f.field_id): f for f in self.fields if hasattr(f, "field_id")}
        rng = np.random.default_rng(seed)
        if self.n > sample_size:
            self._sample_rows = np.sort(rng.choice(self.n, size=sample_size, replace=False))
        else:
            self._sample_rows = np.arange(self.n)
        self._profiles: dict[str, _Profile] = {}
        self._num: dict[str, tuple[np.ndarray, float, float]] = {}
        self._cat: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        self._trees: dict[tuple[tuple[str, ...], tuple[str, ...]], cKDTree] = {}
        self._precision: dict[str, int] = {}

    # -- columns
    @property
    def columns(self) -> list[str]:
        return [c for c in self.master.column_names if c != PARTICIPANT_COLUMN]

    def field_for(self, column: str) -> Any:
        parsed = parse_column(column)
        return self._by_id.get(parsed[0]) if parsed else None

    def _categorical_hint(self, column: str) -> bool | None:
        f = self.field_for(column)
        vt = str(getattr(f, "value_type", "") or "")
        if not vt:
            return None
        if vt.startswith("Categorical"):
            return True
        if vt in ("Continuous", "Date", "Time", "Integer"):
            return False
        return None

    def profile(self, column: str) -> _Profile:
        if column not in self._profiles:
            col = self.master.column(column).take(pa.array(self._sample_rows))
            self._profiles[column] = _profile(column, col, categorical_hint=self._categorical_hint(column))
        return self._profiles[column]

    def precision(self, column: str) -> int:
        """Recorded decimals of a master column: the dictionary's precision, else inferred from values."""
        if column not in self._precision:
            f = self.field_for(column)
            p = getattr(f, "precision", None)
            if p is None:
                p = self.profile(column).decimals
            self._precision[column] = int(p)
        return self._precision[column]

    def numeric(self, column: str) -> tuple[np.ndarray, float, float]:
        """(standardised values with NULL_SENTINEL for nulls, mean, std) of a master column."""
        if column not in self._num:
            vals = _numeric_values(self.master.column(column))
            if vals is None:
                raise LinkError(f"master column {column!r} is not numeric")
            fin = np.isfinite(vals)
            mean = float(vals[fin].mean()) if fin.any() else 0.0
            std = float(vals[fin].std()) if fin.sum() > 1 else 1.0
            std = std if std > 0 else 1.0
            z = np.where(fin, (vals - mean) / std, NULL_SENTINEL)
            self._num[column] = (z, mean, std)
        return self._num[column]

    def categories(self, column: str) -> tuple[np.ndarray, dict[str, int]]:
        """(int codes with 0 for null, key -> code) of a master column."""
        if column not in self._cat:
            if column not in self.master.column_names:
                raise LinkError(f"unknown master coding {column!r}")
            raw, keys = _category_codes(self.master.column(column))
            table = {k: i + 1 for i, k in enumerate(sorted(set(keys)))}
            remap = np.array([*(table[k] for k in keys), 0], dtype=np.int64)
            self._cat[column] = (remap[raw], table)  # -1 (null) picks the trailing 0
        return self._cat[column]

    def interval_codes(self, column: str, intervals: Mapping[str, tuple[float, float]]) -> str:
        """Code a master column by a leak's generalised labels; returns the spec naming the coding.

        A master value takes the code of the label whose range holds it, a code no leak label has when
        none does, and 0 when null; the coding is cached under the returned spec."""
        labels = sorted(intervals, key=lambda k: intervals[k])
        spec = f"{column}|" + "|".join(labels)
        if spec not in self._cat:
            vals = _numeric_values(self.master.column(column))
            if vals is None:
                raise LinkError(f"master column {column!r} is not numeric: cannot hold ranges")
            los = np.array([intervals[k][0] for k in labels])
            his = np.array([intervals[k][1] for k in labels])
            fin = np.isfinite(vals)
            pos = np.searchsorted(los, np.where(fin, vals, 0.0), side="right") - 1
            inside = fin & (pos >= 0) & (vals < his[np.clip(pos, 0, None)])
            codes = np.where(inside, pos + 1, len(labels) + 1)
            codes = np.where(fin, codes, 0).astype(np.int64)
            self._cat[spec] = (codes, {k: i + 1 for i, k in enumerate(labels)})
        return spec

    def tree(self, blocking: tuple[str, ...], numeric: tuple[str, ...]) -> cKDTree:
        """The KD-tree over these block codings and numeric columns (built on first use, then cached)."""
        key = (blocking, numeric)
        if key in self._trees:
            self._trees[key] = self._trees.pop(key)  # most recently used last
        else:
            parts = [self.categories(c)[0].astype(np.float64) * BLOCK_SCALE for c in blocking]
            parts += [self.numeric(c)[0] for c in numeric]
            data = np.column_stack(parts) if parts else np.zeros((self.n, 1))
            if len(self._trees) >= _TREE_CACHE:
                self._trees.pop(next(iter(self._trees)))
            self._trees[key] = cKDTree(data, leafsize=32, balanced_tree=False, compact_nodes=False)
        return self._trees[key]

    def prepare(self, columns: Iterable[str] | None = None) -> MasterIndex:
        """Compute the profiles (and numeric encodings) of ``columns`` (default: all) ahead of the first leak."""
        for c in self.columns if columns is None else columns:
            prof = self.profile(c)
            if prof.kind == "numeric":
                self.numeric(c)
        return self

    # -- linking
    def link(
        self,
        leak: pa.Table,
        mapping: Mapping[str, str],
        *,
        ratio: float = DEFAULT_RATIO,
        max_distance: float | None = None,
        retry_nulls: bool = True,
    ) -> LinkResult:
        """Link each leaked row to a master participant over the mapped columns (see the module doc)."""
        blocking, numeric, spec = self._usable(leak, mapping)
        if not blocking and not numeric:
            raise LinkError("no mapped column can be used to link rows (map at least one column)")
        if leak.num_rows == 0:
            return _empty_result()
        q = self._query_matrix(leak, mapping, blocking, numeric, spec)
        if max_distance is None:
            max_distance = max(1.0, 0.5 * math.sqrt(max(len(numeric), 1)))
        mb = tuple(spec[c] for c in blocking)
        mn = tuple(mapping[c] for c in numeric)
        tau = self._resolution(leak, mapping, numeric)
        d1, d2, rows = self._query(mb, mn, q, ratio, max_distance, tau)
        ok = _accept(d1, d2, ratio, max_distance, tau)
        if retry_nulls and not ok.all():
            self._retry_nulls(mb, mn, q, ok, d1, d2, rows, ratio, max_distance, tau)
            ok = _accept(d1, d2, ratio, max_distance, tau)
        rows = np.where(ok, rows, -1).astype(np.int64)
        eids = np.where(ok, self.eids[np.clip(rows, 0, None)], -1).astype(np.int64)
        generalised = {c for c in blocking if spec[c] != mapping[c]}
        erased, precision, observed = self.erasures(leak, mapping, generalised)
        return LinkResult(
            eids=eids,
            rows=rows,
            distance=d1.astype(np.float64),
            second_distance=d2.astype(np.float64),
            erased=erased,
            blocking=blocking,
            numeric=numeric,
            precision=precision,
            observed_decimals=observed,
        )

    def _resolution(self, leak: pa.Table, mapping: Mapping[str, str], numeric: list[str]) -> np.ndarray:
        """Per row: the largest standardised distance at which the true participant can lie.

        A mark moves a value by at most one unit of the field's recorded precision; rounding to the
        leak's own (coarser) decimals moves it by at most half a unit of those. A runner-up within this
        distance could be the true participant as well, however much nearer the nearest one is.
        """
        tau2 = np.zeros(leak.num_rows)
        for lc in numeric:
            mc = mapping[lc]
            vals = _numeric_values(leak.column(lc))
            assert vals is not None
            fin = np.isfinite(vals)
            if not fin.any():
                continue
            recorded = 10.0 ** -self.precision(mc)
            observed = 10.0 ** -int(decimals_of(vals[fin]).max())
            std = self.numeric(mc)[2]
            role = str(getattr(self.field_for(mc), "role", "") or "")
            # marks go into measures only, never into quasi-identifiers or categories; without a dictionary,
            # neither a column of few integer values (years, months, codes) nor one whose unit is over a
            # fifth of its spread is taken to carry them
            if role:
                mark = recorded if role == "measure" else 0.0
            else:
                prof = self.profile(mc)
                coded = prof.integral and prof.distinct <= MAX_CATEGORIES  # years, months, codes
                mark = recorded if recorded <= 0.2 * std and not coded else 0.0
            err = mark + (0.5 * observed if observed > recorded else 0.0)
            tau2 += np.where(fin, (err / std) ** 2, 0.0)
        return np.sqrt(tau2)

    def _usable(self, leak: pa.Table, mapping: Mapping[str, str]) -> tuple[list[str], list[str], dict[str, str]]:
        """Split mapped leak columns into blocking (categorical or generalised) and numeric ones; skip
        unusable ones. Returns (blocking, numeric, spec) where ``spec[leak column]`` names the master
        coding a blocking column is compared with (the master column, or its coding by ranges)."""
        blocking: list[str] = []
        numeric: list[str] = []
        spec: dict[str, str] = {}
        for lc, mc in mapping.items():
            if lc not in leak.column_names:
                raise LinkError(f"mapped leak column {lc!r} is not in the leak")
            if mc == PARTICIPANT_COLUMN:
                continue  # participant IDs (or pseudonyms) are the accusation's business, not a distance
            if mc not in self.master.column_names:
                raise LinkError(f"mapped master column {mc!r} is not in the master table")
            prof = self.profile(mc)
            col = leak.column(lc)
            if col.null_count == len(col):
                continue
            mtype = self.master.schema.field(mc).type
            is_date = pa.types.is_date(mtype) or pa.types.is_timestamp(mtype)
            ivs = _intervals(col, is_date) if prof.kind in ("numeric", "categorical") else None
            if ivs and prof.sample is not None:
                blocking.append(lc)
                spec[lc] = self.interval_codes(mc, ivs)
                continue
            spec[lc] = mc
            if prof.kind == "categorical":
                keys = _category_keys(col)
                present = keys[keys != None]  # noqa: E711
                _, table = self.categories(mc)
                inside = float(np.mean([str(k) in table for k in present])) if len(present) else 0.0
                if inside >= 0.9:
                    blocking.append(lc)
                elif _numeric_values(col) is not None and prof.sample is not None:
                    numeric.append(lc)  # e.g. a noised birth year: compare as a number instead
            elif prof.kind == "numeric" and _numeric_values(col) is not None:
                numeric.append(lc)
        return blocking, numeric, spec

    def _query_matrix(
        self,
        leak: pa.Table,
        mapping: Mapping[str, str],
        blocking: list[str],
        numeric: list[str],
        spec: Mapping[str, str],
    ) -> np.ndarray:
        parts = []
        for lc in blocking:
            _, table = self.categories(spec[lc])
            keys = _category_keys(leak.column(lc))
            codes = np.array([0 if k is None else table.get(str(k), -1) for k in keys], dtype=np.float64)
            parts.append(codes * BLOCK_SCALE)
        for lc in numeric:
            vals = _numeric_values(leak.column(lc))
            assert vals is not None
            _, mean, std = self.numeric(mapping[lc])
            parts.append(np.where(np.isfinite(vals), (vals - mean) / std, NULL_SENTINEL))
        return np.column_stack(parts)

    def _query(
        self,
        blocking: tuple[str, ...],
        numeric: tuple[str, ...],
        q: np.ndarray,
        ratio: float,
        max_distance: float,
        tau: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest participant (distance, row) and the runner-up's distance for each query row.

        The runner-up is only searched for as far as the acceptance test needs (``max(d1 / ratio, tau)``):
        one farther away passes the test whatever its distance, and is reported as ``inf``. Bounding the
        search keeps a KD-tree query in 15-20 dimensions fast.
        """
        tree = self.tree(blocking, numeric)
        d1, i1 = tree.query(q, k=1)
        d1 = np.asarray(d1, dtype=np.float64).reshape(-1)
        i1 = np.asarray(i1, dtype=np.int64).reshape(-1)
        rows = np.where(i1 < self.n, i1, -1)
        d2 = np.full(len(q), np.inf)
        if self.n < 2:
            return d1, d2, rows
        eligible = np.flatnonzero(np.isfinite(d1) & (d1 <= max_distance))
        if eligible.size:
            need = np.maximum(d1[eligible] / ratio, 1.01 * tau[eligible]) * (1 + 1e-9) + 1e-12
            order = eligible[np.argsort(need)]
            need_sorted = np.sort(need)
            for chunk in np.array_split(np.arange(order.size), min(8, order.size)):
                idx = order[chunk]
                d, _ = tree.query(q[idx], k=2, distance_upper_bound=float(need_sorted[chunk[-1]]))
                d2[idx] = d[:, 1]
        return d1, d2, rows

    def _retry_nulls(
        self,
        blocking: tuple[str, ...],
        numeric: tuple[str, ...],
        q: np.ndarray,
        ok: np.ndarray,
        d1: np.ndarray,
        d2: np.ndarray,
        rows: np.ndarray,
        ratio: float,
        max_distance: float,
        tau: np.ndarray,
    ) -> None:
        """Rows held back by nulls: query again without the null columns (one tree per null pattern)."""
        names = blocking + numeric
        nb = len(blocking)
        nulls = np.zeros(q.shape, dtype=bool)
        nulls[:, :nb] = q[:, :nb] <= 0  # null or unknown category
        nulls[:, nb:] = q[:, nb:] == NULL_SENTINEL
        todo = ~ok & nulls.any(axis=1)
        if not todo.any():
            return
        patterns, inverse = np.unique(nulls[todo], axis=0, return_inverse=True)
        order = np.argsort(-np.bincount(inverse.ravel()))
        idx_todo = np.flatnonzero(todo)
        for pi in order[:8]:  # at most eight distinct patterns: each may need a tree of its own
            keep = ~patterns[pi]
            if not keep.any():
                continue
            sel = idx_todo[inverse.ravel() == pi]
            b = tuple(c for j, c in enumerate(blocking) if keep[j])
            n = tuple(c for j, c in enumerate(numeric) if keep[nb + j])
            cols = [j for j in range(len(names)) if keep[j]]
            md = max_distance if n else max(max_distance, 1.0)
            a, bb, r = self._query(b, n, q[np.ix_(sel, cols)], ratio, md, tau[sel])
            good = _accept(a, bb, ratio, md, tau[sel])
            d1[sel[good]], d2[sel[good]], rows[sel[good]] = a[good], bb[good], r[good]

    # -- erasures
    def erasures(
        self, leak: pa.Table, mapping: Mapping[str, str], generalised: Iterable[str] = ()
    ) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, int]]:
        """Per mapped leak column: cells that are null or lost recorded digits; precision; observed decimals.

        Every cell of a ``generalised`` column (ranges such as ``[1950, 1955)`` or ``2008-05``) is erased.
        """
        erased: dict[str, np.ndarray] = {}
        precision: dict[str, int] = {}
        observed: dict[str, int] = {}
        gen = set(generalised)
        for lc, mc in mapping.items():
            if mc == PARTICIPANT_COLUMN:
                continue
            col = leak.column(lc)
            if lc in gen:
                erased[lc] = np.ones(leak.num_rows, dtype=bool)
                continue
            vals = _numeric_values(col)
            mprof = self.profile(mc)
            if vals is None or mprof.kind != "numeric" or pa.types.is_date(col.type):
                null = np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
                erased[lc] = null
                continue
            p = self.precision(mc)
            precision[lc] = p
            erased[lc], observed[lc] = erased_cells(vals, p)
        return erased, precision, observed


def erased_cells(values: np.ndarray, precision: int) -> tuple[np.ndarray, int]:
    """Which cells of a leaked numeric column lost their last recorded digit(s), and the column's decimals.

    A null is erased. A cell with fewer decimals than ``precision`` is erased when the column as a whole
    shows it was rounded: more short cells than the 1-in-10 of genuine trailing zeros explains (a one-sided
    binomial margin of three standard deviations); otherwise short cells are read as genuine zeros.
    """
    vals = np.asarray(values, dtype=np.float64)
    fin = np.isfinite(vals)
    erased = ~fin
    if not fin.any():
        return erased, 0
    d = decimals_of(vals).astype(np.int64)
    short = fin & (d < precision)
    n = int(fin.sum())
    observed = int(np.max(d[fin]))
    last = np.round(np.abs(vals[fin]) * 10.0**precision) % 10
    if n >= 10 and np.isin(last, (0.0, 5.0)).all():
        return np.ones(vals.shape, dtype=bool), observed  # rounded to half units (..0 or ..5): every last digit is gone
    q = 0.1
    limit = q + 3.0 * math.sqrt(q * (1 - q) / n) + 1.0 / n
    if short.sum() / n > limit or observed < precision:
        erased = erased | short
    return erased, observed


def _accept(
    d1: np.ndarray, d2: np.ndarray, ratio: float, max_distance: float, tau: np.ndarray | float = 0.0
) -> np.ndarray:
    """The nearest participant is close enough and clearly nearer than the runner-up.

    ``tau`` is the distance that marks and rounding alone can explain: a runner-up within it is as good
    a candidate as the nearest, however close that one is.
    """
    clear = (ratio * d2 > d1) & (d2 > 1.01 * tau)  # 1% margin: a runner-up at tau is a tie
    return np.isfinite(d1) & (d1 <= max_distance) & (clear | ~np.isfinite(d2))


def _empty_result() -> LinkResult:
    z = np.zeros(0, dtype=np.int64)
    f = np.zeros(0, dtype=np.float64)
    return LinkResult(z, z, f, f, {}, [], [], {}, {})


# ------------------------------------------------------------------------------------------ mapping

_HEADER_RE = re.compile(
    r"^(?:participant\.)?(?:f|p|field)?[._ -]?(?P<f>\d+)(?:[-_. ]i?(?P<i>\d+)(?:[._ -]a?(?P<a>\d+))?)?$"
)


_INSTANCE_RE = re.compile(r"[|(,]?\s*instance\s*(\d+)\s*\)?", re.IGNORECASE)
_ARRAY_RE = re.compile(r"[|(,]?\s*array\s*(\d+)\s*\)?", re.IGNORECASE)


def _norm(text: str) -> str:
    text = re.sub(r"\([^)]*\)", " ", str(text).lower())  # drop units in brackets
    return re.sub(r"[^a-z0-9]+", "", text)


def _header_match(name: str, index: MasterIndex, free: set[str]) -> tuple[str, str] | None:
    """(master column, method) named by a leaked column's header, if any."""
    if name in free:
        return name, "header"
    m = _HEADER_RE.match(name.strip().lower())
    if m:
        fid, inst, arr = int(m.group("f")), int(m.group("i") or 0), int(m.group("a") or 0)
        for cand in (f"{fid}-{inst}.{arr}", f"{fid}-{inst}"):
            if cand in free:
                return cand, "header"
        same = sorted(c for c in free if (pc_ := parse_column(c)) and pc_[0] == fid)
        if same:
            return same[0], "header"
    # a field name, possibly with the RAP's "| Instance 0 | Array 1" or "(instance 0)" qualifiers
    inst_m = _INSTANCE_RE.search(name)
    arr_m = _ARRAY_RE.search(name)
    bare = _ARRAY_RE.sub(" ", _INSTANCE_RE.sub(" ", name))
    key = _norm(bare)
    if not key:
        return None
    for f in index.fields:
        if _norm(getattr(f, "name", "")) == key:
            fid = int(f.field_id)
            inst = int(inst_m.group(1)) if inst_m else 0
            arr = int(arr_m.group(1)) if arr_m else 0
            for cand in (f"{fid}-{inst}.{arr}", f"{fid}-{inst}"):
                if cand in free:
                    return cand, "dictionary"
            cols = sorted(c for c in free if (pc_ := parse_column(c)) and pc_[0] == fid)
            if cols:
                return cols[0], "dictionary"
    return None


def _value_cost(lp: _Profile, mp: _Profile) -> tuple[float, str]:
    """Cost (0 best; inf impossible) of reading leak column ``lp`` as master column ``mp``, with a reason."""
    if lp.kind in ("other",) or mp.kind == "other" or lp.n == 0:
        return math.inf, "incomparable"
    if lp.kind == "interval":
        if mp.sample is None or lp.intervals is None or lp.freqs is None or lp.date != mp.date:
            return math.inf, "ranges of another kind"
        labels = sorted(lp.intervals, key=lambda k: lp.intervals[k])  # type: ignore[index]
        los = np.array([lp.intervals[k][0] for k in labels])
        his = np.array([lp.intervals[k][1] for k in labels])
        pos = np.searchsorted(los, mp.sample, side="right") - 1
        inside = (pos >= 0) & (mp.sample < his[np.clip(pos, 0, None)])
        mfreq = np.bincount(pos[inside], minlength=len(labels)) / len(mp.sample)
        lfreq = np.array([lp.freqs.get(k, 0.0) for k in labels])
        outside = 1.0 - float(inside.mean())
        if outside > 0.5:
            return math.inf, f"{outside:.0%} of master values outside the ranges"
        tv = 0.5 * (float(np.abs(lfreq - mfreq).sum()) + outside)
        return tv, f"ranges: frequency distance {tv:.2f}, {outside:.0%} of master values outside"
    if mp.kind == "categorical":
        if lp.freqs is None or not mp.freqs:
            return math.inf, "not categorical"
        if lp.distinct > 2 * mp.distinct + 5:
            return math.inf, "too many distinct values"
        inside = sum(v for k, v in lp.freqs.items() if k in mp.freqs)
        if inside < 0.5:
            return math.inf, f"only {inside:.0%} of values are master categories"
        keys = set(lp.freqs) | set(mp.freqs)
        tv = 0.5 * sum(abs(lp.freqs.get(k, 0.0) - mp.freqs.get(k, 0.0)) for k in keys)
        return 2.0 * (1.0 - inside) + 0.5 * tv, f"{inside:.0%} in categories, frequency distance {tv:.2f}"
    if mp.kind == "numeric":
        if lp.sample is None or mp.sample is None:
            return math.inf, "not numeric"
        span = max(mp.hi - mp.lo, 1e-9)
        lo, hi = mp.lo - 0.02 * span, mp.hi + 0.02 * span
        outside = float(np.mean((lp.sample < lo) | (lp.sample > hi)))
        if outside > 0.2:
            return math.inf, f"{outside:.0%} of values outside the master range"
        d = _ks(lp.sample, mp.sample)
        return d + 2.0 * outside, f"KS distance {d:.2f}, {outside:.0%} outside range"
    return math.inf, "text column"


def _identifier_like(p: _Profile) -> bool:
    return p.n >= 10 and p.distinct >= 0.95 * p.n and (p.kind in ("text", "categorical") or p.integral)


def map_columns_detailed(
    leak: pa.Table,
    master: pa.Table | MasterIndex,
    dictionary: Any = None,
    *,
    max_cost: float = DEFAULT_MAX_COST,
    refine: bool = True,
) -> ColumnMapping:
    """Map each leaked column to a master column (or none), with the method, a cost and a reason."""
    index = _index_for(master, dictionary)
    free = set(index.columns)
    matches: list[ColumnMatch] = []
    leftover: list[str] = []
    notes: list[str] = []
    lprof = {c: _profile(c, leak.column(c)) for c in leak.column_names}
    for name in leak.column_names:
        hit = _header_match(name, index, free)
        if hit:
            mc, method = hit
            # a header is trusted only when the values agree: a seller may relabel columns to mislead
            mp = index.profile(mc)
            cost, why = _value_cost(lprof[name], mp)
            limit = HEADER_MAX_COST + 1.0 / math.sqrt(max(lprof[name].n, 1))  # small leaks vary more
            unverifiable = mp.kind in ("text", "other")  # free text, lists: nothing to compare
            if unverifiable or (math.isfinite(cost) and cost <= limit):
                free.discard(mc)
                reason = f"header {name!r} names {mc}" + ("" if unverifiable else f"; values agree ({why})")
                matches.append(ColumnMatch(name, mc, method, 0.0, 1.0, reason))
                continue
            notes.append(f"header {name!r} names {mc} but its values disagree ({why}); mapped by values")
        leftover.append(name)
    candidates = sorted(free)
    value_matches = _assign(leftover, candidates, lprof, index, max_cost)
    matches.extend(value_matches)
    if refine and leak.num_rows >= 5:
        matches, note = _refine_by_linkage(leak, index, matches, lprof, max_cost)
        if note:
            notes.append(note)
    mapped = {m.leak for m in matches}
    ident = [c for c in leftover if c not in mapped and _identifier_like(lprof[c])]
    unmapped = [c for c in leftover if c not in mapped and c not in ident]
    order = {c: i for i, c in enumerate(leak.column_names)}
    matches.sort(key=lambda m: order[m.leak])
    return ColumnMapping(matches, ident, unmapped, notes)


def map_columns(leak: pa.Table, master: pa.Table | MasterIndex, dictionary: Any = None) -> dict[str, str]:
    """Leak column -> master column, for the columns that could be mapped (see :func:`map_columns_detailed`)."""
    return map_columns_detailed(leak, master, dictionary).mapping


def _assign(
    leak_cols: list[str],
    master_cols: list[str],
    lprof: dict[str, _Profile],
    index: MasterIndex,
    max_cost: float,
) -> list[ColumnMatch]:
    if not leak_cols or not master_cols:
        return []
    big = 1e6
    cost = np.full((len(leak_cols), len(master_cols)), big)
    reasons: dict[tuple[int, int], str] = {}
    for i, lc in enumerate(leak_cols):
        lp = lprof[lc]
        if lp.kind == "text" and _identifier_like(lp):
            continue
        if lp.integral and lp.distinct == lp.n and lp.hi - lp.lo + 1 == lp.n:
            continue  # row numbers (0..n-1 or 1..n), e.g. an exported index
        for j, mc in enumerate(master_cols):
            c, why = _value_cost(lp, index.profile(mc))
            if math.isfinite(c):
                cost[i, j] = c
                reasons[i, j] = why
    r, c = _assignment(cost, max_cost)
    out = []
    for i, j in zip(r, c, strict=True):
        if cost[i, j] <= max_cost:
            row = np.sort(cost[i])
            margin = float(row[1] - row[0]) if len(row) > 1 else 1.0
            reason = f"{reasons[i, j]}; margin to next {min(margin, 9.99):.2f}"
            conf = float(np.clip(1.0 - cost[i, j], 0.0, 1.0)) * float(min(1.0, margin / 0.2 + 0.2))
            out.append(ColumnMatch(leak_cols[i], master_cols[j], "values", float(cost[i, j]), conf, reason))
    return out


def _assignment(cost: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one assignment in which a row may also stay unassigned (at a cost just over ``threshold``),
    so that a column matching nothing cannot push another off its best partner."""
    n, m = cost.shape
    dummy = np.full((n, n), threshold * 1.0001 + 1e-9)
    r, c = linear_sum_assignment(np.hstack([cost, dummy]))
    keep = c < m
    return r[keep], c[keep]


def _trimmed_mean(x: np.ndarray, keep: float = 0.9) -> float:
    """Mean of the smallest ``keep`` share of ``x``: marks of one unit count, a few noisy cells do not."""
    x = np.sort(x)
    return float(x[: max(1, math.ceil(keep * len(x)))].mean())


def _refine_by_linkage(
    leak: pa.Table,
    index: MasterIndex,
    matches: list[ColumnMatch],
    lprof: dict[str, _Profile],
    max_cost: float,
) -> tuple[list[ColumnMatch], str]:
    """Link rows with the confident pairs, then check every pair by cell-level agreement with the linked
    participants: header pairs that agree stay; value pairs, and header pairs that disagree (a relabelled
    column), are re-paired one to one by agreement."""
    fixed = [m for m in matches if m.method in ("header", "dictionary")]
    soft = [m for m in matches if m.method == "values"]
    seed = fixed + [m for m in soft if m.confidence >= 0.5]
    if len(seed) < 2:
        seed = fixed + soft
    if not seed:
        return matches, ""
    try:
        res = index.link(leak, {m.leak: m.master for m in seed})
    except LinkError:
        return matches, ""
    linked = np.flatnonzero(res.linked)
    if len(linked) < 5:
        return matches, "too few rows linked to check the column mapping by linkage"
    rows = pa.array(res.rows[linked])
    lrows = pa.array(linked)
    master_cols = [c for c in index.columns if index.profile(c).kind != "other"]
    master_vals = {}
    for mc in master_cols:
        col = index.master.column(mc).take(rows)
        numeric_col = index.profile(mc).kind == "numeric"
        master_vals[mc] = (_numeric_values(col), None if numeric_col else _category_keys(col))

    def disagreement(lc: str, mcs: list[str]) -> np.ndarray:
        out = np.full(len(mcs), 1e6)
        lcol = leak.column(lc).take(lrows)
        lv, lk = _numeric_values(lcol), _category_keys(lcol)
        lp = lprof.get(lc)
        ranges = None
        if lp is not None and lp.kind == "interval" and lp.intervals:
            nan2 = (math.nan, math.nan)
            ranges = np.array([lp.intervals.get(str(k), nan2) if k is not None else nan2 for k in lk])
        for j, mc in enumerate(mcs):
            mv, mk = master_vals[mc]
            mp = index.profile(mc)
            if ranges is not None:
                if mv is None or lp is None or mp.date != lp.date:
                    continue
                have = np.isfinite(mv) & ~np.isnan(ranges[:, 0])
                if have.sum() >= 3:
                    held = (ranges[have, 0] <= mv[have]) & (mv[have] < ranges[have, 1])
                    out[j] = 1.0 - float(held.mean())
            elif lv is not None and mv is not None and mp.kind == "numeric":
                both = np.isfinite(lv) & np.isfinite(mv)
                if both.sum() >= 3:
                    scale = float(np.std(mp.sample)) if mp.sample is not None and len(mp.sample) > 1 else 1.0
                    out[j] = _trimmed_mean(np.abs(lv[both] - mv[both])) / (scale or 1.0)
            elif mk is not None:
                have = (lk != None) & (mk != None)  # noqa: E711 - elementwise on object arrays
                if have.sum() >= 3:
                    out[j] = 1.0 - float(np.mean(lk[have] == mk[have]))
        return out

    kept: list[ColumnMatch] = []
    notes: list[str] = []
    for m in fixed:
        if m.master not in master_vals:
            kept.append(m)  # lists, free text: cannot be checked cell by cell
            continue
        row = disagreement(m.leak, master_cols)
        own = float(row[master_cols.index(m.master)])
        others = np.delete(row, master_cols.index(m.master))
        alt = float(others.min()) if others.size else 1e6
        clearly_better = alt < 0.5 * own and own - alt > 0.03  # another field fits the cells far better
        if own >= 1e6 or (own <= REFINE_MAX_COST and not clearly_better):
            kept.append(m)
        else:
            notes.append(f"header {m.leak!r} -> {m.master} disagrees with the linked rows ({own:.2f})")
    taken = {m.master for m in kept}
    kept_leak = {m.leak for m in kept}
    leak_cols = [c for c in lprof if c not in kept_leak]
    free_master = [c for c in master_cols if c not in taken]
    cost = np.vstack([disagreement(lc, free_master) for lc in leak_cols]) if leak_cols else np.zeros((0, 0))
    refined = list(kept)
    if leak_cols and free_master:
        r, c = _assignment(cost, REFINE_MAX_COST)
        for i, j in zip(r, c, strict=True):
            if cost[i, j] <= REFINE_MAX_COST:
                refined.append(
                    ColumnMatch(
                        leak_cols[i],
                        free_master[j],
                        "linkage",
                        float(cost[i, j]),
                        float(np.clip(1.0 - cost[i, j], 0.0, 1.0)),
                        f"agrees with {len(linked)} linked participants (disagreement {cost[i, j]:.3f})",
                    )
                )
    notes.append(f"column mapping checked on {len(linked)} linked rows")
    return refined, "; ".join(notes)


# ------------------------------------------------------------------------------------------ linking

_INDEX_CACHE: list[tuple[pa.Table, Any, MasterIndex]] = []


def _index_for(master: pa.Table | MasterIndex, dictionary: Any = None) -> MasterIndex:
    """The (cached) index of a master table: linking the same master twice reuses its index."""
    if isinstance(master, MasterIndex):
        return master
    for t, d, idx in _INDEX_CACHE:
        # linking without a dictionary reuses the index that mapping built with one
        if t is master and (d is dictionary or dictionary is None):
            return idx
    idx = MasterIndex(master, dictionary)
    _INDEX_CACHE.insert(0, (master, dictionary, idx))
    del _INDEX_CACHE[2:]
    return idx


def link_rows(
    leak: pa.Table,
    master: pa.Table | MasterIndex,
    mapping: Mapping[str, str],
    *,
    ratio: float = DEFAULT_RATIO,
    max_distance: float | None = None,
) -> LinkResult:
    """Link each leaked row to a master participant (``eids``, -1 if unlinked) over the mapped columns.

    ``master`` may be a :class:`MasterIndex` (build once, reuse) or the master table (its index is cached).
    """
    return _index_for(master).link(leak, mapping, ratio=ratio, max_distance=max_distance)
