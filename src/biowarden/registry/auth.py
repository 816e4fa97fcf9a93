"""Authentication: who is asking. Local accounts (argon2 passwords), API tokens, and an interface for more.

An ``Authenticator`` turns a credential into an ``Identity`` (which account, through which token); the
registry then expands the identity into a policy ``Principal`` inside each request's transaction, with
roles, researcher status, attestation and token state read fresh. An institution's OIDC single sign-on
slots in as one more ``Authenticator`` that maps a verified ID token's subject to an account.

API tokens are ``bw_`` + 256 random bits (URL-safe base64); only their SHA-256 is stored (a fast hash is
sound for a high-entropy secret), with an expiry, an optional application scope and a revocation mark.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from biowarden.store.registry_tables import AccountRow, ApiTokenRow

TOKEN_PREFIX = "bw_"
_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory defaults
# a fixed hash to verify against when the account does not exist, so timing does not reveal usernames
_DUMMY_HASH = _hasher.hash("not a real password, used for constant-time failures")


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``account_id`` is None only for the home's local operator."""

    name: str
    account_id: int | None = None
    token_id: int | None = None
    via: str = "token"  # token | password | local | oidc

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, via={self.via!r})"


LOCAL_OPERATOR = Identity(name="local-operator", via="local")


def configure_hashing(*, time_cost: int, memory_cost: int, parallelism: int = 1) -> None:
    """Change the argon2id cost for new hashes (existing hashes keep their own parameters).

    The defaults follow RFC 9106's low-memory profile; tests lower the cost so that they run fast."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def aware(dt: datetime | None) -> datetime | None:
    """Datetimes from SQLite come back naive; they were written in UTC."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)


class Authenticator(Protocol):
    """Turns a credential into an Identity, or None when it does not authenticate anyone."""

    def authenticate(self, session: Session, credential: str, now: datetime) -> Identity | None: ...


class TokenAuthenticator:
    """Bearer API tokens: live (not revoked, not expired) and belonging to an active account."""

    def authenticate(self, session: Session, credential: str, now: datetime) -> Identity | None:
        if not credential.startswith(TOKEN_PREFIX) or len(credential) > 200:
            return None
        row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash(credential)))
        if row is None or row.revoked_at is not None or aware(row.expires_at) <= now:
            return None
        account = session.get(AccountRow, row.account_id)
        if account is None or account.status != "active":
            return None
        return Identity(name=account.username, account_id=account.id, token_id=row.id, via="token")


class PasswordAuthenticator:
    """Username and password of a local account (argon2id)."""

    def authenticate_password(self, session: Session, username: str, password: str) -> Identity | None:
        account = session.scalar(select(AccountRow).where(AccountRow.username == username))
        ok = verify_password(account.password_hash if account else None, password)
        if not ok or account is None or account.status != "active":
            return None
        return Identity(name=account.username, account_id=account.id, via="password")
