"""Incremental scans: each scan resumes from the detectors' state the last one kept and reads only newer
ledger entries, and files exactly what one full replay of the ledger files; ``full`` rebuilds the state;
a snapshot that was tampered with, or made by another configuration, is refused and rebuilt."""

from __future__ import annotations

import dataclasses
from collections import deque
from datetime import timedelta

import numpy as np
import pytest
from pyroaring import BitMap
from typer.testing import CliRunner

from biowarden.cli.main import app as cli
from biowarden.ledger.events import LedgerEvent
from biowarden.monitor import snapshot
from biowarden.monitor.activity import DECISION_KIND, DENIED_KINDS, EXPORT_KIND
from biowarden.monitor.detectors import Monitor, MonitorConfig
from biowarden.monitor.incidents import IncidentBook
from biowarden.monitor.replay import replay_batch
from biowarden.monitor.service import MonitorService
from biowarden.monitor.simulate import ATTACKS, START, SimConfig, attack, ordinary_traffic
from biowarden.registry import LOCAL_OPERATOR
from biowarden.store.monitor_store import MonitorStore
from biowarden.store.monitor_tables import MonitorSnapshotRow
from tests.registry.helpers import make_registry

COHORT = 20_000


def _events() -> list[LedgerEvent]:
    """Ordinary traffic, every attack, and a researcher's bursts of out-of-scope requests, in time order."""
    cfg = SimConfig(cohort_size=COHORT, applications=40, institutions=8, months=2, seed=11)
    acts, _ = ordinary_traffic(cfg)
    rng = np.random.default_rng(3)
    for k, name in enumerate(ATTACKS):
        acts += attack(name, cfg, START + timedelta(days=12 + 8 * k, hours=11), rng)
    events = [
        LedgerEvent(EXPORT_KIND, f"user:{a.researcher}", f"application:{a.application}", a.payload(), at=a.at)
        for a in acts
    ]
    who = acts[10]
    for day in (5, 30, 31):
        for k in range(6):
            events.append(
                LedgerEvent(
                    DECISION_KIND,
                    who.researcher,
                    f"application:{who.application}",
                    {
                        "action": "application.access",
                        "roles": ["researcher"],
                        "fields": ["31", f"9{k}"],
                        "researcher": who.researcher,
                        "application": who.application,
                        "institution": who.institution,
                    },
                    decision="deny",
                    reason="DENY_FIELD_OUT_OF_SCOPE" if day != 31 else "DENY_SUSPENDED_RESEARCHER",
                    at=START + timedelta(days=day, hours=14, minutes=7 * k),
                )
            )
    events.sort(key=lambda e: e.at)
    return events


def _canon(x):
    """The detectors' state as plain comparable values (sets sorted, bitmaps as lists, objects as dicts),
    without the caches a snapshot keeps empty (``snapshot.CACHES``: they change no result)."""
    if isinstance(x, BitMap):
        return ("bitmap", list(x))
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        kept = [f.name for f in dataclasses.fields(x) if (type(x).__name__, f.name) not in snapshot.CACHES]
        return (type(x).__name__, {name: _canon(getattr(x, name)) for name in kept})
    if isinstance(x, dict):
        return {k: _canon(v) for k, v in x.items()}
    if isinstance(x, set | frozenset):
        return ("set", sorted(x))
    if isinstance(x, list | tuple | deque):
        return [_canon(v) for v in x]
    if hasattr(x, "__slots__"):
        return (type(x).__name__, {k: _canon(getattr(x, k)) for k in x.__slots__})
    if hasattr(x, "__dict__") and not isinstance(x, type):
        return (type(x).__name__, {k: _canon(v) for k, v in vars(x).items()})
    return x


def _kept(db, config) -> Monitor:
    with db.session() as s:
        row = MonitorStore().snapshot(s)
        key = make_registry(db).audit.keyring.key(snapshot.PURPOSE)
        return snapshot.load(row.state, key, row.ledger_index, row.fingerprint, row.mac, config)


def _filed(svc) -> list[tuple]:
    rows = svc.alerts(LOCAL_OPERATOR, limit=10_000)
    return sorted((a["at"], a["detector"], a["scope"], a["target"], a["detail"]) for a in rows)


@pytest.fixture
def world(db):
    reg = make_registry(db)
    config = MonitorConfig(cohort_size=COHORT)
    return reg, MonitorService(reg, config=config), config


def _append(reg, db, events) -> None:
    with db.session() as s:
        reg.audit.ledger.append_many(s, events)


def test_incremental_scans_equal_one_full_replay(world, db):
    reg, svc, config = world
    events = _events()
    chunks = np.array_split(np.arange(len(events)), 5)
    results = []
    for chunk in chunks:
        _append(reg, db, [events[i] for i in chunk])
        results.append(svc.scan(COHORT, enforce_actions=False))
    # the first scan built the state from nothing; every later one resumed from the kept state
    assert results[0].rebuilt == "no snapshot yet"
    assert all(r.rebuilt is None and r.learned == 0 for r in results[1:])
    assert [r.entries for r in results] == [len(c) for c in chunks]
    # the reference: one replay of the whole ledger through fresh detectors and a fresh book
    reference, book = Monitor(config), IncidentBook()
    entries = [e for e in reg.audit.ledger.entries() if e.kind in {EXPORT_KIND, *DENIED_KINDS}]
    full = replay_batch(entries, reference, book, precheck=False)
    assert sum(r.activities for r in results) == full.activities == len(events) - 6  # imposed denials skipped
    assert sum(r.alerts for r in results) == len(full.alerts) > 20
    expected = sorted((a.at.isoformat(), a.detector, a.scope, a.target, a.detail) for a in full.alerts)
    assert _filed(svc) == expected
    assert {"denied_burst", "steady_coverage_growth", "coordinated_disjoint_pulls"} <= {a[1] for a in expected}
    assert _canon(_kept(db, config)) == _canon(reference)
    assert [(i.id, i.scope, i.target, i.action) for i in book.incidents] == [
        (i["id"], i["scope"], i["target"], i["action"]) for i in reversed(svc.incidents(LOCAL_OPERATOR, limit=10_000))
    ]


def test_full_rebuilds_the_same_state_and_files_nothing_again(world, db):
    reg, svc, config = world
    _append(reg, db, _events())
    first = svc.scan(COHORT, enforce_actions=False)
    before = _canon(_kept(db, config))
    again = svc.scan(COHORT, full=True)
    assert again.rebuilt == "--full" and again.learned == first.activities and again.alerts == 0
    assert again.entries == 0 and again.actions == []
    assert _canon(_kept(db, config)) == before


def test_a_tampered_or_foreign_snapshot_is_rebuilt_from_the_ledger(world, db):
    reg, svc, config = world
    events = _events()
    half = len(events) // 2
    _append(reg, db, events[:half])
    svc.scan(COHORT, enforce_actions=False)
    # someone with write access to the store swaps the detectors' state for a quieter one
    with db.session() as s:
        row = s.query(MonitorSnapshotRow).one()
        quiet = snapshot.dump(Monitor(config))
        row.state = quiet
    _append(reg, db, events[half:])
    out = svc.scan(COHORT, enforce_actions=False)
    assert out.rebuilt == "the snapshot's MAC does not verify" and out.learned > 0
    # the same as never having been touched: compare with a store that scanned the same halves
    reference = Monitor(config)
    replay_batch(
        [e for e in reg.audit.ledger.entries() if e.kind in {EXPORT_KIND, *DENIED_KINDS}],
        reference,
        None,
        precheck=False,
    )
    assert _canon(_kept(db, config)) == _canon(reference)
    # another configuration (here another cohort size): not reused
    other = MonitorService(reg, config=MonitorConfig(cohort_size=COHORT + 1))
    assert other.scan(COHORT + 1, enforce_actions=False).rebuilt.startswith("the snapshot was made by other")
    # corrupt bytes under a valid MAC are refused too (the restricted reader, behind the MAC)
    key = reg.audit.keyring.key(snapshot.PURPOSE)
    bad = b"cos\nsystem\n(S'true'\ntR."
    with pytest.raises(snapshot.SnapshotError, match=r"may not hold os\.system"):
        snapshot.load(
            bad, key, 1, snapshot.fingerprint(config), snapshot.mac(key, 1, snapshot.fingerprint(config), bad), config
        )


def test_cli_scan_full(home, db, monkeypatch):
    monkeypatch.setenv("BIOWARDEN_DATABASE_URL", db.url)
    reg = make_registry(db)
    _append(reg, db, _events()[:300])
    runner = CliRunner()
    r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", str(COHORT), "--no-enforce", "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", str(COHORT), "--full"])
    assert r.exit_code == 0, r.output
    assert "rebuilt the detectors' state" in r.output and "--full" in r.output


def test_one_scan_at_a_time(world, db):
    from datetime import UTC, datetime

    from biowarden.registry.errors import Conflict
    from biowarden.store.monitor_store import SCAN_LEASE

    reg, svc, _config = world
    _append(reg, db, _events()[:100])
    store = MonitorStore()
    with db.session() as s:
        assert store.take_lease(s, "scan:elsewhere", datetime.now(UTC), timedelta(minutes=5)) is None
    with pytest.raises(Conflict, match="another scan has been reading the ledger"):
        svc.scan(COHORT)
    with db.session() as s:
        assert store.get_state(s, "ledger_cursor") is None  # refused before reading anything
        # a lease whose holder died lapses
        store.take_lease(s, "scan:elsewhere", datetime.now(UTC) - timedelta(hours=1), timedelta(minutes=5))
    assert svc.scan(COHORT).entries == 100
    with db.session() as s:
        assert store.get_state(s, SCAN_LEASE) is None  # released when the scan ended


def test_the_snapshot_reader_takes_only_classes_of_the_monitor(world):
    reg, _svc, config = world
    key = reg.audit.keyring.key(snapshot.PURPOSE)
    fp = snapshot.fingerprint(config)
    func = b"cbiowarden.monitor.service\nenforce\n(tR."
    with pytest.raises(snapshot.SnapshotError, match=r"may not hold biowarden\.monitor\.service\.enforce"):
        snapshot.load(func, key, 1, fp, snapshot.mac(key, 1, fp, func), config)
    good = snapshot.dump(Monitor(config))
    assert isinstance(snapshot.load(good, key, 7, fp, snapshot.mac(key, 7, fp, good), config), Monitor)
    with pytest.raises(snapshot.SnapshotError, match="MAC"):  # the MAC binds the ledger index too
        snapshot.load(good, key, 8, fp, snapshot.mac(key, 7, fp, good), config)


def test_the_snapshot_keeps_caches_empty_and_results_unchanged(world, db):
    """A kept state without the re-pull cache files the same alerts as one with it."""
    reg, _svc, config = world
    events = _events()
    _append(reg, db, events)
    entries = [e for e in reg.audit.ledger.entries() if e.kind in {EXPORT_KIND, *DENIED_KINDS}]
    half = len(entries) // 2
    warm = Monitor(config)
    replay_batch(entries[:half], warm, None, precheck=False)
    assert any(app.seen for app in warm.applications.values())  # the cache is in use
    key = reg.audit.keyring.key(snapshot.PURPOSE)
    fp = snapshot.fingerprint(config)
    blob = snapshot.dump(warm)
    resumed = snapshot.load(blob, key, half, fp, snapshot.mac(key, half, fp, blob), config)
    assert not any(app.seen for app in resumed.applications.values())
    a = replay_batch(entries[half:], warm, IncidentBook(), precheck=False)
    b = replay_batch(entries[half:], resumed, IncidentBook(), precheck=False)
    assert [(x.at, x.detector, x.target, x.detail) for x in a.alerts] == [
        (x.at, x.detector, x.target, x.detail) for x in b.alerts
    ]
    assert len(a.alerts) > 5 and _canon(warm) == _canon(resumed)


def test_a_scan_that_dies_while_committing_leaves_nothing_half_written(world, db, monkeypatch):
    reg, svc, _config = world
    _append(reg, db, _events())
    size = reg.audit.ledger.size()

    def broken(*_args, **_kw):
        raise OSError("disk full")

    monkeypatch.setattr(svc.store, "set_snapshot", broken)
    with pytest.raises(OSError, match="disk full"):
        svc.scan(COHORT)
    assert reg.audit.ledger.size() == size  # no incident entry without its alerts and cursor
    assert svc.alerts(LOCAL_OPERATOR) == [] and reg.list_suspensions(LOCAL_OPERATOR) == []
    monkeypatch.undo()
    size = reg.audit.ledger.size()  # (the two reads above are ledgered decisions)
    out = svc.scan(COHORT)  # the lease was released; the scan is repeated whole
    assert out.entries == size and out.alerts == len(svc.alerts(LOCAL_OPERATOR, limit=10_000)) > 20
