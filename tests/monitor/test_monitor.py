from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pyroaring import BitMap

from biowarden.keys import KeyRing
from biowarden.ledger.events import LedgerEvent
from biowarden.monitor.activity import EXPORT_KIND, Activity, from_event
from biowarden.monitor.detectors import CRITICAL, WARN, Alert, Monitor, MonitorConfig
from biowarden.monitor.incidents import NOTIFY, REINSTATE, SUSPEND, IncidentBook, Ladder, LogNotifier
from biowarden.monitor.replay import replay
from biowarden.monitor.simulate import ATTACKS, SimConfig, attack, simulate
from biowarden.store.ledger_store import LedgerStore

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(cohort_size=250_000, applications=150, institutions=30, months=2, seed=11))


def test_every_attack_is_detected(sim):
    for name in ATTACKS:
        assert sim.attacks[name].detected, name


def test_bulk_pull_and_expired_application_are_stopped_before_anything_leaves(sim):
    for name in ("bulk_pull", "expired_application", "compromised_account_night"):
        o = sim.attacks[name]
        assert o.cells_left == 0 and o.share_left == 0.0, name
        assert o.time_to_stop == timedelta(0)


def test_coordinated_pull_is_stopped_before_ten_percent_leaves(sim):
    o = sim.attacks["coordinated_three_institutions"]
    assert 0 < o.share_left < 0.10
    assert o.cells_left < o.cells_attempted / 3


def test_salami_slicing_is_stopped_early(sim):
    o = sim.attacks["salami_slicing"]
    assert o.share_left < 0.05 and o.cells_left < o.cells_attempted / 5


def test_ordinary_traffic_is_not_suspended(sim):
    assert sim.researcher_months > 1000
    assert sim.false_suspensions_per_1000 < 1.0


def _export(at, who="r@a", app="A-1", inst="I", eids=range(100), fields=10, **kw) -> Activity:
    bm = BitMap(np.asarray(list(eids), dtype=np.uint32))
    return Activity(
        at=at, researcher=who, application=app, institution=inst, rows=len(bm), fields=fields, participants=bm, **kw
    )


def test_precheck_fails_closed_on_bulk_and_expiry_and_respects_exceptions():
    m = Monitor(MonitorConfig(cohort_size=1000))
    bulk = _export(T0, eids=range(200))
    assert any(a.block and a.detector == "bulk_export" for a in m.precheck(bulk))
    assert not any(a.block for a in m.precheck(bulk, exception=True))
    late = _export(T0, eids=range(50), app_expires=T0 - timedelta(days=1))
    assert [a.detector for a in m.precheck(late) if a.block] == ["expired_application"]


def test_alerts_within_the_window_merge_and_the_ladder_climbs():
    book = IncidentBook(Ladder(merge_window=timedelta(minutes=90)), LogNotifier())
    warn = lambda t: Alert(t, "denied_burst", WARN, "researcher", "r@a", "5 denied")  # noqa: E731
    first = book.add([warn(T0), warn(T0 + timedelta(minutes=60))])
    assert [a.kind for a in first] == [NOTIFY] and len(book.incidents) == 1
    second = book.add([warn(T0 + timedelta(hours=5))])
    assert [a.kind for a in second] == [SUSPEND] and ("researcher", "r@a") in book.suspended
    # review: a false positive lifts the suspension and no longer counts
    assert [a.kind for a in book.review(2, "false_positive")] == [REINSTATE]
    assert ("researcher", "r@a") not in book.suspended
    third = book.add([warn(T0 + timedelta(days=2))])
    assert [a.kind for a in third] == [SUSPEND]  # counts as the second real incident, not the third
    with pytest.raises(ValueError, match="confirmed"):
        book.review(1, "maybe")


def test_critical_alert_suspends_at_once():
    book = IncidentBook()
    acts = book.add([Alert(T0, "coordinated_disjoint_pulls", CRITICAL, "institution", "I", "disjoint")])
    assert [a.kind for a in acts] == [SUSPEND]


def test_coordinated_pulls_found_and_overlapping_studies_left_alone():
    n = 20_000
    m = Monitor(MonitorConfig(cohort_size=n))
    rng = np.random.default_rng(0)
    order = rng.permutation(n)
    alerts = []
    for day in range(4):  # three institutions, disjoint 1% slices
        for j in range(3):
            k = day * 3 + j
            alerts += m.observe(
                _export(
                    T0 + timedelta(days=day, hours=j),
                    who=f"r{j}",
                    app=f"A{j}",
                    inst=f"I{j}",
                    eids=order[k * 200 : (k + 1) * 200],
                )
            )
    assert {a.target for a in alerts if a.detector == "coordinated_disjoint_pulls"} == {"I0", "I1", "I2"}
    m2 = Monitor(MonitorConfig(cohort_size=n))
    pop = rng.choice(n, 4000, replace=False)
    alerts2 = []
    for day in range(4):  # three institutions studying overlapping random populations
        for j in range(3):
            take = rng.choice(pop, 1500, replace=False)
            alerts2 += m2.observe(
                _export(T0 + timedelta(days=day, hours=j), who=f"r{j}", app=f"A{j}", inst=f"I{j}", eids=take)
            )
    assert not [a for a in alerts2 if a.detector == "coordinated_disjoint_pulls"]


def test_the_monitor_reads_the_ledger(db):
    """The real event path: exports are ledger entries; replaying them gives the alerts seen directly."""
    cfg = SimConfig(cohort_size=20_000)
    acts = sorted(attack("coordinated_three_institutions", cfg, T0, np.random.default_rng(5)), key=lambda a: a.at)
    store = LedgerStore(db, KeyRing(b"\x05" * 32))
    with db.session() as s:
        store.append_many(
            s,
            [
                LedgerEvent(EXPORT_KIND, f"user:{a.researcher}", f"application:{a.application}", a.payload(), at=a.at)
                for a in acts
            ],
        )
    direct = Monitor(MonitorConfig(cohort_size=cfg.cohort_size))
    seen = [(a.detector, a.target) for act in acts for a in direct.observe(act)]
    result = replay(store.entries(), Monitor(MonitorConfig(cohort_size=cfg.cohort_size)), IncidentBook())
    assert result.entries == len(acts) == result.activities
    assert [(a.detector, a.target) for a in result.alerts] == seen
    assert any(d == "coordinated_disjoint_pulls" for d, _ in seen)
    assert any(a.kind == SUSPEND for a in result.actions)


def test_activity_payload_round_trip_and_denials():
    act = _export(T0, eids=[1, 5, 9], network="10.0.0.0/24", app_expires=T0 + timedelta(days=3))
    back = from_event(EXPORT_KIND, T0, act.payload())
    assert back is not None and list(back.participants) == [1, 5, 9] and back.app_expires == act.app_expires
    denied = from_event("policy.decision", T0, {"researcher": "r@a"}, decision="deny")
    assert denied is not None and denied.kind == "denied"
    assert from_event("policy.decision", T0, {"researcher": "r@a"}, decision="allow") is None
    m = Monitor(MonitorConfig(cohort_size=1000, denied_count=3))
    got = [
        a.detector
        for i in range(3)
        for a in m.observe(Activity(T0 + timedelta(minutes=i), "r@a", "A", "I", kind="denied"))
    ]
    assert got == ["denied_burst"]


def test_windowed_robust_statistics_equal_sorting_exactly():
    from biowarden.monitor.detectors import _robust, _Window

    rng = np.random.default_rng(3)
    for trial in range(300):
        w = _Window(int(rng.integers(1, 40)))
        values = []
        for _ in range(int(rng.integers(1, 120))):
            x = float(rng.integers(0, 6)) if trial % 2 else float(np.log1p(rng.integers(1, 10**6)))  # ties, too
            w.append(x)
            values.append(x)
            assert w.robust() == _robust(values[-w.size :])


def test_replay_from_ledger_text_gives_the_alerts_of_the_direct_path():
    """Lazy decoding (participants cut out of the text, re-pulls never decoded) changes no result."""
    from types import SimpleNamespace

    from biowarden.ledger.canonical import canonical_text
    from biowarden.monitor.activity import from_text
    from biowarden.monitor.simulate import START, ordinary_traffic

    cfg = SimConfig(cohort_size=50_000, applications=60, institutions=12, months=2, seed=4)
    acts, _ = ordinary_traffic(cfg)
    rng = np.random.default_rng(9)
    for k, name in enumerate(ATTACKS):
        acts += attack(name, cfg, START + timedelta(days=20 + 6 * k, hours=11), rng)
    acts.sort(key=lambda a: a.at)
    entries = [
        SimpleNamespace(kind=EXPORT_KIND, at=a.at, decision=None, payload_json=canonical_text(a.payload()))
        for a in acts
    ]
    entries.insert(
        5,
        SimpleNamespace(
            kind="policy.decision", at=acts[5].at, decision="deny", payload_json='{"researcher":"x@y.ac.uk"}'
        ),
    )
    lazy = from_text(EXPORT_KIND, T0, entries[0].payload_json)
    assert lazy.participants is None and lazy.encoded and lazy.rows == acts[0].rows
    direct = Monitor(MonitorConfig(cohort_size=cfg.cohort_size))
    denied = from_event("policy.decision", acts[5].at, {"researcher": "x@y.ac.uk"}, decision="deny")
    seen = [(a.detector, a.target, a.detail) for act in [*acts[:5], denied, *acts[5:]] for a in direct.observe(act)]
    result = replay(entries, Monitor(MonitorConfig(cohort_size=cfg.cohort_size)), IncidentBook())
    assert [(a.detector, a.target, a.detail) for a in result.alerts] == seen
    assert result.activities == len(acts) + 1 and len(seen) > 10


def test_the_coordinated_bound_holds_for_the_exact_hypergeometric_tail():
    """exp(-exponent) bounds P(X <= x) for X ~ Hypergeometric(N, K, n): the per-pair false-alarm level."""
    from math import comb, exp

    from biowarden.monitor.detectors import _lower_tail_exponent

    for n_all, k, n in ((400, 40, 50), (2000, 300, 200), (3000, 150, 900), (1000, 500, 500)):
        mu = n * k / n_all
        total = comb(n_all, n)
        cdf = 0
        for x in range(0, int(mu)):
            cdf += comb(k, x) * comb(n_all - k, n - x)
            assert cdf / total <= exp(-_lower_tail_exponent(x, mu)) * (1 + 1e-12), (n_all, k, n, x)


def test_coordinated_pulls_are_caught_early_at_any_cohort_size_and_independent_pulls_are_not():
    from biowarden.monitor.simulate import run as drive

    for n in (20_000, 100_000):
        cfg = SimConfig(cohort_size=n)
        acts = sorted(attack("coordinated_three_institutions", cfg, T0, np.random.default_rng(5)), key=lambda a: a.at)
        book = IncidentBook()
        res = drive(acts, Monitor(MonitorConfig(cohort_size=n)), book)
        flagged = {i.target for i in book.incidents if i.alerts[0].detector == "coordinated_disjoint_pulls"}
        assert flagged == {"Northbridge Institute", "Eastgate University", "Westmoor Institute"}, n
        assert res.attacks["coordinated_three_institutions"].share_left < 0.10, n
    # independent pulls of the same sizes, at institutions that also took 5% slices a day: never flagged
    rng = np.random.default_rng(8)
    for n in (20_000, 100_000, 500_000):
        m = Monitor(MonitorConfig(cohort_size=n))
        found = []
        for day in range(10):
            for j in range(4):
                eids = rng.choice(n, n // 20, replace=False)
                found += m.observe(
                    _export(T0 + timedelta(days=day, hours=j), who=f"r{j}", app=f"A{j}", inst=f"I{j}", eids=eids)
                )
        assert not [a for a in found if a.detector == "coordinated_disjoint_pulls"], n


def test_ledger_texts_read_by_pattern_or_json_give_the_same_activities():
    from types import SimpleNamespace

    from biowarden.ledger.canonical import canonical_text
    from biowarden.monitor.activity import decode_participants, from_entries

    base = _export(T0, eids=[3, 4, 70_000], network="10.0.0.0/24", client="rstudio", app_expires=T0 + timedelta(3))
    payloads = [
        base.payload(),
        {**base.payload(), "release_id": "R-1"},
        {**base.payload(), "researcher": 'q"t@a'},
        {**base.payload(), "extra": 1},
        {k: v for k, v in base.payload().items() if k != "participants"},
        {**base.payload(), "institution": "Université de Nîmes"},
        {"researcher": "d@a"},
    ]
    kinds = [EXPORT_KIND] * 6 + ["policy.decision"]
    entries = [
        SimpleNamespace(kind=k, at=T0, decision="deny" if k != EXPORT_KIND else None, payload_json=canonical_text(p))
        for k, p in zip(kinds, payloads, strict=True)
    ]
    entries.append(SimpleNamespace(kind="registry.institution.add", at=T0, decision=None, payload_json="{}"))
    got = list(from_entries(entries, batch=3))
    assert got[-1] is None and len(got) == len(entries)
    for e, act in zip(entries[:-1], got, strict=False):
        want = from_event(e.kind, e.at, __import__("json").loads(e.payload_json), e.decision)
        if act.encoded:
            act.participants, act.encoded = decode_participants(act.encoded), ""
        assert act == want, e.payload_json


@pytest.mark.parametrize("number", ["012", "00", "-01", "\u0661\u0662", "1\u0662"])
def test_a_number_json_refuses_is_refused_by_the_pattern_reader_too(number):
    """An export text the pattern reader takes (no participants: not the platform's usual layout) with a
    count JSON does not allow (a leading zero, digits of another script) is refused as the JSON reader refuses
    it, instead of being read as a number."""
    from types import SimpleNamespace

    from biowarden.ledger.canonical import canonical_text
    from biowarden.monitor.activity import from_entries

    base = {k: v for k, v in _export(T0, eids=[3, 4]).payload().items() if k != "participants"}
    text = canonical_text(base)
    assert '"fields":' in text
    good = SimpleNamespace(kind=EXPORT_KIND, at=T0, decision=None, payload_json=text)
    assert next(iter(from_entries([good]))).fields == base["fields"]
    bad = SimpleNamespace(
        kind=EXPORT_KIND,
        at=T0,
        decision=None,
        payload_json=text.replace(f'"fields":{base["fields"]},', f'"fields":{number},'),
    )
    assert bad.payload_json != text
    with pytest.raises(ValueError):
        list(from_entries([bad]))
