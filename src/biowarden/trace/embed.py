"""Embedding the cell-level fingerprint into a release, and reading it back from leaked values.

Marking policy (deny by default): a column carries marks only if the data dictionary gives it the role
``measure`` and a recorded precision, and it is a plain integer, floating or (where the policy allows)
date column. Quasi-identifiers, identifiers, sensitive fields, genotypes, lists and text never carry marks.
Derived fields (BMI = weight / (height / 100)^2) carry no mark of their own: they are recomputed from their
marked inputs at their recorded precision, so the marks keep the data's exact relations and a correlation
attack cannot single the marked cells out.

The mark. Let ``k0`` be a cell's value in units of its recorded precision (``172.3`` cm at one decimal is
``k0 = 1723``), ``s`` the application's code symbol for the cell and ``d = +-1`` the cell's secret
direction. The marked value is ``k0`` when ``k0 mod 2 = s`` and ``k0 + d`` otherwise: half of the cells
change, each by exactly one unit, never more. Every application holding the cell has one of the same two
values ``{k0, k0 + d}``, the one whose parity is its symbol.

Reading is non-blind: the custodian knows ``k0`` (the master value of the linked participant) and ``d``,
so a leaked value ``u`` reads as the symbol of the nearer of the two candidates, and as an erasure when it
is more than one unit from both (rounded away, replaced) or missing. A shift of the whole column by one
unit therefore scrambles symbols (half flip) instead of inverting them, and rounding to fewer digits gives
erasures, not false evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from biowarden.cohort.fields import PARTICIPANT_COLUMN, Field, Role, parse_column
from biowarden.keys import KeyRing
from biowarden.trace import code

KIND_INT = "integer"
KIND_FLOAT = "decimal"
KIND_DATE = "date"


_MARKABLE_TYPES = ("Integer", "Continuous", "Date")
MIN_SD_UNITS = 10.0  # +-1 unit on half the cells then adds at most 0.5% to a column's variance


def _present_values(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    v = np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if arr.null_count:
        v = v[np.asarray(arr.is_valid())]
    return v[np.isfinite(v)]


def grid_problem(arr: pa.ChunkedArray | pa.Array, precision: int) -> str | None:
    """Why a column's values, as they are, cannot carry marks at ``precision`` decimals (None if they can).

    A mark moves a value by one unit of the recorded precision, so the values must actually be recorded at
    that precision: values with more digits (a moved value would be the only one on the grid) or values on a
    coarser grid (bands, intervals, rounded to tens: a moved value would be the only one off it) would show
    which cells carry marks.
    """
    return _grid_problem(_present_values(arr), precision)


def _grid_problem(v: np.ndarray, precision: int) -> str | None:
    """:func:`grid_problem` of the present values ``v`` (finite float64)."""
    if v.size == 0:
        return None
    u = v * 10.0**precision
    k = np.rint(u)
    u -= k  # the distance to the grid, then |k|, in one scratch array
    np.abs(u, out=u)
    if float(np.max(u)) > 1e-6:
        return f"values have more digits than the recorded precision ({precision} decimals)"
    np.abs(k, out=u)
    if float(np.max(u)) >= 2.0**53:
        return f"values have more digits than the recorded precision ({precision} decimals)"
    del u
    k = k.astype(np.int64)
    g = int(np.gcd.reduce(k[:4096]))
    if g != 1:
        g = int(np.gcd.reduce(k))
    if g == 0:
        return "every value is zero"
    if g > 1:
        return f"released coarser than its recorded precision (every value a multiple of {g} units)"
    return None


def _sd_units(arr: pa.ChunkedArray, precision: int) -> float:
    return _sd_of(_present_values(arr), precision)


def _sd_of(v: np.ndarray, precision: int) -> float:
    return float(v.std() * 10.0**precision) if v.size > 1 else float("inf")


class MarkingError(ValueError):
    """A release cannot be marked as asked (no participant ids, a column of the wrong type...)."""


# --- derived fields --------------------------------------------------------------------------------------


def _bmi(weight: np.ndarray, height: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return weight / (height / 100.0) ** 2


# derivations known by the set of input field ids -> (name, function, ordered input field ids)
KNOWN_DERIVATIONS: dict[frozenset[int], tuple[str, Callable[..., np.ndarray], tuple[int, ...]]] = {
    frozenset({21002, 50}): ("bmi = weight / (height / 100)^2", _bmi, (21002, 50)),
}


@dataclass(frozen=True)
class DerivedRule:
    """``target`` is recomputed as ``function(*inputs)`` at ``precision`` decimals after marking."""

    target: str
    inputs: tuple[str, ...]
    function: Callable[..., np.ndarray]
    precision: int
    name: str = ""


@dataclass(frozen=True)
class MarkedColumn:
    column: str
    precision: int
    kind: str = KIND_FLOAT


@dataclass
class MarkingPolicy:
    """Which columns carry marks, at which precision, and which derived columns are recomputed."""

    columns: dict[str, MarkedColumn] = field(default_factory=dict)
    derived: list[DerivedRule] = field(default_factory=list)
    fraction: float = 1.0  # share of eligible cells that carry a mark (chosen by the PRF)
    allow_dates: bool = False
    eid_column: str = PARTICIPANT_COLUMN
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it carries no mark

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise MarkingError("the marked fraction must lie in (0, 1]")

    @classmethod
    def from_dictionary(
        cls,
        dictionary: Any,
        columns: Iterable[str],
        *,
        allow_dates: bool = False,
        fraction: float = 1.0,
        exclude: Iterable[str] = (),
        schema: pa.Schema | None = None,
        data: pa.Table | None = None,
        min_sd_units: float = MIN_SD_UNITS,
    ) -> MarkingPolicy:
        """Build the policy for ``columns`` from a data dictionary.

        ``dictionary`` may be the cohort's dictionary (anything with ``fields`` or a mapping from field id
        to :class:`~biowarden.cohort.fields.Field`), or a plain mapping ``column -> (role, precision)``
        (optionally ``(role, precision, value_type)``). ``schema`` (the release's Arrow schema) decides
        integer/floating/date columns; without it, dictionary value types do. With ``data`` (the master
        cohort or the release), a column whose standard deviation is under ``min_sd_units`` units of its
        recorded precision is not marked (a one-unit move would visibly change its variance: sleep duration
        in whole hours), nor a column whose values are not recorded at the dictionary's precision (more
        digits, or a coarser grid such as bands or values rounded to tens: :func:`grid_problem`). The
        release pipeline decides on the released (generalised) data; tracing decides with the master; a
        release that decided otherwise only loses evidence (an unmarked column reads as noise), never
        soundness.
        """
        if schema is None and data is not None:
            schema = data.schema
        excluded = set(exclude)
        policy = cls(fraction=fraction, allow_dates=allow_dates)
        cols = [c for c in columns if c != policy.eid_column]
        infos = {c: field_info(dictionary, c) for c in cols}
        for col in cols:
            info = infos[col]
            if col in excluded:
                policy.skipped[col] = "excluded by policy"
                continue
            if info is None:
                policy.skipped[col] = "not in the data dictionary"
                continue
            role, precision, vtype, derived_from = info
            if role != Role.MEASURE:
                policy.skipped[col] = f"role {role}"
                continue
            if derived_from:
                policy.skipped[col] = "derived (recomputed from its marked inputs)"
                continue
            if vtype is not None and vtype not in _MARKABLE_TYPES:
                policy.skipped[col] = f"value type {vtype} is not markable"
                continue
            kind = _kind(schema.field(col).type if schema is not None and col in schema.names else None, vtype)
            if kind is None:
                policy.skipped[col] = "not a numeric or date column"
                continue
            if kind == KIND_DATE and not allow_dates:
                policy.skipped[col] = "dates are not marked under this policy"
                continue
            if kind in (KIND_INT, KIND_DATE):
                precision = 0  # one unit = 1 (mmHg, kg...) or one day
            elif precision is None:
                policy.skipped[col] = "no recorded precision"
                continue
            if data is not None and col in data.schema.names and kind != KIND_DATE:
                present = _present_values(data.column(col))  # read once for both checks
                why = _grid_problem(present, int(precision))
                if why is not None:
                    policy.skipped[col] = why
                    continue
                sd = _sd_of(present, int(precision))
                del present
                if sd < min_sd_units:
                    policy.skipped[col] = f"too coarse to mark (SD {sd:.1f} units of its precision)"
                    continue
            policy.columns[col] = MarkedColumn(col, int(precision), kind)
        for col in cols:
            info = infos[col]
            if info is None or not info[3]:
                continue
            rule = _derived_rule(col, info, dictionary, cols)
            if rule is not None and any(i in policy.columns for i in rule.inputs):
                policy.derived.append(rule)
        return policy


def field_info(dictionary: Any, column: str) -> tuple[Role, int | None, str | None, tuple[int, ...]] | None:
    """(role, precision, value type, derived_from) of a column, from whatever dictionary was given."""
    entry: Any = None
    if isinstance(dictionary, Mapping) and column in dictionary:
        entry = dictionary[column]
    elif hasattr(dictionary, "for_column"):
        try:
            entry = dictionary.for_column(column)
        except (KeyError, ValueError):
            entry = None
    else:
        parsed = parse_column(column)
        fid = parsed[0] if parsed else None
        if fid is not None:
            fields = getattr(dictionary, "fields", dictionary)
            if callable(fields):
                fields = fields()
            if isinstance(fields, Mapping):
                entry = fields.get(fid, fields.get(str(fid)))
            elif isinstance(fields, Iterable):
                entry = next((f for f in fields if getattr(f, "field_id", None) == fid), None)
    if entry is None:
        return None
    if isinstance(entry, Field) or hasattr(entry, "role"):
        return (
            Role(entry.role),
            entry.precision,
            str(entry.value_type),
            tuple(getattr(entry, "derived_from", ()) or ()),
        )
    if isinstance(entry, tuple | list) and len(entry) >= 2:
        vtype = str(entry[2]) if len(entry) > 2 else None
        return Role(entry[0]), (None if entry[1] is None else int(entry[1])), vtype, ()
    raise MarkingError(f"unrecognised dictionary entry for column {column!r}")


def _kind(arrow_type: pa.DataType | None, vtype: str | None) -> str | None:
    if arrow_type is not None:
        if pa.types.is_integer(arrow_type):
            return KIND_INT
        if pa.types.is_floating(arrow_type):
            return KIND_FLOAT
        if pa.types.is_date32(arrow_type):
            return KIND_DATE
        return None
    if vtype in ("Integer",):
        return KIND_INT
    if vtype in ("Continuous", None):
        return KIND_FLOAT
    if vtype == "Date":
        return KIND_DATE
    return None


def _cohort_derivation(col: str, dictionary: Any):
    """The cohort area's own formula for a derived column, when its dictionary names one."""
    try:
        from biowarden.cohort import derive
    except ImportError:  # pragma: no cover - the cohort area is part of the package
        return None
    f = None
    if hasattr(dictionary, "for_column"):
        try:
            f = dictionary.for_column(col)
        except (KeyError, ValueError):
            f = None
    name = getattr(f, "derivation", None)
    if not name or name not in getattr(derive, "DERIVATIONS", {}):
        return None
    return name, _CohortDerivation(name), tuple(derive.DERIVATIONS[name][0])


class _CohortDerivation:
    """A derivation of :mod:`biowarden.cohort.derive` by name, called with its inputs in order (picklable)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        from biowarden.cohort import derive

        inputs, fn = derive.DERIVATIONS[self.name]
        return np.asarray(fn(dict(zip(inputs, arrays, strict=True)), None), dtype=np.float64)


def _derived_rule(col: str, info, dictionary: Any, cols: list[str]) -> DerivedRule | None:
    _role, precision, _vtype, derived_from = info
    known = _cohort_derivation(col, dictionary) or KNOWN_DERIVATIONS.get(frozenset(derived_from))
    parsed = parse_column(col)
    if known is None or parsed is None or precision is None:
        return None
    name, fn, order = known
    suffix = col[len(str(parsed[0])) :]
    inputs = tuple(f"{fid}{suffix}" for fid in order)
    if not all(i in cols for i in inputs):
        return None
    return DerivedRule(col, inputs, fn, int(precision), name)


# --- the kernel ------------------------------------------------------------------------------------------


@dataclass
class MarkReport:
    application_no: int
    rows: int = 0
    marked_columns: list[str] = field(default_factory=list)
    cells_marked: int = 0  # code positions embedded (non-null cells of marked columns selected by the PRF)
    cells_changed: int = 0  # of which the value moved by one unit
    max_change_units: int = 0  # largest change of a marked cell, in units of its recorded precision
    derived_recomputed: dict[str, int] = field(default_factory=dict)  # column -> cells whose value changed
    per_column: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def merge(self, other: MarkReport) -> None:
        self.rows += other.rows
        self.cells_marked += other.cells_marked
        self.cells_changed += other.cells_changed
        self.max_change_units = max(self.max_change_units, other.max_change_units)
        for k, v in other.derived_recomputed.items():
            self.derived_recomputed[k] = self.derived_recomputed.get(k, 0) + v
        for col, d in other.per_column.items():
            cur = self.per_column.setdefault(col, {"marked": 0, "changed": 0})
            cur["marked"] += d["marked"]
            cur["changed"] += d["changed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "application_no": self.application_no,
            "rows": self.rows,
            "marked_columns": list(self.marked_columns),
            "cells_marked": self.cells_marked,
            "cells_changed": self.cells_changed,
            "max_change_units": self.max_change_units,
            "derived_recomputed": dict(self.derived_recomputed),
            "skipped": dict(self.skipped),
        }


def to_units(values: np.ndarray, precision: int) -> np.ndarray:
    """Values (float, NaN for missing) in units of the recorded precision, as floats."""
    return np.asarray(values, dtype=np.float64) * (10.0**precision)


def _column_values(arr: pa.ChunkedArray | pa.Array, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN for nulls, valid mask)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if kind == KIND_DATE:
        arr = arr.cast(pa.int32())
    valid = (
        np.ones(len(arr), dtype=bool)
        if arr.null_count == 0
        else np.asarray(arr.is_valid().to_numpy(zero_copy_only=False))
    )
    vals = arr.to_numpy(zero_copy_only=False)
    vals = np.asarray(vals, dtype=np.float64)
    if not valid.all():
        vals = np.where(valid, vals, np.nan)
    return vals, valid & np.isfinite(vals)


def _rebuild_int(units: np.ndarray, valid: np.ndarray, typ: pa.DataType, kind: str) -> pa.Array:
    mask = None if valid.all() else ~valid
    if kind == KIND_DATE:
        return pa.array(units.astype(np.int32), mask=mask).cast(typ)
    return pa.array(units.astype(np.int64), mask=mask).cast(typ)


def marked_units(k0: np.ndarray, sym: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The marked value (in units): ``k0`` when its parity is the symbol, else ``k0 + direction``."""
    parity = np.mod(k0, 2).astype(np.int64)
    return np.where(parity == sym, k0, k0 + direction)


_MAGIC = 1.5 * 2.0**52  # x + _MAGIC - _MAGIC rounds x (|x| < 2^51) to the nearest integer, ties to even: np.rint
_FAST_UNITS = 2.0**30  # below this many units, float64 unit arithmetic is exact and a move is exactly 1 unit


def _bit0(a: np.ndarray) -> np.ndarray:
    """Bit 0 of each element of an integer (or an integer-valued float's bit pattern) array, as bools."""
    return np.bitwise_and(a, a.dtype.type(1)).astype(bool)


def _moves(secret: np.ndarray, draw: np.ndarray, parity: np.ndarray) -> np.ndarray:
    """Cells whose value must move: the unit count's parity is not the application's symbol (a bool
    array; the symbol is 1 when the draw's top 53 bits fall below the cell's bias threshold)."""
    move = np.right_shift(draw, np.uint64(11)) < code.symbol_thresholds(secret)
    move ^= parity
    return move


def _steps(secret: np.ndarray, move: np.ndarray) -> np.ndarray:
    """The signed move of each cell in units (int8): its direction (+1 when bit 0 of its secret is set,
    else -1) where it moves, 0 elsewhere."""
    m = move.view(np.int8)
    up = np.bitwise_and(_bit0(secret), move).view(np.int8)
    up <<= 1
    up -= m
    return up


def _mark_column_fast(
    arr: pa.Array, mc: MarkedColumn, secret: np.ndarray, draw: np.ndarray, fraction: float, floats: bool
) -> tuple[pa.Array | None, np.ndarray | None, np.ndarray | None, int, int, int] | None:
    """:func:`_mark_column` for the usual column (every present value on its precision's grid, moderate
    magnitudes, all cells marked; missing values allowed) in a few byte-wide passes; None when the column is
    not usual. The output is bit for bit the general path's."""
    if fraction < 1.0 or len(arr) == 0:
        return None
    typ = arr.type
    n = len(arr)
    if mc.kind == KIND_DATE:
        arr = arr.cast(pa.int32())
    valid = np.asarray(arr.is_valid()) if arr.null_count else None
    mask = None if valid is None else ~valid
    filled = arr if valid is None else arr.fill_null(0)
    n_marked = n if valid is None else int(np.count_nonzero(valid))

    def missing_as_nan(v: np.ndarray | None) -> np.ndarray | None:
        return v if v is None or mask is None else np.where(mask, np.nan, v)

    if mc.kind == KIND_FLOAT:
        if not pa.types.is_float64(typ):
            return None
        vals = np.asarray(filled.to_numpy(zero_copy_only=False))
        scale = 10.0**mc.precision
        if not float(np.max(np.abs(vals))) * scale < _FAST_UNITS:  # also False for NaN and infinity
            return None
        units = vals * scale if mc.precision else vals.copy()
        units += _MAGIC
        parity = _bit0(units.view(np.int64))  # bit 0 of the mantissa is the parity of the rounded count
        units -= _MAGIC
        if not np.array_equal(units / scale if mc.precision else units, vals):
            return None  # values off the grid: the general path keeps them as they are
        move = _moves(secret, draw, parity)
        if valid is not None:
            move &= valid
        n_changed = int(np.count_nonzero(move))
        before = missing_as_nan(vals) if floats else None
        if n_changed == 0:
            return None, before, before, n_marked, 0, 0
        units += _steps(secret, move)
        if mc.precision:
            units /= scale
        after = missing_as_nan(units) if floats else None
        return pa.array(units, type=pa.float64(), mask=mask), before, after, n_marked, n_changed, 1
    # integers and dates: one unit is 1 or one day; stay in the column's own integer width
    raw = np.asarray(filled.to_numpy(zero_copy_only=False))
    info = np.iinfo(raw.dtype)
    if raw.min() <= info.min or raw.max() >= info.max:
        return None  # a move could overflow: the general path reports it
    move = _moves(secret, draw, _bit0(raw))
    if valid is not None:
        move &= valid
    n_changed = int(np.count_nonzero(move))
    before = missing_as_nan(raw.astype(np.float64)) if floats else None
    if n_changed == 0:
        return None, before, before, n_marked, 0, 0
    moved = raw + _steps(secret, move)
    out = pa.array(moved, type=pa.from_numpy_dtype(moved.dtype), mask=mask)
    if not out.type.equals(typ):
        out = out.cast(typ)
    after = missing_as_nan(moved.astype(np.float64)) if floats else None
    return out, before, after, n_marked, n_changed, 1


def _mark_column(
    arr: pa.Array, mc: MarkedColumn, secret: np.ndarray, draw: np.ndarray, fraction: float, floats: bool
) -> tuple[pa.Array | None, np.ndarray | None, np.ndarray | None, int, int, int]:
    """Mark one column of a batch, given each cell's secret and the application's PRF of it (``draw``).

    A cell moves by its direction when the parity of its value in units (``k0``) is not its symbol: to
    ``k0 + d`` units, written back as ``(k0 + d) / 10^precision``. Returns (the new array, or None if no
    cell moved; with ``floats``, the values before and after as float64 with NaN for missing, for derived
    fields; cells marked; cells changed; largest change in units of the recorded precision).
    """
    fast = _mark_column_fast(arr, mc, secret, draw, fraction, floats)
    if fast is not None:
        return fast
    typ = arr.type
    nulls = arr.null_count > 0
    if mc.kind == KIND_DATE:
        arr = arr.cast(pa.int32())
    filled = arr.fill_null(0) if nulls else arr
    raw = np.asarray(filled.to_numpy(zero_copy_only=False))
    vals: np.ndarray | None
    if mc.kind == KIND_FLOAT:
        vals = raw.astype(np.float64, copy=False)
        finite = np.isfinite(vals)
        valid = (finite & np.asarray(arr.is_valid())) if nulls else (None if finite.all() else finite)
        if nulls:
            vals = np.where(valid, vals, np.nan)
        k0f = np.rint(vals * 10.0**mc.precision) if mc.precision else vals
        k0 = (k0f if valid is None else np.where(valid, k0f, 0.0)).astype(np.int64)
    else:  # integers and dates: one unit is 1 (mmHg, kg...) or one day
        k0 = raw.astype(np.int64, copy=False)
        valid = np.asarray(arr.is_valid()) if nulls else None
        vals = None
    # the application's symbol is 1 when its draw (top 53 bits) is below the cell's bias threshold
    move = np.right_shift(draw, np.uint64(11)) < code.symbol_thresholds(secret)
    move ^= (k0 & 1).astype(bool)
    if valid is not None:
        move &= valid
    if fraction < 1.0:
        sel = code.selected(secret, fraction)
        move &= sel
        n_marked = int(np.count_nonzero(sel if valid is None else sel & valid))
    else:
        n_marked = int(k0.shape[0] if valid is None else np.count_nonzero(valid))
    n_changed = int(np.count_nonzero(move))
    mask = None if valid is None else ~valid
    if vals is None:  # integers and dates
        if floats:
            vals = k0.astype(np.float64)
            if mask is not None:
                vals[mask] = np.nan
        if n_changed == 0:
            return None, vals, vals, n_marked, 0, 0
        units = k0 + code.directions(secret) * move
        new_vals = None
        if floats:
            new_vals = units.astype(np.float64)
            if mask is not None:
                new_vals[mask] = np.nan
        if mc.kind == KIND_DATE:
            out = pa.array(units.astype(np.int32), type=pa.int32(), mask=mask).cast(typ)
        else:
            out = pa.array(units, type=pa.int64(), mask=mask)
            if not out.type.equals(typ):
                out = out.cast(typ)
        return out, vals, new_vals, n_marked, n_changed, 1
    if n_changed == 0:
        return None, vals, vals, n_marked, 0, 0
    scale = 10.0**mc.precision
    if valid is None:
        base = k0 / scale if mc.precision else k0.astype(np.float64)
        if np.array_equal(base, vals):
            # every value sits exactly on its precision's grid (the usual case): the marked column is the
            # moved unit counts written back, computed for all cells at once (no scattered writes)
            units = k0 + code.directions(secret) * move
            new_vals = units / scale if mc.precision else units.astype(np.float64)
            change = float(np.max(np.abs(new_vals - vals))) * scale
            out = pa.array(new_vals, type=pa.float64())
            if not out.type.equals(typ):
                out = out.cast(typ)
            return out, vals, new_vals, n_marked, n_changed, int(np.ceil(change - 1e-6))
    idx = np.flatnonzero(move)
    moved_to = k0[idx] + code.directions(secret[idx])
    new_vals = vals.copy()
    if mc.precision:
        new_vals[idx] = moved_to / scale
        change_units = np.abs(new_vals[idx] - vals[idx]) * scale
    else:
        new_vals[idx] = moved_to
        change_units = np.abs(new_vals[idx] - vals[idx])
    out = pa.array(new_vals, mask=mask, type=pa.float64())
    if not out.type.equals(typ):
        out = out.cast(typ)
    return out, vals, new_vals, n_marked, n_changed, int(np.ceil(change_units.max() - 1e-6))


def mark_batch(
    batch: pa.RecordBatch | pa.Table,
    policy: MarkingPolicy,
    application_no: int,
    keyring: KeyRing,
    eids: np.ndarray | None = None,
) -> tuple[pa.RecordBatch | pa.Table, MarkReport]:
    """Mark one Arrow batch (or table) for an application: the per-batch kernel the data plane runs.

    The cells' identities are (master eid, column name): pass ``eids`` when the batch's participant column
    has already been pseudonymised or dropped. Stateless apart from the keys, so batches can be marked in
    any order, on any executor.
    """
    names = batch.schema.names
    if eids is None:
        if policy.eid_column not in names:
            raise MarkingError(f"the release has no {policy.eid_column!r} column: pass the master eids")
        eids = np.asarray(batch.column(policy.eid_column).to_numpy(zero_copy_only=False), dtype=np.int64)
    eids = np.asarray(eids, dtype=np.int64)
    if eids.shape[0] != batch.num_rows:
        raise MarkingError("one master eid per row is needed")
    return _mark_slice(batch, policy, application_no, keyring, eids)


def _plain_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def _mark_slice(
    batch: pa.RecordBatch | pa.Table,
    policy: MarkingPolicy,
    application_no: int,
    keyring: KeyRing,
    eids: np.ndarray,
) -> tuple[pa.RecordBatch | pa.Table, MarkReport]:
    names = batch.schema.names
    report = MarkReport(application_no=int(application_no), rows=batch.num_rows)
    report.skipped = dict(policy.skipped)
    sym_prf = code.symbol_prf(keyring, application_no)
    cell_prf = keyring.prf(code.PURPOSE_CELL)
    eids_u = eids.view(np.uint64)
    n = batch.num_rows
    secret = np.empty(n, dtype=np.uint64)  # reused for every column
    draw = np.empty(n, dtype=np.uint64)
    new_cols: dict[str, pa.Array] = {}
    before: dict[str, np.ndarray] = {}
    after: dict[str, np.ndarray] = {}
    derived_inputs = {i for rule in policy.derived for i in rule.inputs}
    for col, mc in policy.columns.items():
        if col not in names:
            continue
        report.marked_columns.append(col)
        arr = _plain_array(batch.column(col))
        cell_prf.u64_into(eids_u, secret, code.column_tweak(col))
        sym_prf.u64_into(secret, draw)
        col_out, vals, new_vals, n_marked, n_changed, max_units = _mark_column(
            arr, mc, secret, draw, policy.fraction, col in derived_inputs
        )
        if col_out is not None:
            new_cols[col] = col_out
            report.max_change_units = max(report.max_change_units, max_units)
        report.cells_marked += n_marked
        report.cells_changed += n_changed
        report.per_column[col] = {"marked": n_marked, "changed": n_changed}
        if vals is not None and new_vals is not None:
            before[col], after[col] = vals, new_vals
    for rule in policy.derived:
        if rule.target not in names or not all(i in names for i in rule.inputs):
            continue
        if not any(i in after for i in rule.inputs):
            continue
        ins0 = [before[i] if i in before else _column_values(batch.column(i), KIND_FLOAT)[0] for i in rule.inputs]
        ins1 = [after[i] if i in after else ins0[n] for n, i in enumerate(rule.inputs)]
        arr = batch.column(rule.target)
        t0, tvalid = _column_values(arr, KIND_FLOAT)
        scale = 10.0**rule.precision
        f0 = rule.function(*ins0) * scale
        f1 = rule.function(*ins1) * scale
        ok = tvalid & np.isfinite(f0) & np.isfinite(f1)
        tu = np.round(t0 * scale)
        consistent = ok & (np.round(f0) == tu)
        new_u = np.where(consistent, np.round(f1), tu + np.round(f1 - f0))
        new_u = np.where(ok, new_u, tu)
        changed = ok & (new_u != tu)
        report.derived_recomputed[rule.target] = int(changed.sum())
        if changed.any():
            out = np.where(changed, new_u / scale, t0)
            new_cols[rule.target] = pa.array(out, mask=~tvalid, type=pa.float64()).cast(arr.type)
    if not new_cols:
        return batch, report
    arrays = [new_cols.get(n, batch.column(n)) for n in names]
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(arrays, schema=batch.schema), report
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema), report


class MarkKernel:
    """:func:`mark_batch` as a one-batch Arrow kernel for the data plane (``engine.map_batches``: in-process
    on DuckDB, inside the executors through ``mapInArrow`` on Spark). The batches must carry the master
    ``eid``; marks depend only on each row, so any batching gives the same bytes. Picklable."""

    def __init__(self, policy: MarkingPolicy, application_no: int, keyring: KeyRing) -> None:
        self.policy, self.application_no, self.keyring = policy, int(application_no), keyring

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return mark_batch(batch, self.policy, self.application_no, self.keyring)[0]  # type: ignore[return-value]


class BatchMarker:
    """A callable over an iterator of Arrow batches, for Spark's ``mapInArrow`` (or any batch stream).

    The batches must still carry the master ``eid`` column (pseudonymise after marking). It holds only the
    policy and the key ring (plain data), so it pickles to executors.
    """

    def __init__(self, policy: MarkingPolicy, application_no: int, keyring: KeyRing) -> None:
        self.policy, self.application_no, self.keyring = policy, int(application_no), keyring

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
        for b in batches:
            yield mark_batch(b, self.policy, self.application_no, self.keyring)[0]


def batch_marker(policy: MarkingPolicy, application_no: int, keyring: KeyRing) -> BatchMarker:
    return BatchMarker(policy, application_no, keyring)


def mark_release(
    table: pa.Table,
    marking: MarkingPolicy,
    application_no: int,
    keyring: KeyRing,
    eids: np.ndarray | None = None,
    max_chunk_rows: int = 1 << 20,
) -> tuple[pa.Table, MarkReport]:
    """Mark a whole release for ``application_no``; returns the marked table and what was done."""
    if eids is None and marking.eid_column not in table.schema.names:
        raise MarkingError(f"the release has no {marking.eid_column!r} column: pass the master eids")
    report = MarkReport(application_no=int(application_no))
    report.skipped = dict(marking.skipped)
    if table.num_rows <= max_chunk_rows:
        out, rep = mark_batch(table, marking, application_no, keyring, eids)
        rep.skipped = report.skipped
        return out, rep  # type: ignore[return-value]
    pieces = []
    for start in range(0, table.num_rows, max_chunk_rows):
        part = table.slice(start, max_chunk_rows)
        sub_eids = None if eids is None else np.asarray(eids)[start : start + max_chunk_rows]
        out, rep = mark_batch(part, marking, application_no, keyring, sub_eids)
        report.marked_columns = rep.marked_columns
        report.merge(rep)
        pieces.append(out)
    return pa.concat_tables(pieces), report


# --- reading marks back ----------------------------------------------------------------------------------


def read_symbols(
    leak_units: np.ndarray,
    master_units: np.ndarray,
    secrets: np.ndarray,
    fraction: float = 1.0,
    tolerance: float = 1.0,
) -> np.ndarray:
    """Leaked symbol per cell: 0, 1, or -1 (erasure), by nearest candidate value (non-blind).

    ``leak_units`` and ``master_units`` are in units of the column's recorded precision (NaN if missing).
    A cell is an erasure when either value is missing, the cell carries no mark, or the leaked value is more
    than ``tolerance`` units from both candidates (rounded away, replaced, mislinked).
    """
    leak_units = np.asarray(leak_units, dtype=np.float64)
    master_units = np.asarray(master_units, dtype=np.float64)
    ok = np.isfinite(leak_units) & np.isfinite(master_units) & code.selected(secrets, fraction)
    k0 = np.where(ok, np.round(master_units), 0.0).astype(np.int64)
    d = code.directions(secrets)
    c0 = marked_units(k0, np.zeros_like(k0), d).astype(np.float64)
    c1 = marked_units(k0, np.ones_like(k0), d).astype(np.float64)
    u = np.where(ok, leak_units, 0.0)
    d0, d1 = np.abs(u - c0), np.abs(u - c1)
    y = np.where(d1 < d0, 1, 0).astype(np.int8)
    bad = ~ok | (np.minimum(d0, d1) > tolerance + 1e-6) | np.isclose(d0, d1)
    return np.where(bad, np.int8(-1), y)


def is_rounded_column(leak_units: np.ndarray, min_cells: int = 8) -> bool:
    """True when every present leaked value of a column is a multiple of 10 units (its last digit gone).

    With at least ``min_cells`` present values, an unrounded column passes this test with probability about
    ``10^-min_cells``; a rounded column's cells are all erasures.
    """
    u = np.asarray(leak_units, dtype=np.float64)
    u = u[np.isfinite(u)]
    if u.size < min_cells:
        return False
    r = np.round(u)
    if not np.allclose(u, r, atol=1e-6):
        return False
    return bool(np.all(np.mod(r, 10) == 0))
