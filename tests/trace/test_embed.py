from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from biowarden.trace import code
from biowarden.trace.embed import MarkingError, MarkingPolicy, mark_batch, mark_release, read_symbols, to_units


def _policy(master, dictionary):
    return MarkingPolicy.from_dictionary(dictionary, master.schema.names, schema=master.schema)


def _num(t, c):
    a = t.column(c).combine_chunks()
    if pa.types.is_date(a.type):
        a = a.cast(pa.int32())
    v = np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return np.where(np.asarray(a.is_valid()), v, np.nan)


def test_policy_marks_only_measures(master, dictionary):
    pol = _policy(master, dictionary)
    assert len(pol.columns) == 20
    for never in ("31-0.0", "34-0.0", "21022-0.0", "189-0.0", "53-0.0", "22182-0.0", "21001-0.0", "eid"):
        assert never not in pol.columns
    assert pol.skipped["22182-0.0"] == "role genetic"
    assert pol.skipped["53-0.0"] == "role quasi"
    assert [r.target for r in pol.derived] == ["21001-0.0"]


def test_simple_mapping_dictionary_is_accepted(master):
    d = {"50-0.0": ("measure", 1), "4080-0.0": ("measure", 0), "31-0.0": ("quasi", 0)}
    pol = MarkingPolicy.from_dictionary(d, master.schema.names, schema=master.schema)
    assert set(pol.columns) == {"50-0.0", "4080-0.0"}
    assert pol.skipped["21002-0.0"] == "not in the data dictionary"


def test_marks_change_at_most_one_unit_and_never_qis(master, dictionary, keyring):
    pol = _policy(master, dictionary)
    marked, rep = mark_release(master, pol, 11, keyring)
    assert rep.max_change_units == 1
    assert 0.4 < rep.cells_changed / rep.cells_marked < 0.6
    for c in master.schema.names:
        a, b = _num(master, c), _num(marked, c)
        if c in pol.columns:
            prec = pol.columns[c].precision
            diff = np.abs(np.round(to_units(b, prec)) - np.round(to_units(a, prec)))
            assert np.nanmax(diff) == 1
            assert (np.isnan(a) == np.isnan(b)).all()  # missing stays missing
        elif c != "21001-0.0":
            assert master.column(c).equals(marked.column(c)), c
    assert marked.schema == master.schema


def test_bmi_recomputed_from_marked_height_and_weight(master, dictionary, keyring):
    marked, rep = mark_release(master, _policy(master, dictionary), 12, keyring)
    h, w, bmi = _num(marked, "50-0.0"), _num(marked, "21002-0.0"), _num(marked, "21001-0.0")
    assert np.array_equal(np.round(w / (h / 100) ** 2, 4), bmi)
    assert rep.derived_recomputed["21001-0.0"] > 0.5 * master.num_rows


def test_marked_copy_reads_back_its_own_symbols(master, dictionary, keyring):
    pol = _policy(master, dictionary)
    marked, _ = mark_release(master, pol, 13, keyring)
    eids = np.asarray(master.column("eid").to_numpy())
    for c, mc in pol.columns.items():
        sec = code.cell_secret(keyring, eids, c)
        y = read_symbols(to_units(_num(marked, c), mc.precision), to_units(_num(master, c), mc.precision), sec)
        x = code.symbols(keyring, sec, 13)
        ok = y >= 0
        assert ok.mean() > 0.9 and (y[ok] == x[ok]).all()


def test_rounding_gives_erasures_not_evidence(master, dictionary, keyring):
    pol = _policy(master, dictionary)
    marked, _ = mark_release(master, pol, 14, keyring)
    eids = np.asarray(master.column("eid").to_numpy())
    c = "30690-0.0"  # three decimals; round to one
    sec = code.cell_secret(keyring, eids, c)
    y = read_symbols(to_units(np.round(_num(marked, c), 1), 3), to_units(_num(master, c), 3), sec)
    assert (y < 0).mean() > 0.75


def test_batches_mark_like_the_whole_table_and_deterministically(master, dictionary, keyring):
    pol = _policy(master, dictionary)
    whole, _ = mark_release(master, pol, 15, keyring)
    again, _ = mark_release(master, pol, 15, keyring)
    assert whole.equals(again)
    parts = [mark_batch(b, pol, 15, keyring)[0] for b in master.to_batches(max_chunksize=333)]
    assert pa.Table.from_batches(parts).equals(whole)
    chunked, _ = mark_release(master, pol, 15, keyring, max_chunk_rows=500)
    assert chunked.equals(whole)


def test_different_applications_get_different_copies(master, dictionary, keyring):
    pol = _policy(master, dictionary)
    a, _ = mark_release(master, pol, 1, keyring)
    b, _ = mark_release(master, pol, 2, keyring)
    va, vb = _num(a, "50-0.0"), _num(b, "50-0.0")
    differ = np.mean(va != vb)
    assert 0.2 < differ < 0.6  # the two copies differ only where symbols differ


def test_pseudonymised_release_needs_master_eids(master, dictionary, keyring):
    pol = _policy(master, dictionary)
    stripped = master.drop_columns(["eid"])
    with pytest.raises(MarkingError):
        mark_release(stripped, pol, 1, keyring)
    eids = master.column("eid").to_numpy()
    out, _ = mark_release(stripped, pol, 1, keyring, eids=eids)
    ref, _ = mark_release(master, pol, 1, keyring)
    assert out.equals(ref.drop_columns(["eid"]))


def test_dates_marked_by_one_day_only_when_allowed(keyring):
    t = pa.table(
        {
            "eid": pa.array(np.arange(1_000_000, 1_000_500)),
            "40000-0.0": pa.array(np.arange(15000, 15500, dtype=np.int32)).cast(pa.date32()),
        }
    )
    d = {"40000-0.0": ("measure", 0, "Date")}
    off = MarkingPolicy.from_dictionary(d, t.schema.names, schema=t.schema)
    assert not off.columns
    on = MarkingPolicy.from_dictionary(d, t.schema.names, schema=t.schema, allow_dates=True)
    out, rep = mark_release(t, on, 3, keyring)
    diff = np.abs(_num(out, "40000-0.0") - _num(t, "40000-0.0"))
    assert diff.max() == 1 and rep.cells_changed > 100 and out.schema == t.schema


def test_cohort_dictionary_and_synthetic_cohort(keyring):
    from biowarden.cohort.synth import synthesise_table

    table, d = synthesise_table(1500, 3)
    pol = MarkingPolicy.from_dictionary(d, table.schema.names, data=table)
    assert "20116-0.0" not in pol.columns  # categorical codes are never moved
    assert pol.skipped["1160-0.0"].startswith("too coarse")  # sleep in whole hours: SD ~1 unit
    assert "1160-0.0" in MarkingPolicy.from_dictionary(d, table.schema.names, schema=table.schema).columns
    assert "50-0.0" in pol.columns and "21022-0.0" not in pol.columns
    assert [r.target for r in pol.derived] == ["21001-0.0"]
    import pickle

    pol = pickle.loads(pickle.dumps(pol))  # ships to Spark executors
    marked, rep = mark_release(table, pol, 8, keyring)
    assert rep.max_change_units == 1
    h, w, b = (_num(marked, c) for c in ("50-0.0", "21002-0.0", "21001-0.0"))
    ok = np.isfinite(h) & np.isfinite(w) & np.isfinite(b)
    assert np.array_equal(np.round(w / (h / 100) ** 2, 4)[ok], b[ok])


def test_batch_marker_streams_and_pickles(master, dictionary, keyring):
    import pickle

    from biowarden.trace.embed import batch_marker

    pol = _policy(master, dictionary)
    fn = pickle.loads(pickle.dumps(batch_marker(pol, 21, keyring)))
    out = pa.Table.from_batches(list(fn(master.to_batches(max_chunksize=700))))
    assert out.equals(mark_release(master, pol, 21, keyring)[0])


def _reference_marks(table: pa.Table, pol: MarkingPolicy, app: int, keyring) -> dict[str, np.ndarray]:
    """The marked values of each marked column, cell by cell from the scheme's definition (float64, NaN
    for missing): ``k0`` = value in units (rounded; truncated at precision 0), moved to ``k0 + d`` units
    when its parity is not the application's symbol, on the cells the PRF selects."""
    eids = np.asarray(table.column("eid").to_numpy(), dtype=np.int64)
    out = {}
    for col, mc in pol.columns.items():
        v = _num(table, col)
        secret = code.cell_secret(keyring, eids, col)
        sym = code.symbols(keyring, secret, app).astype(np.int64)
        d = code.directions(secret)
        ok = np.isfinite(v) & code.selected(secret, pol.fraction)
        scale = 10.0**mc.precision
        units = np.where(ok, np.rint(v * scale) if mc.precision else np.trunc(v), 0.0).astype(np.int64)
        moved = ok & (np.mod(units, 2) != sym)
        new = v.copy()
        new[moved] = (units[moved] + d[moved]) / scale if mc.precision else units[moved] + d[moved]
        out[col] = new
    return out


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_marking_matches_the_scheme_cell_by_cell(keyring, fraction):
    """Every column shape (on and off its precision's grid, missing values, NaN and infinity, narrow
    integers, dates, precision 0) marks exactly as the scheme defines, on the fast and the general path."""
    n = 5000
    rng = np.random.default_rng(11)
    eids = np.arange(2_000_000, 2_000_000 + n)
    on_grid = np.round(rng.normal(170, 10, n), 1)
    with_nulls = pa.array(np.round(rng.normal(5, 1, n), 2), mask=rng.random(n) < 0.1)
    special = np.round(rng.normal(80, 15, n), 1)
    special[::97], special[::131] = np.nan, np.inf
    t = pa.table(
        {
            "eid": pa.array(eids),
            "a": pa.array(on_grid),
            "b": with_nulls,
            "c": pa.array(rng.normal(5, 1, n)),  # more digits than recorded: moves keep the extra digits
            "d": pa.array(special),
            "e": pa.array(rng.integers(80, 180, n).astype(np.int32)),
            "f": pa.array(rng.integers(0, 100, n).astype(np.int8)),
            "g": pa.array(rng.integers(15000, 20000, n).astype(np.int32)).cast(pa.date32()),
            "h": pa.array(np.round(rng.normal(60, 12, n))),  # a float counted in whole units
            "i": pa.array(rng.normal(60, 12, n)),  # ... and one that is not
        }
    )
    d = {
        c: ("measure", p, vt)
        for c, p, vt in (
            ("a", 1, "Continuous"),
            ("b", 2, "Continuous"),
            ("c", 2, "Continuous"),
            ("d", 1, "Continuous"),
            ("e", 0, "Integer"),
            ("f", 0, "Integer"),
            ("g", 0, "Date"),
            ("h", 0, "Continuous"),
            ("i", 0, "Continuous"),
        )
    }
    pol = MarkingPolicy.from_dictionary(d, t.schema.names, schema=t.schema, allow_dates=True, fraction=fraction)
    assert set(pol.columns) == set("abcdefghi")
    marked, rep = mark_release(t, pol, 5, keyring)
    assert marked.schema == t.schema
    ref = _reference_marks(t, pol, 5, keyring)
    changed = 0
    for col in pol.columns:
        got = _num(marked, col)
        assert np.array_equal(np.isnan(got), np.isnan(ref[col]) | np.isinf(ref[col])), col
        ok = np.isfinite(ref[col])
        assert np.array_equal(got[ok], ref[col][ok]), col
        changed += int(np.count_nonzero(got[ok] != _num(t, col)[ok]))
    assert rep.cells_changed == changed and changed > 0.2 * fraction * n * len(pol.columns)
    # batches of any size give the same bytes
    parts = [mark_batch(b, pol, 5, keyring)[0] for b in t.to_batches(max_chunksize=999)]
    assert pa.Table.from_batches(parts).equals(marked)
