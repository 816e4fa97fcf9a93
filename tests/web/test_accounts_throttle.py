"""Accounts can be disabled, enabled and have their password changed (through the policy, ledgered); an
unauthenticated flood cannot grow the ledger without bound."""

from __future__ import annotations

import pytest

from biowarden.registry import LOCAL_OPERATOR as OP
from biowarden.registry.errors import Conflict, Denied
from biowarden.registry.throttle import UnauthenticatedThrottle


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(reg):
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_researcher(OP, "ann@northbridge.ac.uk", "Northbridge Institute")
    reg.add_account(OP, "cara", ["custodian_admin"], password="admin password 123")
    reg.add_account(OP, "ann", ["researcher"], researcher="ann@northbridge.ac.uk", password="ann's password 1")
    return {"cara": reg.create_token(OP, username="cara").token, "ann": reg.create_token(OP, username="ann").token}


def kinds_since(reg, start: int) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.decision, e.reason) for e in reg.audit.ledger.entries(start=start)]


def test_disable_takes_effect_on_the_very_next_request(client, reg, people):
    ann = bearer(people["ann"])
    assert client.get("/me", headers=ann).status_code == 200  # the token is now cached as an identity
    start = reg.audit.ledger.size()
    r = client.post("/accounts/ann/disable", json={"reason": "left the project"}, headers=bearer(people["cara"]))
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert client.get("/me", headers=ann).status_code == 401  # revoked with the account
    r = client.post("/auth/login", json={"username": "ann", "password": "ann's password 1"})
    assert r.status_code == 401 and r.json()["reason"] == "DENY_BAD_CREDENTIALS"
    assert ("account.disabled", None, None) in kinds_since(reg, start)
    entry = next(e for e in reg.audit.ledger.entries(start=start) if e.kind == "account.disabled")
    assert entry.actor == "cara" and entry.payload["tokens_revoked"] == 1
    # twice is a conflict; an admin cannot disable themselves; enabling brings login back, not old tokens
    assert client.post("/accounts/ann/disable", json={"reason": "x"}, headers=bearer(people["cara"])).status_code == 409
    assert (
        client.post("/accounts/cara/disable", json={"reason": "x"}, headers=bearer(people["cara"])).status_code == 409
    )
    r = client.post("/accounts/ann/enable", json={"reason": "back"}, headers=bearer(people["cara"]))
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert client.get("/me", headers=ann).status_code == 401
    r = client.post("/auth/login", json={"username": "ann", "password": "ann's password 1"})
    assert r.status_code == 201
    assert client.get("/me", headers=bearer(r.json()["token"])).status_code == 200


def test_only_an_administrator_disables(client, reg, people):
    r = client.post("/accounts/cara/disable", json={"reason": "coup"}, headers=bearer(people["ann"]))
    assert r.status_code == 403 and r.json()["reason"] == "DENY_ROLE"
    with pytest.raises(Denied):
        reg.enable_account(reg.authenticate(people["ann"]), "cara", "x")
    with pytest.raises(Conflict):
        reg.enable_account(OP, "cara", "not disabled")


def test_password_change_own_needs_the_current_one(client, reg, people):
    ann = bearer(people["ann"])
    start = reg.audit.ledger.size()
    r = client.post("/accounts/ann/password", json={"new_password": "a brand new password"}, headers=ann)
    assert r.status_code == 403 and r.json()["reason"] == "DENY_BAD_CREDENTIALS"
    r = client.post(
        "/accounts/ann/password",
        json={"new_password": "a brand new password", "current_password": "not my password"},
        headers=ann,
    )
    assert r.status_code == 403 and r.json()["reason"] == "DENY_BAD_CREDENTIALS"
    r = client.post(
        "/accounts/ann/password",
        json={"new_password": "a brand new password", "current_password": "ann's password 1"},
        headers=ann,
    )
    assert r.status_code == 200
    assert client.post("/auth/login", json={"username": "ann", "password": "ann's password 1"}).status_code == 401
    assert client.post("/auth/login", json={"username": "ann", "password": "a brand new password"}).status_code == 201
    # someone else's: refused for a researcher, allowed for an administrator (no current password needed)
    r = client.post("/accounts/cara/password", json={"new_password": "ann owns cara now"}, headers=ann)
    assert r.status_code == 403 and r.json()["reason"] == "DENY_NOT_OWNER"
    r = client.post(
        "/accounts/ann/password", json={"new_password": "reset by the admin"}, headers=bearer(people["cara"])
    )
    assert r.status_code == 200
    assert client.post("/auth/login", json={"username": "ann", "password": "reset by the admin"}).status_code == 201
    changed = [e for e in reg.audit.ledger.entries(start=start) if e.kind == "account.password_changed"]
    assert [e.payload["by"] for e in changed] == ["self", "administrator"]
    texts = [e.payload_json for e in reg.audit.ledger.entries(start=start)]
    assert not any("brand new" in t or "reset by" in t or "ann's password" in t for t in texts)  # no secrets
    # too short: a clear 422, nothing written
    before = reg.audit.ledger.size()
    r = client.post("/accounts/ann/password", json={"new_password": "short"}, headers=bearer(people["cara"]))
    assert r.status_code == 422 and reg.audit.ledger.size() == before


def test_an_unauthenticated_flood_is_ledgered_within_bounds(client, reg, clock):
    ticks = [0.0]
    reg.throttle = UnauthenticatedThrottle(per_client=5, overall=100, window=60.0, clock=lambda: ticks[0])
    start = reg.audit.ledger.size()
    for i in range(200):
        headers = {} if i % 2 else bearer("bw_forged-token")
        r = client.get("/me", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    for _ in range(50):  # bad passwords count too
        r = client.post("/auth/login", json={"username": "nobody", "password": "guess guess guess"})
        assert r.status_code == 401
    ents = list(reg.audit.ledger.entries(start=start))
    # this client's share of the window: 5 with the made-up token, 5 without credentials or with bad passwords
    assert len(ents) == 10
    assert all(e.decision == "deny" and e.payload["client"] == "testclient" for e in ents)
    ticks[0] = 61.0  # the next window: the first refusal also ledgers the last window's summary
    r = client.get("/me")
    assert r.status_code == 401
    ents = list(reg.audit.ledger.entries(start=start))
    assert len(ents) == 12
    summary = ents[10]
    assert summary.kind == "auth.coalesced" and summary.payload["suppressed"] == 240
    assert summary.payload["busiest"]["testclient"] == 95 + 50  # no credentials, and bad passwords
    assert sum(summary.payload["busiest"].values()) == 240
    assert ents[11].kind == "auth" and r.json()["ledger_index"] == ents[11].index
    assert reg.audit.ledger.verify().ok


def test_the_overall_bound_holds_across_clients(reg):
    ticks = [0.0]
    reg.throttle = UnauthenticatedThrottle(per_client=3, overall=10, window=60.0, clock=lambda: ticks[0])
    start = reg.audit.ledger.size()
    for i in range(1000):
        reg.deny_unauthenticated("route:/me", f"10.0.{i // 256}.{i % 256}")
    assert reg.audit.ledger.size() - start == 10
    ticks[0] = 60.0
    reg.deny_unauthenticated("route:/me", "10.9.9.9")
    ents = list(reg.audit.ledger.entries(start=start))
    assert ents[10].kind == "auth.coalesced" and ents[10].payload["suppressed"] == 990
    assert ents[10].payload["distinct_clients"] == 990 and len(ents[10].payload["busiest"]) == 20
    assert len(ents) == 12


def test_throttle_refuses_nonsense_limits():
    with pytest.raises(ValueError):
        UnauthenticatedThrottle(per_client=0)
