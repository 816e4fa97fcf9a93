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


class Audit:
    def __init__(self, db: Database, keyring) -> None:
        from biowarden.store.ledger_store import LedgerStore

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
        return self.record(
            session,
            "decision",
            principal.name,
            f"{resource.kind}:{resource.id}" if resource.id else resource.kind,
            payload,
            decision="allow" if decision.allow else "deny",
            reason=decision.reason,
        )
