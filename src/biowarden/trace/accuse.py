"""Accusation: score every candidate application on a leak and accuse with a bounded error.

Three layers of evidence, each from its own keys, each with a p-value that bounds the probability an
innocent application (one whose copy did not go into the leak) scores at least as well:

- ``fingerprint``: the symmetric Tardos score over the linked, readable marked cells the application
  received. Given the biases and the leaked symbols, an innocent's symbols are independent Bernoulli(p_i)
  draws, so its score is a sum of independent two-point variables; the p-value is the exact Chernoff bound
  computed from this case's own biases and leaked symbols (Bennett's inequality screens the many weak
  candidates first; both are valid bounds). Cells whose value was rounded away, averaged to the midpoint or
  replaced are erasures and do not count.
- ``pseudonym``: valid MAC-tagged participant IDs of the application (whose participant it received) found
  in the leak; an ID not issued to it verifies with probability 2^-12, so ``P(Binomial(n, 2^-12) >= k)``.
- ``canary``: of the ``m`` canaries found, how many the application received: ``P(Binomial(m, 1/2) >= k)``.

The layers are combined by Bonferroni (``L * min_l p_l`` over the ``L`` layers that apply to this leak),
which is sound whatever their dependence. With ``M`` candidates scored, an application is accused when
``p * M < epsilon``; by the union bound the probability that any innocent application is accused is at
most ``epsilon`` (``false_accusation_bound``). Release records narrow the candidates to applications that
received some linked participant in some leaked column and are shown as evidence, never as a p-value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.keys import KeyRing
from biowarden.trace import bounds, canary, code, pseudonym
from biowarden.trace.embed import MarkingPolicy, is_rounded_column, read_symbols, to_units
from biowarden.trace.releases import ReleaseCatalog, ReleaseRecord

DEFAULT_EPSILON = 1e-6
EXACT_Z = 2.5  # candidates whose standardised score exceeds this get the exact Chernoff bound
MAX_EXACT = 64
MAX_CELLS = 250_000  # a bulk dump is scored on an evenly spread subset (chosen from the leak alone: sound)


class TraceError(ValueError):
    """The leak cannot be traced (unreadable, nothing linkable...); the message names the problem."""


@dataclass
class CellReads:
    """The readable marked cells of a leak, one per distinct (participant, column) code position."""

    row: np.ndarray  # leak row (first one read for the cell)
    eid: np.ndarray
    col: np.ndarray  # index into ``columns``
    secret: np.ndarray
    p: np.ndarray
    y: np.ndarray  # leaked symbol 0/1
    leak_units: np.ndarray
    master_units: np.ndarray
    columns: list[str]  # master column names
    leak_columns: list[str]  # leak column name per master column
    precision: list[int]
    erased: int = 0
    rounded_columns: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.y.size)

    def subset(self, idx: np.ndarray) -> CellReads:
        return CellReads(
            self.row[idx],
            self.eid[idx],
            self.col[idx],
            self.secret[idx],
            self.p[idx],
            self.y[idx],
            self.leak_units[idx],
            self.master_units[idx],
            self.columns,
            self.leak_columns,
            self.precision,
            self.erased,
            self.rounded_columns,
        )


@dataclass
class Accusation:
    application: str
    application_no: int
    institution: str
    p_value: float
    log10_p_value: float
    adjusted_p_value: float
    layers: dict[str, dict[str, Any]]
    evidence: dict[str, Any]


@dataclass
class TraceVerdict:
    accused: list[Accusation]
    candidates_scored: int
    rows_read: int
    rows_linked: int
    false_accusation_bound: float
    epsilon: float
    cells_read: int = 0
    cells_scored: int = 0
    cells_erased: int = 0
    layers_applied: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # leak column -> master column
    rounded_columns: list[str] = field(default_factory=list)
    top_candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accused"] = [asdict(a) for a in self.accused]
        return _jsonable(d)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else (-1e300 if x < 0 else 1e300)
    return x


# --- reading cells ---------------------------------------------------------------------------------------


def _numeric(arr: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """Float values (NaN for nulls) of a leak or master column, dates as days; None if not numeric."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_date(t):
        arr = arr.cast(pa.date32()).cast(pa.int32())
    elif pa.types.is_timestamp(t):
        arr = arr.cast(pa.timestamp("s")).cast(pa.int64())
        vals = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64) / 86400.0
        return np.where(np.asarray(arr.is_valid()), np.floor(vals), np.nan)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            arr = arr.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        return None
    vals = np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if arr.null_count:
        vals = np.where(np.asarray(arr.is_valid()), vals, np.nan)
    return vals


def read_cells(
    leak: pa.Table,
    linked_eids: np.ndarray,
    master: pa.Table,
    mapping: Mapping[str, str],
    policy: MarkingPolicy,
    keyring: KeyRing,
    eid_column: str = PARTICIPANT_COLUMN,
) -> CellReads:
    """Read the leaked symbol of every linked marked cell (non-blind: against the master value)."""
    linked_eids = np.asarray(linked_eids, dtype=np.int64)
    m_eids = np.asarray(master.column(eid_column).to_numpy(zero_copy_only=False), dtype=np.int64)
    order = np.argsort(m_eids, kind="stable")
    sorted_eids = m_eids[order]
    pos = np.searchsorted(sorted_eids, linked_eids)
    pos = np.clip(pos, 0, max(sorted_eids.size - 1, 0))
    found = (linked_eids >= 0) & (sorted_eids.size > 0) & (sorted_eids[pos] == linked_eids)
    rows = np.flatnonzero(found)
    mrows = order[pos[rows]]
    eids = linked_eids[rows]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("row", "eid", "col", "secret", "y", "lu", "mu")}
    columns: list[str] = []
    leak_columns: list[str] = []
    precisions: list[int] = []
    rounded: list[str] = []
    erased = 0
    cell_prf = keyring.prf(code.PURPOSE_CELL)
    for leak_col, master_col in mapping.items():
        mc = policy.columns.get(master_col)
        if mc is None or leak_col not in leak.schema.names or master_col in columns:
            continue
        lv = _numeric(leak.column(leak_col))
        if lv is None:
            continue
        mv = _numeric(master.column(master_col))
        if mv is None:
            continue
        j = len(columns)
        columns.append(master_col)
        leak_columns.append(leak_col)
        precisions.append(mc.precision)
        lu = to_units(lv[rows], mc.precision)
        mu = to_units(mv[mrows], mc.precision)
        secret = cell_prf.u64(eids, code.column_tweak(master_col))
        if is_rounded_column(lu):
            rounded.append(leak_col)
            erased += int(np.isfinite(lu).sum())
            continue
        y = read_symbols(lu, mu, secret, policy.fraction)
        erased += int(((y < 0) & np.isfinite(lu)).sum())
        for k, v in (
            ("row", rows),
            ("eid", eids),
            ("col", np.full(rows.size, j)),
            ("secret", secret),
            ("y", y),
            ("lu", lu),
            ("mu", mu),
        ):
            parts[k].append(v)
    if not parts["y"] or sum(v.size for v in parts["y"]) == 0:
        empty_i = np.zeros(0, dtype=np.int64)
        return CellReads(
            empty_i,
            empty_i,
            empty_i,
            np.zeros(0, np.uint64),
            np.zeros(0),
            np.zeros(0, np.int8),
            np.zeros(0),
            np.zeros(0),
            columns,
            leak_columns,
            precisions,
            erased,
            rounded,
        )
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    # one code position per (participant, column): duplicates (a union of copies) vote; ties are erasures
    key_order = np.lexsort((cat["row"], cat["col"], cat["eid"]))
    for k in cat:
        cat[k] = cat[k][key_order]
    e, c, y = cat["eid"], cat["col"], cat["y"].astype(np.int64)
    start = np.ones(e.size, dtype=bool)
    start[1:] = (e[1:] != e[:-1]) | (c[1:] != c[:-1])
    grp = np.cumsum(start) - 1
    ngrp = int(grp[-1]) + 1
    ones = np.bincount(grp, weights=(y == 1), minlength=ngrp)
    zeros = np.bincount(grp, weights=(y == 0), minlength=ngrp)
    first = np.flatnonzero(start)
    gy = np.where(ones > zeros, 1, np.where(zeros > ones, 0, -1)).astype(np.int8)
    dup_erased = int(((ones + zeros) > 0).sum() - (ones != zeros).sum())
    keep = gy >= 0
    sel = first[keep]
    secret = cat["secret"][sel]
    return CellReads(
        row=cat["row"][sel],
        eid=cat["eid"][sel],
        col=cat["col"][sel],
        secret=secret,
        p=code.biases(secret),
        y=gy[keep],
        leak_units=cat["lu"][sel],
        master_units=cat["mu"][sel],
        columns=columns,
        leak_columns=leak_columns,
        precision=precisions,
        erased=erased + dup_erased,
        rounded_columns=rounded,
    )


# --- the layers --------------------------------------------------------------------------------------------


@dataclass
class _App:
    application_no: int
    application_id: str
    institution: str
    releases: list[ReleaseRecord]


def _applications(releases: Sequence[ReleaseRecord]) -> dict[int, _App]:
    apps: dict[int, _App] = {}
    for r in releases:
        a = apps.setdefault(r.application_no, _App(r.application_no, r.application_id, r.institution, []))
        a.releases.append(r)
    return apps


def _pool(pool_size: int) -> np.ndarray:
    return canary.pool(pool_size) if pool_size else np.zeros(0, dtype=np.int64)


def _in_sorted(sorted_vals: np.ndarray, x: np.ndarray) -> np.ndarray:
    if sorted_vals.size == 0:
        return np.zeros(x.shape, dtype=bool)
    pos = np.clip(np.searchsorted(sorted_vals, x), 0, sorted_vals.size - 1)
    return sorted_vals[pos] == x


def _sorted_participants(r: ReleaseRecord) -> np.ndarray:
    e = r.participants()
    if e.size > 1 and np.any(e[1:] < e[:-1]):
        e = np.unique(e)
        r.eids = e
    return e


def fingerprint_scores(
    cells: CellReads, application_nos: Sequence[int], masks: Sequence[np.ndarray], keyring: KeyRing
) -> list[dict[str, Any]]:
    """Symmetric Tardos score and its rigorous p-value for each candidate over its received cells."""
    out = []
    up_all, down_all = code.score_weights(cells.p, cells.y)
    q_all = code.agree_probability(cells.p, cells.y)
    thresh = code.symbol_thresholds(cells.secret)
    for app_no, mask in zip(application_nos, masks, strict=True):
        n = int(mask.sum())
        if n == 0:
            out.append({"cells": 0, "score": 0.0, "agree": 0, "log_p": 0.0, "bound": "none", "z": 0.0})
            continue
        idx = np.flatnonzero(mask)
        x = code.symbols_with(code.symbol_prf(keyring, app_no), cells.secret[idx], thresh[idx]).astype(np.int8)
        agree = x == cells.y[idx]
        s = float(np.where(agree, up_all[idx], -down_all[idx]).sum())
        b = float(up_all[idx].max())
        log_p = float(bounds.bennett_logp(s, n, b))
        out.append(
            {
                "cells": n,
                "score": s,
                "agree": int(agree.sum()),
                "log_p": log_p,
                "bound": "bennett",
                "z": s / math.sqrt(n),
                "_idx": idx,
                "_x": x,
            }
        )
    order = sorted(range(len(out)), key=lambda i: -out[i]["z"])
    for i in order[:MAX_EXACT]:
        r = out[i]
        if r["z"] < EXACT_Z:
            break
        idx = r["_idx"]
        exact = bounds.chernoff_logp(r["score"], up_all[idx], down_all[idx], q_all[idx])
        if exact < r["log_p"]:
            r["log_p"], r["bound"] = float(exact), "exact-chernoff"
    return out


def pseudonym_hits(
    leak: pa.Table, keyring: KeyRing, apps: Mapping[int, _App]
) -> tuple[int, dict[int, np.ndarray], np.ndarray, dict[int, list[dict[str, Any]]]]:
    """Valid pseudonyms per application (whose participant it received) among the leak's integer values.

    Returns (distinct values tested, app -> distinct eids hit, per-row eid decoded (-1 if none), examples).
    """
    tested = 0
    hits: dict[int, set[int]] = {}
    examples: dict[int, list[dict[str, Any]]] = {}
    row_eid = np.full(leak.num_rows, -1, dtype=np.int64)
    known = np.fromiter(apps.keys(), dtype=np.int64)
    release_sets = {a: [_sorted_participants(r) for r in app.releases] for a, app in apps.items()}
    for name in leak.schema.names:
        vals = _numeric(leak.column(name))
        if vals is None:
            continue
        ok = np.isfinite(vals) & (vals >= 0) & (vals < float(1 << pseudonym.DOMAIN_BITS)) & (vals == np.floor(vals))
        if not ok.any() or ok.mean() < 0.5:
            continue
        ints = vals[ok].astype(np.int64)
        uniq = np.unique(ints)
        tested += int(uniq.size)
        app_no, eid, valid = pseudonym.identify(uniq, keyring, known)
        if not valid.any():
            continue
        for a in np.unique(app_no[valid]):
            sel = valid & (app_no == a)
            e = eid[sel]
            inside = np.zeros(e.size, dtype=bool)
            for rs in release_sets.get(int(a), []):
                inside |= _in_sorted(rs, e) | canary.is_canary(e)
            good_vals = uniq[sel][inside]
            if good_vals.size == 0:
                continue
            hits.setdefault(int(a), set()).update(int(v) for v in e[inside])
            rows_ok = np.flatnonzero(ok)
            rv = ints
            m = np.isin(rv, good_vals)
            lookup = dict(zip(good_vals.tolist(), e[inside].tolist(), strict=True))
            for ri, v in zip(rows_ok[m].tolist(), rv[m].tolist(), strict=True):
                row_eid[ri] = lookup[v]
            ex = examples.setdefault(int(a), [])
            for ri, v in zip(rows_ok[m][:5].tolist(), rv[m][:5].tolist(), strict=True):
                if len(ex) < 5:
                    ex.append({"leak_row": ri, "column": name, "value": v})
    return tested, {a: np.array(sorted(s), dtype=np.int64) for a, s in hits.items()}, row_eid, examples


# --- the service-level entry points -------------------------------------------------------------------------


def _default_mapping(leak: pa.Table, master: pa.Table, dictionary: Any) -> dict[str, str]:
    try:
        from biowarden.trace import link
    except ImportError:
        link = None  # type: ignore[assignment]
    if link is not None and hasattr(link, "map_columns"):
        return dict(link.map_columns(leak, master, dictionary))
    return {c: c for c in leak.schema.names if c in master.schema.names}


def _default_link(leak: pa.Table, master: pa.Table, mapping: Mapping[str, str], eid_column: str) -> np.ndarray:
    direct = [lc for lc, mc in mapping.items() if mc == eid_column]
    if not direct and eid_column in leak.schema.names:
        direct = [eid_column]
    if direct:
        vals = _numeric(leak.column(direct[0]))
        if vals is not None:
            return np.where(np.isfinite(vals), vals, -1).astype(np.int64)
    try:
        from biowarden.trace import link
    except ImportError as exc:
        raise TraceError("rows cannot be linked: no participant column and no linker available") from exc
    result = link.link_rows(leak, master, dict(mapping))
    return np.asarray(result.eids, dtype=np.int64)


def trace_table(
    leak: pa.Table,
    master: pa.Table,
    dictionary: Any,
    releases: Sequence[ReleaseRecord] | ReleaseCatalog,
    keyring: KeyRing,
    epsilon: float = DEFAULT_EPSILON,
    *,
    mapping: Mapping[str, str] | None = None,
    linked_eids: np.ndarray | None = None,
    policy: MarkingPolicy | None = None,
    quasi_columns: Iterable[str] = (),
    eid_column: str = PARTICIPANT_COLUMN,
    max_evidence_cells: int = 20,
    max_cells: int = MAX_CELLS,
    canary_pool: int = 0,
) -> TraceVerdict:
    """Trace a leaked table back to the applications whose copies it came from.

    ``mapping`` (leak column -> master column) and ``linked_eids`` (master eid per leak row, -1 unlinked)
    default to :func:`biowarden.trace.link.map_columns` / ``link_rows``; pass them to skip those steps.
    ``canary_pool`` is the custodian's canary pool size when releases carry canaries (0: only the canaries
    release records list); each application's canaries are then the ones the code assigns it.
    """
    if not 0.0 < epsilon < 1.0:
        raise TraceError("epsilon must lie in (0, 1)")
    recs = list(releases.releases()) if isinstance(releases, ReleaseCatalog) else list(releases)
    apps = _applications(recs)
    rows_read = leak.num_rows
    # canary participants join the master (for linking and for reading their marks)
    canary_ids = sorted({int(e) for r in recs for e in r.canary_eids} | set(_pool(canary_pool).tolist()))
    master_aug = master
    if canary_ids:
        rows = canary.canary_rows(master, np.array(canary_ids), keyring, tuple(quasi_columns), eid_column, dictionary)
        master_aug = pa.concat_tables([master, rows.cast(master.schema)])
    # each application's canaries: those its releases list, and those the code assigns it
    app_canaries = {
        a: np.union1d(
            np.asarray([int(e) for r in app.releases for e in r.canary_eids], dtype=np.int64),
            canary.assigned(keyring, a, canary_pool) if canary_pool else np.zeros(0, dtype=np.int64),
        )
        for a, app in apps.items()
    }
    if policy is None:
        policy = MarkingPolicy.from_dictionary(dictionary, master.schema.names, data=master)
    tested, p_hits, p_row_eid, p_examples = pseudonym_hits(leak, keyring, apps)
    if mapping is None:
        mapping = _default_mapping(leak, master_aug, dictionary)
    if linked_eids is None:
        linked_eids = _default_link(leak, master_aug, mapping, eid_column)
    linked = np.asarray(linked_eids, dtype=np.int64).copy()
    if linked.shape[0] != rows_read:
        raise TraceError("one linked eid per leaked row is needed")
    linked = np.where(p_row_eid >= 0, p_row_eid, linked)  # a verified pseudonym names its participant
    rows_linked = int((linked >= 0).sum())
    # a bulk dump: read the marks of an evenly spread subset of rows (chosen from the leak's row order
    # alone, so the choice is independent of every application's symbols) to bound time and memory
    marked_cols = sum(1 for mc in mapping.values() if mc in policy.columns)
    for_cells = linked
    if rows_linked * max(marked_cols, 1) > 2 * max_cells:
        keep_rows = int(2 * max_cells // max(marked_cols, 1))
        linked_rows = np.flatnonzero(linked >= 0)
        chosen = linked_rows[np.unique(np.linspace(0, linked_rows.size - 1, keep_rows).astype(np.int64))]
        for_cells = np.full_like(linked, -1)
        for_cells[chosen] = linked[chosen]
    cells = read_cells(leak, for_cells, master_aug, mapping, policy, keyring, eid_column)
    cells_read = cells.size
    if cells.size > max_cells:
        cells = cells.subset(np.unique(np.linspace(0, cells.size - 1, max_cells).astype(np.int64)))
    linked_unique = np.unique(linked[linked >= 0])
    found_canaries = linked_unique[canary.is_canary(linked_unique)]

    # candidates: applications that received some linked participant in some leaked column
    app_nos: list[int] = []
    masks: list[np.ndarray] = []
    overlap: dict[int, dict[str, Any]] = {}
    mapped_master = set(mapping.values())
    cell_u = np.searchsorted(linked_unique, cells.eid)  # each cell's participant among the linked ones
    col_cache: dict[tuple[str, ...], np.ndarray] = {}
    for a, app in apps.items():
        mask = np.zeros(cells.size, dtype=bool)
        got_rows = 0
        rel_ids = []
        fields_seen: set[str] = set()
        for r in app.releases:
            inside = _in_sorted(_sorted_participants(r), linked_unique)
            if app_canaries[a].size:
                inside |= _in_sorted(app_canaries[a], linked_unique)
            if not inside.any():
                continue
            fields = [f for f in r.fields if f in mapped_master]
            if not fields and not p_hits.get(a, np.zeros(0)).size:
                continue
            rel_ids.append(r.release_id)
            got_rows = max(got_rows, int(inside.sum()))
            fields_seen.update(fields)
            if cells.size and r.marked:
                cmask = col_cache.get(r.fields)
                if cmask is None:
                    cmask = np.isin(np.array(cells.columns, dtype=object), list(r.fields))
                    col_cache[r.fields] = cmask
                mask |= cmask[cells.col] & inside[cell_u]
        if rel_ids:
            app_nos.append(a)
            masks.append(mask)
            overlap[a] = {
                "releases": rel_ids,
                "linked_participants_received": got_rows,
                "leaked_columns_received": sorted(fields_seen),
            }
    m_cand = len(app_nos)
    fp = fingerprint_scores(cells, app_nos, masks, keyring) if m_cand else []

    layers_applied = []
    if cells.size:
        layers_applied.append("fingerprint")
    if tested:
        layers_applied.append("pseudonym")
    if found_canaries.size and (canary_pool or any(r.canary_eids for r in recs)):
        layers_applied.append("canary")
    n_layers = max(len(layers_applied), 1)
    log_eps = math.log(epsilon)
    accused: list[Accusation] = []
    summary: list[dict[str, Any]] = []
    canary_evidence: dict[int, list[int]] = {}
    c_rows = np.flatnonzero(canary.is_canary(linked) & (linked >= 0))
    rows_of = {int(linked[i]): int(i) for i in c_rows[::-1].tolist()}  # first leaked row of each canary
    for i, a in enumerate(app_nos):
        app = apps[a]
        layer: dict[str, dict[str, Any]] = {}
        f = fp[i]
        if "fingerprint" in layers_applied:
            layer["fingerprint"] = {
                "log10_p": f["log_p"] / math.log(10),
                "cells": f["cells"],
                "agree": f["agree"],
                "score": round(f["score"], 4),
                "bound": f["bound"],
            }
        if "pseudonym" in layers_applied:
            k = int(p_hits.get(a, np.zeros(0)).size)
            lp = float(bounds.binomial_logsf(k, tested, pseudonym.FORGERY_PROBABILITY)) if k else 0.0
            layer["pseudonym"] = {"log10_p": lp / math.log(10), "valid_ids": k, "values_tested": tested}
        if "canary" in layers_applied:
            mine = app_canaries[a]
            got = found_canaries[_in_sorted(mine, found_canaries)]
            k = int(got.size)
            # an innocent's canaries are assigned by its own key, independently of the leak: Binomial(m, q)
            lp = float(bounds.binomial_logsf(k, found_canaries.size, canary.ASSIGN_PROBABILITY)) if mine.size else 0.0
            layer["canary"] = {
                "log10_p": lp / math.log(10),
                "canaries_found": int(found_canaries.size),
                "received": k,
            }
            if k:
                canary_evidence[a] = got.tolist()
        ln10 = math.log(10)
        log_min = min((v["log10_p"] * ln10 for v in layer.values()), default=0.0)
        log_p = min(0.0, math.log(n_layers) + log_min)
        log_adj = min(0.0, log_p + math.log(max(m_cand, 1)))
        entry = {
            "application": app.application_id,
            "institution": app.institution,
            "log10_p_value": log_p / ln10,
            "fingerprint_cells": f["cells"],
            "fingerprint_z": round(f["z"], 3),
        }
        summary.append(entry)
        if log_p + math.log(max(m_cand, 1)) < log_eps:
            evidence: dict[str, Any] = {
                "releases": overlap[a],
                # public ids of the keys a regulator's expert would use to re-derive the marks
                "key_ids": {
                    code.PURPOSE_CELL: keyring.key_id(code.PURPOSE_CELL),
                    f"{code.PURPOSE_SYMBOL}{a}": keyring.key_id(f"{code.PURPOSE_SYMBOL}{a}"),
                },
                "bound": "p-value per layer is a rigorous bound for this case; combined by Bonferroni over "
                f"{n_layers} layer(s); accused because p x {m_cand} candidates < {epsilon:g}",
            }
            if f["cells"]:
                evidence["fingerprint_cells"] = _cell_evidence(cells, f, max_evidence_cells)
            if a in p_examples:
                evidence["pseudonym_ids"] = p_examples[a]
            if a in canary_evidence:
                evidence["canaries"] = [
                    {"canary": int(e - canary.CANARY_EID_BASE), "leak_row": rows_of.get(int(e), -1)}
                    for e in canary_evidence[a]
                ]
            accused.append(
                Accusation(
                    application=app.application_id,
                    application_no=a,
                    institution=app.institution,
                    p_value=float(math.exp(log_p)),
                    log10_p_value=log_p / ln10,
                    adjusted_p_value=float(math.exp(log_adj)),
                    layers=layer,
                    evidence=evidence,
                )
            )
    accused.sort(key=lambda x: x.log10_p_value)
    summary.sort(key=lambda x: x["log10_p_value"])
    return TraceVerdict(
        accused=accused,
        candidates_scored=m_cand,
        rows_read=rows_read,
        rows_linked=rows_linked,
        false_accusation_bound=float(epsilon),
        epsilon=float(epsilon),
        cells_read=cells_read,
        cells_scored=cells.size,
        cells_erased=cells.erased,
        layers_applied=layers_applied,
        columns=dict(mapping),
        rounded_columns=cells.rounded_columns,
        top_candidates=summary[:10],
    )


def _cell_evidence(cells: CellReads, f: dict[str, Any], limit: int) -> dict[str, Any]:
    """Which marks were read where: a regulator re-derives them with the custodian's keys."""
    idx, x = f["_idx"], f["_x"]
    agree = x == cells.y[idx]
    show = idx[agree][:limit]
    xs = x[agree][:limit]
    items = []
    for i, s in zip(show.tolist(), xs.tolist(), strict=True):
        col = int(cells.col[i])
        scale = 10.0 ** cells.precision[col]
        k0 = int(np.round(cells.master_units[i]))
        d = int(code.directions(cells.secret[i : i + 1])[0])
        c = [k0 if k0 % 2 == sym else k0 + d for sym in (0, 1)]
        items.append(
            {
                "leak_row": int(cells.row[i]),
                "leak_column": cells.leak_columns[col],
                "field": cells.columns[col],
                "leaked_value": cells.leak_units[i] / scale,
                "value_for_symbol": [c[0] / scale, c[1] / scale],
                "application_symbol": int(s),
                "bias": round(float(cells.p[i]), 4),
            }
        )
    rows = np.unique(cells.row[idx])
    return {
        "scored": int(idx.size),
        "agreeing": int(agree.sum()),
        "leak_rows": rows[:1000].tolist(),  # every leaked row whose marks were scored (first 1,000)
        "examples": items,
    }


def trace_file(
    path: str | Path,
    master: pa.Table,
    dictionary: Any,
    releases: Sequence[ReleaseRecord] | ReleaseCatalog,
    keyring: KeyRing,
    epsilon: float = DEFAULT_EPSILON,
    **kwargs: Any,
) -> TraceVerdict:
    """Read a leaked file (CSV, TSV, Parquet, XLSX, JSON, notebook) and trace it."""
    from biowarden.trace.read import read_leak

    leak = read_leak(path)
    return trace_table(leak, master, dictionary, releases, keyring, epsilon, **kwargs)
