"""Incidents and the escalation ladder (modelled on All of Us's egress policy).

Alerts about the same actor within ``merge_window`` (90 minutes) merge into one incident. Each incident
climbs the ladder by how many incidents the actor has had in ``lookback`` that were not reviewed as false
positives: by default the first only notifies, the second suspends pending review, the third disables.
A critical alert, or an actor whose decayed risk passes the threshold, suspends pending review at once.
Review marks an incident confirmed (it may widen to the application or institution) or a false positive
(the suspension it caused is lifted and it no longer counts). The monitor returns actions; the service
that owns the registry carries them out and writes each to the ledger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from biowarden.monitor.detectors import CRITICAL, INFO, Alert

log = logging.getLogger("biowarden.monitor")

NOTIFY, SUSPEND, DISABLE, REINSTATE = "notify", "suspend_pending_review", "disable", "reinstate"


@dataclass(frozen=True)
class Ladder:
    steps: tuple[str, ...] = (NOTIFY, SUSPEND, DISABLE)  # by incident count: 1st, 2nd, 3rd and later
    merge_window: timedelta = timedelta(minutes=90)
    lookback: timedelta = timedelta(days=365)

    def step(self, count: int) -> str:
        return self.steps[min(count, len(self.steps)) - 1]


@dataclass
class Incident:
    id: int
    scope: str
    target: str
    opened_at: datetime
    last_at: datetime
    alerts: list[Alert] = field(default_factory=list)
    status: str = "open"  # open | confirmed | false_positive
    action: str = ""  # the highest step taken so far ("" while it holds signals only)

    @property
    def critical(self) -> bool:
        return any(a.severity == CRITICAL for a in self.alerts)

    @property
    def counts(self) -> bool:
        """Only incidents with a warning or worse climb the ladder; signals alone are recorded."""
        return any(a.severity != INFO for a in self.alerts) and self.status != "false_positive"


@dataclass(frozen=True)
class Action:
    kind: str  # notify | suspend_pending_review | disable | reinstate
    scope: str
    target: str
    incident: int
    reason: str


class Notifier(Protocol):
    def send(self, subject: str, body: str) -> None: ...


class LogNotifier:
    """The default sender: notifications go to the log (the ledger holds the record)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, subject: str, body: str) -> None:
        self.sent.append((subject, body))
        log.info("%s: %s", subject, body)


class SmtpNotifier:
    """E-mail through an SMTP relay; configured, never required. The password is never logged."""

    def __init__(self, host: str, port: int, sender: str, recipients: list[str], username: str | None = None,
                 password: str | None = None, starttls: bool = True) -> None:
        self.host, self.port, self.sender, self.recipients = host, port, sender, recipients
        self.username, self._password, self.starttls = username, password, starttls

    def __repr__(self) -> str:
        return f"SmtpNotifier({self.host}:{self.port}, user={self.username!r}, password=<secret>)"

    def send(self, subject: str, body: str) -> None:
        import smtplib
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, self.sender, ", ".join(self.recipients)
        msg.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username and self._password:
                smtp.login(self.username, self._password)
            smtp.send_message(msg)


class IncidentBook:
    def __init__(self, ladder: Ladder | None = None, notifier: Notifier | None = None,
                 risk_suspend: float = 3.0) -> None:
        self.ladder = ladder or Ladder()
        self.notifier = notifier or LogNotifier()
        self.risk_suspend = risk_suspend
        self.incidents: list[Incident] = []
        self._open: dict[tuple[str, str], Incident] = {}
        self.suspended: set[tuple[str, str]] = set()

    def _count(self, scope: str, target: str, at: datetime) -> int:
        return sum(1 for i in self.incidents if i.scope == scope and i.target == target
                   and i.counts and at - i.opened_at <= self.ladder.lookback)

    def add(self, alerts: list[Alert], risk: dict[str, float] | None = None) -> list[Action]:
        """File alerts; returns the actions the ladder asks for (each once)."""
        actions: list[Action] = []
        for a in alerts:
            key = (a.scope, a.target)
            inc = self._open.get(key)
            if inc is None or a.at - inc.last_at > self.ladder.merge_window:
                inc = Incident(len(self.incidents) + 1, a.scope, a.target, a.at, a.at, action="")
                self.incidents.append(inc)
                self._open[key] = inc
            was_counting = inc.counts
            inc.alerts.append(a)
            inc.last_at = a.at
            r = (risk or {}).get(a.target, 0.0) if a.scope == "researcher" else 0.0
            if not inc.counts and r < self.risk_suspend:
                continue  # signals only: recorded, no action yet
            step = self.ladder.step(max(self._count(a.scope, a.target, a.at), 1)) if not was_counting else inc.action
            step = step or NOTIFY
            if (a.severity == CRITICAL or r >= self.risk_suspend) and step == NOTIFY:
                step = SUSPEND
            actions += self._escalate(inc, step, a)
        return actions

    def _escalate(self, inc: Incident, step: str, alert: Alert) -> list[Action]:
        order = ("", NOTIFY, SUSPEND, DISABLE)
        if order.index(step) <= order.index(inc.action):
            return []
        inc.action = step
        reason = f"incident {inc.id}: {alert.detector}: {alert.detail}"
        self.notifier.send(f"biowarden incident {inc.id} ({step}) on {inc.scope} {inc.target}", reason)
        out = [Action(step, inc.scope, inc.target, inc.id, reason)]
        if step in (SUSPEND, DISABLE):
            self.suspended.add((inc.scope, inc.target))
        return out

    def review(self, incident_id: int, outcome: str, widen_to: tuple[str, str] | None = None) -> list[Action]:
        """A custodian's review: ``confirmed`` (optionally widening the suspension) or ``false_positive``."""
        inc = next((i for i in self.incidents if i.id == incident_id), None)
        if inc is None:
            raise KeyError(f"no incident {incident_id}")
        if outcome not in ("confirmed", "false_positive"):
            raise ValueError("review outcome must be 'confirmed' or 'false_positive'")
        inc.status = outcome
        if outcome == "false_positive":
            if (inc.scope, inc.target) in self.suspended:
                self.suspended.discard((inc.scope, inc.target))
                return [Action(REINSTATE, inc.scope, inc.target, inc.id, f"incident {inc.id} was a false positive")]
            return []
        if widen_to is not None:
            self.suspended.add(widen_to)
            return [Action(SUSPEND, widen_to[0], widen_to[1], inc.id, f"incident {inc.id} confirmed")]
        return []
