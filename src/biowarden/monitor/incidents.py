"""Incidents and the escalation ladder (modelled on All of Us's egress policy).

Alerts about the same actor within ``merge_window`` (90 minutes) merge into one incident. Each incident
climbs the ladder by how many incidents the actor has had in ``lookback`` that were not reviewed as false
positives: by default the first only notifies, the second suspends pending review, the third disables.
A critical alert, or an actor whose decayed risk passes the threshold, suspends pending review at once.
Review marks an incident confirmed (it may widen to the application or institution) or a false positive
(the suspension it caused is lifted and it no longer counts). The monitor returns actions; the service
that owns the registry carries them out and writes each to the ledger.

Persistence stays outside this module: a book built with ``track=True`` keeps what changed since the last
``drain()`` (new alerts with the actor's risk, incidents whose state moved, reviews, the set of scopes the
monitor holds suspended) as plain dataclasses, and ``IncidentBook.restore`` rebuilds a book from them.
``biowarden.store.monitor_store`` writes and reads them; nothing here imports an ORM.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
class Review:
    """A custodian's review of an incident."""

    incident: int
    outcome: str  # confirmed | false_positive
    reviewer: str
    at: datetime
    note: str = ""
    widen_to: tuple[str, str] | None = None  # confirmed: the wider scope suspended too


@dataclass(frozen=True)
class RiskPoint:
    """An actor's decayed risk right after an alert about it was filed."""

    scope: str
    target: str
    at: datetime
    risk: float
    detector: str
    incident: int


@dataclass
class Changes:
    """What changed in a tracking book since the last ``drain()``."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)  # (incident id, alert), in filing order
    incidents: dict[int, Incident] = field(default_factory=dict)  # incidents new or whose state moved
    risk: list[RiskPoint] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    suspended: set[tuple[str, str]] | None = None  # the whole set, when it changed

    def __bool__(self) -> bool:
        return bool(self.alerts or self.incidents or self.risk or self.reviews or self.suspended is not None)


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
    """E-mail through an SMTP relay; configured, never required (``biowarden.monitor.notify`` builds one from
    the settings). STARTTLS verifies the relay's certificate (the system's CAs, or ``ca_file``); credentials
    are sent only after it. The password is never logged nor shown by ``repr``."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        *,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("an SMTP username needs a password, and a password a username")
        if username is not None and not starttls:
            raise ValueError("SMTP credentials are sent only over STARTTLS")
        self.host, self.port, self.sender, self.recipients = host, port, sender, list(recipients)
        self.username, self._password, self.starttls = username, password, starttls
        self.ca_file, self.timeout = ca_file, timeout

    def __repr__(self) -> str:
        secret = "<secret>" if self._password else None
        return (
            f"SmtpNotifier({self.host}:{self.port}, starttls={self.starttls}, user={self.username!r}, "
            f"password={secret})"
        )

    def send(self, subject: str, body: str) -> None:
        import smtplib
        import ssl
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, self.sender, ", ".join(self.recipients)
        msg.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
            if self.username and self._password:
                smtp.login(self.username, self._password)
            smtp.send_message(msg)


class GuardedNotifier:
    """A sender whose failures never stop the monitor: the ladder's action is ledgered and carried out
    whether or not the e-mail went; a failure is logged (its kind and the relay's answer, never a secret)
    and counted."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner
        self.sent = 0
        self.failed: list[str] = []

    def send(self, subject: str, body: str) -> None:
        try:
            self.inner.send(subject, body)
        except Exception as exc:  # any failure of the sender: logged, the monitor goes on
            why = f"{exc.__class__.__name__}: {exc}"[:300]
            self.failed.append(why)
            log.warning("notification %r not sent: %s", subject, why)
        else:
            self.sent += 1


REVIEW_OUTCOMES = ("confirmed", "false_positive")


class IncidentBook:
    def __init__(
        self,
        ladder: Ladder | None = None,
        notifier: Notifier | None = None,
        risk_suspend: float = 3.0,
        *,
        track: bool = False,
    ) -> None:
        self.ladder = ladder or Ladder()
        self.notifier = notifier or LogNotifier()
        self.risk_suspend = risk_suspend
        self.incidents: list[Incident] = []
        self.reviews: list[Review] = []
        self._open: dict[tuple[str, str], Incident] = {}
        self._by_id: dict[int, Incident] = {}
        self.suspended: set[tuple[str, str]] = set()
        self._changes: Changes | None = Changes() if track else None

    @classmethod
    def restore(
        cls,
        incidents: list[Incident],
        suspended: set[tuple[str, str]],
        reviews: Iterable[Review] = (),
        ladder: Ladder | None = None,
        notifier: Notifier | None = None,
        risk_suspend: float = 3.0,
        *,
        track: bool = True,
    ) -> IncidentBook:
        """A book in the state a tracking book had when ``incidents`` (each with its alerts, ordered by id),
        ``suspended`` and ``reviews`` were drained from it."""
        book = cls(ladder, notifier, risk_suspend, track=track)
        for inc in sorted(incidents, key=lambda i: i.id):
            if inc.id != len(book.incidents) + 1:
                raise ValueError(f"incident ids must run 1, 2, 3...; got {inc.id} after {len(book.incidents)}")
            book.incidents.append(inc)
            book._by_id[inc.id] = inc
            book._open[(inc.scope, inc.target)] = inc  # the latest incident of each actor stays open
        book.suspended = set(suspended)
        book.reviews = list(reviews)
        return book

    def get(self, incident_id: int) -> Incident | None:
        return self._by_id.get(incident_id)

    def drain(self) -> Changes:
        """What changed since the last drain (empty unless the book tracks)."""
        out = self._changes or Changes()
        if self._changes is not None:
            self._changes = Changes()
        return out

    def _touch(self, inc: Incident) -> None:
        if self._changes is not None:
            self._changes.incidents[inc.id] = inc

    def _suspended_changed(self) -> None:
        if self._changes is not None:
            self._changes.suspended = set(self.suspended)

    def release(self, scope: str, target: str) -> bool:
        """Stop holding ``(scope, target)`` suspended without a review (the registry, the source of truth, no
        longer shows the suspension); the incidents keep their status and step, so the same incident does not
        suspend again. Returns whether the book held it."""
        if (scope, target) not in self.suspended:
            return False
        self.suspended.discard((scope, target))
        self._suspended_changed()
        return True

    def _count(self, scope: str, target: str, at: datetime) -> int:
        return sum(
            1
            for i in self.incidents
            if i.scope == scope and i.target == target and i.counts and at - i.opened_at <= self.ladder.lookback
        )

    def add(self, alerts: list[Alert], risk: dict[str, float] | None = None) -> list[Action]:
        """File alerts; returns the actions the ladder asks for (each once)."""
        actions: list[Action] = []
        for a in alerts:
            key = (a.scope, a.target)
            inc = self._open.get(key)
            if inc is None or a.at - inc.last_at > self.ladder.merge_window:
                inc = Incident(len(self.incidents) + 1, a.scope, a.target, a.at, a.at, action="")
                self.incidents.append(inc)
                self._by_id[inc.id] = inc
                self._open[key] = inc
            was_counting = inc.counts
            inc.alerts.append(a)
            inc.last_at = a.at
            r = (risk or {}).get(a.target, 0.0) if a.scope == "researcher" else 0.0
            if self._changes is not None:
                self._changes.alerts.append((inc.id, a))
                self._changes.incidents[inc.id] = inc
                if a.scope == "researcher" and risk and a.target in risk:
                    self._changes.risk.append(RiskPoint(a.scope, a.target, a.at, r, a.detector, inc.id))
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
        self._touch(inc)
        if step in (SUSPEND, DISABLE):
            self.suspended.add((inc.scope, inc.target))
            self._suspended_changed()
        return out

    def review(
        self,
        incident_id: int,
        outcome: str,
        widen_to: tuple[str, str] | None = None,
        *,
        reviewer: str = "",
        at: datetime | None = None,
        note: str = "",
    ) -> list[Action]:
        """A custodian's review: ``confirmed`` (optionally widening the suspension to the application or
        institution) or ``false_positive`` (the suspension it caused is lifted unless another standing incident
        holds the same actor; it no longer counts)."""
        inc = self._by_id.get(incident_id)
        if inc is None:
            raise KeyError(f"no incident {incident_id}")
        if outcome not in REVIEW_OUTCOMES:
            raise ValueError("review outcome must be 'confirmed' or 'false_positive'")
        if inc.status != "open":
            raise ValueError(f"incident {incident_id} was already reviewed ({inc.status})")
        if widen_to is not None and (outcome != "confirmed" or widen_to[0] not in ("application", "institution")):
            raise ValueError("only a confirmed incident widens, and only to an application or an institution")
        inc.status = outcome
        self._touch(inc)
        review = Review(incident_id, outcome, reviewer, at or inc.last_at, note, widen_to)
        self.reviews.append(review)
        if self._changes is not None:
            self._changes.reviews.append(review)
        if outcome == "false_positive":
            held_elsewhere = any(
                i.scope == inc.scope
                and i.target == inc.target
                and i.id != inc.id
                and i.counts
                and i.action in (SUSPEND, DISABLE)
                for i in self.incidents
            )
            if (inc.scope, inc.target) in self.suspended and not held_elsewhere:
                self.suspended.discard((inc.scope, inc.target))
                self._suspended_changed()
                return [Action(REINSTATE, inc.scope, inc.target, inc.id, f"incident {inc.id} was a false positive")]
            return []
        if widen_to is not None:
            self.suspended.add(widen_to)
            self._suspended_changed()
            return [Action(SUSPEND, widen_to[0], widen_to[1], inc.id, f"incident {inc.id} confirmed")]
        return []
