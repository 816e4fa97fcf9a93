"""The one decision point: deny by default, a stable reason code for every answer.

Checks, in this order (the first failing check names the reason):
1. the principal is authenticated and its token is live;
2. the action is known and one of the principal's roles may perform it;
3. a token restricted to one application is used only for that application;
4. a researcher acting as such: no suspension or revocation covers the platform, their institution or
   themselves, their own status is active, and their annual attestation is current;
5. committee decisions (approval, lifting a revocation) need two distinct named committee members once
   the committee has two; ownership (tokens); membership (a researcher sees only their applications);
6. for "use" actions (reaching data): no suspension covers the platform, the application's institution or
   the application; the application is approved, started and not expired; every requested field is in
   the approved scope.
Staff actions (administration, review) are not blocked by suspensions, so custodians can always inspect
and reinstate. Nothing is cached: every call sees the state the caller passes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from biowarden.policy.model import (
    ApplicationInfo,
    Context,
    Decision,
    Principal,
    Reason,
    Resource,
    Role,
    SuspensionInfo,
)

A = Role.CUSTODIAN_ADMIN.value
C = Role.ACCESS_COMMITTEE.value
O = Role.OUTPUT_CHECKER.value  # noqa: E741
U = Role.AUDITOR.value
R = Role.RESEARCHER.value
STAFF_READ = frozenset({A, C, O, U})


@dataclass(frozen=True)
class ActionSpec:
    roles: frozenset[str]
    use: bool = False  # reaches data: every suspension covering the application applies
    membership: bool = False  # a researcher must be a member of the resource's application
    owner: bool = False  # non-admins may act only on resources they own


ACTIONS: dict[str, ActionSpec] = {
    "platform.read": ActionSpec(STAFF_READ | {R}),
    "self.read": ActionSpec(STAFF_READ | {R}),
    "institution.list": ActionSpec(STAFF_READ),
    "institution.read": ActionSpec(STAFF_READ),
    "institution.create": ActionSpec(frozenset({A})),
    "researcher.list": ActionSpec(STAFF_READ),
    "researcher.read": ActionSpec(STAFF_READ),
    "researcher.create": ActionSpec(frozenset({A})),
    "researcher.attest": ActionSpec(frozenset({A})),
    "application.list": ActionSpec(STAFF_READ | {R}),
    "application.read": ActionSpec(STAFF_READ | {R}, membership=True),
    "application.create": ActionSpec(frozenset({A})),
    "application.members.add": ActionSpec(frozenset({A})),
    "application.approve": ActionSpec(frozenset({C})),
    "application.access": ActionSpec(frozenset({R}), use=True, membership=True),
    "release.create": ActionSpec(frozenset({R}), use=True, membership=True),
    "release.download": ActionSpec(frozenset({R}), use=True, membership=True),  # making or using a link
    "monitor.read": ActionSpec(STAFF_READ),  # alerts, incidents, actors' risk history
    "monitor.review": ActionSpec(frozenset({A, C})),  # confirm an incident or call it a false positive
    "suspension.list": ActionSpec(STAFF_READ),
    "suspension.create": ActionSpec(frozenset({A, C})),
    "suspension.lift": ActionSpec(frozenset({A, C})),
    "account.list": ActionSpec(frozenset({A, U})),
    "account.create": ActionSpec(frozenset({A})),
    "account.disable": ActionSpec(frozenset({A})),
    "account.enable": ActionSpec(frozenset({A})),
    "account.password": ActionSpec(STAFF_READ | {R}, owner=True),  # one's own; an admin any account's
    "token.list": ActionSpec(STAFF_READ | {R}),
    "token.create": ActionSpec(STAFF_READ | {R}, owner=True),
    "token.revoke": ActionSpec(STAFF_READ | {R}, owner=True),
}

# committee decisions: once the committee has two members, two distinct named members must vote
FOUR_EYES = frozenset({"application.approve", "suspension.lift"})

_SUSPENSION_REASON = {
    ("platform", "suspension"): Reason.DENY_SUSPENDED_PLATFORM,
    ("platform", "revocation"): Reason.DENY_SUSPENDED_PLATFORM,
    ("institution", "suspension"): Reason.DENY_SUSPENDED_INSTITUTION,
    ("institution", "revocation"): Reason.DENY_REVOKED_INSTITUTION,
    ("application", "suspension"): Reason.DENY_SUSPENDED_APPLICATION,
    ("application", "revocation"): Reason.DENY_REVOKED_APPLICATION,
    ("researcher", "suspension"): Reason.DENY_SUSPENDED_RESEARCHER,
    ("researcher", "revocation"): Reason.DENY_REVOKED_RESEARCHER,
}


def _deny(reason: Reason) -> Decision:
    return Decision(False, reason.value)


def _covering(suspensions: tuple[SuspensionInfo, ...], targets: list[tuple[str, str | None]]) -> Reason | None:
    """The reason of the first suspension covering one of ``targets`` (checked in the given order)."""
    for scope, target in targets:
        if scope != "platform" and not target:
            continue
        hits = [s for s in suspensions if s.scope == scope and (scope == "platform" or s.target == target)]
        if hits:
            kind = "revocation" if any(h.kind == "revocation" for h in hits) else "suspension"
            return _SUSPENSION_REASON[(scope, kind)]
    return None


def in_scope(requested: str, approved: frozenset[str]) -> bool:
    """A column such as ``50-0.0`` is in scope when the column itself or its field id (``50``) is."""
    if requested in approved:
        return True
    field_id = requested.split("-", 1)[0]
    return field_id in approved or requested.split(".", 1)[0] in approved


def _application_state(app: ApplicationInfo, ctx: Context) -> Reason | None:
    if app.status == "revoked":
        return Reason.DENY_REVOKED_APPLICATION
    if app.status == "suspended":
        return Reason.DENY_SUSPENDED_APPLICATION
    if app.status == "expired" or ctx.now.date() >= app.expires_on:
        return Reason.DENY_APPLICATION_EXPIRED
    if app.status != "approved":
        return Reason.DENY_APPLICATION_NOT_APPROVED
    if ctx.now.date() < app.starts_on:
        return Reason.DENY_APPLICATION_NOT_STARTED
    return None


def decide(principal: Principal, action: str, resource: Resource, context: Context) -> Decision:
    """Allow or deny ``action`` on ``resource`` for ``principal``; deny unless every check passes."""
    if not principal.authenticated:
        return _deny(Reason.DENY_UNAUTHENTICATED)
    if principal.token_revoked:
        return _deny(Reason.DENY_TOKEN_REVOKED)
    spec = ACTIONS.get(action)
    if spec is None:
        return _deny(Reason.DENY_UNKNOWN_ACTION)
    if resource.revocation and action == "suspension.lift":
        roles = frozenset({C})  # lifting a revocation is a committee decision
    else:
        roles = spec.roles
    acting = principal.roles & roles
    if not acting:
        return _deny(Reason.DENY_ROLE)
    as_researcher = not (acting - {R})  # the only role that permits this action is researcher

    app = resource.application
    wrong_app = app is None or app.id != principal.token_application
    if principal.token_application is not None and wrong_app and (as_researcher or spec.use):
        return _deny(Reason.DENY_TOKEN_SCOPE)

    if as_researcher:
        if principal.researcher is None:
            return _deny(Reason.DENY_ROLE)
        hit = _covering(
            context.suspensions,
            [("platform", None), ("institution", principal.institution), ("researcher", principal.researcher)],
        )
        if hit is not None:
            return _deny(hit)
        inst_status = context.institution_status.get(principal.institution or "", "active")
        if inst_status == "revoked":
            return _deny(Reason.DENY_REVOKED_INSTITUTION)
        if inst_status == "suspended":
            return _deny(Reason.DENY_SUSPENDED_INSTITUTION)
        if principal.researcher_status == "revoked":
            return _deny(Reason.DENY_REVOKED_RESEARCHER)
        if principal.researcher_status != "active":
            return _deny(Reason.DENY_SUSPENDED_RESEARCHER)
        if principal.attested_on is None or context.now.date() - principal.attested_on > timedelta(
            days=context.attestation_days
        ):
            return _deny(Reason.DENY_ATTESTATION_EXPIRED)

    if action in FOUR_EYES and (action != "suspension.lift" or resource.revocation) and context.committee_size >= 2:
        if principal.local or C not in principal.roles:
            return _deny(Reason.DENY_COMMITTEE_MEMBER_REQUIRED)
        if principal.name in resource.voters:
            return _deny(Reason.DENY_FOUR_EYES)

    if spec.owner and Role.CUSTODIAN_ADMIN.value not in principal.roles and resource.owner != principal.name:
        return _deny(Reason.DENY_NOT_OWNER)

    if spec.membership and as_researcher and (app is None or principal.researcher not in app.members):
        return _deny(Reason.DENY_NOT_MEMBER)

    if spec.use:
        if app is None:
            return _deny(Reason.DENY_NOT_MEMBER)
        hit = _covering(
            context.suspensions,
            [("platform", None), ("institution", app.institution), ("application", app.id)],
        )
        if hit is not None:
            return _deny(hit)
        inst_status = context.institution_status.get(app.institution, "active")
        if inst_status == "revoked":
            return _deny(Reason.DENY_REVOKED_INSTITUTION)
        if inst_status == "suspended":
            return _deny(Reason.DENY_SUSPENDED_INSTITUTION)
        state = _application_state(app, context)
        if state is not None:
            return _deny(state)
        if not resource.fields:
            return _deny(Reason.DENY_NO_FIELDS)
        if any(not in_scope(f, app.fields) for f in resource.fields):
            return _deny(Reason.DENY_FIELD_OUT_OF_SCOPE)

    return Decision(True, Reason.ALLOW.value)
