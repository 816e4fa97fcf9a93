"""Plain descriptions of a request for the decision point: who, what, on what, in which state.

The registry service builds these from the store inside the request's transaction; the decision function
sees nothing else (no ORM, no web), so it is easy to test exhaustively and cheap to call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Role(StrEnum):
    CUSTODIAN_ADMIN = "custodian_admin"
    ACCESS_COMMITTEE = "access_committee"
    OUTPUT_CHECKER = "output_checker"
    AUDITOR = "auditor"
    RESEARCHER = "researcher"


ALL_ROLES: frozenset[str] = frozenset(r.value for r in Role)
STAFF_ROLES: frozenset[str] = frozenset(
    {Role.CUSTODIAN_ADMIN, Role.ACCESS_COMMITTEE, Role.OUTPUT_CHECKER, Role.AUDITOR}
)


class Reason(StrEnum):
    """Stable reason codes: they are written to the ledger and returned to clients."""

    ALLOW = "ALLOW"
    DENY_UNAUTHENTICATED = "DENY_UNAUTHENTICATED"
    DENY_TOKEN_REVOKED = "DENY_TOKEN_REVOKED"
    DENY_UNKNOWN_ACTION = "DENY_UNKNOWN_ACTION"
    DENY_ROLE = "DENY_ROLE"
    DENY_TOKEN_SCOPE = "DENY_TOKEN_SCOPE"
    DENY_NOT_OWNER = "DENY_NOT_OWNER"
    DENY_NOT_MEMBER = "DENY_NOT_MEMBER"
    DENY_SUSPENDED_PLATFORM = "DENY_SUSPENDED_PLATFORM"
    DENY_SUSPENDED_INSTITUTION = "DENY_SUSPENDED_INSTITUTION"
    DENY_REVOKED_INSTITUTION = "DENY_REVOKED_INSTITUTION"
    DENY_SUSPENDED_APPLICATION = "DENY_SUSPENDED_APPLICATION"
    DENY_REVOKED_APPLICATION = "DENY_REVOKED_APPLICATION"
    DENY_SUSPENDED_RESEARCHER = "DENY_SUSPENDED_RESEARCHER"
    DENY_REVOKED_RESEARCHER = "DENY_REVOKED_RESEARCHER"
    DENY_ATTESTATION_EXPIRED = "DENY_ATTESTATION_EXPIRED"
    DENY_APPLICATION_NOT_APPROVED = "DENY_APPLICATION_NOT_APPROVED"
    DENY_APPLICATION_NOT_STARTED = "DENY_APPLICATION_NOT_STARTED"
    DENY_APPLICATION_EXPIRED = "DENY_APPLICATION_EXPIRED"
    DENY_FIELD_OUT_OF_SCOPE = "DENY_FIELD_OUT_OF_SCOPE"
    DENY_NO_FIELDS = "DENY_NO_FIELDS"
    DENY_BAD_CREDENTIALS = "DENY_BAD_CREDENTIALS"
    DENY_FOUR_EYES = "DENY_FOUR_EYES"
    DENY_COMMITTEE_MEMBER_REQUIRED = "DENY_COMMITTEE_MEMBER_REQUIRED"


@dataclass(frozen=True)
class Principal:
    """Who asks. ``researcher`` is the e-mail of the researcher the account acts for, if any."""

    name: str
    roles: frozenset[str] = frozenset()
    authenticated: bool = True
    researcher: str | None = None
    institution: str | None = None
    researcher_status: str | None = None
    attested_on: date | None = None
    token_application: str | None = None  # a token restricted to one application
    token_revoked: bool = False
    local: bool = False  # the home's local operator (the CLI), not a named account

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)


ANONYMOUS = Principal(name="anonymous", authenticated=False)


@dataclass(frozen=True)
class ApplicationInfo:
    id: str
    institution: str
    status: str  # draft | approved | suspended | revoked | expired
    starts_on: date
    expires_on: date
    members: frozenset[str] = frozenset()  # researcher e-mails, the PI included
    fields: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Resource:
    """What the request is about. ``kind`` is e.g. ``institution``, ``application``, ``token``."""

    kind: str
    id: str = ""
    institution: str | None = None
    application: ApplicationInfo | None = None
    owner: str | None = None  # the principal name that owns the resource (tokens)
    fields: tuple[str, ...] = ()  # fields the request wants (data access)
    revocation: bool = False  # lifting a revocation (a committee decision)
    voters: frozenset[str] = frozenset()  # committee members who already voted for this decision


@dataclass(frozen=True)
class SuspensionInfo:
    scope: str  # platform | institution | application | researcher
    target: str  # "" for the platform
    kind: str = "suspension"  # suspension | revocation


@dataclass(frozen=True)
class Context:
    now: datetime
    suspensions: tuple[SuspensionInfo, ...] = ()
    attestation_days: int = 365
    institution_status: dict[str, str] = field(default_factory=dict)
    committee_size: int = 0  # active access-committee accounts: four eyes bind from two


@dataclass(frozen=True)
class Decision:
    allow: bool
    reason: str

    def __bool__(self) -> bool:  # a Decision is truthy only when it allows
        return self.allow
