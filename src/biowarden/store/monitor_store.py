"""The monitor's incident book over the control-plane store: alerts, incidents, reviews, risk history and
holds survive restarts.

The monitor core (``biowarden.monitor``) imports no ORM: a tracking ``IncidentBook`` hands its changes out
as plain dataclasses (``drain()``); ``MonitorStore.save`` writes them inside the caller's transaction, and
``MonitorStore.load_book`` rebuilds the book (same incident ids, same ladder counts, same holds)::

    store = MonitorStore(db)
    with db.session() as s:
        book = store.load_book(s)
    actions = book.add(alerts, risk)
    with db.session() as s:
        store.save(s, book.drain())
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from biowarden.monitor.detectors import Alert
from biowarden.monitor.incidents import Changes, Incident, IncidentBook, Ladder, Notifier, Review
from biowarden.store.monitor_tables import (
    MonitorAlertRow,
    MonitorHoldRow,
    MonitorIncidentRow,
    MonitorReviewRow,
    MonitorRiskRow,
    MonitorSnapshotRow,
    MonitorStateRow,
)

CURSOR = "ledger_cursor"
SCAN_LEASE = "scan_lease"


def _aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; they were written in UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _alert(row: MonitorAlertRow) -> Alert:
    return Alert(
        _aware(row.at),
        row.detector,
        row.severity,
        row.scope,
        row.target,
        row.detail,
        block=bool(row.block),
        related=tuple((str(a), str(b)) for a, b in (row.related or [])),
    )


def _review(row: MonitorReviewRow) -> Review:
    widen = (row.widen_scope, row.widen_target) if row.widen_scope and row.widen_target else None
    return Review(row.incident_id, row.outcome, row.reviewer, _aware(row.at), row.note or "", widen)


def alert_dict(row: MonitorAlertRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "incident": row.incident_id,
        "at": _aware(row.at).isoformat(),
        "detector": row.detector,
        "severity": row.severity,
        "scope": row.scope,
        "target": row.target,
        "detail": row.detail,
        "block": bool(row.block),
        "related": [list(p) for p in (row.related or [])],
    }


def incident_dict(row: MonitorIncidentRow, alerts: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "scope": row.scope,
        "target": row.target,
        "opened_at": _aware(row.opened_at).isoformat(),
        "last_at": _aware(row.last_at).isoformat(),
        "status": row.status,
        "action": row.action,
    }
    if alerts is not None:
        out["alerts"] = alerts
    return out


def review_dict(row: MonitorReviewRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "incident": row.incident_id,
        "outcome": row.outcome,
        "reviewer": row.reviewer,
        "at": _aware(row.at).isoformat(),
        "note": row.note or "",
        "widen_to": [row.widen_scope, row.widen_target] if row.widen_scope else None,
        "ledger_index": row.ledger_index,
    }


class MonitorStore:
    """Reads and writes the monitor's tables inside the caller's session (one transaction per unit of work)."""

    # ------------------------------------------------------------------ the book

    def save(self, s: Session, changes: Changes) -> None:
        """Write a tracking book's drained changes. Incidents are upserted (a status moves only forward from
        ``open``, so a stale book never undoes a review made elsewhere); alerts, risk points and reviews are
        appended; the holds are replaced when they changed."""
        for inc in sorted(changes.incidents.values(), key=lambda i: i.id):
            row = s.get(MonitorIncidentRow, inc.id)
            if row is None:
                s.add(
                    MonitorIncidentRow(
                        id=inc.id,
                        scope=inc.scope,
                        target=inc.target,
                        opened_at=inc.opened_at,
                        last_at=inc.last_at,
                        status=inc.status,
                        action=inc.action,
                    )
                )
            else:
                row.last_at, row.action = inc.last_at, inc.action
                if inc.status != "open":
                    row.status = inc.status
        s.flush()
        if changes.alerts:
            s.execute(
                insert(MonitorAlertRow),
                [
                    {
                        "incident_id": iid,
                        "at": a.at,
                        "detector": a.detector,
                        "severity": a.severity,
                        "scope": a.scope,
                        "target": a.target,
                        "detail": a.detail,
                        "block": a.block,
                        "related": [list(p) for p in a.related],
                    }
                    for iid, a in changes.alerts
                ],
            )
        if changes.risk:
            s.execute(
                insert(MonitorRiskRow),
                [
                    {
                        "scope": p.scope,
                        "target": p.target,
                        "at": p.at,
                        "risk": p.risk,
                        "detector": p.detector,
                        "incident_id": p.incident,
                    }
                    for p in changes.risk
                ],
            )
        for r in changes.reviews:
            s.add(
                MonitorReviewRow(
                    incident_id=r.incident,
                    outcome=r.outcome,
                    reviewer=r.reviewer,
                    at=r.at,
                    note=r.note,
                    widen_scope=r.widen_to[0] if r.widen_to else None,
                    widen_target=r.widen_to[1] if r.widen_to else None,
                )
            )
        if changes.suspended is not None:
            s.execute(delete(MonitorHoldRow))
            if changes.suspended:
                s.execute(insert(MonitorHoldRow), [{"scope": a, "target": b} for a, b in sorted(changes.suspended)])
        s.flush()

    def load_book(
        self,
        s: Session,
        ladder: Ladder | None = None,
        notifier: Notifier | None = None,
        risk_suspend: float = 3.0,
    ) -> IncidentBook:
        """The incident book as it was last saved (tracking, so that its next changes can be saved)."""
        alerts: dict[int, list[Alert]] = defaultdict(list)
        for row in s.scalars(select(MonitorAlertRow).order_by(MonitorAlertRow.id)):
            alerts[row.incident_id].append(_alert(row))
        incidents = [
            Incident(
                row.id,
                row.scope,
                row.target,
                _aware(row.opened_at),
                _aware(row.last_at),
                alerts.get(row.id, []),
                row.status,
                row.action,
            )
            for row in s.scalars(select(MonitorIncidentRow).order_by(MonitorIncidentRow.id))
        ]
        reviews = [_review(r) for r in s.scalars(select(MonitorReviewRow).order_by(MonitorReviewRow.id))]
        holds = {(r.scope, r.target) for r in s.scalars(select(MonitorHoldRow))}
        return IncidentBook.restore(incidents, holds, reviews, ladder, notifier, risk_suspend, track=True)

    def set_review_ledger_index(self, s: Session, incident_id: int, index: int) -> None:
        last = s.scalar(select(func.max(MonitorReviewRow.id)).where(MonitorReviewRow.incident_id == incident_id))
        if last is not None:
            s.execute(update(MonitorReviewRow).where(MonitorReviewRow.id == last).values(ledger_index=index))

    # ------------------------------------------------------------------ reading

    def incident_row(self, s: Session, incident_id: int) -> MonitorIncidentRow | None:
        return s.get(MonitorIncidentRow, incident_id)

    def alerts(
        self,
        s: Session,
        *,
        scope: str | None = None,
        target: str | None = None,
        severity: str | None = None,
        since: datetime | None = None,
        incident: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first."""
        q = select(MonitorAlertRow)
        if scope:
            q = q.where(MonitorAlertRow.scope == scope)
        if target:
            q = q.where(MonitorAlertRow.target == target)
        if severity:
            q = q.where(MonitorAlertRow.severity == severity)
        if since is not None:
            q = q.where(MonitorAlertRow.at >= since)
        if incident is not None:
            q = q.where(MonitorAlertRow.incident_id == incident)
        q = q.order_by(MonitorAlertRow.at.desc(), MonitorAlertRow.id.desc()).limit(limit)
        return [alert_dict(r) for r in s.scalars(q)]

    def incidents(
        self,
        s: Session,
        *,
        status: str | None = None,
        scope: str | None = None,
        target: str | None = None,
        acted: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Incidents, newest first, with their alert counts; ``acted`` keeps those the ladder acted on."""
        counts = (
            select(MonitorAlertRow.incident_id, func.count().label("n"))
            .group_by(MonitorAlertRow.incident_id)
            .subquery()
        )
        q = select(MonitorIncidentRow, counts.c.n).join(counts, counts.c.incident_id == MonitorIncidentRow.id)
        if status:
            q = q.where(MonitorIncidentRow.status == status)
        if scope:
            q = q.where(MonitorIncidentRow.scope == scope)
        if target:
            q = q.where(MonitorIncidentRow.target == target)
        if acted:
            q = q.where(MonitorIncidentRow.action != "")
        q = q.order_by(MonitorIncidentRow.opened_at.desc(), MonitorIncidentRow.id.desc()).limit(limit)
        return [incident_dict(row, int(n)) for row, n in s.execute(q)]

    def incident(self, s: Session, incident_id: int) -> dict[str, Any] | None:
        row = s.get(MonitorIncidentRow, incident_id)
        if row is None:
            return None
        out = incident_dict(row)
        out["alerts"] = [
            alert_dict(a)
            for a in s.scalars(
                select(MonitorAlertRow).where(MonitorAlertRow.incident_id == incident_id).order_by(MonitorAlertRow.id)
            )
        ]
        out["reviews"] = [
            review_dict(r)
            for r in s.scalars(
                select(MonitorReviewRow)
                .where(MonitorReviewRow.incident_id == incident_id)
                .order_by(MonitorReviewRow.id)
            )
        ]
        return out

    def risk_history(self, s: Session, scope: str, target: str, limit: int = 1000) -> list[dict[str, Any]]:
        """An actor's risk after each alert about it, oldest first."""
        rows = s.scalars(
            select(MonitorRiskRow)
            .where(MonitorRiskRow.scope == scope, MonitorRiskRow.target == target)
            .order_by(MonitorRiskRow.at.desc(), MonitorRiskRow.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "at": _aware(r.at).isoformat(),
                "risk": r.risk,
                "detector": r.detector,
                "incident": r.incident_id,
            }
            for r in reversed(rows)
        ]

    def holds(self, s: Session) -> list[tuple[str, str]]:
        return sorted((r.scope, r.target) for r in s.scalars(select(MonitorHoldRow)))

    # ------------------------------------------------------------------ state

    def get_state(self, s: Session, key: str) -> str | None:
        row = s.get(MonitorStateRow, key)
        return None if row is None else row.value

    def set_state(self, s: Session, key: str, value: str) -> None:
        row = s.get(MonitorStateRow, key)
        if row is None:
            s.add(MonitorStateRow(key=key, value=value))
        else:
            row.value = value
        s.flush()

    # ------------------------------------------------------------------ the detectors' snapshot

    def snapshot(self, s: Session) -> MonitorSnapshotRow | None:
        """The latest snapshot of the detectors' state, if any."""
        return s.scalar(select(MonitorSnapshotRow).order_by(MonitorSnapshotRow.id.desc()).limit(1))

    def set_snapshot(
        self, s: Session, ledger_index: int, fingerprint: str, state: bytes, mac: str, at: datetime
    ) -> None:
        """Keep this snapshot in place of any earlier one."""
        s.execute(delete(MonitorSnapshotRow))
        s.add(
            MonitorSnapshotRow(ledger_index=ledger_index, fingerprint=fingerprint, state=state, mac=mac, created_at=at)
        )
        s.flush()

    def clear_snapshot(self, s: Session) -> None:
        s.execute(delete(MonitorSnapshotRow))

    # ------------------------------------------------------------------ one scan at a time

    def take_lease(self, s: Session, owner: str, now: datetime, ttl: timedelta) -> dict[str, str] | None:
        """Hold the scan lease until ``now + ttl`` unless another owner holds it: returns that holder (and
        takes nothing) or None. The row is locked while it is read (PostgreSQL; SQLite has one writer)."""
        row = s.get(MonitorStateRow, SCAN_LEASE, with_for_update=True)
        if row is not None:
            held = json.loads(row.value)
            if held.get("owner") != owner and datetime.fromisoformat(held["until"]) > now:
                return held
        value = json.dumps({"owner": owner, "since": now.isoformat(), "until": (now + ttl).isoformat()})
        if row is None:
            s.add(MonitorStateRow(key=SCAN_LEASE, value=value))
        else:
            row.value = value
        s.flush()
        return None

    def release_lease(self, s: Session, owner: str) -> None:
        row = s.get(MonitorStateRow, SCAN_LEASE, with_for_update=True)
        if row is not None and json.loads(row.value).get("owner") == owner:
            s.delete(row)
            s.flush()
