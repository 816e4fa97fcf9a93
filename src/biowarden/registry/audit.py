"""The one place that writes the ledger for the registry: every state change and every decision.

``Audit.record`` appends inside the caller's transaction, so an entry exists exactly when the change it
describes was committed (and a refused change leaves only its deny decision behind).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from biowarden.ledger.events import LedgerEvent
from biowarden.policy import Decision, Principal, Resource
from biowarden.store.db import Database

# actions that reach participant data: their decisions name the actor, so that the monitor reads a denied
# one as a denied request of that researcher, application and institution (``monitor.activity``)
DATA_ACTIONS = frozenset({"application.access", "release.create", "release.download"})


def data_actor(principal: Principal, resource: Resource) -> dict[str, str]:
    """Who asked for data and under what: the researcher's e-mail (the account's name for an account that acts
    for no researcher), the application asked for, and its institution (the researcher's when the application
    is unknown). Names only: no secret reaches the ledger."""
    app = resource.application
    return {
        "researcher": principal.researcher or principal.name,
        "application": app.id if app is not None else resource.id,
        "institution": (app.institution if app is not None else principal.institution) or "",
    }


class Audit:
    def __init__(self, db: Database, keyring) -> None:
        from biowarden.store.ledger_store import LedgerStore

        self.keyring = keyring  # services that MAC their own state (the monitor's snapshot) derive keys from it
        self.ledger = LedgerStore(db, keyring)

    def record(
        self,
        session: Session,
        kind: str,
        actor: str,
        subject: str,
        payload: dict[str, Any] | None = None,
        *,
        decision: str | None = None,
        reason: str | None = None,
    ) -> int:
        """Append one event to the ledger in ``session``'s transaction; returns its index."""
        event = LedgerEvent(kind, actor, subject, dict(payload or {}), decision=decision, reason=reason)
        return self.ledger.append(session, event)

    def decision(
        self, session: Session, principal: Principal, action: str, resource: Resource, decision: Decision
    ) -> int:
        payload: dict[str, Any] = {"action": action, "roles": sorted(principal.roles)}
        if resource.fields:
            payload["fields"] = list(resource.fields)
        if principal.token_application:
            payload["token_application"] = principal.token_application
        if action in DATA_ACTIONS and principal.authenticated:
            payload.update(data_actor(principal, resource))
        return self.record(
            session,
            "decision",
            principal.name,
            f"{resource.kind}:{resource.id}" if resource.id else resource.kind,
            payload,
            decision="allow" if decision.allow else "deny",
            reason=decision.reason,
        )
