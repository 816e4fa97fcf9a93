from __future__ import annotations

import numpy as np

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
        t, ids = canary.add_canaries(master, master, a, keyring, QI)
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
