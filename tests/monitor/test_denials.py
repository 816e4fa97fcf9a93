"""Denied requests reach the monitor from the real paths: the registry's decisions on data actions (REST,
CLI, Python API, release requests, downloads) name the researcher, application and institution; a researcher
who keeps asking for fields outside the application's scope raises ``denied_burst`` and, on the ladder, an
incident with its action."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from biowarden.keys import KeyRing
from biowarden.monitor.activity import DECISION_KIND, from_entries
from biowarden.monitor.detectors import MonitorConfig
from biowarden.monitor.incidents import NOTIFY, SUSPEND, Ladder, LogNotifier
from biowarden.monitor.service import MonitorService
from biowarden.registry import LOCAL_OPERATOR
from biowarden.web import create_app
from tests.registry.helpers import KEY, Clock, fast_hashing, make_registry

fast_hashing()
INST, OTHER_INST = "Northbridge Institute", "Eastgate University"
RES, APP = "r@northbridge.ac.uk", "A-0001"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def world(db):
    clock = Clock()
    reg = make_registry(db, clock)
    reg.add_institution(LOCAL_OPERATOR, INST)
    reg.add_institution(LOCAL_OPERATOR, OTHER_INST)
    reg.add_researcher(LOCAL_OPERATOR, RES, INST)
    reg.add_researcher(LOCAL_OPERATOR, "e@eastgate.ac.uk", OTHER_INST)
    reg.add_application(LOCAL_OPERATOR, APP, INST, ["31", "34"], pi=RES)
    reg.approve_application(LOCAL_OPERATOR, APP)
    reg.add_account(LOCAL_OPERATOR, "res", ["researcher"], password=PASSWORD, researcher=RES)
    reg.add_account(LOCAL_OPERATOR, "east", ["researcher"], password=PASSWORD, researcher="e@eastgate.ac.uk")
    app = create_app(db, KeyRing(KEY), clock=clock)
    client = TestClient(app)
    with client:
        tokens = {
            n: client.post("/auth/login", json={"username": n, "password": PASSWORD}).json()["token"]
            for n in ("res", "east")
        }
        yield reg, client, {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}, clock


def _denials(reg):
    entries = [e for e in reg.audit.ledger.entries() if e.kind == DECISION_KIND and e.decision == "deny"]
    return entries, [a for a in from_entries(entries) if a is not None]


def test_a_denied_data_request_names_the_actor_and_no_secret(world):
    reg, client, h, _clock = world
    r = client.post(f"/applications/{APP}/access", json={"fields": ["31", "21022"]}, headers=h["res"])
    assert r.status_code == 403 and r.json()["reason"] == "DENY_FIELD_OUT_OF_SCOPE"
    entry = reg.audit.ledger.entries(r.json()["ledger_index"], r.json()["ledger_index"] + 1).__next__()
    assert entry.kind == "decision" and entry.payload == {
        "action": "application.access",
        "roles": ["researcher"],
        "fields": ["31", "21022"],
        "researcher": RES,
        "application": APP,
        "institution": INST,
    }
    token = h["res"]["Authorization"].split()[1]
    assert token not in entry.payload_json and PASSWORD not in entry.payload_json
    # a member of another institution asking for the application: its own institution is named
    r = client.post(f"/applications/{APP}/access", json={"fields": ["31"]}, headers=h["east"])
    assert r.json()["reason"] == "DENY_NOT_MEMBER"
    # an application that does not exist: the id asked for and the researcher's institution
    r = client.post("/applications/A-0404/access", json={"fields": ["31"]}, headers=h["east"])
    assert r.status_code == 403
    _entries, acts = _denials(reg)
    assert [(a.kind, a.researcher, a.application, a.institution) for a in acts] == [
        ("denied", RES, APP, INST),
        ("denied", "e@eastgate.ac.uk", APP, INST),
        ("denied", "e@eastgate.ac.uk", "A-0404", OTHER_INST),
    ]
    # an allowed request is ledgered with the same names and is no signal
    ok = client.post(f"/applications/{APP}/access", json={"fields": ["31"]}, headers=h["res"])
    assert ok.status_code == 200
    allowed = next(reg.audit.ledger.entries(ok.json()["ledger_index"], ok.json()["ledger_index"] + 1))
    assert allowed.payload["researcher"] == RES and list(from_entries([allowed])) == [None]


def test_denials_a_suspension_imposes_are_not_the_researchers_signal(world):
    reg, client, h, _clock = world
    reg.suspend(LOCAL_OPERATOR, "application", APP, "investigation")
    for _ in range(3):
        r = client.post(f"/applications/{APP}/access", json={"fields": ["31"]}, headers=h["res"])
        assert r.json()["reason"] == "DENY_SUSPENDED_APPLICATION"
    entries, acts = _denials(reg)
    assert len(entries) == 3 and all(e.payload["researcher"] == RES for e in entries)  # ledgered with names
    assert acts == []  # but imposed by the suspension: not counted against the researcher


@pytest.mark.parametrize("steps", [(NOTIFY, SUSPEND), (SUSPEND,)])
def test_repeated_out_of_scope_requests_raise_the_denied_signal_and_the_ladder_acts(world, steps):
    reg, client, h, _clock = world
    notifier = LogNotifier()
    svc = MonitorService(reg, config=MonitorConfig(cohort_size=1000), ladder=Ladder(steps=steps), notifier=notifier)
    # four requests for fields outside the scope (the ledger times them: within the hour here)
    for k in range(4):
        r = client.post(f"/applications/{APP}/access", json={"fields": ["31", f"2100{k}"]}, headers=h["res"])
        assert r.json()["reason"] == "DENY_FIELD_OUT_OF_SCOPE"
    first = svc.scan(1000)
    assert first.activities == 4 and first.alerts == 0  # under the burst threshold: nothing filed
    r = client.post(f"/applications/{APP}/access", json={"fields": ["53"]}, headers=h["res"])
    assert r.json()["reason"] == "DENY_FIELD_OUT_OF_SCOPE"
    out = svc.scan(1000)
    # resumed from the state the first scan kept: its four denials count with the fifth
    assert (out.activities, out.learned, out.rebuilt, out.alerts) == (1, 0, None, 1)
    alerts = svc.alerts(LOCAL_OPERATOR)
    assert [(a["detector"], a["scope"], a["target"]) for a in alerts] == [("denied_burst", "researcher", RES)]
    assert [(a["kind"], a["scope"], a["target"]) for a in out.actions] == [(steps[0], "researcher", RES)]
    assert notifier.sent and RES in notifier.sent[0][0]
    suspended = {(s.scope, s.target) for s in reg.list_suspensions(LOCAL_OPERATOR, active_only=True)}
    assert (("researcher", RES) in suspended) == (steps[0] == SUSPEND)
    if steps[0] == SUSPEND:  # effective on the very next request: the suspension revoked the token
        for _ in range(6):
            r = client.post(f"/applications/{APP}/access", json={"fields": ["31"]}, headers=h["res"])
            assert r.json()["reason"] == "DENY_TOKEN_REVOKED"
    again = svc.scan(1000)
    assert again.alerts == 0  # the refusals the suspension imposes are not counted


def test_release_requests_and_downloads_go_through_the_same_decision(world):
    """``release.create`` and ``release.download`` are decided by ``check_access`` like the REST route."""
    reg, _client, _h, _clock = world
    who = reg.authenticate(reg.create_token(LOCAL_OPERATOR, username="res").token)
    for action in ("release.create", "release.download"):
        d = reg.check_access(who, APP, ["31", "21022"], action=action)
        assert not d.allow
    entries, acts = _denials(reg)
    assert [e.payload["action"] for e in entries] == ["release.create", "release.download"]
    assert {(a.researcher, a.application, a.institution) for a in acts} == {(RES, APP, INST)}


def test_a_refused_release_is_read_as_a_denied_request(db):
    """The release pipeline's own refusals (caps, quotas, the monitor's hard rules, the risk gate) name the
    researcher; a refusal a suspension imposes does not count."""
    from datetime import UTC, datetime

    from biowarden.release.pipeline import DENIED_KIND, _ledger_denial

    at = datetime(2026, 5, 1, 10, tzinfo=UTC)
    payload = {"application": APP, "institution": INST, "researcher": RES, "fields": ["31"], "rows": 10}
    _ledger_denial(db, KeyRing(KEY), f"user:{RES}", APP, payload, "DENY_QUOTA_ROWS", at)
    _ledger_denial(db, KeyRing(KEY), f"user:{RES}", APP, payload, "DENY_SUSPENDED_APPLICATION", at)
    reg = make_registry(db)
    entries = [e for e in reg.audit.ledger.entries() if e.kind == DENIED_KIND]
    acts = list(from_entries(entries))
    assert len(entries) == 2 and acts[1] is None
    assert (acts[0].kind, acts[0].researcher, acts[0].application, acts[0].institution) == ("denied", RES, APP, INST)


def test_the_cli_scan_acts_on_the_ladder_in_configuration(world, db, home, monkeypatch):
    from typer.testing import CliRunner

    from biowarden.cli.main import app as cli
    from biowarden.config import LADDER_STEPS, ConfigError, load_ladder_settings
    from biowarden.monitor.incidents import DISABLE
    from biowarden.monitor.notify import ladder_from_settings

    assert LADDER_STEPS == (NOTIFY, SUSPEND, DISABLE)
    assert ladder_from_settings(load_ladder_settings({})) == Ladder()
    for bad, named in (
        ({"BIOWARDEN_MONITOR_LADDER": "notify,jail"}, "'jail' is not one"),
        ({"BIOWARDEN_MONITOR_MERGE_MINUTES": "0"}, "BIOWARDEN_MONITOR_MERGE_MINUTES"),
        ({"BIOWARDEN_MONITOR_LOOKBACK_DAYS": "a year"}, "BIOWARDEN_MONITOR_LOOKBACK_DAYS"),
    ):
        with pytest.raises(ConfigError, match=named):
            load_ladder_settings(bad)
    reg, client, h, _clock = world
    for k in range(5):
        client.post(f"/applications/{APP}/access", json={"fields": ["31", f"2100{k}"]}, headers=h["res"])
    monkeypatch.setenv("BIOWARDEN_DATABASE_URL", db.url)
    runner = CliRunner()
    monkeypatch.setenv("BIOWARDEN_MONITOR_LADDER", "suspend_pending_review, disable")
    monkeypatch.setenv("BIOWARDEN_MONITOR_MERGE_MINUTES", "nine")
    r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", "1000"])
    assert r.exit_code == 2 and "BIOWARDEN_MONITOR_MERGE_MINUTES" in r.output
    monkeypatch.setenv("BIOWARDEN_MONITOR_MERGE_MINUTES", "30")
    r = runner.invoke(cli, ["monitor", "scan", "--cohort-size", "1000"])
    assert r.exit_code == 0, r.output
    assert f"suspend_pending_review researcher {RES}" in r.output
    assert ("researcher", RES) in {(s.scope, s.target) for s in reg.list_suspensions(LOCAL_OPERATOR, active_only=True)}
