"""The decision point on its own: deny by default, stable reasons, and (property test) every allow
satisfies every rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from biowarden.policy import (
    ACTIONS,
    ANONYMOUS,
    ApplicationInfo,
    Context,
    Principal,
    Reason,
    Resource,
    SuspensionInfo,
    decide,
    in_scope,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
APP = ApplicationInfo(
    "A-0017",
    "Northbridge",
    "approved",
    date(2026, 1, 1),
    date(2027, 1, 1),
    frozenset({"ann@nb.org"}),
    frozenset({"31", "50-0.0", "41270"}),
)
ANN = Principal(
    "ann",
    frozenset({"researcher"}),
    researcher="ann@nb.org",
    institution="Northbridge",
    researcher_status="active",
    attested_on=date(2026, 3, 1),
)
ADMIN = Principal("cara", frozenset({"custodian_admin"}))


def access(fields=("31",), app=APP):
    return Resource("application", app.id, application=app, fields=tuple(fields))


def test_allow_path_and_each_denial():
    ctx = Context(now=NOW)
    assert decide(ANN, "application.access", access(), ctx).reason == "ALLOW"
    assert decide(ANONYMOUS, "application.access", access(), ctx).reason == "DENY_UNAUTHENTICATED"
    assert decide(ANN, "no.such.action", access(), ctx).reason == "DENY_UNKNOWN_ACTION"
    assert decide(ADMIN, "application.access", access(), ctx).reason == "DENY_ROLE"
    assert decide(Principal("x", frozenset()), "platform.read", Resource("platform"), ctx).reason == "DENY_ROLE"
    other = Principal(
        "bob",
        ANN.roles,
        researcher="bob@nb.org",
        institution="Northbridge",
        researcher_status="active",
        attested_on=date(2026, 3, 1),
    )
    assert decide(other, "application.access", access(), ctx).reason == "DENY_NOT_MEMBER"
    assert decide(ANN, "application.access", access(["21022"]), ctx).reason == "DENY_FIELD_OUT_OF_SCOPE"
    assert decide(ANN, "application.access", access([]), ctx).reason == "DENY_NO_FIELDS"
    stale = Principal(**{**ANN.__dict__, "attested_on": date(2025, 5, 1)})
    assert decide(stale, "application.access", access(), ctx).reason == "DENY_ATTESTATION_EXPIRED"
    for status, reason in [
        ("draft", "DENY_APPLICATION_NOT_APPROVED"),
        ("suspended", "DENY_SUSPENDED_APPLICATION"),
        ("revoked", "DENY_REVOKED_APPLICATION"),
        ("expired", "DENY_APPLICATION_EXPIRED"),
    ]:
        app = ApplicationInfo(**{**APP.__dict__, "status": status})
        assert decide(ANN, "application.access", access(app=app), ctx).reason == reason
    late = ApplicationInfo(**{**APP.__dict__, "expires_on": date(2026, 6, 1)})
    assert decide(ANN, "application.access", access(app=late), ctx).reason == "DENY_APPLICATION_EXPIRED"
    early = ApplicationInfo(**{**APP.__dict__, "starts_on": date(2026, 7, 1)})
    assert decide(ANN, "application.access", access(app=early), ctx).reason == "DENY_APPLICATION_NOT_STARTED"
    scoped = Principal(**{**ANN.__dict__, "token_application": "A-0001"})
    assert decide(scoped, "application.access", access(), ctx).reason == "DENY_TOKEN_SCOPE"
    revoked = Principal(**{**ANN.__dict__, "token_revoked": True})
    assert decide(revoked, "application.access", access(), ctx).reason == "DENY_TOKEN_REVOKED"


def test_suspensions_in_order_and_revocations_named():
    s = [
        SuspensionInfo("researcher", "ann@nb.org"),
        SuspensionInfo("application", "A-0017"),
        SuspensionInfo("institution", "Northbridge", "revocation"),
        SuspensionInfo("platform", ""),
    ]
    steps = [
        (s, "DENY_SUSPENDED_PLATFORM"),
        (s[:3], "DENY_REVOKED_INSTITUTION"),
        (s[:2], "DENY_SUSPENDED_RESEARCHER"),
        (s[1:2], "DENY_SUSPENDED_APPLICATION"),
    ]
    for active, want in steps:
        got = decide(ANN, "application.access", access(), Context(now=NOW, suspensions=tuple(active))).reason
        assert got == want, (active, got)
    # custodians keep working under a platform suspension
    ctx = Context(now=NOW, suspensions=(SuspensionInfo("platform", ""),))
    assert decide(ADMIN, "suspension.lift", Resource("suspension", "platform"), ctx).allow
    # lifting a revocation is the committee's decision, with four eyes once it has two members
    rev = Resource("suspension", "institution:Northbridge", revocation=True)
    assert decide(ADMIN, "suspension.lift", rev, Context(now=NOW)).reason == "DENY_ROLE"
    dee = Principal("dee", frozenset({"access_committee"}))
    assert decide(dee, "suspension.lift", rev, Context(now=NOW, committee_size=2)).allow
    voted = Resource(**{**rev.__dict__, "voters": frozenset({"dee"})})
    assert decide(dee, "suspension.lift", voted, Context(now=NOW, committee_size=2)).reason == "DENY_FOUR_EYES"
    op = Principal("local-operator", frozenset({"access_committee", "custodian_admin"}), local=True)
    assert decide(op, "application.approve", Resource("application", "A-1"), Context(now=NOW)).allow
    got = decide(op, "application.approve", Resource("application", "A-1"), Context(now=NOW, committee_size=2))
    assert got.reason == "DENY_COMMITTEE_MEMBER_REQUIRED"


def test_field_scope_matching():
    scope = frozenset({"31", "50-0.0", "41270"})
    assert in_scope("31", scope) and in_scope("31-0.0", scope) and in_scope("50-0.0", scope)
    assert in_scope("41270-0", scope) and not in_scope("50-1.0", scope) and not in_scope("310", scope)


ROLES = ["custodian_admin", "access_committee", "output_checker", "auditor", "researcher"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    action=st.sampled_from([*sorted(ACTIONS), "bogus"]),
    roles=st.frozensets(st.sampled_from(ROLES), max_size=2),
    authenticated=st.booleans(),
    member=st.booleans(),
    rstatus=st.sampled_from(["active", "suspended", "revoked"]),
    attested_days=st.integers(0, 800),
    status=st.sampled_from(["draft", "approved", "suspended", "revoked", "expired"]),
    expires_in=st.integers(-30, 30),
    fields=st.lists(st.sampled_from(["31", "31-0.0", "50-0.0", "21022", "41270-0"]), max_size=3),
    susp=st.lists(
        st.sampled_from(
            [
                ("platform", ""),
                ("institution", "Northbridge"),
                ("institution", "Eastgate"),
                ("application", "A-0017"),
                ("researcher", "ann@nb.org"),
            ]
        ),
        max_size=2,
    ),
    inst_status=st.sampled_from(["active", "suspended", "revoked"]),
)
def test_every_allow_satisfies_every_rule(
    action, roles, authenticated, member, rstatus, attested_days, status, expires_in, fields, susp, inst_status
):
    from datetime import timedelta

    p = Principal(
        "ann",
        roles,
        authenticated=authenticated,
        researcher="ann@nb.org",
        institution="Northbridge",
        researcher_status=rstatus,
        attested_on=NOW.date() - timedelta(days=attested_days),
    )
    app = ApplicationInfo(
        "A-0017",
        "Northbridge",
        status,
        date(2026, 1, 1),
        NOW.date() + timedelta(days=expires_in),
        frozenset({"ann@nb.org"} if member else set()),
        frozenset({"31", "50-0.0"}),
    )
    res = Resource("application", "A-0017", application=app, fields=tuple(fields), owner="ann")
    ctx = Context(
        now=NOW, suspensions=tuple(SuspensionInfo(*s) for s in susp), institution_status={"Northbridge": inst_status}
    )
    d = decide(p, action, res, ctx)
    assert d.reason in {r.value for r in Reason}
    assert d.allow == (d.reason == "ALLOW")
    if not d.allow:
        return
    spec = ACTIONS[action]
    assert authenticated and roles & spec.roles
    if not (roles & spec.roles) - {"researcher"}:  # acting as a researcher
        assert rstatus == "active" and attested_days <= 365 and inst_status == "active"
        assert not [s for s in susp if s[0] == "platform" or s[1] in ("Northbridge", "ann@nb.org")]
        if spec.membership:
            assert member
    if spec.use:
        assert status == "approved" and expires_in > 0 and fields
        assert all(f.split("-")[0] in ("31", "50") and f != "50-1.0" for f in fields)
        assert not [s for s in susp if s[0] == "platform" or s[1] in ("Northbridge", "A-0017")]
