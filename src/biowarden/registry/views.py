"""What the registry returns: plain dataclasses with stable dictionary forms (the CLI's --json, the API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _View:
    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class InstitutionView(_View):
    name: str
    status: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ResearcherView(_View):
    email: str
    name: str
    institution: str
    status: str
    attested_on: date | None
    attestation_due: date | None


@dataclass(frozen=True)
class ApplicationView(_View):
    id: str
    title: str
    purpose: str
    institution: str
    pi: str | None
    members: list[str]
    fields: list[str]
    starts_on: date
    expires_on: date
    status: str
    approvals: list[str] = field(default_factory=list)
    approved_at: datetime | None = None


@dataclass(frozen=True)
class SuspensionView(_View):
    id: int
    scope: str
    target: str
    kind: str
    reason: str
    actor: str
    created_at: datetime
    active: bool
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None
    approvals: list[str] = field(default_factory=list)
    ledger_index: int | None = None


@dataclass(frozen=True)
class AccountView(_View):
    username: str
    roles: list[str]
    researcher: str | None
    status: str
    created_at: datetime


@dataclass(frozen=True)
class TokenView(_View):
    id: int
    prefix: str
    username: str
    application: str | None
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``token`` is shown once and never stored; ``repr`` hides it."""

    token: str = field(repr=False)
    info: TokenView

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, **self.info.to_dict()}


@dataclass(frozen=True)
class AccessDecision(_View):
    allow: bool
    reason: str
    action: str
    application: str
    fields: list[str]
    ledger_index: int


@dataclass(frozen=True)
class PlatformView(_View):
    suspended: bool
    suspensions: list[dict]
    institutions: int
    researchers: int
    applications: int
