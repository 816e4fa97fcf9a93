"""The authorisation matrix: every endpoint x every role x member / non-member x every application status
and suspension scope, through the HTTP API, asserting allow or deny with the expected reason code, and that
each decision is the one the ledger recorded.

The expectation below is written from the access rules (which roles may call what, what a researcher must
be and hold), not computed by the policy module it checks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from biowarden.registry import LOCAL_OPERATOR as OP
from tests.registry.helpers import START

A, C, OC, U, R = "custodian_admin", "access_committee", "output_checker", "auditor", "researcher"
STAFF = {A, C, OC, U}
EVERYONE = STAFF | {R}
PRINCIPALS = {"admin": A, "committee": C, "checker": OC, "auditor": U, "mem": R, "non": R}
NB, SC = "Northbridge Institute", "Scratch Institute"
PASSWORD = "matrix password 12"  # every principal's; changing one's own proves it and sets it again
MEM, NON = "mem@northbridge.ac.uk", "non@northbridge.ac.uk"
APPS = {"draft": "A-0001", "approved": "A-0002", "suspended": "A-0003", "revoked": "A-0004", "expired": "A-0005"}
STATUS_REASON = {
    "draft": "DENY_APPLICATION_NOT_APPROVED",
    "approved": "ALLOW",
    "suspended": "DENY_SUSPENDED_APPLICATION",
    "revoked": "DENY_REVOKED_APPLICATION",
    "expired": "DENY_APPLICATION_EXPIRED",
}
PHASE_REASON = {
    "platform": "DENY_SUSPENDED_PLATFORM",
    "institution": "DENY_SUSPENDED_INSTITUTION",
    "researcher": "DENY_SUSPENDED_RESEARCHER",
}


@dataclass
class Case:
    name: str
    method: str
    path: object  # str or callable(world, principal) -> str
    roles: set[str]
    body: object = None  # dict or callable(world, principal) -> dict
    membership: bool = False
    status: str | None = None  # application status exercised by a "use" case
    out_of_scope: bool = False
    other_owner: bool = False
    may_conflict: bool = False
    after: object = None  # callable(world, response) restoring the world
    before: object = None  # callable(world) preparing it
    extra: dict = field(default_factory=dict)


class World:
    def __init__(self, reg, clock):
        self.reg, self.clock, self.n = reg, clock, 0
        reg.add_institution(OP, NB)
        reg.add_institution(OP, SC)
        for email in (MEM, NON):
            reg.add_researcher(OP, email, NB)
        reg.add_researcher(OP, "scr@scratch.ac.uk", SC)
        reg.add_researcher(OP, "pat@scratch.ac.uk", SC)
        for status, app_id in APPS.items():
            expires = START.date() + timedelta(days=5 if status == "expired" else 700)
            reg.add_application(OP, app_id, NB, ["31", "34"], members=[MEM], expires_on=expires)
            if status != "draft":
                reg.approve_application(OP, app_id)
        reg.suspend(OP, "application", APPS["suspended"], "audit")
        reg.suspend(OP, "application", APPS["revoked"], "misuse", revoke=True)
        reg.add_application(OP, "A-0900", SC, ["31"])
        reg.approve_application(OP, "A-0900")
        for name, role in PRINCIPALS.items():
            reg.add_account(OP, name, [role], researcher={"mem": MEM, "non": NON}.get(name), password=PASSWORD)
        reg.add_account(OP, "other", [U])
        clock.advance(days=10)  # A-0005 is now expired; attestations (made on START) are still current
        self.mint()

    def mint(self):
        self.tokens = {p: self.reg.create_token(OP, username=p).token for p in PRINCIPALS}

    def fresh(self, prefix="x"):
        self.n += 1
        return f"{prefix}{self.n}"

    def fresh_account(self, disabled: bool = False):
        name = self.fresh("acct")
        self.reg.add_account(OP, name, [U])
        if disabled:
            self.reg.disable_account(OP, name, "matrix prime")
        return name

    def fresh_draft(self):
        app_id = f"B-{self.fresh('')}"
        self.reg.add_application(OP, app_id, SC, ["31"])
        return app_id


def _lift(scope, target):
    def after(w, r):
        if r.status_code == 201:
            w.reg.reinstate(OP, scope, target, "matrix restore")
            if scope == "platform":
                w.mint()  # the platform suspension revoked every researcher's token

    return after


def _prime(scope, target):
    def before(w):
        w.reg.suspend(OP, scope, target, "matrix prime")

    def after(w, r):
        if r.status_code != 200:
            w.reg.reinstate(OP, scope, target, "matrix restore")

    return before, after


def cases() -> list[Case]:
    out = [
        Case("platform", "GET", "/platform", EVERYONE),
        Case("me", "GET", "/me", EVERYONE),
        Case("institutions", "GET", "/institutions", STAFF),
        Case("institution.add", "POST", "/institutions", {A}, body=lambda w, p: {"name": f"Inst {w.fresh()}"}),
        Case("institution.get", "GET", f"/institutions/{NB}", STAFF),
        Case("researchers", "GET", "/researchers", STAFF),
        Case(
            "researcher.add",
            "POST",
            "/researchers",
            {A},
            body=lambda w, p: {"email": f"{w.fresh()}@scratch.ac.uk", "institution": SC},
        ),
        Case("researcher.get", "GET", f"/researchers/{MEM}", STAFF),
        Case("researcher.attest", "POST", "/researchers/scr@scratch.ac.uk/attest", {A}, body={}),
        Case("applications", "GET", "/applications", EVERYONE),
        Case(
            "application.add",
            "POST",
            "/applications",
            {A},
            body=lambda w, p: {"id": f"C-{w.fresh('')}", "institution": SC, "fields": ["31"]},
        ),
        Case("application.approve", "POST", lambda w, p: f"/applications/{w.fresh_draft()}/approve", {C}),
        Case(
            "application.member",
            "POST",
            lambda w, p: f"/applications/{w.fresh_draft()}/members",
            {A},
            body={"email": "pat@scratch.ac.uk"},
        ),
        Case("suspensions", "GET", "/suspensions", STAFF),
        Case("accounts", "GET", "/accounts", {A, U}),
        Case("account.add", "POST", "/accounts", {A}, body=lambda w, p: {"username": w.fresh("user"), "roles": [U]}),
        Case(
            "account.disable",
            "POST",
            lambda w, p: f"/accounts/{w.fresh_account()}/disable",
            {A},
            body={"reason": "left the institute"},
        ),
        Case(
            "account.enable",
            "POST",
            lambda w, p: f"/accounts/{w.fresh_account(disabled=True)}/enable",
            {A},
            body={"reason": "back"},
        ),
        Case(
            "account.password.own",
            "POST",
            lambda w, p: f"/accounts/{p}/password",
            EVERYONE,
            body={"new_password": PASSWORD, "current_password": PASSWORD},
        ),
        Case(
            "account.password.other",
            "POST",
            "/accounts/other/password",
            EVERYONE,
            body={"new_password": "a fresh long password"},
            other_owner=True,
        ),
        Case("tokens", "GET", "/tokens", EVERYONE),
        Case("token.add", "POST", "/tokens", EVERYONE, body={"days": 1}),
        Case(
            "token.revoke.own",
            "POST",
            lambda w, p: f"/tokens/{w.reg.create_token(OP, username=p, days=1).info.id}/revoke",
            EVERYONE,
            body={"reason": "rotate"},
        ),
        Case(
            "token.revoke.other",
            "POST",
            lambda w, p: f"/tokens/{w.reg.create_token(OP, username='other', days=1).info.id}/revoke",
            EVERYONE,
            body={"reason": "rotate"},
            other_owner=True,
        ),
        Case(
            "platform.suspend",
            "POST",
            "/platform/suspend",
            {A, C},
            body={"reason": "drill"},
            after=_lift("platform", None),
            may_conflict=True,
        ),
        Case("platform.reinstate", "POST", "/platform/reinstate", {A, C}, body={"reason": "drill"}, may_conflict=True),
    ]
    for scope, target, path in (
        ("institution", SC, f"/institutions/{SC}"),
        ("application", "A-0900", "/applications/A-0900"),
        ("researcher", "scr@scratch.ac.uk", "/researchers/scr@scratch.ac.uk"),
    ):
        out.append(
            Case(
                f"{scope}.suspend",
                "POST",
                f"{path}/suspend",
                {A, C},
                body={"reason": "drill"},
                after=_lift(scope, target),
            )
        )
        before, after = _prime(scope, target)
        out.append(
            Case(
                f"{scope}.reinstate",
                "POST",
                f"{path}/reinstate",
                {A, C},
                body={"reason": "drill"},
                before=before,
                after=after,
            )
        )
    for status, app_id in APPS.items():
        out.append(Case(f"application.get[{status}]", "GET", f"/applications/{app_id}", EVERYONE, membership=True))
        out.append(
            Case(
                f"access[{status}]",
                "POST",
                f"/applications/{app_id}/access",
                {R},
                body={"fields": ["31", "34-0.0"]},
                membership=True,
                status=status,
            )
        )
    out.append(
        Case(
            "access[out-of-scope]",
            "POST",
            f"/applications/{APPS['approved']}/access",
            {R},
            body={"fields": ["31", "21022"]},
            membership=True,
            status="approved",
            out_of_scope=True,
        )
    )
    return out


def expected(case: Case, principal: str, phase: str) -> str:
    role = PRINCIPALS[principal]
    if role not in case.roles:
        return "DENY_ROLE"
    if role == R:
        if phase in ("platform", "institution") or (phase == "researcher" and principal == "mem"):
            return PHASE_REASON[phase]
        if case.membership and principal == "non":
            return "DENY_NOT_MEMBER"
        if case.status is not None:
            if case.out_of_scope:
                return "DENY_FIELD_OUT_OF_SCOPE"
            return STATUS_REASON[case.status]
    if case.other_owner and role != A:
        return "DENY_NOT_OWNER"
    return "ALLOW"


PHASES = {
    "none": None,
    "platform": ("platform", None),
    "institution": ("institution", NB),
    "researcher": ("researcher", MEM),
}
# in a suspension phase, staff are exercised on these (suspensions never bind custodians' own work)
STAFF_IN_PHASE = {
    "platform",
    "institutions",
    "suspensions",
    "application.get[approved]",
    "application.approve",
    "access[approved]",
    "researcher.attest",
    "platform.suspend",
}
# the fast suite's subset in suspension phases (the slow suite runs every researcher case in every phase)
QUICK_IN_PHASE = {
    "me",
    "applications",
    "application.get[approved]",
    "access[approved]",
    "access[draft]",
    "platform",
    "suspensions",
    "application.approve",
}


def test_authorisation_matrix(client, reg, clock):
    run_matrix(client, reg, clock, full=False)


@pytest.mark.slow
def test_authorisation_matrix_full(client, reg, clock):
    run_matrix(client, reg, clock, full=True)


def run_matrix(client, reg, clock, *, full: bool) -> None:
    w = World(reg, clock)
    results = []
    for phase, scope in PHASES.items():
        if scope is not None:
            old = dict(w.tokens)
            reg.suspend(OP, scope[0], scope[1], f"matrix phase {phase}")
            # tokens issued under the suspended scope stopped working at once
            for p in ("mem", "non") if phase != "researcher" else ("mem",):
                assert client.get("/me", headers={"Authorization": f"Bearer {old[p]}"}).status_code == 401
            w.mint()
        for case, principal in itertools.product(cases(), PRINCIPALS):
            role = PRINCIPALS[principal]
            if phase != "none" and (role != R and case.name not in STAFF_IN_PHASE):
                continue
            if phase != "none" and role == R and R not in case.roles:
                continue  # the role check comes first, whatever the phase (checked in phase none)
            if case.name == "platform.reinstate" and phase == "platform":
                continue
            if phase != "none" and not full and case.name not in QUICK_IN_PHASE:
                continue
            if not full and role != R and "[" in case.name and not case.name.endswith("[approved]"):
                continue  # staff: application status does not change their answer (the slow run checks it)
            if case.before:
                case.before(w)
            path = case.path(w, principal) if callable(case.path) else case.path
            body = case.body(w, principal) if callable(case.body) else case.body
            headers = {"Authorization": f"Bearer {w.tokens[principal]}"}
            r = client.request(case.method, path, json=body, headers=headers)
            if case.after:
                case.after(w, r)
            want = expected(case, principal, phase)
            results.append((phase, case.name, principal, want, r.status_code))
            where = (phase, case.name, principal, r.status_code, r.text[:300])
            if want == "ALLOW":
                assert r.status_code < 300 or (case.may_conflict and r.status_code == 409), where
            else:
                assert r.status_code == 403, where
                got = r.json()
                assert got["reason"] == want, where
                entry = next(reg.audit.ledger.entries(start=got["ledger_index"], stop=got["ledger_index"] + 1))
                assert (entry.kind, entry.decision, entry.reason, entry.actor) == ("decision", "deny", want, principal)
        if scope is not None:
            reg.reinstate(OP, scope[0], scope[1], f"end of phase {phase}")
            w.mint()
    reasons = {want for *_, want, _ in results}
    # every reason the matrix is meant to reach was reached
    assert reasons >= {
        "ALLOW",
        "DENY_ROLE",
        "DENY_NOT_MEMBER",
        "DENY_NOT_OWNER",
        "DENY_FIELD_OUT_OF_SCOPE",
        *STATUS_REASON.values(),
        *PHASE_REASON.values(),
    }
    assert len(results) > (400 if full else 250)
