from __future__ import annotations

import numpy as np
import pyarrow as pa

from biowarden.trace import canary
from biowarden.trace.embed import MarkingPolicy, mark_release
from biowarden.trace.releases import InMemoryCatalog, ReleaseCatalog, ReleaseRecord, participant_digest

from .conftest import leak_of, run_trace

QI = ("31-0.0", "34-0.0", "21022-0.0", "189-0.0", "53-0.0")


def test_canaries_are_plausible_and_spread_over_applications(master, keyring):
    rows = canary.canary_rows(master, canary.pool(), keyring, QI)
    assert rows.num_rows == canary.POOL_SIZE and rows.schema == master.schema
    h, w, b = (np.asarray(rows.column(c).to_numpy(), float) for c in ("50-0.0", "21002-0.0", "21001-0.0"))
    assert np.allclose(np.round(w / (h / 100) ** 2, 4), b)
    assert not np.isin(rows.column("eid").to_numpy(), master.column("eid").to_numpy()).any()
    sets = [set(canary.assigned(keyring, a).tolist()) for a in range(1, 41)]
    sizes = [len(s) for s in sets]
    assert 3 <= np.mean(sizes) <= 13 and len({frozenset(s) for s in sets}) > 35
    # every canary is carried by many applications: comparing two copies does not single them out
    carried = np.array([sum(e in s for s in sets) for e in canary.pool().tolist()])
    assert carried.min() >= 8


def test_canary_layer_in_a_bulk_dump(master, dictionary, keyring):
    policy = MarkingPolicy.from_dictionary(dictionary, master.schema.names, data=master)
    records, copies = [], {}
    for a in range(1, 21):
        t, ids = canary.add_canaries(master, master, a, keyring, QI, dictionary=dictionary)
        copies[a], _ = mark_release(t, policy, a, keyring)
        eids = np.asarray(t.column("eid").to_numpy())
        records.append(
            ReleaseRecord(
                f"r{a}",
                f"APP-{a}",
                a,
                "Inst",
                "2026-04-01",
                tuple(master.schema.names[1:]),
                eids=eids,
                canary_eids=tuple(ids.tolist()),
            )
        )
    cat = InMemoryCatalog(records)
    assert isinstance(cat, ReleaseCatalog)
    # a bulk dump with every marked measure rounded away: only the canaries still speak
    prec = {c: m.precision for c, m in policy.columns.items()}
    from biowarden.trace import attacks

    dump = attacks.round_columns(copies[6], {c: p - 1 for c, p in prec.items()})
    leak, eids = leak_of(dump)
    v = run_trace(leak, eids, master, dictionary, cat, keyring, quasi_columns=QI)
    assert "canary" in v.layers_applied
    top = v.top_candidates[0]
    assert top["application"] == "APP-6"
    assert v.accused == [] or [a.application_no for a in v.accused] == [6]


def test_release_record_digest_and_loader():
    eids = np.array([3, 1, 2, 2])
    r = ReleaseRecord("r", "A", 1, "I", "2026-01-01", ("50-0.0",), eid_loader=lambda: eids)
    assert r.participant_digest == ""
    assert set(r.participants().tolist()) == {1, 2, 3}
    assert participant_digest(eids) == participant_digest(np.array([1, 2, 3]))
    d = ReleaseRecord("r", "A", 1, "I", "2026-01-01", ("50-0.0",), eids=eids).to_dict()
    assert d["participants"] == 3 and len(d["participant_digest"]) == 64


def _std_measures(t, cols):
    x = np.column_stack([np.asarray(t.column(c).to_numpy(zero_copy_only=False), float) for c in cols])
    return x


def test_canaries_mix_two_donors_and_copy_no_one(master, dictionary, keyring):
    from biowarden.trace.embed import MarkingPolicy

    rows = canary.canary_rows(master, canary.pool(), keyring, QI, dictionary=dictionary)
    pol = MarkingPolicy.from_dictionary(dictionary, master.schema.names, schema=master.schema)
    cols = [c for c in pol.columns if c not in QI]
    # each canary's measures sit on their recorded precision and match no participant's (not a copy)
    for c in cols:
        v = np.asarray(rows.column(c).to_numpy(zero_copy_only=False), float)
        p = pol.columns[c].precision
        ok = np.isfinite(v)
        assert np.allclose(v[ok] * 10**p, np.round(v[ok] * 10**p)), c
    m = _std_measures(master, cols)
    sd = np.nanstd(m, axis=0)
    r = _std_measures(rows, cols)
    d = np.nanmean(np.abs((m[None, :, :] - r[:, None, :]) / sd), axis=2)  # (canaries, participants)
    assert d.min() > 0.05
    # BMI recomputed from the canary's own height and weight
    h, w, b = (np.asarray(rows.column(c).to_numpy(), float) for c in ("50-0.0", "21002-0.0", "21001-0.0"))
    assert np.allclose(np.round(w / (h / 100) ** 2, 4), b)
    # the same canary whatever other columns the tracer's copy of the master holds
    few = master.select(["eid", "31-0.0", "50-0.0", "4080-0.0"])
    again = canary.canary_rows(few, canary.pool(), keyring, QI, dictionary=dictionary)
    for c in ("50-0.0", "4080-0.0", "31-0.0"):
        assert again.column(c).equals(rows.column(c)), c


def test_placed_canaries_join_existing_classes(master, dictionary, keyring):
    """In a generalised release, a canary's QI labels are real labels and its combination an existing class."""
    gen = master.set_column(
        master.schema.names.index("34-0.0"),
        "34-0.0",
        pa.array([f"[{y // 10 * 10}, {y // 10 * 10 + 10})" for y in master.column("34-0.0").to_pylist()]),
    )
    gen = gen.set_column(gen.schema.names.index("31-0.0"), "31-0.0", gen.column("31-0.0").cast(pa.string()))
    carried = []
    for a in range(1, 11):
        rows, eids = canary.place_canaries(gen, master, a, keyring, ["31-0.0", "34-0.0"], dictionary)
        assert rows.schema == gen.schema and rows.num_rows == eids.size
        assert set(eids.tolist()) <= set(canary.assigned(keyring, a).tolist())
        combos = set(zip(gen.column("31-0.0").to_pylist(), gen.column("34-0.0").to_pylist(), strict=True))
        for combo in zip(rows.column("31-0.0").to_pylist(), rows.column("34-0.0").to_pylist(), strict=True):
            assert combo in combos
        carried.append(eids.size)
    # in a whole-cohort release every assigned canary finds its class
    assert carried == [canary.assigned(keyring, a).size for a in range(1, 11)]
    # the release's own numbers are untouched; the canary rows are the tracer's rows with labels for QIs
    ref = canary.canary_rows(master, eids, keyring, ("31-0.0", "34-0.0"), dictionary=dictionary)
    assert rows.column("50-0.0").equals(ref.column("50-0.0").cast(rows.schema.field("50-0.0").type))


def test_canary_layer_is_calibrated_for_innocents(keyring):
    """Over many innocent applications, the canary p-value is at most alpha with probability <= alpha."""
    from biowarden.trace import bounds

    leaked = canary.assigned(keyring, 1, 64)  # the canaries a guilty application's dump carried
    ps = []
    for a in range(2, 3002):
        k = int(np.isin(leaked, canary.assigned(keyring, a, 64)).sum())
        ps.append(float(np.exp(bounds.binomial_logsf(k, leaked.size, canary.ASSIGN_PROBABILITY))))
    ps = np.array(ps)
    for alpha in (0.01, 0.05, 0.2):
        assert (ps <= alpha).mean() <= alpha + 3 * np.sqrt(alpha / ps.size)
    assert np.exp(bounds.binomial_logsf(leaked.size, leaked.size, 0.5)) < 1e-8  # the guilty one: all 30-odd


def test_placed_canary_gets_the_bin_of_a_value_no_participant_released(master, dictionary, keyring):
    """A continuous QI (Townsend index) in bins of width 2: a canary whose donor is not in the release takes
    the bin its released neighbours share, and its donor's value lies in that bin."""
    sub = master.take(pa.array(np.arange(0, master.num_rows, 3)))
    tdi = np.asarray(sub.column("189-0.0").to_numpy(zero_copy_only=False), float)
    lo = np.floor(tdi / 2) * 2
    gen = sub.set_column(
        sub.schema.names.index("189-0.0"), "189-0.0", pa.array([f"[{a:g}, {a + 2:g})" for a in lo.tolist()])
    )
    kept = 0
    for a in range(1, 13):
        rows, eids = canary.place_canaries(gen, master, a, keyring, ["189-0.0"], dictionary)
        ref = canary.canary_rows(master, eids, keyring, ("189-0.0",), dictionary=dictionary)
        for label, v in zip(rows.column("189-0.0").to_pylist(), ref.column("189-0.0").to_pylist(), strict=True):
            left = float(label[1:].split(",")[0])
            assert left <= v < left + 2
        kept += eids.size
    assert kept > 0.8 * sum(canary.assigned(keyring, a).size for a in range(1, 13))
