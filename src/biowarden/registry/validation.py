"""Input checks shared by the Python API, the CLI and the REST API: clear messages, nothing written.

Identifiers (institution names, e-mails, application ids, field ids, usernames) follow strict patterns
that exclude quoting and comment characters; free text (titles, purposes, reasons) is any printable text
of bounded length, stored verbatim through bound parameters.
"""

from __future__ import annotations

import re

from biowarden.registry.errors import Invalid

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,'&()\-]{0,199}")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(\.[A-Za-z0-9\-]{1,63})+")
APPLICATION_RE = re.compile(r"[A-Z][A-Z0-9]{0,7}-[0-9]{1,10}")
FIELD_RE = re.compile(r"[A-Za-z0-9_]{1,32}(-[0-9]{1,4}(\.[0-9]{1,4})?)?")
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,253}")
SCOPES = ("platform", "institution", "application", "researcher")
MAX_TEXT = 4000


def name(value: object, what: str = "institution name") -> str:
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string")
    v = value.strip()
    if "--" in v or not NAME_RE.fullmatch(v):
        raise Invalid(
            f"{what} {value!r} is not valid: letters, digits, spaces and . , ' & ( ) - only "
            "(at most 200 characters, no '--')"
        )
    return v


def email(value: object) -> str:
    if not isinstance(value, str) or not EMAIL_RE.fullmatch(value.strip()) or len(value) > 254:
        raise Invalid(f"e-mail {value!r} is not a valid address")
    return value.strip().lower()


def application_id(value: object) -> str:
    if not isinstance(value, str) or not APPLICATION_RE.fullmatch(value.strip()):
        raise Invalid(f"application id {value!r} is not valid (expected e.g. A-0017)")
    return value.strip()


def fields(values: object) -> list[str]:
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    if not isinstance(values, list | tuple) or not values:
        raise Invalid("fields must be a non-empty list of field ids (e.g. 31,34,50-0.0)")
    out: list[str] = []
    for v in values:
        if not isinstance(v, str) or not FIELD_RE.fullmatch(v.strip()):
            raise Invalid(f"field {v!r} is not a valid field id or column name (e.g. 50 or 50-0.0)")
        if v.strip() not in out:
            out.append(v.strip())
    if len(out) > 5000:
        raise Invalid("at most 5000 fields per application")
    return out


def username(value: object) -> str:
    if not isinstance(value, str) or "--" in value or not USERNAME_RE.fullmatch(value.strip()):
        raise Invalid(f"username {value!r} is not valid: letters, digits and . _ @ + - only")
    return value.strip()


def text(value: object, what: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string")
    v = value.strip()
    if required and not v:
        raise Invalid(f"{what} must not be empty")
    if len(v) > limit:
        raise Invalid(f"{what} is longer than {limit} characters")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in v) or "\x7f" in v:
        raise Invalid(f"{what} contains control characters")
    return v


def scope(value: object) -> str:
    if value not in SCOPES:
        raise Invalid(f"scope {value!r} is not one of {', '.join(SCOPES)}")
    return str(value)


def password(value: object) -> str:
    if not isinstance(value, str) or len(value) < 12 or len(value) > 1024:
        raise Invalid("password must be a string of 12 to 1024 characters")
    return value
