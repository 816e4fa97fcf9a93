"""``biowarden monitor ...`` and the ``/monitor`` API on both stores, over incidents the ladder filed."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from biowarden.cli.main import app as cli
from biowarden.keys import KeyRing
from biowarden.ledger.events import LedgerEvent
from biowarden.monitor.activity import EXPORT_KIND
from biowarden.monitor.detectors import CRITICAL, WARN, Alert
from biowarden.monitor.incidents import DISABLE, NOTIFY, SUSPEND, IncidentBook
from biowarden.monitor.service import enforce
from biowarden.monitor.simulate import SimConfig, attack
from biowarden.registry import LOCAL_OPERATOR
from biowarden.store.monitor_store import MonitorStore
from biowarden.web import create_app
from tests.registry.helpers import KEY, START, Clock, fast_hashing, make_registry

fast_hashing()
runner = CliRunner()
INST, RES, APP = "Northbridge Institute", "r@northbridge.ac.uk", "A-0001"
PASSWORD = "correct horse battery staple"


def _populate(reg) -> None:
    reg.add_institution(LOCAL_OPERATOR, INST)
    reg.add_researcher(LOCAL_OPERATOR, RES, INST)
    reg.add_researcher(LOCAL_OPERATOR, "o@northbridge.ac.uk", INST)
    reg.add_application(LOCAL_OPERATOR, APP, INST, ["31", "34"], pi=RES)
    reg.approve_application(LOCAL_OPERATOR, APP)
    reg.add_account(LOCAL_OPERATOR, "auditor", ["auditor"], password=PASSWORD)
    reg.add_account(LOCAL_OPERATOR, "admin", ["custodian_admin"], password=PASSWORD)
    reg.add_account(LOCAL_OPERATOR, "res", ["researcher"], password=PASSWORD, researcher="o@northbridge.ac.uk")
    book = IncidentBook(track=True)
    at = START - timedelta(hours=3)
    crit = Alert(at, "export_size", CRITICAL, "researcher", RES, "huge", related=(("application", APP),))
    enforce(reg, book, book.add([crit], {RES: 10.0}), MonitorStore())
    near = Alert(at + timedelta(hours=1), "pull_near_expiry", WARN, "application", APP, "4% near expiry")
    enforce(reg, book, book.add([near], {}), MonitorStore())


@pytest.fixture
def cli_home(home, db, monkeypatch):
    monkeypatch.setenv("BIOWARDEN_DATABASE_URL", db.url)
    reg = make_registry(db)
    _populate(reg)
    return reg


def run(*args, input=None, code=0):
    r = runner.invoke(cli, list(args), input=input)
    assert r.exit_code == code, (args, r.exit_code, r.output)
    return r


def js(*args, input=None):
    return json.loads(run(*args, "--json", input=input).stdout)


def test_monitor_commands(cli_home):
    reg = cli_home
    incidents = js("monitor", "incidents")
    assert [(i["id"], i["scope"], i["action"], i["status"]) for i in incidents] == [
        (2, "application", "notify", "open"),
        (1, "researcher", "suspend_pending_review", "open"),
    ]
    assert [i["id"] for i in js("monitor", "incidents", "--scope", "researcher")] == [1]
    assert [a["detector"] for a in js("monitor", "alerts", "--severity", "critical")] == ["export_size"]
    assert js("monitor", "incident", "1")["alerts"][0]["related"] == [["application", APP]]
    risk = js("monitor", "risk", "--researcher", RES)
    assert [p["risk"] for p in risk["history"]] == [10.0] and risk["incidents"][0]["id"] == 1
    assert "huge" in run("monitor", "alerts").stdout  # the table form (narrow terminal: columns truncated)
    # an auditor reads but may not review: exit 3, the denial is in the ledger
    assert len(js("monitor", "alerts", "--as", "auditor", input=PASSWORD + "\n")) == 2
    denied = run("monitor", "review", "1", "false_positive", "--as", "auditor", input=PASSWORD + "\n", code=3)
    assert "DENY_ROLE" in denied.output
    run("monitor", "alerts", "--as", "res", input=PASSWORD + "\n", code=3)
    out = js("monitor", "review", "1", "false_positive", "--note", "a sanctioned re-run")
    assert out["incident"]["status"] == "false_positive"
    assert [(a["kind"], a["done"]) for a in out["actions"]] == [("reinstate", True)]
    assert not reg.list_suspensions(LOCAL_OPERATOR, active_only=True)
    run("monitor", "review", "1", "confirmed", code=2)  # already reviewed
    run("monitor", "review", "9", "confirmed", code=2)  # unknown incident
    run("monitor", "review", "2", "maybe", code=2)
    run("monitor", "alerts", "--severity", "loud", code=2)
    run("monitor", "risk", code=2)
    esc = js("monitor", "review", "2", "confirmed", "--escalate", "institution")
    assert [(a["scope"], a["target"], a["done"]) for a in esc["actions"]] == [("institution", INST, True)]
    kinds = [e.kind for e in reg.audit.ledger.entries()]
    assert kinds.count("monitor.incident.reviewed") == 2


def test_monitor_scan_files_new_alerts_once(home, db, monkeypatch):
    monkeypatch.setenv("BIOWARDEN_DATABASE_URL", db.url)
    reg = make_registry(db)
    for name in ("Northbridge Institute", "Eastgate University", "Westmoor Institute"):
        reg.add_institution(LOCAL_OPERATOR, name)
    acts = sorted(
        attack("coordinated_three_institutions", SimConfig(cohort_size=20_000), START, np.random.default_rng(5)),
        key=lambda a: a.at,
    )
    nosy = {"researcher": "nosy@elsewhere.ac.uk", "application": "A-0999", "institution": "Elsewhere"}
    probes = [  # five requests for fields outside the scope within minutes: a warning, which the ladder notifies
        LedgerEvent("decision", "user:nosy", "application:A-0999", nosy, "deny", "DENY_FIELD_NOT_APPROVED", at=t)
        for t in (acts[0].at + timedelta(minutes=m) for m in range(5))
    ]
    with db.session() as s:
        reg.audit.ledger.append_many(
            s,
            sorted(
                [
                    LedgerEvent(
                        EXPORT_KIND, f"user:{a.researcher}", f"application:{a.application}", a.payload(), at=a.at
                    )
                    for a in acts
                ]
                + probes,
                key=lambda e: e.at,
            ),
        )
    first = js("monitor", "scan", "--cohort-size", "20000")
    assert first["activities"] == len(acts) + len(probes) and first["alerts"] > 0
    # each action says whether it was carried out by its own kind, not by whether its target was suspended
    notices = [a for a in first["actions"] if a["kind"] == NOTIFY]
    assert [a["target"] for a in notices] == ["nosy@elsewhere.ac.uk"] and notices[0]["carried_out"] is True
    suspended = {
        (a["scope"], a["target"]) for a in first["actions"] if a["kind"] in (SUSPEND, DISABLE) and a["carried_out"]
    }
    assert {t for s, t in suspended if s == "institution"} == {
        "Northbridge Institute",
        "Eastgate University",
        "Westmoor Institute",
    }
    assert {s.target for s in reg.list_suspensions(LOCAL_OPERATOR, active_only=True)} >= {t for _, t in suspended}
    again = js("monitor", "scan", "--cohort-size", "20000")
    assert again["alerts"] == 0 and again["actions"] == []
    assert len(js("monitor", "alerts", "--limit", "10000")) == first["alerts"]


@pytest.fixture
def api(db):
    reg = make_registry(db, Clock())
    _populate(reg)
    client = TestClient(create_app(db, KeyRing(KEY), clock=Clock()))
    tokens = {
        n: client.post("/auth/login", json={"username": n, "password": PASSWORD}).json()["token"]
        for n in ("auditor", "admin", "res")
    }
    with client:
        yield client, {n: {"Authorization": f"Bearer {t}"} for n, t in tokens.items()}, reg


def test_monitor_api(api):
    client, h, reg = api
    r = client.get("/monitor/incidents", headers=h["auditor"])
    assert r.status_code == 200 and [i["id"] for i in r.json()] == [2, 1]
    assert (
        client.get("/monitor/alerts", params={"scope": "application"}, headers=h["auditor"]).json()[0]["detector"]
        == "pull_near_expiry"
    )
    assert (
        client.get("/monitor/incident", params={"id": 1}, headers=h["auditor"]).json()["alerts"][0]["severity"]
        == "critical"
    )
    risk = client.get(f"/monitor/risk/researchers/{RES}", headers=h["auditor"]).json()
    assert risk["history"][0]["risk"] == 10.0
    assert client.get("/monitor/alerts").status_code == 401
    denied = client.get("/monitor/alerts", headers=h["res"])
    assert denied.status_code == 403 and denied.json()["reason"] == "DENY_ROLE"
    assert denied.json()["ledger_index"] is not None
    bad = client.post("/monitor/review", json={"incident": 1, "outcome": "maybe"}, headers=h["admin"])
    assert bad.status_code == 422
    assert (
        client.post(
            "/monitor/review", json={"incident": 1, "outcome": "false_positive"}, headers=h["auditor"]
        ).status_code
        == 403
    )
    assert client.get("/monitor/incident", params={"id": 99}, headers=h["auditor"]).status_code == 404
    ok = client.post(
        "/monitor/review", json={"incident": 1, "outcome": "false_positive", "note": "re-run"}, headers=h["admin"]
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["incident"]["status"] == "false_positive" and ok.json()["actions"][0]["done"] is True
    assert (
        client.post("/monitor/review", json={"incident": 1, "outcome": "confirmed"}, headers=h["admin"]).status_code
        == 409
    )
    assert not reg.list_suspensions(LOCAL_OPERATOR, active_only=True)
    assert "/monitor/review" in client.get("/openapi.json").json()["paths"]
