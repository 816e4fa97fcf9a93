from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from biowarden.trace import attacks, code
from biowarden.trace.embed import MarkingPolicy, mark_release, read_symbols, to_units

from .conftest import leak_of, run_trace


def _num(t, c):
    a = t.column(c).combine_chunks()
    v = np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return np.where(np.asarray(a.is_valid()), v, np.nan)


def _agreement(copy, master, policy, keyring, app, columns):
    """Share of readable cells of ``columns`` whose leaked symbol is the application's symbol."""
    eids = np.asarray(copy.column("eid").to_numpy())
    midx = np.searchsorted(np.asarray(master.column("eid").to_numpy()), eids)
    agree = total = 0
    for c in columns:
        prec = policy.columns[c].precision
        sec = code.cell_secret(keyring, eids, c)
        y = read_symbols(to_units(_num(copy, c), prec), to_units(_num(master, c)[midx], prec), sec)
        x = code.symbols(keyring, sec, app)
        ok = y >= 0
        agree += int((y[ok] == x[ok]).sum())
        total += int(ok.sum())
    return agree / max(total, 1)


@pytest.mark.parametrize("strategy", attacks.MERGES)
def test_merge_strategies_shape(released, strategy):
    copies, _ = released
    parts = [copies[a] for a in (1, 2, 3)]
    out = attacks.merge(parts, strategy, seed=0)
    assert out.schema.names == parts[0].schema.names
    eids = [set(p.column("eid").to_pylist()) for p in parts]
    if strategy == "union":
        assert out.num_rows == sum(p.num_rows for p in parts)
    elif strategy == "intersection":
        assert set(out.column("eid").to_pylist()) == eids[0] & eids[1] & eids[2]
    else:
        assert set(out.column("eid").to_pylist()) == eids[0] | eids[1] | eids[2]


def test_majority_and_minority_pick_held_values(released):
    copies, _ = released
    parts = [copies[a] for a in (1, 2, 3)]
    common = set.intersection(*(set(p.column("eid").to_pylist()) for p in parts))
    maj = attacks.merge(parts, "majority", seed=0)
    mino = attacks.merge(parts, "minority", seed=0)
    for out in (maj, mino):
        keep = np.isin(out.column("eid").to_numpy(), list(common))
        sub = out.filter(pa.array(keep))
        v = _num(sub, "50-0.0")
        opts = []
        for p in parts:
            idx = {e: i for i, e in enumerate(p.column("eid").to_pylist())}
            col = _num(p, "50-0.0")
            opts.append(np.array([col[idx[e]] for e in sub.column("eid").to_pylist()]))
        held = np.any([np.isclose(v, o) | (np.isnan(v) & np.isnan(o)) for o in opts], axis=0)
        assert held.all()
    assert _num(maj, "50-0.0").tolist() != _num(mino, "50-0.0").tolist()


def test_correlation_attack_reverts_marks_when_bmi_is_not_recomputed(master, dictionary, keyring):
    policy = MarkingPolicy.from_dictionary(dictionary, master.schema.names, data=master)
    naive = MarkingPolicy(columns=dict(policy.columns), derived=[])  # marks without recomputing BMI
    prec = {c: m.precision for c, m in policy.columns.items()}
    body = ["50-0.0", "21002-0.0"]
    copy, _ = mark_release(master, naive, 44, keyring)
    before = _agreement(copy, master, policy, keyring, 44, body)
    attacked, stats = attacks.correlation_attack(copy, master, prec, budget=0.0, derived=policy.derived)
    after = _agreement(attacked, master, policy, keyring, 44, body)
    assert before > 0.99 and stats["derived_repaired"] > 0.4 * master.num_rows
    assert after < 0.8  # the attack found and reverted the marks the BMI relation gave away


def test_correlation_attack_finds_nothing_when_bmi_is_recomputed(master, dictionary, keyring, released):
    copies, records = released
    policy = MarkingPolicy.from_dictionary(dictionary, master.schema.names, data=master)
    prec = {c: m.precision for c, m in policy.columns.items()}
    attacked, stats = attacks.correlation_attack(copies[44], master, prec, budget=0.142, derived=policy.derived, seed=1)
    assert stats["derived_repaired"] == 0 and stats["row_wise_changed"] > 0
    agree = _agreement(attacked, master, policy, keyring, 44, list(policy.columns))
    assert agree > 0.88  # a one-unit nudge of 14% of cells flips about half of those: ~7% symbol errors
    leak, eids = leak_of(attacks.subsample(attacked, 30, seed=2))
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    assert [a.application_no for a in v.accused] == [44]


def test_single_copy_attacks(released):
    copies, _ = released
    t = copies[1]
    assert attacks.subsample(t, 10, seed=0).num_rows == 10
    assert "eid" not in attacks.strip_ids(t).schema.names
    assert sorted(attacks.reorder_columns(t, seed=1).schema.names) == sorted(t.schema.names)
    assert attacks.rename_columns(t).schema.names[0] == "col1"
    r = attacks.round_columns(t, {"30690-0.0": 1})
    v = _num(r, "30690-0.0")
    assert np.allclose(v[np.isfinite(v)], np.round(v[np.isfinite(v)], 1))
    n = attacks.add_noise(t, {"4080-0.0": 0}, units=2, seed=0)
    d = np.abs(_num(n, "4080-0.0") - _num(t, "4080-0.0"))
    assert d.max() == 2 and n.schema.field("4080-0.0").type == t.schema.field("4080-0.0").type
    with pytest.raises(ValueError):
        attacks.merge([t, t], "median")
