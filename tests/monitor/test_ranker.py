"""The unsupervised ranker: robust multivariate outlyingness puts an injected anomalous actor at the top,
catches an actor unusual only in a combination of signals, and never files or suspends anything."""

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
from biowarden.monitor import ranker
from biowarden.monitor.activity import EXPORT_KIND
from biowarden.monitor.service import MonitorService
from biowarden.monitor.simulate import START, SimConfig, attack, ordinary_traffic
from biowarden.registry import LOCAL_OPERATOR
from biowarden.registry.errors import Denied, Invalid
from biowarden.web import create_app
from tests.registry.helpers import KEY, Clock, fast_hashing, make_registry

fast_hashing()
COHORT = 50_000
PASSWORD = "correct horse battery staple"
VICTIM = "victim@southfield.ac.uk"


def _traffic():
    cfg = SimConfig(cohort_size=COHORT, applications=80, institutions=12, months=2, seed=21)
    acts, _ = ordinary_traffic(cfg)
    at = START + timedelta(days=50, hours=11)
    acts += attack("compromised_account_night", cfg, at, np.random.default_rng(8))
    acts.sort(key=lambda a: a.at)
    return acts, at + timedelta(days=1)


def test_outlyingness_finds_a_point_unusual_only_in_combination():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 400)
    x = np.column_stack([a, a + rng.normal(0, 0.1, 400)])  # two signals that move together
    x = np.vstack([x, [1.8, -1.8]])  # within each signal's range, against their relation
    scores, z = ranker.outlyingness(x)
    assert int(np.argmax(scores)) == 400
    assert np.abs(z[400]).max() < np.abs(z[:400]).max(axis=1).max()  # no single signal would have found it
    assert (ranker.outlyingness(x)[0] == scores).all()  # deterministic
    assert (ranker.outlyingness(x[:5])[0] == 0).all()  # too few actors to compare: no scores


def test_an_injected_compromised_account_ranks_first():
    acts, now = _traffic()
    recent = [a for a in acts if now - timedelta(days=30) <= a.at <= now]
    ranked = ranker.rank(recent, "researcher", COHORT)
    assert len(ranked) > 100
    top = ranked[0]
    assert top.target == VICTIM and top.rank == 1 and top.score > 2 * ranked[1].score
    assert {w["signal"] for w in top.why} & {"night_share", "coverage", "log_max_cells", "networks", "clients"}
    by_app = ranker.rank(recent, "application", COHORT, limit=3)
    assert by_app[0].target == "A-9004" and len(by_app) == 3
    with pytest.raises(ValueError, match="scope"):
        ranker.rank(recent, "platform", COHORT)


def test_salami_slicing_under_the_caps_ranks_first_at_every_scope():
    cfg = SimConfig(cohort_size=COHORT, applications=80, institutions=12, months=2, seed=22)
    acts, _ = ordinary_traffic(cfg)
    at = START + timedelta(days=40)
    acts += attack("salami_slicing", cfg, at, np.random.default_rng(9))
    now = at + timedelta(days=15)
    recent = [a for a in acts if now - timedelta(days=30) <= a.at <= now]
    tops = {scope: ranker.rank(recent, scope, COHORT, limit=2) for scope in ranker.SCOPES}
    assert [tops[s][0].target for s in ranker.SCOPES] == ["slicer@eastbury.ac.uk", "A-9002", "Eastbury College"]
    assert tops["researcher"][0].why[0]["signal"] == "coverage"


@pytest.fixture
def world(db):
    acts, now = _traffic()
    clock = Clock(now)
    reg = make_registry(db, clock)
    reg.add_account(LOCAL_OPERATOR, "auditor", ["auditor"], password=PASSWORD)
    reg.add_institution(LOCAL_OPERATOR, "Southfield University")
    reg.add_researcher(LOCAL_OPERATOR, VICTIM, "Southfield University")
    reg.add_account(LOCAL_OPERATOR, "res", ["researcher"], password=PASSWORD, researcher=VICTIM)
    with db.session() as s:
        reg.audit.ledger.append_many(
            s,
            [
                LedgerEvent(EXPORT_KIND, f"user:{a.researcher}", f"application:{a.application}", a.payload(), at=a.at)
                for a in acts
            ],
        )
    return reg, clock


def test_the_ranking_is_a_read_for_review_that_never_acts(world):
    reg, _clock = world
    svc = MonitorService(reg)
    before = reg.audit.ledger.size()
    out = svc.ranking(LOCAL_OPERATOR, days=30, limit=5, cohort_size=COHORT)
    assert out["ranking"][0]["target"] == VICTIM and len(out["ranking"]) == 5
    assert out["activities"] > 1000 and out["signals"] == list(ranker.SIGNALS)
    # the only thing written is the read's own decision; nothing is filed, nobody is suspended
    new = list(reg.audit.ledger.entries(before))
    assert [(e.kind, e.subject, e.decision) for e in new] == [("decision", "monitor:ranking:researcher", "allow")]
    assert svc.alerts(LOCAL_OPERATOR) == [] and svc.incidents(LOCAL_OPERATOR) == []
    assert reg.list_suspensions(LOCAL_OPERATOR) == []
    # the last day's window ends after the night pulls: the account is not in it
    last_day = svc.ranking(LOCAL_OPERATOR, days=1, limit=10_000, cohort_size=COHORT)
    assert last_day["actors"] > 0 and VICTIM not in {r["target"] for r in last_day["ranking"]}
    with pytest.raises(Invalid):
        svc.ranking(LOCAL_OPERATOR, days=0, cohort_size=COHORT)
    with pytest.raises(Invalid):
        svc.ranking(LOCAL_OPERATOR, scope="platform", cohort_size=COHORT)


def test_ranking_over_the_api_and_the_cli(world, db, home, monkeypatch):
    reg, clock = world
    client = TestClient(create_app(db, KeyRing(KEY), clock=clock))
    with client:
        tok = {
            n: client.post("/auth/login", json={"username": n, "password": PASSWORD}).json()["token"]
            for n in ("auditor", "res")
        }
        r = client.get(
            "/monitor/ranking",
            params={"cohort_size": COHORT, "limit": 3},
            headers={"Authorization": f"Bearer {tok['auditor']}"},
        )
        assert r.status_code == 200, r.text
        assert [x["rank"] for x in r.json()["ranking"]] == [1, 2, 3] and r.json()["ranking"][0]["target"] == VICTIM
        denied = client.get("/monitor/ranking", headers={"Authorization": f"Bearer {tok['res']}"})
        assert denied.status_code == 403 and denied.json()["reason"] == "DENY_ROLE"
        bad = client.get("/monitor/ranking", params={"days": 0}, headers={"Authorization": f"Bearer {tok['auditor']}"})
        assert bad.status_code == 422
    with pytest.raises(Denied):
        MonitorService(reg).ranking(reg.authenticate(reg.create_token(LOCAL_OPERATOR, username="res").token))
    monkeypatch.setenv("BIOWARDEN_DATABASE_URL", db.url)
    runner = CliRunner()
    until = clock.now.isoformat()
    r = runner.invoke(cli, ["monitor", "rank", "--cohort-size", str(COHORT), "--until", until, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ranking"][0]["target"] == VICTIM
    r = runner.invoke(cli, ["monitor", "rank", "--cohort-size", str(COHORT), "--until", until, "--limit", "3"])
    assert r.exit_code == 0 and VICTIM in r.output and "acts on no one" in r.output
    r = runner.invoke(cli, ["monitor", "rank", "--days", "400"])
    assert r.exit_code == 2 and "days" in r.output
    r = runner.invoke(cli, ["monitor", "rank", "--until", "yesterday"])
    assert r.exit_code == 2 and "not an ISO date" in r.output
