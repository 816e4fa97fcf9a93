"""The registry commands end to end on a fresh home (SQLite), as the home's local operator."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from biowarden.cli.main import app

runner = CliRunner()


def run(*args, input=None, code=0):
    r = runner.invoke(app, list(args), input=input)
    assert r.exit_code == code, (args, r.exit_code, r.output)
    return r


def js(*args, input=None):
    return json.loads(run(*args, "--json", input=input).stdout)


def test_registry_commands(home):
    assert js("institution", "add", "Northbridge Institute")["status"] == "active"
    run("researcher", "add", "ann@northbridge.ac.uk", "--institution", "Northbridge Institute", "--name", "Ann")
    app_ = js(
        "application",
        "add",
        "A-0017",
        "--institution",
        "Northbridge Institute",
        "--fields",
        "31,34,50-0.0",
        "--pi",
        "ann@northbridge.ac.uk",
        "--title",
        "Heart study",
        "--expires",
        "2030-01-01",
    )
    assert app_["status"] == "draft" and app_["fields"] == ["31", "34", "50-0.0"]
    assert js("application", "approve", "A-0017")["status"] == "approved"
    s = js("suspend", "--institution", "Northbridge Institute", "--reason", "listing found")
    assert s["active"] and s["scope"] == "institution"
    assert js("institution", "show", "Northbridge Institute")["status"] == "suspended"
    assert js("suspensions", "--active")[0]["id"] == s["id"]
    lifted = js("reinstate", "--institution", "Northbridge Institute", "--reason", "closed")
    assert not lifted[0]["active"] and lifted[0]["lift_reason"] == "closed"
    js("suspend", "--platform", "--reason", "drill")
    js("reinstate", "--platform", "--reason", "drill over")
    assert [a["id"] for a in js("application", "list")] == ["A-0017"]
    assert js("revoke", "--application", "A-0017", "--reason", "misuse")["kind"] == "revocation"
    assert js("application", "show", "A-0017")["status"] == "revoked"
    assert "exactly one scope" in run("revoke", "--reason", "x", code=2).output
    assert not js("reinstate", "--application", "A-0017", "--reason", "committee decision")[0]["active"]
    # accounts and tokens
    run(
        "user",
        "add",
        "ann",
        "--role",
        "researcher",
        "--researcher",
        "ann@northbridge.ac.uk",
        "--password-stdin",
        input="a long enough password\n",
    )
    tok = js("token", "create", "ann", "--days", "7")
    assert tok["token"].startswith("bw_") and tok["username"] == "ann"
    listed = js("token", "list")
    assert "token" not in listed[0] and listed[0]["prefix"] == tok["prefix"]
    assert js("token", "revoke", str(tok["id"]), "--reason", "rotated")["revoked_reason"] == "rotated"
    out = json.loads(run("ledger", "verify", "--json").stdout)
    assert out["ok"] and out["entries"] > 20


def test_four_eyes_from_the_cli(home):
    run("institution", "add", "Eastgate Institute")
    run("application", "add", "A-0001", "--institution", "Eastgate Institute", "--fields", "31")
    for user in ("dee", "eve"):
        run("user", "add", user, "--role", "access_committee", "--password-stdin", input=f"{user} password 123\n")
    r = run("application", "approve", "A-0001", code=3)
    assert "DENY_COMMITTEE_MEMBER_REQUIRED" in r.output
    assert js("application", "approve", "A-0001", "--as", "dee", input="dee password 123\n")["status"] == "draft"
    r = runner.invoke(app, ["application", "approve", "A-0001", "--as", "eve"], input="wrong password\n")
    assert r.exit_code == 3 and "wrong password" in r.output
    done = json.loads(
        runner.invoke(
            app, ["application", "approve", "A-0001", "--as", "eve", "--json"], input="eve password 123\n"
        ).stdout.split("\n", 1)[1]
    )
    assert done["status"] == "approved" and done["approvals"] == ["dee", "eve"]


def test_bad_input_is_a_clear_error(home):
    r = run("institution", "add", "x'; DROP TABLE institutions; --", code=2)
    assert "not valid" in r.output and "Traceback" not in r.output
    assert "exactly one scope" in run("suspend", "--reason", "x", code=2).output
    assert "exactly one scope" in run("suspend", "--platform", "--institution", "A", "--reason", "x", code=2).output
    assert "no application" in run("application", "approve", "A-0404", code=2).output
    assert (
        "not a date"
        in run("application", "add", "A-1", "--institution", "X", "--fields", "31", "--expires", "soon", code=2).output
    )
    run("institution", "add", "Westmoor Institute")
    assert "already exists" in run("institution", "add", "Westmoor Institute", code=2).output
    assert run("institution", "list", "--json").stdout.count('"name"') == 1


def test_user_disable_enable_and_password(home):
    run("user", "add", "cara", "--role", "custodian_admin", "--password-stdin", input="cara password 123\n")
    assert js("user", "disable", "cara", "--reason", "on leave")["status"] == "disabled"
    assert "already disabled" in run("user", "disable", "cara", "--reason", "again", code=2).output
    assert js("user", "enable", "cara", "--reason", "back")["status"] == "active"
    run("user", "password", "cara", "--password-stdin", input="a new long password\n")
    assert "12 to 1024" in run("user", "password", "cara", "--password-stdin", input="short\n", code=2).output
    assert "no account" in run("user", "disable", "nobody", "--reason", "x", code=2).output
    shown = run("ledger", "show", "--json", "--limit", "200").stdout
    assert "account.disabled" in shown and "account.enabled" in shown and "account.password_changed" in shown
    assert "a new long password" not in shown
