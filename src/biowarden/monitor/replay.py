"""Replaying ledger entries through the detectors: the monitor reads what the ledger recorded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from biowarden.monitor.activity import from_event
from biowarden.monitor.detectors import Alert, Monitor
from biowarden.monitor.incidents import Action, IncidentBook


class EntryLike(Protocol):
    kind: str
    at: Any
    decision: str | None

    @property
    def payload(self) -> dict[str, Any]: ...


@dataclass
class ReplayResult:
    entries: int = 0
    activities: int = 0
    alerts: list[Alert] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


def replay(entries: Iterable[EntryLike], monitor: Monitor, book: IncidentBook) -> ReplayResult:
    """Feed ledger entries, in order, through ``monitor.observe`` and the incident ladder."""
    out = ReplayResult()
    for e in entries:
        out.entries += 1
        act = from_event(e.kind, e.at, e.payload, e.decision)
        if act is None:
            continue
        out.activities += 1
        alerts = monitor.observe(act)
        if alerts:
            out.alerts += alerts
            out.actions += book.add(alerts, {act.researcher: monitor.risk(act.researcher, act.at)})
    return out
