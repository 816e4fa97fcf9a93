"""Carrying out the monitor's actions: incidents go to the ledger, suspensions through the registry.

The detectors and the ladder decide; this service is the one place that acts on their decisions, so a
suspension the monitor asks for is the same suspension a custodian would issue (policy-checked, ledgered,
effective on the very next request).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from biowarden.ledger.events import LedgerEvent
from biowarden.monitor.incidents import DISABLE, REINSTATE, SUSPEND, Action, IncidentBook
from biowarden.registry import LOCAL_OPERATOR
from biowarden.registry.service import Registry
from biowarden.store.ledger_store import LedgerStore

MONITOR_ACTOR = "system:monitor"


@dataclass
class Enforcement:
    ledgered: list[int] = field(default_factory=list)  # ledger indices of incident entries
    suspended: list[tuple[str, str]] = field(default_factory=list)
    reinstated: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (scope, target, why)


def enforce(registry: Registry, ledger: LedgerStore, book: IncidentBook, actions: list[Action]) -> Enforcement:
    out = Enforcement()
    for action in actions:
        inc = next(i for i in book.incidents if i.id == action.incident)
        payload = {
            "incident": inc.id, "action": action.kind, "status": inc.status,
            "opened_at": inc.opened_at.isoformat(), "alerts": [
                {"at": a.at.isoformat(), "detector": a.detector, "severity": a.severity, "detail": a.detail}
                for a in inc.alerts],
        }
        with registry.db.session() as s:
            out.ledgered.append(ledger.append(s, LedgerEvent("monitor.incident", MONITOR_ACTOR,
                                                              f"{action.scope}:{action.target}", payload)))
        if action.kind in (SUSPEND, DISABLE):
            try:
                registry.suspend(LOCAL_OPERATOR, action.scope, action.target,
                                 f"{MONITOR_ACTOR} {action.kind}: {action.reason}"[:1000],
                                 revoke=action.kind == DISABLE and action.scope == "institution")
                out.suspended.append((action.scope, action.target))
            except Exception as exc:  # unknown target or already suspended: say so, act on the rest
                out.skipped.append((action.scope, action.target, f"{exc.__class__.__name__}: {exc}"))
        elif action.kind == REINSTATE:
            try:
                registry.reinstate(LOCAL_OPERATOR, action.scope, action.target, action.reason)
                out.reinstated.append((action.scope, action.target))
            except Exception as exc:
                out.skipped.append((action.scope, action.target, f"{exc.__class__.__name__}: {exc}"))
    return out
