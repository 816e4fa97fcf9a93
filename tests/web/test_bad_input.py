"""Bad input: malformed JSON, wrong types, oversized bodies, unknown ids, SQL metacharacters in every text
field. Each gets a clear 4xx JSON error and nothing is written (no ledger entry, no row)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biowarden.registry import LOCAL_OPERATOR as OP
from biowarden.store.registry_tables import (
    AccountRow,
    ApiTokenRow,
    ApplicationMemberRow,
    ApplicationRow,
    CommitteeVoteRow,
    InstitutionRow,
    ResearcherRow,
    SuspensionRow,
)

TABLES = (
    InstitutionRow,
    ResearcherRow,
    ApplicationRow,
    ApplicationMemberRow,
    AccountRow,
    ApiTokenRow,
    SuspensionRow,
    CommitteeVoteRow,
)
SQL = [
    "x'; DROP TABLE institutions; --",
    'a" OR "1"="1',
    "1; DELETE FROM applications",
    "%' OR 1=1 /*",
    "Robert'); DROP TABLE researchers;--",
    "\\'; SELECT pg_sleep(5); --",
]


@pytest.fixture
def world(client, reg):
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_researcher(OP, "ann@northbridge.ac.uk", "Northbridge Institute")
    reg.add_application(OP, "A-0017", "Northbridge Institute", ["31"], members=["ann@northbridge.ac.uk"])
    reg.add_account(OP, "cara", ["custodian_admin", "access_committee"])
    token = reg.create_token(OP, username="cara").token
    return {"Authorization": f"Bearer {token}"}


def snapshot(reg):
    with reg.db.session() as s:
        counts = tuple(s.scalar(sa.select(sa.func.count()).select_from(t)) for t in TABLES)
    return reg.audit.ledger.size(), counts


def refused(client, reg, h, method, path, status, **kw):
    before = snapshot(reg)
    r = client.request(method, path, headers={**h, **kw.pop("headers", {})}, **kw)
    assert r.status_code == status, (method, path, r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"error", "message"} and body["message"], body
    assert snapshot(reg) == before, (method, path, "something was written")
    return body


def test_malformed_json_and_wrong_types(client, reg, world):
    h = world
    for raw in ('{"name": ', "not json", '{"name": "x",}', "\xff\xfe"):
        b = refused(
            client,
            reg,
            h,
            "POST",
            "/institutions",
            400,
            content=raw.encode("latin-1"),
            headers={"Content-Type": "application/json"},
        )
        assert b["error"] == "malformed_json"
    wrong = [
        ("/institutions", {"name": 5}),
        ("/institutions", {"name": ["a"]}),
        ("/institutions", {}),
        ("/institutions", {"name": "Eastgate", "extra": 1}),
        ("/researchers", {"email": "b@c.org", "institution": None}),
        ("/applications", {"id": "A-1", "institution": "Northbridge Institute", "fields": "31"}),
        ("/applications", {"id": "A-1", "institution": "Northbridge Institute", "fields": [31]}),
        (
            "/applications",
            {"id": "A-1", "institution": "Northbridge Institute", "fields": ["31"], "expires_on": "next year"},
        ),
        ("/applications/A-0017/access", {"fields": [True]}),
        ("/platform/suspend", {"reason": 1}),
        ("/institutions/Northbridge Institute/suspend", {"reason": "x", "revoke": "yes"}),
        ("/tokens", {"days": "30"}),
        ("/tokens", {"days": 0}),
        ("/tokens", {"days": 10_000}),
        ("/accounts", {"username": "zed", "roles": ["emperor"]}),
        ("/accounts", {"username": "zed", "roles": ["researcher"]}),
        ("/accounts", {"username": "zed", "roles": ["auditor"], "password": "short"}),
        (
            "/applications",
            {
                "id": "A-1",
                "institution": "Northbridge Institute",
                "fields": ["31"],
                "starts_on": "2027-01-01",
                "expires_on": "2026-01-01",
            },
        ),
        ("/platform/suspend", {"reason": "  "}),
        ("/platform/suspend", {"reason": "a\x00b"}),
        ("/researchers", {"email": "not-an-email", "institution": "Northbridge Institute"}),
    ]
    for path, body in wrong:
        b = refused(client, reg, h, "POST", path, 422, json=body)
        assert b["error"] == "invalid"
    assert "value" not in refused(client, reg, h, "POST", "/tokens/abc/revoke", 422, json={"reason": "x"})


def test_oversized_bodies(client, reg, world):
    h = world
    big = {"name": "x" * 70_000}
    b = refused(client, reg, h, "POST", "/institutions", 413, json=big)
    assert b["error"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit counts the streamed bytes
        for _ in range(100):
            yield b"x" * 1024

    refused(
        client, reg, h, "POST", "/institutions", 413, content=chunks(), headers={"Content-Type": "application/json"}
    )
    refused(
        client,
        reg,
        h,
        "POST",
        "/institutions",
        413,
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "99999999"},
    )


def test_unknown_ids(client, reg, world):
    h = world
    for method, path, body in [
        ("GET", "/applications/A-9999", None),
        ("GET", "/institutions/Nowhere", None),
        ("GET", "/researchers/nobody@nowhere.org", None),
        ("POST", "/applications/A-9999/approve", None),
        ("POST", "/accounts/nobody/disable", {"reason": "x"}),
        ("POST", "/accounts/nobody/password", {"new_password": "a long enough password"}),
        ("POST", "/applications/A-0017/members", {"email": "nobody@nowhere.org"}),
        ("POST", "/institutions/Nowhere/suspend", {"reason": "x"}),
        ("POST", "/researchers/nobody@nowhere.org/reinstate", {"reason": "x"}),
        ("POST", "/applications", {"id": "A-5", "institution": "Nowhere", "fields": ["31"]}),
        ("POST", "/tokens/99999/revoke", {"reason": "x"}),
        ("POST", "/tokens", {"application": "A-4040"}),
        ("GET", "/no/such/route", None),
    ]:
        b = refused(client, reg, h, method, path, 404, json=body)
        assert b["error"] == "not_found"


def test_deny_first_then_not_found(client, reg, world):
    """A caller the policy refuses gets the same 403 (ledgered) whether or not the id exists: a 404 would
    tell them it does not."""
    reg.add_researcher(OP, "bob@northbridge.ac.uk", "Northbridge Institute")
    reg.add_account(OP, "bob", ["researcher"], researcher="bob@northbridge.ac.uk")
    reg.add_account(OP, "aud", ["auditor"])
    bob = {"Authorization": f"Bearer {reg.create_token(OP, username='bob').token}"}
    aud = {"Authorization": f"Bearer {reg.create_token(OP, username='aud').token}"}
    pairs = [
        (bob, "GET", "/applications/{}", ("A-0017", "A-9999"), None, "DENY_NOT_MEMBER"),
        (bob, "POST", "/applications/{}/access", ("A-0017", "A-9999"), {"fields": ["31"]}, "DENY_NOT_MEMBER"),
        (bob, "GET", "/institutions/{}", ("Northbridge Institute", "Nowhere"), None, "DENY_ROLE"),
        (bob, "GET", "/researchers/{}", ("ann@northbridge.ac.uk", "nobody@nowhere.org"), None, "DENY_ROLE"),
        (aud, "POST", "/applications/{}/approve", ("A-0017", "A-9999"), None, "DENY_ROLE"),
        (aud, "POST", "/institutions/{}/suspend", ("Northbridge Institute", "Nowhere"), {"reason": "x"}, "DENY_ROLE"),
        (aud, "POST", "/accounts/{}/disable", ("cara", "nobody"), {"reason": "x"}, "DENY_ROLE"),
        (bob, "POST", "/accounts/{}/password", ("cara", "nobody"), {"new_password": "p" * 12}, "DENY_NOT_OWNER"),
        (world, "POST", "/applications/{}/access", ("A-0017", "A-9999"), {"fields": ["31"]}, "DENY_ROLE"),
    ]
    token_id = reg.create_token(OP, username="cara").info.id
    pairs.append((bob, "POST", "/tokens/{}/revoke", (str(token_id), "99999"), {"reason": "x"}, "DENY_NOT_OWNER"))
    for h, method, template, ids, body, reason in pairs:
        answers = []
        for ident in ids:
            before = reg.audit.ledger.size()
            r = client.request(method, template.format(ident), json=body, headers=h)
            assert r.status_code == 403, (method, template, ident, r.status_code, r.text)
            got = r.json()
            assert got["reason"] == reason, (method, template, ident, got)
            entry = next(reg.audit.ledger.entries(start=got["ledger_index"], stop=got["ledger_index"] + 1))
            assert (entry.kind, entry.decision, entry.reason) == ("decision", "deny", reason)
            assert reg.audit.ledger.size() == before + 1
            answers.append((r.status_code, got["error"], got["reason"]))
        assert answers[0] == answers[1]  # nothing tells the existing id from the unknown one


def test_sql_metacharacters_in_every_text_field(client, reg, world):
    h = world
    ident_fields = [
        ("/institutions", lambda x: {"name": x}),
        ("/researchers", lambda x: {"email": x, "institution": "Northbridge Institute"}),
        ("/researchers", lambda x: {"email": "b@c.org", "institution": x}),
        ("/applications", lambda x: {"id": x, "institution": "Northbridge Institute", "fields": ["31"]}),
        ("/applications", lambda x: {"id": "A-7", "institution": "Northbridge Institute", "fields": [x]}),
        ("/applications", lambda x: {"id": "A-7", "institution": "Northbridge Institute", "fields": ["31"], "pi": x}),
        (
            "/applications",
            lambda x: {"id": "A-7", "institution": "Northbridge Institute", "fields": ["31"], "members": [x]},
        ),
        ("/applications/A-0017/members", lambda x: {"email": x}),
        ("/applications/A-0017/access", lambda x: {"fields": [x]}),
        ("/accounts", lambda x: {"username": x, "roles": ["auditor"]}),
        ("/tokens", lambda x: {"application": x}),
    ]
    for payload in SQL:
        for path, make in ident_fields:
            refused(client, reg, h, "POST", path, 422, json=make(payload))
        for path in (f"/institutions/{payload}", f"/applications/{payload}", f"/researchers/{payload}"):
            # a "/" in the payload makes it another (unknown) route: 404; otherwise the id is invalid: 422
            refused(client, reg, h, "GET", path, 404 if "/" in payload else 422)
    # free text (titles, purposes, reasons, labels) is stored verbatim through bound parameters
    for i, payload in enumerate(SQL):
        r = client.post(
            "/applications",
            headers=h,
            json={
                "id": f"A-{100 + i}",
                "institution": "Northbridge Institute",
                "fields": ["31"],
                "title": payload,
                "purpose": payload,
            },
        )
        assert r.status_code == 201, r.text
        got = client.get(f"/applications/A-{100 + i}", headers=h).json()
        assert got["title"] == payload and got["purpose"] == payload
        r = client.post(f"/applications/A-{100 + i}/suspend", headers=h, json={"reason": payload})
        assert r.status_code == 201 and r.json()["reason"] == payload
        r = client.post("/tokens", headers=h, json={"label": payload[:200]})
        assert r.status_code == 201 and r.json()["label"] == payload[:200]
    names = [i["name"] for i in client.get("/institutions", headers=h).json()]
    assert names == ["Northbridge Institute"]
    assert len(client.get("/applications", headers=h).json()) == 1 + len(SQL)
    assert reg.audit.ledger.verify().ok
