"""Request and response models of the REST API (they make the OpenAPI document).

Requests are strict: unknown keys and wrong JSON types are 422 errors, never coerced.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


Text = Annotated[StrictStr, Field(max_length=4000)]
Short = Annotated[StrictStr, Field(max_length=254)]


class ErrorOut(BaseModel):
    """Every error: a stable code, a message naming the problem, and for policy denials the reason code
    and the index of the ledger entry that records the decision."""

    error: str = Field(examples=["forbidden"])
    message: str
    reason: str | None = Field(None, examples=["DENY_SUSPENDED_PLATFORM"])
    ledger_index: int | None = None
    detail: list[dict] | None = None


class HealthOut(BaseModel):
    status: str


class LoginIn(_In):
    username: Short
    password: Annotated[StrictStr, Field(max_length=1024)]
    days: StrictInt = 1


class TokenIn(_In):
    application: Short | None = None
    days: StrictInt = 30
    label: Annotated[StrictStr, Field(max_length=200)] = ""


class ReasonIn(_In):
    reason: Text


class PasswordIn(_In):
    new_password: Annotated[StrictStr, Field(min_length=12, max_length=1024)]
    current_password: Annotated[StrictStr, Field(max_length=1024)] | None = None


class SuspendIn(_In):
    reason: Text
    revoke: StrictBool = False


class InstitutionIn(_In):
    name: Short


class ResearcherIn(_In):
    email: Short
    institution: Short
    name: Annotated[StrictStr, Field(max_length=200)] = ""


class AttestIn(_In):
    on: date | None = None


class ApplicationIn(_In):
    id: Short
    institution: Short
    fields: list[Short]
    title: Annotated[StrictStr, Field(max_length=500)] = ""
    purpose: Text = ""
    pi: Short | None = None
    members: list[Short] = []
    starts_on: date | None = None
    expires_on: date | None = None


class MemberIn(_In):
    email: Short


class AccessIn(_In):
    fields: list[Short]


class AccountIn(_In):
    username: Short
    roles: list[Short]
    password: Annotated[StrictStr, Field(max_length=1024)] | None = None
    researcher: Short | None = None


class InstitutionOut(BaseModel):
    name: str
    status: str
    created_at: datetime
    created_by: str


class ResearcherOut(BaseModel):
    email: str
    name: str
    institution: str
    status: str
    attested_on: date | None
    attestation_due: date | None


class ApplicationOut(BaseModel):
    id: str
    title: str
    purpose: str
    institution: str
    pi: str | None
    members: list[str]
    fields: list[str]
    starts_on: date
    expires_on: date
    status: str = Field(description="draft, approved, suspended, revoked or expired")
    approvals: list[str]
    approved_at: datetime | None


class SuspensionOut(BaseModel):
    id: int
    scope: str
    target: str
    kind: str = Field(description="suspension or revocation")
    reason: str
    actor: str
    created_at: datetime
    active: bool
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None
    approvals: list[str]
    ledger_index: int | None


class AccountOut(BaseModel):
    username: str
    roles: list[str]
    researcher: str | None
    status: str
    created_at: datetime


class TokenOut(BaseModel):
    id: int
    prefix: str
    username: str
    application: str | None
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None


class TokenIssuedOut(TokenOut):
    token: str = Field(description="The bearer token. Shown once; only its hash is stored.")


class AccessOut(BaseModel):
    allow: bool
    reason: str
    action: str
    application: str
    fields: list[str]
    ledger_index: int


class PlatformOut(BaseModel):
    suspended: bool
    suspensions: list[SuspensionOut]
    institutions: int
    researchers: int
    applications: int


class MeOut(BaseModel):
    name: str
    roles: list[str]
    researcher: str | None
    institution: str | None
    attested_on: date | None
    token_application: str | None
