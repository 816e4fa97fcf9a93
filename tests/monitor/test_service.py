"""The monitor service: enforcement, review and reads through the policy decision point and the ledger."""

from datetime import timedelta

import pytest

from biowarden.monitor.detectors import CRITICAL, WARN, Alert
from biowarden.monitor.incidents import IncidentBook
from biowarden.monitor.service import MonitorService, enforce
from biowarden.registry import LOCAL_OPERATOR
from biowarden.registry.errors import Conflict, Denied, Invalid, NotFound
from biowarden.store.monitor_store import MonitorStore
from tests.registry.helpers import START, Clock, fast_hashing, make_registry

fast_hashing()
INST, RES, APP = "Northbridge Institute", "r@northbridge.ac.uk", "A-0001"
OTHER = "o@northbridge.ac.uk"


@pytest.fixture
def world(db):
    clock = Clock()
    reg = make_registry(db, clock)
    reg.add_institution(LOCAL_OPERATOR, INST)
    reg.add_researcher(LOCAL_OPERATOR, RES, INST)
    reg.add_researcher(LOCAL_OPERATOR, OTHER, INST)
    reg.add_application(LOCAL_OPERATOR, APP, INST, ["31", "34"], pi=RES)
    reg.approve_application(LOCAL_OPERATOR, APP)
    who = {}
    for name, roles, researcher in (
        ("auditor", ["auditor"], None),
        ("admin", ["custodian_admin"], None),
        ("committee", ["access_committee"], None),
        ("res", ["researcher"], OTHER),  # a researcher in good standing
    ):
        reg.add_account(LOCAL_OPERATOR, name, roles, researcher=researcher)
        who[name] = reg.authenticate(reg.create_token(LOCAL_OPERATOR, username=name).token)
    store = MonitorStore()
    book = IncidentBook(track=True)
    at = START - timedelta(hours=2)
    size = Alert(at, "export_size", CRITICAL, "researcher", RES, "huge", related=(("application", APP),))
    actions = book.add([size], {RES: 10.0})
    done = enforce(reg, book, actions, store)
    assert done.suspended == [("researcher", RES)] and not done.skipped
    near = Alert(at + timedelta(days=1), "pull_near_expiry", WARN, "application", APP, "4% near expiry")
    enforce(reg, book, book.add([near], {RES: 1.2}), store)
    return reg, MonitorService(reg), who, clock


def _kinds(reg, kind):
    return [e for e in reg.audit.ledger.entries() if e.kind == kind]


def test_the_ladder_acts_through_the_registry_and_the_ledger(world):
    reg, svc, who, _ = world
    assert [s.target for s in reg.list_suspensions(LOCAL_OPERATOR, active_only=True)] == [RES]
    entries = _kinds(reg, "monitor.incident")
    assert [(e.subject, e.payload["action"]) for e in entries] == [
        (f"researcher:{RES}", "suspend_pending_review"),
        (f"application:{APP}", "notify"),
    ]
    assert entries[0].actor == "system:monitor" and entries[0].subject == f"researcher:{RES}"
    incidents = svc.incidents(who["auditor"])
    assert [(i["id"], i["status"], i["action"], i["alerts"]) for i in incidents] == [
        (2, "open", "notify", 1),
        (1, "open", "suspend_pending_review", 1),
    ]


def test_reads_are_policy_decisions_and_researchers_are_refused(world):
    reg, svc, who, _ = world
    assert [a["detector"] for a in svc.alerts(who["auditor"])] == ["pull_near_expiry", "export_size"]
    with pytest.raises(Denied) as exc:
        svc.alerts(who["res"])
    assert exc.value.reason == "DENY_ROLE"
    decisions = [e for e in _kinds(reg, "decision") if e.subject in ("monitor:alerts",)]
    assert [(e.actor, e.decision, e.reason) for e in decisions] == [
        ("auditor", "allow", "ALLOW"),
        ("res", "deny", "DENY_ROLE"),
    ]
    with pytest.raises(Invalid, match="severity"):
        svc.alerts(who["auditor"], severity="loud")
    risk = svc.risk(who["auditor"], "researcher", RES)
    assert [p["risk"] for p in risk["history"]] == [10.0]
    assert 0 < risk["risk_now"] < 10.0  # decayed since the alert


def test_false_positive_review_reinstates_and_no_longer_counts(world):
    reg, svc, who, _ = world
    with pytest.raises(Denied) as exc:
        svc.review(who["auditor"], 1, "false_positive")  # auditors read, they do not decide
    assert exc.value.reason == "DENY_ROLE"
    out = svc.review(who["committee"], 1, "false_positive", note="a sanctioned re-run")
    assert out.incident["status"] == "false_positive"
    assert out.actions == [
        {
            "kind": "reinstate",
            "scope": "researcher",
            "target": RES,
            "done": True,
            "ledger_index": out.actions[0]["ledger_index"],
        }
    ]
    assert not reg.list_suspensions(LOCAL_OPERATOR, active_only=True)
    reviewed = _kinds(reg, "monitor.incident.reviewed")
    assert len(reviewed) == 1 and reviewed[0].index == out.ledger_index
    assert reviewed[0].actor == "committee" and reviewed[0].payload["outcome"] == "false_positive"
    assert out.incident["reviews"][0]["ledger_index"] == out.ledger_index
    lifted = _kinds(reg, "suspension.lifted")
    assert lifted and lifted[-1].actor == "committee"
    with pytest.raises(Conflict, match="already reviewed"):
        svc.review(who["admin"], 1, "confirmed")
    with svc.db.session() as s:  # restored from the store: it no longer counts
        book = MonitorStore().load_book(s)
    assert not book.get(1).counts and ("researcher", RES) not in book.suspended


def test_confirmed_review_escalates_to_the_institution(world):
    reg, svc, who, _ = world
    with pytest.raises(Invalid, match="only a confirmed"):
        svc.review(who["admin"], 2, "false_positive", escalate="institution")
    out = svc.review(who["admin"], 2, "confirmed", escalate="institution")
    assert out.incident["status"] == "confirmed"
    assert [(a["kind"], a["scope"], a["target"], a["done"]) for a in out.actions] == [
        ("suspend_pending_review", "institution", INST, True)
    ]
    active = {(s.scope, s.target) for s in reg.list_suspensions(LOCAL_OPERATOR, active_only=True)}
    # incident 2 is about the application: its institution is found in the registry
    assert active == {("researcher", RES), ("institution", INST)}
    with svc.db.session() as s:
        assert ("institution", INST) in MonitorStore().holds(s)
    # incident 1's alert names its application: confirming it escalates there without naming it
    out1 = svc.review(who["admin"], 1, "confirmed", escalate="application")
    assert [(a["scope"], a["target"], a["done"]) for a in out1.actions] == [("application", APP, True)]
    with pytest.raises(NotFound, match="unknown application"):
        svc.review(who["admin"], 2, "confirmed", escalate="application", target="A-9999")
