"""Canary participants: plausible synthetic rows, assigned to applications by a code (off by default).

A cohort has a fixed pool of ``pool_size`` canaries with reserved master eids (``CANARY_EID_BASE + k``,
inside the pseudonym layout). Canary ``k`` is built from three real participants of the same sex, chosen by
the PRF from the whole cohort: its quasi-identifiers are donor A's; each measure (a numeric field the
dictionary calls a measure) is a mix ``(1 - w) * B + w * C`` of donors B and C with a secret weight ``w`` in
[1/4, 3/4], rounded to the field's recorded precision, and derived fields are recomputed from the mixed
inputs (BMI matches height and weight); every other field (categories, dates, genotypes) is donor B's. So
its measurements keep the data's correlations while no real participant's row is copied, and a canary is the
same in every release and in the tracer's copy of the master (it depends only on the keys and the cohort).

Canary ``k`` goes into application ``a``'s releases when ``PRF_a(k) < q`` (``q = 1/2``): every canary appears
in about half of all copies, so comparing two copies does not single canaries out, and an innocent
application's canary set is independent of a leak it did not produce: among ``m`` canaries found in a leak,
the number assigned to it is ``Binomial(m, q)``, which gives the canary layer's p-value. That holds for the
assignment whatever a given release carried, so tracing needs only the pool size, not a list per release.

In a release the canary's quasi-identifiers must look generalised like everyone else's and must not form a
class of their own (a class of one in a k-anonymous release would point at it): each quasi-identifier takes
the released label of a released participant with donor A's value, and the canary is left out of that
release when its whole combination does not already occur among the released rows. Canaries are certain for
bulk dumps and weak for small samples. The policy is disclosed to governance; canary rows are never counted
in any statistic the platform reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.keys import KeyRing

CANARY_EID_BASE = 8_300_000
POOL_SIZE = 16
MAX_POOL_SIZE = 1024  # reserved eids CANARY_EID_BASE .. CANARY_EID_BASE + 1023 (below the pseudonyms' 2^23)
ASSIGN_PROBABILITY = 0.5
PURPOSE_ASSIGN = "trace/v1/canary/assign/"
PURPOSE_DONOR = "trace/v1/canary/donor"
SEX_COLUMN = "31-0.0"
MIX_LOW, MIX_HIGH = 0.25, 0.75


def pool(pool_size: int = POOL_SIZE) -> np.ndarray:
    """The reserved master eids of the canary pool."""
    if not 1 <= pool_size <= MAX_POOL_SIZE:
        raise ValueError(f"a canary pool holds 1 to {MAX_POOL_SIZE} canaries")
    return CANARY_EID_BASE + np.arange(pool_size, dtype=np.int64)


def is_canary(eids: np.ndarray, pool_size: int = MAX_POOL_SIZE) -> np.ndarray:
    e = np.asarray(eids, dtype=np.int64)
    return (e >= CANARY_EID_BASE) & (e < CANARY_EID_BASE + pool_size)


def assignment(keyring: KeyRing, application_no: int, eids: np.ndarray) -> np.ndarray:
    """Whether each canary (by eid) belongs to application ``application_no``'s releases."""
    u = keyring.prf(f"{PURPOSE_ASSIGN}{int(application_no)}").uniform(np.asarray(eids, dtype=np.int64))
    return u < ASSIGN_PROBABILITY


def assigned(keyring: KeyRing, application_no: int, pool_size: int = POOL_SIZE) -> np.ndarray:
    """The canary eids application ``application_no`` receives."""
    p = pool(pool_size)
    return p[assignment(keyring, application_no, p)]


def _mixable(master: pa.Table, dictionary: Any, eid_column: str):
    """(measure columns -> precision, derived rules) by the dictionary and the column types alone, so the
    release and the tracer decide alike whatever rows or other columns each holds."""
    from biowarden.trace.embed import KIND_DATE, MarkingPolicy

    cols = [c for c in master.schema.names if c != eid_column]
    pol = MarkingPolicy.from_dictionary(dictionary, cols, schema=master.schema)
    return {c: mc.precision for c, mc in pol.columns.items() if mc.kind != KIND_DATE}, pol.derived


def _is_quasi(dictionary: Any, column: str) -> bool:
    from biowarden.cohort.fields import Role
    from biowarden.trace.embed import field_info

    info = field_info(dictionary, column)
    return info is not None and info[0] == Role.QUASI


def _values(col: pa.ChunkedArray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = col.take(pa.array(idx))
    valid = np.asarray(a.is_valid()) if a.null_count else np.ones(len(a), dtype=bool)
    v = np.asarray(a.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
    return v, valid


def canary_rows(
    master: pa.Table,
    eids: np.ndarray,
    keyring: KeyRing,
    quasi_columns: Iterable[str] = (),
    eid_column: str = PARTICIPANT_COLUMN,
    dictionary: Any = None,
) -> pa.Table:
    """The canary rows for ``eids`` (columns as in ``master``), deterministic given the keys and the cohort.

    ``master`` must hold every participant (donors are chosen by position among all eids) and, when the
    cohort has it, the sex column. With ``dictionary``, measures are mixed from two donors (see the module
    docstring); without it every non-quasi-identifier column is donor B's.
    """
    eids = np.asarray(eids, dtype=np.int64)
    if master.num_rows < 3:
        raise ValueError("canaries need a master table with at least three participants")
    order = pc.sort_indices(master, sort_keys=[(eid_column, "ascending")])
    m = master.take(order)
    n = m.num_rows
    prf = keyring.prf(PURPOSE_DONOR)
    a_idx = prf.below(eids, n, tweak=0)
    b_idx = prf.below(eids, n, tweak=1)
    c_idx = prf.below(eids, n, tweak=3)
    if SEX_COLUMN in m.schema.names:
        sex = np.asarray(m.column(SEX_COLUMN).to_numpy(zero_copy_only=False))
        by_sex: dict[Any, np.ndarray] = {}
        for i in range(eids.size):
            key = sex[a_idx[i]]
            same = by_sex.get(key)
            if same is None:
                same = by_sex[key] = np.flatnonzero(sex == key)
            if same.size:
                b_idx[i] = same[int(prf.below(eids[i : i + 1], same.size, tweak=2)[0])]
                c_idx[i] = same[int(prf.below(eids[i : i + 1], same.size, tweak=4)[0])]
    qi = set(quasi_columns)
    mixed: dict[str, int] = {}
    derived = []
    if dictionary is not None:
        qi |= {c for c in m.schema.names if c != eid_column and _is_quasi(dictionary, c)}
        mixed, derived = _mixable(m, dictionary, eid_column)
        mixed = {c: p for c, p in mixed.items() if c not in qi}
    w = MIX_LOW + (MIX_HIGH - MIX_LOW) * prf.uniform(eids, tweak=5)
    values: dict[str, np.ndarray] = {}
    cols = []
    for name in m.schema.names:
        typ = m.schema.field(name).type
        if name == eid_column:
            cols.append(pa.array(eids, type=typ))
        elif name in qi:
            cols.append(m.column(name).take(pa.array(a_idx)))
        elif name in mixed:
            vb, okb = _values(m.column(name), b_idx)
            vc, okc = _values(m.column(name), c_idx)
            scale = 10.0 ** mixed[name]
            v = np.where(okc, np.round(((1.0 - w) * vb + w * vc) * scale) / scale, vb)
            values[name] = np.where(okb, v, np.nan)
            cols.append(pa.array(v, mask=~okb, type=pa.float64()).cast(typ, safe=False))
        else:
            cols.append(m.column(name).take(pa.array(b_idx)))
    out = pa.Table.from_arrays(cols, schema=m.schema)
    for rule in derived:
        if rule.target in qi or rule.target not in out.schema.names:
            continue
        if not all(i in values for i in rule.inputs):
            continue
        f = np.asarray(rule.function(*(values[i] for i in rule.inputs)), dtype=np.float64)
        scale = 10.0**rule.precision
        f = np.round(f * scale) / scale
        typ = out.schema.field(rule.target).type
        arr = pa.array(f, mask=~np.isfinite(f), type=pa.float64()).cast(typ, safe=False)
        out = out.set_column(out.schema.names.index(rule.target), rule.target, arr)
    return out


def place_canaries(
    released: pa.Table,
    master: pa.Table,
    application_no: int,
    keyring: KeyRing,
    generalised: Iterable[str],
    dictionary: Any = None,
    pool_size: int = POOL_SIZE,
    eid_column: str = PARTICIPANT_COLUMN,
    suppressed_marker: str = "*",
) -> tuple[pa.Table, np.ndarray]:
    """The application's canary rows for a release, shaped like it (before marking).

    ``released`` is the release after the risk gate (master eids, ``generalised`` quasi-identifiers as
    labels); ``master`` the whole cohort with at least the released columns (ungeneralised) and the sex
    column. A canary's generalised quasi-identifiers copy the labels of released participants who have donor
    A's values; a canary whose label combination does not occur among the released (unsuppressed) rows is
    left out. Returns the rows (``released``'s schema) and their eids.
    """
    eids = assigned(keyring, application_no, pool_size)
    names = released.schema.names
    generalised = [g for g in generalised if g in names]
    if eids.size == 0 or released.num_rows == 0:
        return released.schema.empty_table(), np.zeros(0, dtype=np.int64)
    cols = [c for c in names if c in master.schema.names]
    extra = [c for c in (SEX_COLUMN,) if c in master.schema.names and c not in cols]
    rows = canary_rows(master.select([*cols, *extra]), eids, keyring, generalised, eid_column, dictionary)
    keep = np.ones(eids.size, dtype=bool)
    labels: dict[str, list[Any]] = {}
    if generalised:
        m_eids = np.asarray(master.column(eid_column).to_numpy(zero_copy_only=False), dtype=np.int64)
        m_order = np.argsort(m_eids, kind="stable")
        r_eids = np.asarray(released.column(eid_column).to_numpy(zero_copy_only=False), dtype=np.int64)
        r_pos = m_order[np.searchsorted(m_eids, r_eids, sorter=m_order)]
        suppressed = np.zeros(released.num_rows, dtype=bool)
        for q in generalised:
            suppressed |= np.asarray(pc.equal(released.column(q).cast(pa.string()), suppressed_marker).fill_null(False))
        for q in generalised:
            lookup = _label_lookup(master.column(q).take(pa.array(r_pos)), released.column(q), suppressed)
            labels[q] = [lookup(v) for v in rows.column(q).to_pylist()]
            keep &= np.array([lab is not None for lab in labels[q]], dtype=bool)
        combos = set(zip(*(released.column(q).to_pylist() for q in generalised), strict=True))
        for i in range(eids.size):
            if keep[i] and tuple(labels[q][i] for q in generalised) not in combos:
                keep[i] = False
    out_cols = []
    for f in released.schema:
        if f.name in labels:
            out_cols.append(pa.array(labels[f.name], type=pa.string()).cast(f.type))
        else:
            out_cols.append(rows.column(f.name).cast(f.type))
    out = pa.Table.from_arrays(out_cols, schema=released.schema).filter(pa.array(keep))
    return out, eids[keep]


def _label_lookup(master_vals: pa.ChunkedArray, labels: pa.ChunkedArray, suppressed: np.ndarray):
    """value -> the released label of that master value (None when it cannot be told).

    A value some released participant has gets that participant's label. A numeric value no one released
    has gets the label its two nearest released neighbours share (generalisation bins are intervals), and
    None when they differ (a bin edge, or a quasi-identifier released as it is)."""
    vals = master_vals.to_pylist()
    labs = labels.to_pylist()
    exact: dict[Any, Any] = {}
    for v, lab, sup in zip(vals, labs, suppressed.tolist(), strict=True):
        if not sup and v is not None and v not in exact:
            exact[v] = lab
    numeric = pa.types.is_integer(master_vals.type) or pa.types.is_floating(master_vals.type)
    keys = np.array(sorted(exact), dtype=np.float64) if numeric and exact else None

    def lookup(v: Any) -> Any:
        if v in exact:
            return exact[v]
        if keys is None or v is None or not np.isfinite(float(v)):
            return None
        i = int(np.searchsorted(keys, float(v)))
        if i == 0 or i == keys.size:
            return None
        lo, hi = exact[keys[i - 1]], exact[keys[i]]  # a float key finds an equal int key too
        return lo if lo == hi else None

    return lookup


def add_canaries(
    release: pa.Table,
    master: pa.Table,
    application_no: int,
    keyring: KeyRing,
    quasi_columns: list[str] | tuple[str, ...] = (),
    pool_size: int = POOL_SIZE,
    eid_column: str = PARTICIPANT_COLUMN,
    dictionary: Any = None,
) -> tuple[pa.Table, np.ndarray]:
    """Append the application's canaries to an ungeneralised release (before marking); returns (table, eids)."""
    eids = assigned(keyring, application_no, pool_size)
    if eids.size == 0:
        return release, eids
    rows = canary_rows(master, eids, keyring, quasi_columns, eid_column, dictionary)
    rows = rows.select(release.schema.names).cast(release.schema)
    return pa.concat_tables([release, rows]), eids
