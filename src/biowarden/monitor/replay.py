"""Replaying ledger entries through the detectors: the monitor reads what the ledger recorded."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from biowarden.monitor.activity import Activity, from_entries, from_event
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
    """Feed ledger entries, in order, through ``monitor.observe`` and the incident ladder. Stored entries
    (with ``payload_json``) are decoded in batches, only as far as the detectors read them."""
    out = ReplayResult()
    for act in _activities(entries, out):
        if act is None:
            continue
        out.activities += 1
        alerts = monitor.observe(act)
        if alerts:
            out.alerts += alerts
            out.actions += book.add(alerts, {act.researcher: monitor.risk(act.researcher, act.at)})
    return out


def _activities(entries: Iterable[EntryLike], out: ReplayResult) -> Iterator[Activity | None]:
    def counted() -> Iterator[EntryLike]:
        for e in entries:
            out.entries += 1
            yield e

    stored: list[EntryLike] = []
    for e in counted():
        if hasattr(e, "payload_json"):
            stored.append(e)
            if len(stored) >= 2000:
                yield from from_entries(stored)
                stored = []
            continue
        if stored:
            yield from from_entries(stored)
            stored = []
        yield from_event(e.kind, e.at, e.payload, e.decision)
    if stored:
        yield from from_entries(stored)
