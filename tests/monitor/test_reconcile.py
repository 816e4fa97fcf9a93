"""A scan first reconciles the monitor's book of suspensions with the registry's (the source of truth): a
suspension the ladder asked for that never reached the registry is applied again, once; one a custodian
lifted outside a review is no longer held; when both agree nothing changes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from biowarden.cli.main import app as cli
from biowarden.ledger.events import LedgerEvent
from biowarden.monitor.activity import DECISION_KIND
from biowarden.monitor.detectors import MonitorConfig
from biowarden.monitor.incidents import SUSPEND
from biowarden.monitor.service import MonitorService
from biowarden.registry import LOCAL_OPERATOR
from biowarden.store.monitor_store import MonitorStore
from tests.registry.helpers import START, Clock, fast_hashing, make_registry

fast_hashing()
INST, RES, APP = "Northbridge Institute", "r@northbridge.ac.uk", "A-0001"
COHORT = 1000
HELD = ("researcher", RES)


def _burst(days_before: float) -> list[LedgerEvent]:
    """Six out-of-scope requests of RES within an hour: a denied burst (a warning, one incident)."""
    return [
        LedgerEvent(
            DECISION_KIND,
            RES,
            f"application:{APP}",
            {
                "action": "application.access",
                "roles": ["researcher"],
                "fields": ["31", f"9{k}"],
                "researcher": RES,
                "application": APP,
                "institution": INST,
            },
            decision="deny",
            reason="DENY_FIELD_OUT_OF_SCOPE",
            at=START - timedelta(days=days_before) + timedelta(minutes=7 * k),
        )
        for k in range(6)
    ]


@pytest.fixture
def world(db):
    reg = make_registry(db, Clock())
    reg.add_institution(LOCAL_OPERATOR, INST)
    reg.add_researcher(LOCAL_OPERATOR, RES, INST)
    reg.add_application(LOCAL_OPERATOR, APP, INST, ["31", "34"], pi=RES)
    reg.approve_application(LOCAL_OPERATOR, APP)
    reg.add_account(LOCAL_OPERATOR, "admin", ["custodian_admin"])
    admin = reg.authenticate(reg.create_token(LOCAL_OPERATOR, username="admin").token)
    # two bursts days apart: the first incident notifies, the second suspends pending review
    _append(reg, db, _burst(10) + _burst(5))
    return reg, MonitorService(reg, config=MonitorConfig(cohort_size=COHORT)), admin


def _append(reg, db, events) -> None:
    with db.session() as s:
        reg.audit.ledger.append_many(s, events)


def _kinds(reg, kind: str, subject: str | None = None) -> list:
    return [e for e in reg.audit.ledger.entries() if e.kind == kind and (subject is None or e.subject == subject)]


def _active(reg) -> list[tuple[str, str, str]]:
    return [(v.scope, v.target, v.reason) for v in reg.list_suspensions(LOCAL_OPERATOR, active_only=True)]


def _held(svc) -> set[tuple[str, str]]:
    with svc.db.session() as s:
        return MonitorStore().load_book(s).suspended


def _crash_after_commit(svc, monkeypatch) -> None:
    """A scan whose process dies after committing (incidents, entries, cursor) and before the registry
    suspends anyone."""

    def died(*_args, **_kw):
        raise RuntimeError("the process died")

    monkeypatch.setattr(svc.registry, "suspend", died)
    with pytest.raises(RuntimeError, match="died"):
        svc.scan(COHORT)
    monkeypatch.undo()
    assert _held(svc) == {HELD} and _active(svc.registry) == []
    assert [e.payload["action"] for e in _kinds(svc.registry, "monitor.incident")] == ["notify", SUSPEND]


def test_a_suspension_lost_between_commit_and_enforcement_is_reapplied_once(world, monkeypatch):
    reg, svc, _admin = world
    _crash_after_commit(svc, monkeypatch)
    out = svc.scan(COHORT)
    assert out.actions == [] and out.alerts == 0  # nothing is filed twice
    assert [(r["scope"], r["target"], r["incident"], r["kind"]) for r in out.reconciled.reapplied] == [
        ("researcher", RES, 2, SUSPEND)
    ]
    assert out.reconciled.dropped == [] and out.reconciled.failed == []
    assert _active(reg) == [
        ("researcher", RES, "system:monitor suspend_pending_review re-applied (lost enforcement): incident 2")
    ]
    created = _kinds(reg, "suspension.created", f"researcher:{RES}")
    assert len(created) == 1 and created[0].index == out.reconciled.reapplied[0]["ledger_index"]
    (entry,) = _kinds(reg, "monitor.reconciled")
    assert entry.index == out.reconciled.ledger_index and entry.actor == "system:monitor"
    assert [(r["target"], r["incident"]) for r in entry.payload["reapplied"]] == [(RES, 2)]
    assert out.to_dict()["reconciled"]["reapplied"][0]["target"] == RES
    assert _held(svc) == {HELD}
    # the registry now shows it: later scans agree and apply nothing again
    for _ in range(2):
        again = svc.scan(COHORT)
        assert not again.reconciled and again.reconciled.ledger_index is None
    assert len(_kinds(reg, "suspension.created", f"researcher:{RES}")) == 1
    assert len(_kinds(reg, "monitor.reconciled")) == 1


def test_a_reinstatement_outside_review_is_respected(world):
    reg, svc, admin = world
    first = svc.scan(COHORT)
    assert [a["kind"] for a in first.actions] == ["notify", SUSPEND]
    assert [(s, t) for s, t, _ in _active(reg)] == [HELD]
    reg.reinstate(admin, "researcher", RES, "cleared with the researcher by phone")  # not a monitor review
    out = svc.scan(COHORT)
    assert out.reconciled.reapplied == [] and out.reconciled.failed == []
    assert [(r["scope"], r["target"], r["incident"], r["lifted_by"]) for r in out.reconciled.dropped] == [
        ("researcher", RES, 2, "admin")
    ]
    assert _active(reg) == [] and _held(svc) == set()
    assert len(_kinds(reg, "suspension.created", f"researcher:{RES}")) == 1  # not suspended again
    (entry,) = _kinds(reg, "monitor.reconciled")
    assert entry.payload["dropped"][0]["target"] == RES
    # a review of that incident has nothing left to lift: the monitor does not block on it
    review = svc.review(admin, 2, "false_positive", note="the custodian already reinstated")
    assert review.actions == [] and _active(reg) == []
    assert not svc.scan(COHORT).reconciled
    # new alerts still climb the ladder: a later burst is a new incident, counted with the first
    _append(reg, svc.db, _burst(1))
    later = svc.scan(COHORT)
    assert [(a["kind"], a["incident"]) for a in later.actions] == [(SUSPEND, 3)]
    assert [(s, t) for s, t, _ in _active(reg)] == [HELD] and _held(svc) == {HELD}
    assert not later.reconciled


def test_nothing_changes_when_they_agree(world):
    reg, svc, _admin = world
    svc.scan(COHORT)
    before = [v.to_dict() for v in reg.list_suspensions(LOCAL_OPERATOR)]
    _append(reg, svc.db, _burst(5 - 1 / 24))  # an hour later: no new step of the ladder
    out = svc.scan(COHORT)
    assert out.activities == 6 and out.actions == []
    assert not out.reconciled and out.to_dict()["reconciled"] == {
        "reapplied": [],
        "dropped": [],
        "failed": [],
        "ledger_index": None,
    }
    assert [v.to_dict() for v in reg.list_suspensions(LOCAL_OPERATOR)] == before
    assert _held(svc) == {HELD} and _kinds(reg, "monitor.reconciled") == []


def test_a_scan_that_suspends_nobody_is_not_read_as_lost_enforcement(world):
    reg, svc, _admin = world
    dry = svc.scan(COHORT, enforce_actions=False)
    assert [a["kind"] for a in dry.actions] == ["notify", SUSPEND]
    assert _held(svc) == set() and _active(reg) == []
    out = svc.scan(COHORT)
    assert not out.reconciled and _active(reg) == [] and _kinds(reg, "monitor.reconciled") == []


def test_a_target_the_registry_does_not_know_is_dropped(world, monkeypatch):
    _reg, svc, _admin = world
    _crash_after_commit(svc, monkeypatch)
    unknown = ("researcher", "gone@northbridge.ac.uk")
    with svc.db.session() as s:  # a book that holds someone the registry never knew
        book = MonitorStore().load_book(s)
        book.suspended.add(unknown)
        book._suspended_changed()
        MonitorStore().save(s, book.drain())
    out = svc.scan(COHORT)
    assert [(r["target"], r["incident"]) for r in out.reconciled.dropped] == [(unknown[1], None)]
    assert [r["target"] for r in out.reconciled.reapplied] == [RES]
    assert _held(svc) == {HELD}


def test_cli_scan_reports_what_was_reconciled(world, home, db, monkeypatch):
    _reg, svc, _admin = world
    _crash_after_commit(svc, monkeypatch)
    monkeypatch.setenv("BIOWARDEN_DATABASE_URL", db.url)
    runner = CliRunner()
    r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", str(COHORT)])
    assert r.exit_code == 0, r.output
    assert f"re-applied the lost {SUSPEND} of researcher {RES} (incident 2)" in " ".join(r.output.split())
    r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", str(COHORT), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["reconciled"] == {"reapplied": [], "dropped": [], "failed": [], "ledger_index": None}


def test_another_suspension_lifted_meanwhile_is_not_read_as_a_reinstatement(world, monkeypatch):
    """A custodian's own suspension of the same researcher, made and lifted after the incident began, says
    nothing about the monitor's: when the monitor's never reached the registry, it is still re-applied."""
    reg, svc, admin = world
    reg.suspend(admin, "researcher", RES, "checking an unrelated access request")
    reg.reinstate(admin, "researcher", RES, "checked")
    _crash_after_commit(svc, monkeypatch)
    out = svc.scan(COHORT)
    assert out.reconciled.dropped == [] and out.reconciled.failed == []
    assert [(r["target"], r["incident"], r["kind"]) for r in out.reconciled.reapplied] == [(RES, 2, SUSPEND)]
    assert _active(reg) == [
        ("researcher", RES, "system:monitor suspend_pending_review re-applied (lost enforcement): incident 2")
    ]
    assert _held(svc) == {HELD}
    # once the custodian lifts the monitor's own suspension, that is a reinstatement outside review
    reg.reinstate(admin, "researcher", RES, "cleared by phone")
    later = svc.scan(COHORT)
    assert [(r["target"], r["incident"], r["lifted_by"]) for r in later.reconciled.dropped] == [(RES, 2, "admin")]
    assert later.reconciled.reapplied == [] and _active(reg) == [] and _held(svc) == set()
