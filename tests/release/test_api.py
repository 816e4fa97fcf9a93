"""The release REST endpoints on SQLite and PostgreSQL: request, list, show, link, download."""

from __future__ import annotations

import hashlib
from datetime import date

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from biowarden.cohort import install_cohort, synthesise
from biowarden.keys import KeyRing
from biowarden.registry.auth import LOCAL_OPERATOR as OP
from biowarden.store.ledger_tables import LedgerEntryRow
from biowarden.web import create_app
from tests.registry.helpers import KEY, Clock

FIELDS = ["31", "34", "50-0.0", "21002-0.0", "4080-0.0"]


@pytest.fixture(scope="module")
def cohort_src(tmp_path_factory):
    src = tmp_path_factory.mktemp("api-cohort")
    synthesise(3000, 7, src)
    return src


@pytest.fixture
def api(db, home, cohort_src):
    install_cohort(cohort_src, home)
    clock = Clock()
    app = create_app(db, KeyRing(KEY), clock=clock)
    reg = app.state.registry
    for inst, email, app_id in (
        ("Northbridge Institute", "ann@northbridge.ac.uk", "A-0017"),
        ("Eastgate University", "eve@eastgate.ac.uk", "A-0020"),
    ):
        reg.add_institution(OP, inst)
        reg.add_researcher(OP, email, inst)
        reg.add_application(OP, app_id, inst, "31,34,54,50,21002,4080,4079", pi=email, expires_on=date(2027, 5, 1))
        reg.add_account(OP, email.split("@")[0], ["researcher"], researcher=email)
        reg.approve_application(OP, app_id)
    with pq.ParquetFile(home / "cohort" / "cohort.parquet") as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()
    with TestClient(app) as client:
        yield client, reg, clock, eids


def _auth(reg, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {reg.create_token(OP, username=user, days=5).token}"}


def _kinds(db) -> list[tuple[str, str | None, str | None]]:
    with db.session() as s:
        return [
            tuple(r) for r in s.execute(select(LedgerEntryRow.kind, LedgerEntryRow.decision, LedgerEntryRow.reason))
        ]


def test_request_list_show_link_download(db, home, api):
    client, reg, _clock, eids = api
    ann, eve = _auth(reg, "ann"), _auth(reg, "eve")
    body = {"fields": FIELDS, "participants": [int(e) for e in eids[:250]]}
    r = client.post("/applications/A-0017/releases", json=body, headers=ann)
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["rows"] == 250 and m["researcher"] == "ann@northbridge.ac.uk" and "file" not in m
    assert m["ledger_index"] >= 0 and m["levels"]
    kept = list((home / "releases").iterdir())
    assert len(kept) == 1 and hashlib.sha256(kept[0].read_bytes()).hexdigest() == m["file_sha256"]

    listed = client.get("/releases", headers=ann).json()
    assert [x["release_id"] for x in listed] == [m["release_id"]]
    assert client.get("/releases", headers=eve).json() == []
    assert client.get("/releases?application=A-0017", headers=eve).status_code == 403

    shown = client.get(f"/releases/{m['release_id']}", headers=ann).json()
    assert shown["manifest"]["file_sha256"] == m["file_sha256"]
    assert shown["manifest"]["levels"] == m["levels"] and shown["manifest"]["release_id"] == m["release_id"]
    denied = client.get(f"/releases/{m['release_id']}", headers=eve)
    assert denied.status_code == 403 and denied.json()["reason"] == "DENY_NOT_MEMBER"
    assert client.get("/releases/R-nope", headers=ann).status_code == 404

    assert client.post(f"/releases/{m['release_id']}/downloads", headers=eve).status_code == 403
    link = client.post(f"/releases/{m['release_id']}/downloads", json={"minutes": 5}, headers=ann)
    assert link.status_code == 201, link.text
    secret = link.json()["link"]
    got = client.post("/downloads", json={"link": secret}, headers=ann)
    assert got.status_code == 200, got.text
    assert hashlib.sha256(got.content).hexdigest() == m["file_sha256"] == got.headers["x-content-sha256"]
    assert got.headers["content-type"] == "application/vnd.apache.parquet"
    assert f"{m['release_id']}.parquet" in got.headers["content-disposition"]
    again = client.post("/downloads", json={"link": secret}, headers=ann)
    assert again.status_code == 410 and again.json()["reason"] == "DENY_LINK_USED"
    downloads = [(d, r) for k, d, r in _kinds(db) if k == "release.download"]
    assert downloads == [("allow", "ALLOW"), ("deny", "DENY_LINK_USED")]
    entry = [k for k, *_ in _kinds(db)]
    assert int(got.headers["x-ledger-index"]) < len(entry) and entry[int(got.headers["x-ledger-index"])] == (
        "release.download"
    )


def test_refused_release_names_reason_and_writes_nothing(db, home, api):
    client, reg, _clock, _eids = api
    ann = _auth(reg, "ann")
    r = client.post("/applications/A-0017/releases", json={"fields": FIELDS}, headers=ann)  # the whole cohort
    assert r.status_code == 403
    err = r.json()
    assert err["reason"].startswith("DENY_") and err["suggestion"] and err["ledger_index"] >= 0
    assert not any((home / "releases").iterdir())
    kinds = _kinds(db)
    assert kinds[err["ledger_index"]][0] == "release.denied" and not any(k == "release.create" for k, *_ in kinds)
    # out of scope, unknown application, bad body
    out = client.post("/applications/A-0017/releases", json={"fields": ["21001"]}, headers=ann)
    assert out.status_code == 403 and out.json()["reason"] == "DENY_FIELD_OUT_OF_SCOPE"
    assert client.post("/applications/A-9999/releases", json={"fields": FIELDS}, headers=ann).status_code == 404
    bad = client.post("/applications/A-0017/releases", json={"fields": FIELDS, "format": "xlsx"}, headers=ann)
    assert bad.status_code == 422
    unk = client.post("/applications/A-0017/releases", json={"fields": ["99999"]}, headers=ann)
    assert unk.status_code == 422 and "99999" in unk.json()["message"]
    assert client.post("/applications/A-0017/releases", json={"fields": FIELDS}).status_code == 401


def test_links_are_token_bound_and_stopped_by_a_later_suspension(db, home, api):
    client, reg, clock, eids = api
    ann = _auth(reg, "ann")
    body = {"fields": FIELDS, "participants": [int(e) for e in eids[:200]], "format": "csv"}
    m = client.post("/applications/A-0017/releases", json=body, headers=ann).json()
    first = client.post(f"/releases/{m['release_id']}/downloads", headers=ann).json()["link"]
    second = client.post(f"/releases/{m['release_id']}/downloads", headers=ann).json()["link"]
    other = _auth(reg, "ann")  # the same researcher, another token
    stolen = client.post("/downloads", json={"link": first}, headers=other)
    assert stolen.status_code == 403 and stolen.json()["reason"] == "DENY_LINK_NOT_YOURS"
    ok = client.post("/downloads", json={"link": first}, headers=ann)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/csv")
    assert ok.content.splitlines()[0].startswith(b'"pseudonym_id",')
    clock.advance(minutes=1)
    reg.suspend(OP, "application", "A-0017", "bulk pulls under review")
    late = client.post("/downloads", json={"link": second}, headers=ann)
    assert late.status_code == 403 and late.json()["reason"] == "DENY_SUSPENDED_APPLICATION"
    assert client.post("/downloads", json={"link": "dl_" + "0" * 43}, headers=ann).status_code == 404


def test_openapi_describes_the_release_routes(api):
    client, *_ = api
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/applications/{app_id}/releases", "post"),
        ("/releases", "get"),
        ("/releases/{name}", "get"),
        ("/releases/{name}/downloads", "post"),
    ]:
        op = paths[path][method]
        assert "releases" in op["tags"] and "401" in op["responses"] and "403" in op["responses"]
        assert {"HTTPBearer": []} in op["security"], f"{method} {path} is not marked as needing a bearer token"
        assert op["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    # the file download is not JSON and stays out of the schema, but needs a token like every other route
    assert "/downloads" not in paths
    r = client.post("/downloads", json={"link": "dl_x"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "ManifestOut" in spec["components"]["schemas"]
