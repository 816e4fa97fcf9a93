"""The registry's errors. Each maps to one clear client error; none carries secrets."""

from __future__ import annotations


class RegistryError(ValueError):
    """Base class: the message names the problem."""

    status = 400
    code = "bad_request"


class Invalid(RegistryError):
    status = 422
    code = "invalid"


class NotFound(RegistryError):
    """An unknown id. ``kind`` and ``ident`` say what was looked for, so that the policy can decide on
    the request before anyone is told that the id does not exist."""

    status = 404
    code = "not_found"

    def __init__(self, message: str = "not found", *, kind: str | None = None, ident: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.ident = ident


class Conflict(RegistryError):
    status = 409
    code = "conflict"


class Unauthenticated(RegistryError):
    status = 401
    code = "unauthenticated"

    def __init__(
        self,
        message: str = "authentication required",
        reason: str = "DENY_UNAUTHENTICATED",
        ledger_index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.ledger_index = ledger_index


class Denied(RegistryError):
    """The policy denied the request; the decision (with ``reason``) is already in the ledger."""

    status = 403
    code = "forbidden"

    def __init__(self, action: str, reason: str, ledger_index: int | None) -> None:
        super().__init__(f"{action} denied: {reason}")
        self.action = action
        self.reason = reason
        self.ledger_index = ledger_index
