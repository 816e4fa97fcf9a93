"""Replaying ledger entries through the detectors: the monitor reads what the ledger recorded."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from biowarden.monitor.activity import (
    DENIED_KIND,
    DENIED_KINDS,
    DOWNLOAD_KIND,
    EXPORT_KIND,
    IMPOSED_REASONS,
    LINK_MISUSE_REASONS,
    Activity,
    ExportFields,
    export_activity,
    export_fields,
    from_entries,
    from_event,
)
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
    settled: int = 0  # activities ``replay_batch`` settled on its fast path (no alert was possible)
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
        yield from_event(e.kind, e.at, e.payload, e.decision, reason=getattr(e, "reason", None))
    if stored:
        yield from from_entries(stored)


def _check(
    act: Activity, monitor: Monitor, book: IncidentBook | None, out: ReplayResult, precheck: bool = True
) -> None:
    """One activity as an export is checked: ``precheck`` (exports), ``observe`` unless it blocked, the ladder.
    Without ``precheck``: ``observe`` only (``replay``); without a book, alerts are collected, not filed."""
    out.activities += 1
    found = monitor.precheck(act) if precheck and act.kind == "export" else []
    if not any(a.block for a in found):
        found += monitor.observe(act)
    if found:
        out.alerts += found
        if book is not None:
            out.actions += book.add(found, {act.researcher: monitor.risk(act.researcher, act.at)})


def replay_checked(entries: Iterable[Any], monitor: Monitor, book: IncidentBook) -> ReplayResult:
    """Stored ledger entries (``kind``, ``at``, ``decision``, ``payload_json``), in order, each checked as it
    happens: ``precheck`` before an export, ``observe`` unless the precheck blocked it, then the ladder."""
    out = ReplayResult()
    for act in _activities(entries, out):
        if act is not None:
            _check(act, monitor, book, out)
    return out


_DENIED_TEXT = re.compile(r'\{"application":"([^"\\]*)","institution":"([^"\\]*)","researcher":"([^"\\]+)"\}')


def replay_batch(
    entries: Iterable[Any],
    monitor: Monitor,
    book: IncidentBook | None,
    batch: int = 2000,
    *,
    precheck: bool = True,
) -> ReplayResult:
    """``replay_checked`` (or, without ``precheck``, ``replay``) of stored entries with the same results
    (alerts, actions, incidents, risk and the monitor's state), faster.

    Per chunk of ``batch`` entries:

    - an export in the layout the platform writes is read by ``export_fields`` into a list of pending
      exports; ``Monitor.settle_exports`` then settles the pending list in one loop for as long as no check
      can fire, and the first export it cannot settle goes through the activity and ``precheck``/``observe``
      exactly as in the sequential replay, after which settling resumes with the next one;
    - a denied request is settled at once by ``Monitor.quiet_denied`` when it raises nothing: it touches only
      the researcher's denied requests, which no export reads, so settling it ahead of the pending exports
      gives the same state;
    - anything else (a denied request that raises an alert, another layout) first settles the pending exports
      before it, then goes through the activity as in the sequential replay; entries the monitor does not read
      are skipped.

    Without a book, alerts are collected and nothing is filed."""
    out = ReplayResult()
    quiet_denied, settle = monitor.quiet_denied, monitor.settle_exports
    denied_match = _DENIED_TEXT.fullmatch
    pending: list[ExportFields] = []

    def flush() -> None:
        i, n = 0, len(pending)
        while i < n:
            stop, decoded = settle(pending, i)
            out.activities += stop - i
            out.settled += stop - i
            if stop == n:
                break
            act = export_activity(pending[stop], decoded)
            _check(act, monitor, book, out, precheck)
            i = stop + 1
        pending.clear()

    it = iter(entries)
    while True:
        chunk = list(islice(it, batch))
        if not chunk:
            return out
        out.entries += len(chunk)
        for e in chunk:
            kind = e.kind
            if kind == EXPORT_KIND:
                fields = export_fields(e.at, e.payload_json)
                if fields is not None:
                    pending.append(fields)
                    continue
            elif kind in DENIED_KINDS:
                if e.decision != "deny":
                    continue  # an allowed decision is no signal
                if kind == DOWNLOAD_KIND and getattr(e, "reason", None) not in LINK_MISUSE_REASONS:
                    continue  # a download refused by the policy (read as its decision) or for a platform fault
                if kind == DENIED_KIND and not (getattr(e, "reason", None) or "").startswith(IMPOSED_REASONS):
                    m = denied_match(e.payload_json)
                    if m is not None and quiet_denied(e.at, m.group(3)):
                        out.activities += 1
                        out.settled += 1
                        continue
            else:
                continue  # not an event the monitor reads
            flush()
            for act in from_entries([e]):
                if act is not None:
                    _check(act, monitor, book, out, precheck)
        flush()
