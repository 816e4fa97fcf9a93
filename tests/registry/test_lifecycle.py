"""Registry lifecycle through the Python API: every change and decision lands in the ledger."""

from __future__ import annotations

from datetime import date

import pytest

from biowarden.registry import LOCAL_OPERATOR as OP
from biowarden.registry import Conflict, Denied, Identity, Invalid, NotFound, Unauthenticated
from biowarden.store.ledger_store import LedgerStore


def entries(reg):
    return list(reg.audit.ledger.entries())


def setup_basic(reg):
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_researcher(OP, "ann@northbridge.ac.uk", "Northbridge Institute", name="Ann")
    reg.add_researcher(OP, "bob@northbridge.ac.uk", "Northbridge Institute")
    reg.add_application(
        OP,
        "A-0017",
        "Northbridge Institute",
        "31,34,50",
        title="Heart",
        pi="ann@northbridge.ac.uk",
        members=["bob@northbridge.ac.uk"],
        expires_on=date(2027, 5, 1),
    )
    reg.add_account(OP, "ann", ["researcher"], password="correct horse battery", researcher="ann@northbridge.ac.uk")


def test_lifecycle_is_ledgered(reg):
    setup_basic(reg)
    app = reg.get_application(OP, "A-0017")
    assert app.status == "draft" and app.members == ["ann@northbridge.ac.uk", "bob@northbridge.ac.uk"]
    assert app.pi == "ann@northbridge.ac.uk" and app.fields == ["31", "34", "50"]
    approved = reg.approve_application(OP, "A-0017")
    assert approved.status == "approved" and approved.approvals == ["local-operator"]
    kinds = [e.kind for e in entries(reg)]
    # every change is preceded by its allow decision
    for k in ("institution.created", "researcher.created", "application.created", "application.approved"):
        i = kinds.index(k)
        assert kinds[i - 1] == "decision"
    ents = entries(reg)
    assert all(e.decision == "allow" and e.reason == "ALLOW" for e in ents if e.kind == "decision")
    assert LedgerStore.verify(reg.audit.ledger).ok


def test_conflicts_and_unknown_ids_write_nothing(reg):
    setup_basic(reg)
    before = len(entries(reg))
    with pytest.raises(Conflict):
        reg.add_institution(OP, "northbridge institute")
    with pytest.raises(NotFound):
        reg.add_researcher(OP, "x@y.org", "Nowhere")
    with pytest.raises(NotFound):
        reg.approve_application(OP, "A-9999")
    with pytest.raises(Invalid):
        reg.add_application(OP, "A-1", "Northbridge Institute", "31;DROP TABLE")
    with pytest.raises(Invalid):
        reg.add_institution(OP, "x'; DROP TABLE institutions; --")
    assert len(entries(reg)) == before


def test_access_login_and_tokens(reg, clock):
    setup_basic(reg)
    reg.approve_application(OP, "A-0017")
    tok = reg.login("ann", "correct horse battery")
    assert "bw_" in tok.token and tok.token not in repr(tok)
    ident = reg.authenticate(tok.token)
    ok = reg.check_access(ident, "A-0017", ["31", "50-0.0"])
    assert ok.allow and ok.reason == "ALLOW"
    out = reg.check_access(ident, "A-0017", ["31", "21022"])
    assert not out.allow and out.reason == "DENY_FIELD_OUT_OF_SCOPE"
    with pytest.raises(Unauthenticated):
        reg.login("ann", "wrong password!!")
    with pytest.raises(Denied) as e:
        reg.add_institution(ident, "Eastgate")
    assert e.value.reason == "DENY_ROLE"
    last = entries(reg)[-1]
    assert (last.kind, last.decision, last.reason) == ("decision", "deny", "DENY_ROLE")
    # revoked tokens stop working
    reg.revoke_token(ident, tok.info.id, "lost laptop")
    with pytest.raises(Unauthenticated):
        reg.authenticate(tok.token)
    # expired tokens too
    tok2 = reg.login("ann", "correct horse battery", days=1)
    clock.advance(days=2)
    with pytest.raises(Unauthenticated):
        reg.authenticate(tok2.token)


def test_suspension_revokes_tokens_and_denies_at_once(reg):
    setup_basic(reg)
    reg.approve_application(OP, "A-0017")
    tok = reg.login("ann", "correct horse battery")
    ident = reg.authenticate(tok.token)
    s = reg.suspend(OP, "institution", "Northbridge Institute", "listing found for sale")
    assert s.active and s.ledger_index is not None
    # the identity obtained before the suspension is refused: its token was revoked with the suspension
    d = reg.check_access(ident, "A-0017", ["31"])
    assert not d.allow and d.reason == "DENY_TOKEN_REVOKED"
    with pytest.raises(Unauthenticated):
        reg.authenticate(tok.token)
    reg.reinstate(OP, "institution", "Northbridge Institute", "investigation closed")
    assert reg.get_institution(OP, "Northbridge Institute").status == "active"
    ident = reg.authenticate(reg.login("ann", "correct horse battery").token)
    assert reg.check_access(ident, "A-0017", ["31"]).allow
    reg.suspend(OP, "application", "A-0017", "audit")
    assert reg.check_access(ident, "A-0017", ["31"]).reason == "DENY_SUSPENDED_APPLICATION"
    assert reg.get_application(OP, "A-0017").status == "suspended"
    reg.reinstate(OP, "application", "A-0017", "audit passed")
    assert reg.get_application(OP, "A-0017").status == "approved"
    reg.suspend(OP, "researcher", "ann@northbridge.ac.uk", "shared password")
    with pytest.raises(Unauthenticated):
        reg.authenticate(tok.token)
    with pytest.raises(Conflict):
        reg.suspend(OP, "researcher", "ann@northbridge.ac.uk", "again")


def test_platform_suspension_blocks_researchers_not_custodians(reg):
    setup_basic(reg)
    reg.approve_application(OP, "A-0017")
    reg.add_account(OP, "cara", ["custodian_admin"], password="admin password 123")
    admin = reg.authenticate(reg.login("cara", "admin password 123").token)
    reg.suspend(admin, "platform", None, "data listed for sale")
    # a token issued after the suspension is still denied by the policy
    ident = reg.authenticate(reg.login("ann", "correct horse battery").token)
    assert reg.check_access(ident, "A-0017", ["31"]).reason == "DENY_SUSPENDED_PLATFORM"
    with pytest.raises(Denied) as e:
        reg.list_applications(ident)
    assert e.value.reason == "DENY_SUSPENDED_PLATFORM"
    assert reg.platform(admin).suspended
    reg.reinstate(admin, "platform", None, "controls in place")
    assert reg.check_access(ident, "A-0017", ["31"]).allow


def test_revocation_needs_committee_and_four_eyes(reg):
    setup_basic(reg)
    reg.approve_application(OP, "A-0017")
    reg.add_account(OP, "cara", ["custodian_admin"], password="admin password 123")
    reg.add_account(OP, "dee", ["access_committee"], password="committee pass 1")
    reg.add_account(OP, "eve", ["access_committee"], password="committee pass 2")
    admin = reg.authenticate(reg.login("cara", "admin password 123").token)
    dee = reg.authenticate(reg.login("dee", "committee pass 1").token)
    eve = reg.authenticate(reg.login("eve", "committee pass 2").token)
    reg.suspend(admin, "institution", "Northbridge Institute", "sold data", revoke=True)
    assert reg.get_institution(OP, "Northbridge Institute").status == "revoked"
    with pytest.raises(Denied) as e:
        reg.reinstate(admin, "institution", "Northbridge Institute", "please")
    assert e.value.reason == "DENY_ROLE"
    with pytest.raises(Denied) as e:
        reg.reinstate(OP, "institution", "Northbridge Institute", "operator alone")
    assert e.value.reason == "DENY_COMMITTEE_MEMBER_REQUIRED"
    first = reg.reinstate(dee, "institution", "Northbridge Institute", "committee decision 2026-06")
    assert first[0].active and first[0].approvals == ["dee"]
    with pytest.raises(Denied) as e:
        reg.reinstate(dee, "institution", "Northbridge Institute", "again")
    assert e.value.reason == "DENY_FOUR_EYES"
    second = reg.reinstate(eve, "institution", "Northbridge Institute", "committee decision 2026-06")
    assert not second[0].active and second[0].lifted_by == "eve"
    assert reg.get_institution(OP, "Northbridge Institute").status == "active"


def test_four_eyes_approval(reg):
    setup_basic(reg)
    reg.add_account(OP, "dee", ["access_committee"], password="committee pass 1")
    # one committee member: a single approval suffices (bootstrap)
    reg.add_application(OP, "A-0018", "Northbridge Institute", ["31"])
    assert reg.approve_application(OP, "A-0018").status == "approved"
    reg.add_account(OP, "eve", ["access_committee"], password="committee pass 2")
    dee = reg.authenticate(reg.login("dee", "committee pass 1").token)
    eve = reg.authenticate(reg.login("eve", "committee pass 2").token)
    with pytest.raises(Denied) as e:
        reg.approve_application(OP, "A-0017")
    assert e.value.reason == "DENY_COMMITTEE_MEMBER_REQUIRED"
    assert reg.approve_application(dee, "A-0017").status == "draft"
    with pytest.raises(Denied) as e:
        reg.approve_application(dee, "A-0017")
    assert e.value.reason == "DENY_FOUR_EYES"
    done = reg.approve_application(eve, "A-0017")
    assert done.status == "approved" and done.approvals == ["dee", "eve"]
    with pytest.raises(Denied) as e:  # the policy answers first: eve has already voted
        reg.approve_application(eve, "A-0017")
    assert e.value.reason == "DENY_FOUR_EYES"
    before = reg.audit.ledger.size()
    with pytest.raises(Conflict):  # allowed, but only a draft can be approved: nothing is written
        reg.approve_application(dee, "A-0018")
    assert reg.audit.ledger.size() == before


def test_expiry_and_attestation(reg, clock):
    setup_basic(reg)
    reg.approve_application(OP, "A-0017")
    reg.attest_researcher(OP, "ann@northbridge.ac.uk", on=date(2025, 6, 1))
    tok = reg.login("ann", "correct horse battery", days=365)
    ident = reg.authenticate(tok.token)
    assert reg.check_access(ident, "A-0017", ["31"]).allow
    clock.advance(days=40)  # 374 days after the last attestation
    assert reg.check_access(ident, "A-0017", ["31"]).reason == "DENY_ATTESTATION_EXPIRED"
    reg.attest_researcher(OP, "ann@northbridge.ac.uk")
    assert reg.check_access(ident, "A-0017", ["31"]).allow
    clock.advance(days=330)  # the application expires on 2027-05-01
    ident = reg.authenticate(reg.login("ann", "correct horse battery").token)
    assert reg.check_access(ident, "A-0017", ["31"]).reason == "DENY_APPLICATION_EXPIRED"
    assert reg.get_application(OP, "A-0017").status == "expired"


def test_unknown_identity_is_unauthenticated(reg):
    setup_basic(reg)
    ghost = Identity(name="ghost", account_id=999, via="token")
    with pytest.raises(Denied) as e:
        reg.list_institutions(ghost)
    assert e.value.reason == "DENY_UNAUTHENTICATED"
