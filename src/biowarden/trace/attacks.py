"""An attack simulator: leaks made from released copies, as a seller or a group of colluders would.

Single-copy attacks: :func:`subsample`, :func:`strip_ids`, :func:`drop_columns`, :func:`rename_columns`,
:func:`reorder_columns`, :func:`round_columns` (fewer digits), :func:`add_noise` (integer units or Gaussian),
:func:`shuffle_rows`. Collusion: :func:`merge` of ``c`` copies by ``majority``, ``minority``,
``interleave`` (whole rows from random copies), ``random`` (each cell from a random copy), ``average``,
``union`` (all rows of all copies) and ``intersection`` (participants in every copy; cells where the
copies disagree blanked). :func:`correlation_attack` is the attack of Ji, Yilmaz, Ayday and Li (IEEE TDSC
2023): it uses the data's correlations, known from a reference sample, to find cells a mark moved and move
them back. Row-wise: a cell whose value is unlikely given the rest of its row (least-squares prediction
from the other columns) is moved one unit towards the prediction, for a budget of cells. Deterministic
relations (BMI = weight / height^2): rows where the relation fails are repaired by searching the +-1-unit
neighbours of the inputs for the combination that restores it, which reverts marks exactly when the
derived field was not recomputed after marking.

All randomness comes from a seeded NumPy generator: attacks model the adversary, not the custodian.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product

import numpy as np
import pyarrow as pa

from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.trace.embed import DerivedRule

MERGES = ("majority", "minority", "interleave", "random", "average", "union", "intersection")


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    arr = table.column(name).combine_chunks()
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.int32())
    vals = np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if arr.null_count:
        vals = np.where(np.asarray(arr.is_valid()), vals, np.nan)
    return vals


def _replace(table: pa.Table, name: str, values: np.ndarray, keep_type: bool = True) -> pa.Table:
    typ = table.schema.field(name).type
    mask = ~np.isfinite(values)
    if keep_type and (pa.types.is_integer(typ) or pa.types.is_date(typ)):
        arr = pa.array(np.where(mask, 0, np.round(values)).astype(np.int64), mask=mask)
        arr = arr.cast(pa.int32()).cast(typ) if pa.types.is_date(typ) else arr.cast(typ)
    else:
        arr = pa.array(np.where(mask, 0.0, values), mask=mask, type=pa.float64())
    i = table.schema.get_field_index(name)
    return table.set_column(i, pa.field(name, arr.type), arr)


def numeric_columns(table: pa.Table, exclude: Sequence[str] = (PARTICIPANT_COLUMN,)) -> list[str]:
    out = []
    for f in table.schema:
        if f.name in exclude:
            continue
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            out.append(f.name)
    return out


# --- single-copy attacks -------------------------------------------------------------------------------------


def subsample(table: pa.Table, rows: int, seed: int | np.random.Generator | None = 0) -> pa.Table:
    rows = min(rows, table.num_rows)
    idx = np.sort(_rng(seed).choice(table.num_rows, rows, replace=False))
    return table.take(pa.array(idx))


def strip_ids(table: pa.Table, columns: Sequence[str] = (PARTICIPANT_COLUMN,)) -> pa.Table:
    return table.drop_columns([c for c in columns if c in table.schema.names])


def drop_columns(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    return table.drop_columns([c for c in columns if c in table.schema.names])


def rename_columns(table: pa.Table, names: Mapping[str, str] | None = None, prefix: str = "col") -> pa.Table:
    """Rename columns (by a mapping, or all to ``col1, col2...``)."""
    if names is None:
        names = {c: f"{prefix}{i + 1}" for i, c in enumerate(table.schema.names)}
    return table.rename_columns([names.get(c, c) for c in table.schema.names])


def reorder_columns(table: pa.Table, seed: int | np.random.Generator | None = 0) -> pa.Table:
    order = _rng(seed).permutation(table.num_columns)
    return table.select([table.schema.names[i] for i in order])


def shuffle_rows(table: pa.Table, seed: int | np.random.Generator | None = 0) -> pa.Table:
    return table.take(pa.array(_rng(seed).permutation(table.num_rows)))


def round_columns(table: pa.Table, digits: Mapping[str, int]) -> pa.Table:
    """Round each named column to ``digits`` decimals (negative: tens, hundreds)."""
    for name, d in digits.items():
        if name in table.schema.names:
            table = _replace(table, name, np.round(_floats(table, name), d), keep_type=d <= 0)
    return table


def add_noise(
    table: pa.Table,
    precisions: Mapping[str, int],
    units: int = 1,
    gaussian_sd_units: float | None = None,
    seed: int | np.random.Generator | None = 0,
) -> pa.Table:
    """Add noise to each named column: uniform integer units in ``[-units, units]`` at the column's recorded
    precision (kept at that precision), or Gaussian with ``gaussian_sd_units`` (not re-rounded)."""
    rng = _rng(seed)
    for name, prec in precisions.items():
        if name not in table.schema.names:
            continue
        v = _floats(table, name)
        scale = 10.0**-prec
        if gaussian_sd_units is not None:
            noise = rng.normal(0.0, gaussian_sd_units * scale, v.size)
            table = _replace(table, name, v + noise, keep_type=False)
        else:
            noise = rng.integers(-units, units + 1, v.size) * scale
            table = _replace(table, name, np.round(v + noise, max(prec, 0)))
    return table


# --- collusion --------------------------------------------------------------------------------------------------


def merge(
    copies: Sequence[pa.Table],
    strategy: str,
    seed: int | np.random.Generator | None = 0,
    key: str = PARTICIPANT_COLUMN,
) -> pa.Table:
    """Merge the copies of ``c`` colluders (rows matched on ``key``) by ``strategy`` (see ``MERGES``)."""
    if strategy not in MERGES:
        raise ValueError(f"unknown merge strategy {strategy!r}; use one of {', '.join(MERGES)}")
    rng = _rng(seed)
    copies = [c.select(copies[0].schema.names) for c in copies]
    if strategy == "union":
        return pa.concat_tables(copies)
    c = len(copies)
    keys = [np.asarray(t.column(key).to_numpy(zero_copy_only=False), dtype=np.int64) for t in copies]
    allk = np.unique(np.concatenate(keys))
    # position of each participant in each copy (-1 when absent)
    pos = np.full((c, allk.size), -1, dtype=np.int64)
    for i, k in enumerate(keys):
        pos[i, np.searchsorted(allk, k)] = np.arange(k.size)
    present = pos >= 0
    if strategy == "intersection":
        keep = present.all(axis=0)
        allk, pos, present = allk[keep], pos[:, keep], present[:, keep]
    n = allk.size
    if strategy == "interleave":
        r = rng.random((c, n))
        r[~present] = -1.0
        src = np.argmax(r, axis=0)
        parts = [copies[i].take(pa.array(pos[i, src == i])) for i in range(c)]
        return pa.concat_tables(parts).take(
            pa.array(np.argsort(np.concatenate([np.flatnonzero(src == i) for i in range(c)]), kind="stable"))
        )
    # cell-level strategies: start from each participant's row in its first available copy
    first = np.argmax(present, axis=0)
    base_parts = [copies[i].take(pa.array(pos[i, first == i])) for i in range(c)]
    order = np.concatenate([np.flatnonzero(first == i) for i in range(c)])
    out = pa.concat_tables(base_parts).take(pa.array(np.argsort(order, kind="stable")))
    for name in numeric_columns(copies[0], exclude=(key,)):
        vals = np.full((c, n), np.nan)
        for i in range(c):
            v = _floats(copies[i], name)
            vals[i, present[i]] = v[pos[i, present[i]]]
        res = _combine(vals, strategy, rng)
        out = _replace(out, name, res, keep_type=strategy != "average")
    return out


def _combine(vals: np.ndarray, strategy: str, rng: np.random.Generator) -> np.ndarray:
    c, n = vals.shape
    ok = np.isfinite(vals)
    if strategy == "average":
        cnt = ok.sum(axis=0)
        tot = np.where(ok, vals, 0.0).sum(axis=0)
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    if strategy == "random":
        r = rng.random((c, n))
        r[~ok] = -1.0
        return vals[np.argmax(r, axis=0), np.arange(n)]
    if strategy == "intersection":
        agree = np.all(vals == vals[:1], axis=0)
        return np.where(agree, vals[0], np.nan)
    # majority / minority: count how many copies hold each copy's value; ties broken at random
    counts = np.zeros((c, n))
    for i in range(c):
        counts[i] = np.sum((vals == vals[i]) & ok, axis=0)
    counts[~ok] = np.nan
    jitter = rng.random((c, n)) * 1e-3
    score = counts + jitter if strategy == "majority" else -counts + jitter
    score = np.where(ok, score, -np.inf)
    return vals[np.argmax(score, axis=0), np.arange(n)]


# --- the correlation attack (Ji et al., TDSC 2023) ---------------------------------------------------------------


def correlation_attack(
    leak: pa.Table,
    reference: pa.Table,
    precisions: Mapping[str, int],
    budget: float = 0.14,
    derived: Sequence[DerivedRule] = (),
    seed: int | np.random.Generator | None = 0,
) -> tuple[pa.Table, dict[str, int]]:
    """Detect cells that look moved and move them back; returns the attacked leak and counts.

    ``reference`` is the attacker's knowledge of the correlations (a sample of unmarked or marked data).
    ``budget`` is the share of cells in ``precisions``' columns the attacker is willing to change
    (14.2% in the paper's integrated attack). Derived relations are repaired first (exact detections).
    """
    rng = _rng(seed)
    stats = {"derived_repaired": 0, "row_wise_changed": 0}
    for rule in derived:
        if rule.target not in leak.schema.names or not all(i in leak.schema.names for i in rule.inputs):
            continue
        leak, fixed = _repair_derived(leak, rule, precisions)
        stats["derived_repaired"] += fixed
    cols = [c for c in precisions if c in leak.schema.names and c in reference.schema.names]
    if len(cols) < 2:
        return leak, stats
    ref = np.column_stack([_floats(reference, c) for c in cols])
    ref = ref[np.all(np.isfinite(ref), axis=1)]
    x = np.column_stack([_floats(leak, c) for c in cols])
    n_cells = int(np.isfinite(x).sum())
    n_change = int(budget * n_cells)
    if ref.shape[0] < len(cols) + 2 or n_change == 0:
        return leak, stats
    mu, sd = ref.mean(axis=0), ref.std(axis=0) + 1e-12
    z_ref = (ref - mu) / sd
    filled = np.where(np.isfinite(x), x, mu)
    z = (filled - mu) / sd
    preds = np.empty_like(x)
    resid_sd = np.empty(len(cols))
    for j in range(len(cols)):
        others = [k for k in range(len(cols)) if k != j]
        a = np.column_stack([z_ref[:, others], np.ones(z_ref.shape[0])])
        coef, *_ = np.linalg.lstsq(a, z_ref[:, j], rcond=None)
        fit = a @ coef
        resid_sd[j] = np.std(z_ref[:, j] - fit) + 1e-12
        preds[:, j] = (np.column_stack([z[:, others], np.ones(z.shape[0])]) @ coef) * sd[j] + mu[j]
    score = np.abs(x - preds) / (resid_sd * sd)
    score[~np.isfinite(x)] = -np.inf
    score += rng.random(score.shape) * 1e-9
    flat = np.argsort(score, axis=None)[::-1][:n_change]
    rows, colsi = np.unravel_index(flat, x.shape)
    for j, name in enumerate(cols):
        sel = rows[colsi == j]
        if sel.size == 0:
            continue
        unit = 10.0 ** -precisions[name]
        v = x[:, j].copy()
        v[sel] = v[sel] + np.sign(preds[sel, j] - v[sel]) * unit
        leak = _replace(leak, name, np.round(v, max(precisions[name], 0)))
        stats["row_wise_changed"] += int(sel.size)
    return leak, stats


def _repair_derived(leak: pa.Table, rule: DerivedRule, precisions: Mapping[str, int]) -> tuple[pa.Table, int]:
    scale = 10.0**rule.precision
    target = _floats(leak, rule.target)
    ins = [_floats(leak, i) for i in rule.inputs]
    bad = np.isfinite(target) & (np.round(rule.function(*ins) * scale) != np.round(target * scale))
    bad &= np.all([np.isfinite(i) for i in ins], axis=0)
    if not bad.any():
        return leak, 0
    idx = np.flatnonzero(bad)
    best = [i[idx].copy() for i in ins]
    found = np.zeros(idx.size, dtype=bool)
    steps = [-1, 0, 1]
    for combo in product(steps, repeat=len(ins)):
        if not any(combo):
            continue
        trial = [ins[k][idx] + combo[k] * 10.0 ** -precisions.get(rule.inputs[k], 0) for k in range(len(ins))]
        ok = ~found & (np.round(rule.function(*trial) * scale) == np.round(target[idx] * scale))
        for k in range(len(ins)):
            best[k][ok] = trial[k][ok]
        found |= ok
    for k, name in enumerate(rule.inputs):
        v = ins[k].copy()
        v[idx] = best[k]
        leak = _replace(leak, name, np.round(v, max(precisions.get(name, 0), 0)))
    return leak, int(found.sum())
