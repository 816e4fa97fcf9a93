"""The REST API: login, tokens, the registry round trip, the OpenAPI document, and unauthenticated access."""

from __future__ import annotations

from biowarden.registry import LOCAL_OPERATOR as OP


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def admin_token(reg) -> str:
    reg.add_account(OP, "cara", ["custodian_admin"], password="admin password 123")
    return reg.create_token(OP, username="cara").token


def test_health_and_login(client, reg):
    assert client.get("/health").json() == {"status": "ok"}
    reg.add_account(OP, "cara", ["custodian_admin"], password="admin password 123")
    r = client.post("/auth/login", json={"username": "cara", "password": "admin password 123"})
    assert r.status_code == 201 and r.json()["token"].startswith("bw_")
    me = client.get("/me", headers=bearer(r.json()["token"])).json()
    assert me["name"] == "cara" and me["roles"] == ["custodian_admin"]
    bad = client.post("/auth/login", json={"username": "cara", "password": "wrong password!"})
    assert bad.status_code == 401 and bad.json()["reason"] == "DENY_BAD_CREDENTIALS"
    assert "admin password" not in bad.text


def test_registry_round_trip(client, reg):
    h = bearer(admin_token(reg))
    assert client.post("/institutions", json={"name": "Eastgate Institute"}, headers=h).status_code == 201
    r = client.post(
        "/researchers", json={"email": "Eve@Eastgate.ac.uk", "institution": "Eastgate Institute"}, headers=h
    )
    assert r.status_code == 201 and r.json()["email"] == "eve@eastgate.ac.uk"
    body = {
        "id": "A-0042",
        "institution": "Eastgate Institute",
        "fields": ["31", "34"],
        "title": "Diabetes",
        "pi": "eve@eastgate.ac.uk",
        "expires_on": "2028-01-01",
    }
    r = client.post("/applications", json=body, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "draft"
    assert client.post("/applications", json=body, headers=h).status_code == 409
    # the admin is not on the committee
    r = client.post("/applications/A-0042/approve", headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "DENY_ROLE" and r.json()["ledger_index"] >= 0
    reg.approve_application(OP, "A-0042")
    assert client.get("/applications/A-0042", headers=h).json()["status"] == "approved"
    r = client.post("/institutions/Eastgate Institute/suspend", json={"reason": "leak", "revoke": True}, headers=h)
    assert r.status_code == 201 and r.json()["kind"] == "revocation"
    assert client.get("/institutions/Eastgate Institute", headers=h).json()["status"] == "revoked"
    # lifting a revocation is a committee decision
    r = client.post("/institutions/Eastgate Institute/reinstate", json={"reason": "sorry"}, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "DENY_ROLE"
    assert len(client.get("/suspensions?active=true", headers=h).json()) == 1


def test_every_route_but_health_and_login_needs_a_token(client, app, reg):
    open_routes = {("GET", "/health"), ("POST", "/auth/login")}
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    doc = schema.json()
    checked = 0
    from biowarden.registry.throttle import UnauthenticatedThrottle

    reg.throttle = UnauthenticatedThrottle(per_client=10_000, overall=10_000)  # every refusal on its own
    ledger_before = reg.audit.ledger.size()
    for path, ops in doc["paths"].items():
        concrete = path.replace("{name}", "Northbridge").replace("{app_id}", "A-0001")
        concrete = concrete.replace("{email}", "a@b.org").replace("{token_id}", "1")
        concrete = concrete.replace("{username}", "cara").replace("{incident_id}", "1")
        assert "{" not in concrete, path
        for method, op in ops.items():
            if (method.upper(), path) in open_routes:
                assert "security" not in op
                continue
            assert {"HTTPBearer": []} in op.get("security", []), (method, path)
            variants = [{}, bearer("bw_not-a-real-token")] + ([{"Authorization": "Basic YTpi"}] if checked < 5 else [])
            for headers in variants:
                r = client.request(method.upper(), concrete, json={}, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"] == "unauthenticated"
                assert r.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 25
    # each refusal is in the ledger as a DENY_UNAUTHENTICATED decision
    denials = [e for e in reg.audit.ledger.entries(start=ledger_before) if e.reason == "DENY_UNAUTHENTICATED"]
    assert len(denials) == 2 * checked + 5


def test_openapi_is_complete(client):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), (method, path)
            ok = next(c for c in codes if c.startswith("2"))
            assert "schema" in op["responses"][ok].get("content", {}).get("application/json", {}), (method, path)
            if path not in ("/health",):
                for c in ("401", "403", "404", "422"):
                    if path == "/auth/login" and c == "403":
                        continue
                    assert op["responses"][c]["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorOut"
                    }, (method, path, c)


def test_token_scope_and_revocation(client, reg):
    reg.add_institution(OP, "Westmoor Institute")
    reg.add_researcher(OP, "wes@westmoor.ac.uk", "Westmoor Institute")
    for app_id in ("A-0100", "A-0101"):
        reg.add_application(OP, app_id, "Westmoor Institute", ["31", "34"], pi="wes@westmoor.ac.uk")
        reg.approve_application(OP, app_id)
    reg.add_account(OP, "wes", ["researcher"], researcher="wes@westmoor.ac.uk")
    scoped = reg.create_token(OP, username="wes", application="A-0100")
    h = bearer(scoped.token)
    assert client.post("/applications/A-0100/access", json={"fields": ["31"]}, headers=h).status_code == 200
    r = client.post("/applications/A-0101/access", json={"fields": ["31"]}, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "DENY_TOKEN_SCOPE"
    r = client.post(f"/tokens/{scoped.info.id}/revoke", json={"reason": "done"}, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "DENY_TOKEN_SCOPE"
    plain = reg.create_token(OP, username="wes")
    r = client.post(f"/tokens/{scoped.info.id}/revoke", json={"reason": "done"}, headers=bearer(plain.token))
    assert r.status_code == 200 and r.json()["revoked_reason"] == "done"
    assert client.get("/me", headers=h).status_code == 401
    listed = client.get("/tokens", headers=bearer(plain.token)).json()
    assert {t["id"] for t in listed} == {scoped.info.id, plain.info.id}
    assert all("token" not in t and "token_hash" not in t for t in listed)


def test_dashboard_pages_and_json_twins(client, reg):
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_application(OP, "A-0017", "Northbridge Institute", ["31"], title="<script>alert(1)</script>")
    reg.add_account(OP, "cara", ["custodian_admin"], password="admin password 123")
    r = client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert client.get("/dashboard/overview.json").status_code == 401
    bad = client.post("/dashboard/login", data={"username": "cara", "password": "nope nope nope"})
    assert bad.status_code == 401 and "wrong password" in bad.text
    r = client.post(
        "/dashboard/login", data={"username": "cara", "password": "admin password 123"}, follow_redirects=False
    )
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    html = client.get("/dashboard").text
    assert "A-0017" in html and "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    twin = client.get("/dashboard/overview.json").json()
    assert twin["platform"]["applications"] == 1 and twin["applications"][0]["id"] == "A-0017"
    assert twin["suspensions"] == [] and twin["me"]["name"] == "cara"
    assert "Northbridge Institute" in client.get("/dashboard/applications/A-0017").text
    assert client.get("/dashboard/applications/A-0017.json").json()["title"] == "<script>alert(1)</script>"
