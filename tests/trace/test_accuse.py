from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from biowarden.trace import attacks, code, pseudonym
from biowarden.trace.accuse import trace_table
from biowarden.trace.embed import MarkingPolicy

from .conftest import leak_of, run_trace


def _precisions(master, dictionary):
    pol = MarkingPolicy.from_dictionary(dictionary, master.schema.names, schema=master.schema)
    return pol, {c: m.precision for c, m in pol.columns.items()}


def test_single_leaker_accused_from_ten_rows(master, dictionary, keyring, released):
    copies, records = released
    for app in (4, 9, 33):
        leak = attacks.subsample(copies[app], 10, seed=app)
        leak, eids = leak_of(attacks.shuffle_rows(leak, seed=1))
        v = run_trace(leak, eids, master, dictionary, records, keyring)
        assert [a.application_no for a in v.accused] == [app]
        acc = v.accused[0]
        assert acc.p_value * v.candidates_scored < 1e-6
        assert acc.layers["fingerprint"]["cells"] <= 10 * 20
        assert v.rows_read == 10 and v.rows_linked == 10
        ev = acc.evidence["fingerprint_cells"]["examples"][0]
        assert ev["application_symbol"] in (0, 1) and len(ev["value_for_symbol"]) == 2


@pytest.mark.parametrize("strategy", ["majority", "interleave", "minority", "random"])
def test_three_colluders_all_accused_from_150_rows(master, dictionary, keyring, released, strategy):
    copies, records = released
    gang = [7, 21, 40]
    merged = attacks.merge([copies[a] for a in gang], strategy, seed=5)
    leak, eids = leak_of(attacks.subsample(merged, 150, seed=6))
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    assert sorted(a.application_no for a in v.accused) == gang
    assert v.false_accusation_bound == 1e-6


def test_renamed_reordered_rounded_columns(master, dictionary, keyring, released):
    copies, records = released
    leak = attacks.subsample(copies[12], 40, seed=2)
    leak = attacks.round_columns(leak, {"30690-0.0": 1, "30760-0.0": 1, "50-0.0": 0})
    leak, eids = leak_of(attacks.reorder_columns(leak, seed=3))
    renamed = attacks.rename_columns(leak)
    mapping = dict(zip(renamed.schema.names, leak.schema.names, strict=True))
    v = run_trace(renamed, eids, master, dictionary, records, keyring, mapping=mapping)
    assert [a.application_no for a in v.accused] == [12]
    assert len(v.rounded_columns) == 3  # those cells are erasures
    assert v.cells_erased >= 3 * 35


def test_erasures_only_means_no_accusation(master, dictionary, keyring, released):
    copies, records = released
    _pol, prec = _precisions(master, dictionary)
    leak = attacks.subsample(copies[3], 200, seed=4)
    leak = attacks.round_columns(leak, {c: p - 1 for c, p in prec.items()})
    leak, eids = leak_of(leak)
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    assert v.accused == [] and v.cells_read == 0 and v.cells_erased > 0


def test_innocents_not_accused_over_many_leaks(master, dictionary, keyring, released):
    """Leaks made by applications that are not among the candidates (their records withheld)."""
    copies, records = released
    outsiders = set(range(41, 61))
    inside = [r for r in records if r.application_no not in outsiders]
    worst = 0.0
    for k, app in enumerate(sorted(outsiders)):
        merged = attacks.merge([copies[app], copies[((app + 7) % 20) + 41]], "majority", seed=k)
        leak, eids = leak_of(attacks.subsample(merged, 60 + 10 * k, seed=k))
        v = run_trace(leak, eids, master, dictionary, inside, keyring)
        assert v.accused == []
        assert v.candidates_scored == 40
        worst = min(worst, v.top_candidates[0]["log10_p_value"])
    assert worst > -4  # nothing near the 1e-6 / 40 line


def test_noise_and_average_attacks(master, dictionary, keyring, released):
    copies, records = released
    _pol, prec = _precisions(master, dictionary)
    noisy = attacks.add_noise(attacks.subsample(copies[18], 120, seed=1), prec, units=1, seed=2)
    leak, eids = leak_of(noisy)
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    assert [a.application_no for a in v.accused] == [18]
    avg = attacks.merge([copies[18], copies[19]], "average", seed=0)
    leak, eids = leak_of(attacks.subsample(avg, 150, seed=3))
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    assert {a.application_no for a in v.accused} <= {18, 19}  # averages of two are erasures where they differ


def test_union_of_copies_is_deduplicated(master, dictionary, keyring, released):
    copies, records = released
    union = attacks.merge([attacks.subsample(copies[a], 60, seed=a) for a in (25, 26)], "union")
    leak, eids = leak_of(union)
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    assert {a.application_no for a in v.accused} == {25, 26}


def test_pseudonym_layer_names_the_application_alone(master, dictionary, keyring, released):
    copies, records = released
    t = attacks.subsample(copies[30], 5, seed=9)
    eids = np.asarray(t.column("eid").to_numpy())
    ids = pseudonym.pseudonymise(eids, 30, keyring)
    leak = t.drop_columns(["eid"]).append_column("participant", pa.array(ids))
    # round every marked column away: only the IDs are left as evidence
    _pol, prec = _precisions(master, dictionary)
    leak = attacks.round_columns(leak, {c: p - 1 for c, p in prec.items()})
    v = trace_table(
        leak,
        master,
        dictionary,
        records,
        keyring,
        mapping={c: c for c in leak.schema.names if c != "participant"},
        linked_eids=np.full(5, -1),
    )
    assert [a.application_no for a in v.accused] == [30]
    assert v.accused[0].layers["pseudonym"]["valid_ids"] == 5
    assert v.rows_linked == 5  # verified pseudonyms link their rows


def test_verdict_is_deterministic_and_json_ready(master, dictionary, keyring, released):
    copies, records = released
    leak, eids = leak_of(attacks.subsample(copies[2], 30, seed=0))
    a = run_trace(leak, eids, master, dictionary, records, keyring).to_dict()
    b = run_trace(leak, eids, master, dictionary, records, keyring).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    for key in ("accused", "candidates_scored", "rows_read", "rows_linked", "false_accusation_bound"):
        assert key in a
    assert {"application", "institution", "p_value", "layers", "evidence"} <= set(a["accused"][0])


def test_fast_calibration_of_the_bound(master, keyring):
    """Vectorised: 20,000 innocent applications against one real leak's cells; tail below the bound."""
    rng = np.random.default_rng(11)
    secrets = rng.integers(0, 2**64, 400, dtype=np.uint64)
    p = code.biases(secrets)
    y = (rng.random(400) < p).astype(np.int8)  # a colluder-like leak
    up, down = code.score_weights(p, y)
    xs = np.stack([code.symbols(keyring, secrets, a, p) for a in range(1000, 21000)])
    s = np.where(xs == y, up, -down).sum(axis=1)
    from biowarden.trace import bounds

    for thr in (15.0, 30.0, 45.0):
        bound = np.exp(bounds.chernoff_logp(thr, up, down, code.agree_probability(p, y)))
        assert np.mean(s >= thr) <= bound + 3 * np.sqrt(bound / s.size)


def test_trace_file_end_to_end_with_reading_and_linking(tmp_path, master, dictionary, keyring, released):
    """A CSV listing: three copies merged, IDs dropped, columns renamed and rounded; read, linked, traced."""
    import pyarrow.csv as pacsv

    from biowarden.trace.accuse import trace_file

    copies, records = released
    leak = attacks.merge([copies[a] for a in (5, 14, 27)], "majority", seed=1)
    leak = attacks.strip_ids(attacks.subsample(leak, 150, seed=2))
    leak = attacks.round_columns(leak, {"21002-0.0": 0})
    leak = attacks.rename_columns(leak, {"50-0.0": "height_cm", "21002-0.0": "weight"})
    path = tmp_path / "listing.csv"
    pacsv.write_csv(leak, path)
    v = trace_file(path, master, dictionary, records, keyring)
    assert v.rows_read == 150 and v.rows_linked >= 140
    assert v.columns.get("height_cm") == "50-0.0"
    assert sorted(a.application_no for a in v.accused) == [5, 14, 27]


def test_empty_and_unlinkable_leaks_accuse_nobody(master, dictionary, keyring, released):
    copies, records = released
    leak, eids = leak_of(copies[1].slice(0, 0))
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    assert v.accused == [] and v.rows_read == 0 and v.candidates_scored == 0
    leak, eids = leak_of(copies[1].slice(0, 20))
    v = run_trace(leak, np.full(20, -1), master, dictionary, records, keyring)
    assert v.accused == [] and v.rows_linked == 0


def test_bulk_dump_scored_on_a_spread_subset(master, dictionary, keyring, released):
    copies, records = released
    leak, eids = leak_of(copies[9])
    v = run_trace(leak, eids, master, dictionary, records, keyring, max_cells=2000)
    assert v.rows_linked == 1600 and v.cells_scored == 2000 and 2000 < v.cells_read <= 4000
    assert [a.application_no for a in v.accused] == [9]


def test_evidence_names_rows_marks_and_keys(master, dictionary, keyring, released):
    copies, records = released
    leak, eids = leak_of(attacks.subsample(copies[16], 12, seed=4))
    v = run_trace(leak, eids, master, dictionary, records, keyring)
    ev = v.accused[0].evidence
    assert ev["fingerprint_cells"]["leak_rows"] == list(range(12))
    assert ev["key_ids"][f"{code.PURPOSE_SYMBOL}16"] == keyring.key_id(f"{code.PURPOSE_SYMBOL}16")
    assert ev["releases"]["releases"] == ["rel-16"] and ev["releases"]["linked_participants_received"] == 12
    # every example is a mark the regulator can check: the leaked value is the application's version
    for e in ev["fingerprint_cells"]["examples"]:
        assert e["leaked_value"] == pytest.approx(e["value_for_symbol"][e["application_symbol"]])


def test_marking_a_fraction_of_cells(master, dictionary, keyring):
    from biowarden.trace.embed import mark_release

    pol = MarkingPolicy.from_dictionary(dictionary, master.schema.names, data=master, fraction=0.25)
    _marked, rep = mark_release(master, pol, 3, keyring)
    full = MarkingPolicy.from_dictionary(dictionary, master.schema.names, data=master)
    _m2, rep2 = mark_release(master, full, 3, keyring)
    assert 0.2 < rep.cells_marked / rep2.cells_marked < 0.3
