"""The dashboard's monitoring pages: open incidents with their alerts, action and review status, and the review
ranking, read through the monitor's service (``monitor.read``, ledgered); a researcher gets the API's refusal;
names from the data are escaped. The overview shows staff the rules in force."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import numpy as np
import pytest

from biowarden.ledger.events import LedgerEvent
from biowarden.monitor.activity import EXPORT_KIND
from biowarden.monitor.detectors import CRITICAL, WARN, Alert
from biowarden.monitor.incidents import IncidentBook
from biowarden.monitor.service import MonitorService, enforce
from biowarden.monitor.simulate import START as SIM_START
from biowarden.monitor.simulate import SimConfig, attack, ordinary_traffic
from biowarden.registry import LOCAL_OPERATOR as OP
from biowarden.store.monitor_store import MonitorStore
from tests.registry.helpers import START

INST, RES, APP = "Northbridge Institute", "r@northbridge.ac.uk", "A-0001"
PASSWORD = "correct horse battery staple"
HOSTILE = '<script>alert("x")</script>'
COHORT = 50_000


def _accounts(reg) -> None:
    reg.add_institution(OP, INST)
    reg.add_researcher(OP, RES, INST)
    reg.add_researcher(OP, "o@northbridge.ac.uk", INST)
    reg.add_application(OP, APP, INST, ["31", "34"], pi=RES)
    reg.approve_application(OP, APP)
    reg.add_account(OP, "auditor", ["auditor"], password=PASSWORD)
    reg.add_account(OP, "admin", ["custodian_admin"], password=PASSWORD)
    reg.add_account(OP, "res", ["researcher"], password=PASSWORD, researcher="o@northbridge.ac.uk")


def _incidents(reg) -> None:
    """Incident 1: a critical alert on RES, suspended pending review; incident 2: a warning on a target whose
    name is hostile HTML (the ladder notifies); incident 3: reviewed as a false positive."""
    book, store = IncidentBook(track=True), MonitorStore()
    at = START - timedelta(hours=5)
    crit = Alert(at, "export_size", CRITICAL, "researcher", RES, "huge <b>pull</b>", related=(("application", APP),))
    enforce(reg, book, book.add([crit], {RES: 10.0}), store)
    odd = Alert(at + timedelta(hours=1), "new_network", WARN, "institution", HOSTILE, f"from {HOSTILE}")
    enforce(reg, book, book.add([odd], {}), store)
    near = Alert(at + timedelta(hours=2), "pull_near_expiry", WARN, "application", APP, "4% near expiry")
    enforce(reg, book, book.add([near], {}), store)
    MonitorService(reg).review(OP, 3, "false_positive", note="a planned re-run")


def _login(client, name: str) -> None:
    client.cookies.clear()
    r = client.post("/dashboard/login", data={"username": name, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303


def _monitor_reads(reg, since: int) -> list[tuple[str, str, str | None]]:
    return [
        (e.subject, e.decision, e.reason)
        for e in reg.audit.ledger.entries(since)
        if e.kind == "decision" and e.payload.get("action") == "monitor.read"
    ]


def test_custodian_sees_open_incidents_with_alerts_action_and_review_status(client, reg):
    _accounts(reg)
    _incidents(reg)
    _login(client, "auditor")
    before = reg.audit.ledger.size()
    r = client.get("/dashboard/monitor")
    assert r.status_code == 200
    html = r.text
    # the open incidents, newest first; the reviewed one is not among them
    assert [int(x) for x in re.findall(r'href="/dashboard/monitor/incidents/(\d+)"', html)] == [2, 1]
    assert "export_size" in html and "critical" in html and RES in html and "awaiting review" in html
    assert "suspend_pending_review" in html and "pull_near_expiry" not in html
    # names and details from the data are escaped, never raw HTML
    assert HOSTILE not in html and "<b>pull</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and "huge &lt;b&gt;pull&lt;/b&gt;" in html
    # read through the monitor's service: its policy decisions (incidents, then their alerts) are ledgered
    assert _monitor_reads(reg, before) == [
        ("monitor:incidents", "allow", "ALLOW"),
        ("monitor:alerts", "allow", "ALLOW"),
    ]
    twin = client.get("/dashboard/monitor.json").json()
    assert twin["status"] == "open"
    assert [(i["id"], i["status"], i["action"], [a["detector"] for a in i["alerts"]]) for i in twin["incidents"]] == [
        (2, "open", "notify", ["new_network"]),
        (1, "open", "suspend_pending_review", ["export_size"]),
    ]
    assert twin["incidents"][0]["target"] == HOSTILE  # the JSON twin carries the data as it is
    # every status, and the reviewed incident's page with its review
    everything = client.get("/dashboard/monitor", params={"status": "all"}).text
    assert "reviewed: false positive" in everything and "pull_near_expiry" in everything
    page = client.get("/dashboard/monitor/incidents/3").text
    assert "a planned re-run" in page and "false_positive" in page and "reviewed: false positive" in page
    detail = client.get("/dashboard/monitor/incidents/3.json").json()
    assert detail["reviews"][0]["outcome"] == "false_positive" and detail["alerts"][0]["detector"] == "pull_near_expiry"
    assert client.get("/dashboard/monitor/incidents/99.json").status_code == 404
    assert client.get("/dashboard/monitor", params={"status": "maybe"}).status_code == 422


def test_the_incidents_page_reads_an_incident_alone_past_the_alerts_read(client, reg, monkeypatch):
    """When the grouped alerts read does not hold all of an incident's alerts, its own read fills it."""
    _accounts(reg)
    book, store = IncidentBook(track=True), MonitorStore()
    at = START - timedelta(hours=5)
    alerts = [
        Alert(at + timedelta(minutes=k), "request_burst", WARN, "researcher", RES, f"burst {k}") for k in range(4)
    ]
    enforce(reg, book, book.add(alerts, {RES: 1.0}), store)
    _login(client, "auditor")
    real = MonitorService.alerts
    monkeypatch.setattr(MonitorService, "alerts", lambda self, who, **kw: real(self, who, **kw)[:2])
    before = reg.audit.ledger.size()
    twin = client.get("/dashboard/monitor.json").json()
    assert [a["detail"] for a in twin["incidents"][0]["alerts"]] == ["burst 3", "burst 2", "burst 1", "burst 0"]
    assert [s for s, _d, _r in _monitor_reads(reg, before)] == [
        "monitor:incidents",
        "monitor:alerts",
        "monitor:incident:1",
    ]


def test_a_researcher_gets_the_apis_refusal(client, reg):
    _accounts(reg)
    _incidents(reg)
    token = client.post("/auth/login", json={"username": "res", "password": PASSWORD}).json()["token"]
    api = client.get("/monitor/incidents", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 403 and api.json()["reason"] == "DENY_ROLE"
    _login(client, "res")
    before = reg.audit.ledger.size()
    for path in ("/dashboard/monitor", "/dashboard/monitor/incidents/1", "/dashboard/monitor/ranking"):
        r = client.get(path, params={"cohort_size": COHORT} if path.endswith("ranking") else None)
        assert r.status_code == 403, path
        assert "DENY_ROLE" in r.text and RES not in r.text and "export_size" not in r.text
        entry = re.search(r"ledger entry (\d+)", r.text)
        assert entry is not None
    for path in ("/dashboard/monitor.json", "/dashboard/monitor/incidents/1.json", "/dashboard/monitor/ranking.json"):
        r = client.get(path, params={"cohort_size": COHORT} if "ranking" in path else None)
        assert r.status_code == 403 and r.json()["reason"] == "DENY_ROLE" and r.json()["ledger_index"] is not None
    # each refusal is the policy's decision, ledgered as the API's is
    assert _monitor_reads(reg, before) == [
        (subject, "deny", "DENY_ROLE")
        for subject in ("monitor:incidents", "monitor:incident:1", "monitor:ranking:researcher") * 2
    ]
    # without a session: to the sign-in page
    client.cookies.clear()
    r = client.get("/dashboard/monitor/ranking", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert client.get("/dashboard/monitor.json").status_code == 401


@pytest.fixture
def traffic_reg(db, clock, reg):
    """A month of simulated traffic in the ledger and, at night, a compromised account whose name (as the
    ledger holds it) is hostile HTML."""
    cfg = SimConfig(cohort_size=COHORT, applications=40, institutions=8, months=1, seed=21)
    acts, _ = ordinary_traffic(cfg)
    at = SIM_START + timedelta(days=20, hours=11)
    bad = attack("compromised_account_night", cfg, at, np.random.default_rng(8))
    victim = bad[0].researcher
    for a in bad:
        a.researcher = HOSTILE + "@evil.example"
    acts = sorted(acts + bad, key=lambda a: a.at)
    clock.now = at + timedelta(days=1)
    with db.session() as s:
        reg.audit.ledger.append_many(
            s,
            [
                LedgerEvent(EXPORT_KIND, f"user:{a.researcher}", f"application:{a.application}", a.payload(), at=a.at)
                for a in acts
            ],
        )
    _accounts(reg)
    return victim


def test_custodian_sees_the_review_ranking_escaped(client, reg, traffic_reg):
    _login(client, "auditor")
    r = client.get("/dashboard/monitor/ranking", params={"cohort_size": COHORT, "limit": 5})
    assert r.status_code == 200, r.text
    html = r.text
    assert HOSTILE not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;@evil.example" in html
    assert "files no alert" in html
    twin = client.get("/dashboard/monitor/ranking.json", params={"cohort_size": COHORT, "limit": 5}).json()
    assert [x["rank"] for x in twin["ranking"]] == [1, 2, 3, 4, 5]
    assert twin["ranking"][0]["target"] == HOSTILE + "@evil.example"  # the compromised account first
    # the page shows the same order as the service the API uses
    shown = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td>", html)
    assert [int(k) for k, _ in shown] == [1, 2, 3, 4, 5]
    assert [t for _, t in shown][1:] == [x["target"] for x in twin["ranking"]][1:]
    # another scope, and nothing acted on: no alert filed, nobody suspended
    inst = client.get("/dashboard/monitor/ranking.json", params={"cohort_size": COHORT, "scope": "institution"})
    assert inst.json()["scope"] == "institution" and inst.json()["actors"] > 1
    assert MonitorService(reg).alerts(OP) == [] and reg.list_suspensions(OP) == []
    assert client.get("/dashboard/monitor/ranking", params={"days": 0}).status_code == 422


def test_ranking_page_without_a_cohort_asks_for_its_size(home, client, reg, traffic_reg):
    """A home with no cohort: the page says so and offers a form for the cohort size (not the API's JSON 422);
    the form's answer gives the ranking."""
    _login(client, "auditor")
    r = client.get("/dashboard/monitor/ranking", params={"scope": "institution", "days": 30, "limit": 5})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "Cannot show this page: no cohort in" in r.text and "give the cohort size" in r.text
    form = re.search(r'<form method="get" action="([^"]+)">(.*?)</form>', r.text, re.S)
    assert form is not None and form.group(1) == "/dashboard/monitor/ranking"
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form.group(2)))
    assert hidden == {"scope": "institution", "days": "30", "limit": "5"}
    assert 'name="cohort_size"' in form.group(2)
    ok = client.get(form.group(1), params={**hidden, "cohort_size": COHORT})
    assert ok.status_code == 200 and "files no alert" in ok.text
    assert client.get("/dashboard/monitor/ranking.json").status_code == 422  # the API's twin keeps its JSON


def test_staff_see_the_rules_in_force_and_researchers_do_not(home, client, reg):
    """The overview shows the custodian's staff the threshold and export policy every release is checked
    against, read from the home as a release reads them; a malformed file shows why releases are refused."""
    _accounts(reg)
    _login(client, "admin")
    rules = client.get("/dashboard/overview.json").json()["rules"]
    assert rules["error"] is None
    assert rules["risk"] == {"k": 5, "max_risk": 0.2, "suppression": 0.02, "min_class": 5}  # no risk.json
    assert rules["egress"]["caps"]["max_rows"] == 100_000 and len(rules["egress"]["quotas"]) == 3
    (home / "risk.json").write_text(json.dumps({"k": 11, "max_risk": 0.09}))
    (home / "egress.json").write_text(json.dumps({"caps": {"max_rows": 5000, "max_cells": 10**6, "max_bytes": 10**8}}))
    rules = client.get("/dashboard/overview.json").json()["rules"]
    assert rules["risk"]["min_class"] == 12 and rules["egress"]["caps"]["max_rows"] == 5000
    html = client.get("/dashboard").text
    assert "Rules in force" in html and "classes of at least 12" in html and "5,000 rows" in html
    (home / "egress.json").write_text("{")
    rules = client.get("/dashboard/overview.json").json()["rules"]
    assert rules["risk"] is None and "releases are refused" in rules["error"] and "egress.json" in rules["error"]
    assert "releases are refused" in client.get("/dashboard").text
    _login(client, "res")  # not staff: no suspensions, no rules
    twin = client.get("/dashboard/overview.json").json()
    assert twin["suspensions"] is None and twin["rules"] is None
    assert "Rules in force" not in client.get("/dashboard").text
