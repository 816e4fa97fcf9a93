"""The monitor as a service: carrying out the ladder's actions, custodian review, and reading alerts,
incidents and risk, all through the registry's policy decision point and its single ledger writer.

The detectors and the ladder decide; this service is the one place that acts on their decisions, so a
suspension the monitor asks for is the same suspension a custodian would issue (policy-checked, ledgered,
effective on the very next request). Every read and every review is a policy decision (``policy.decide``
through the registry, ledgered allow or deny) on the monitor's resources:

- reading alerts, incidents and risk is ``monitor.read`` (custodian admin, access committee, output
  checker, auditor); researchers are refused;
- a review is ``monitor.review`` (custodian admin, access committee): ``confirmed`` may widen the
  suspension to the application or institution, ``false_positive`` lifts the suspension it caused (the
  incident no longer counts).

A review is one transaction (decision, the incident's new status, the review record and its ledger entry);
the suspension it asks for then goes through ``Registry.suspend``/``reinstate`` as the reviewer, which
decide and ledger again (so, e.g., lifting a revocation still needs the committee's four eyes).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biowarden.monitor import ranker, snapshot
from biowarden.monitor.activity import DENIED_KINDS, EXPORT_KIND, from_entries
from biowarden.monitor.detectors import Monitor, MonitorConfig
from biowarden.monitor.incidents import (
    DISABLE,
    REINSTATE,
    REVIEW_OUTCOMES,
    SUSPEND,
    Action,
    GuardedNotifier,
    IncidentBook,
    Ladder,
    LogNotifier,
    Notifier,
)
from biowarden.monitor.replay import replay_batch
from biowarden.policy import Resource
from biowarden.registry import LOCAL_OPERATOR, Identity
from biowarden.registry.errors import Conflict, Denied, Invalid, NotFound, RegistryError
from biowarden.registry.service import Registry
from biowarden.registry.views import SuspensionView
from biowarden.store.monitor_store import CURSOR, MonitorStore
from biowarden.store.registry_tables import ApplicationRow, InstitutionRow, ResearcherRow

MONITOR_ACTOR = "system:monitor"
READ_ACTION = "monitor.read"
REVIEW_ACTION = "monitor.review"
SCOPES = ("researcher", "application", "institution")
SEVERITIES = ("info", "warn", "critical")
STATUSES = ("open", "confirmed", "false_positive")
SCAN_LEASE_TTL = timedelta(minutes=30)  # longer than a full rebuild of a million-event ledger


def _first_index_at(ledger, at: datetime) -> int:
    """The first ledger index whose entry is at or after ``at`` (entries are appended in time order), found by
    bisection: a few reads of one entry, not a scan."""
    lo, hi = 0, ledger.size()
    while lo < hi:
        mid = (lo + hi) // 2
        entry = next(ledger.entries(mid, mid + 1))
        if entry.at < at:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _home_cohort_size() -> int:
    """The number of participants in the home's cohort (the ranking's coverage is a share of it)."""
    import pyarrow.parquet as pq

    from biowarden.cohort import CohortError
    from biowarden.cohort.store import load_cohort

    try:
        parquet, _ = load_cohort()
    except CohortError as exc:
        raise Invalid(f"{exc} (or give the cohort size)") from None
    return int(pq.ParquetFile(parquet).metadata.num_rows)


@dataclass
class Enforcement:
    ledgered: list[int] = field(default_factory=list)  # ledger indices of incident entries
    suspended: list[tuple[str, str]] = field(default_factory=list)
    reinstated: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (scope, target, why)


def _incident_payload(book: IncidentBook, action: Action) -> dict[str, Any]:
    inc = book.get(action.incident)
    assert inc is not None
    return {
        "incident": inc.id,
        "action": action.kind,
        "status": inc.status,
        "opened_at": inc.opened_at.isoformat(),
        "alerts": [
            {"at": a.at.isoformat(), "detector": a.detector, "severity": a.severity, "detail": a.detail}
            for a in inc.alerts[-20:]
        ],
    }


def enforce(
    registry: Registry,
    book: IncidentBook,
    actions: Iterable[Action],
    store: MonitorStore | None = None,
    identity: Identity = LOCAL_OPERATOR,
    also: Callable[[Session], None] | None = None,
) -> Enforcement:
    """Ledger each action (through the registry's audit, the single ledger writer) and carry it out through
    the registry; with a ``store``, the book's changes are saved in the same transaction as the entries,
    and so is whatever ``also`` writes (a scan's cursor and detector state)."""
    out = Enforcement()
    actions = list(actions)
    with registry.db.session() as s:
        for action in actions:
            out.ledgered.append(
                registry.audit.record(
                    s,
                    "monitor.incident",
                    MONITOR_ACTOR,
                    f"{action.scope}:{action.target}",
                    _incident_payload(book, action),
                )
            )
        if store is not None:
            store.save(s, book.drain())
        if also is not None:
            also(s)
    for action in actions:
        try:
            if action.kind in (SUSPEND, DISABLE):
                registry.suspend(
                    identity,
                    action.scope,
                    action.target,
                    f"{MONITOR_ACTOR} {action.kind}: {action.reason}"[:1000],
                    revoke=action.kind == DISABLE and action.scope == "institution",
                )
                out.suspended.append((action.scope, action.target))
            elif action.kind == REINSTATE:
                registry.reinstate(identity, action.scope, action.target, action.reason)
                out.reinstated.append((action.scope, action.target))
        except RegistryError as exc:  # unknown target, already suspended, denied: say so, act on the rest
            out.skipped.append((action.scope, action.target, f"{exc.__class__.__name__}: {exc}"))
    return out


def _carried_out(action: dict[str, Any], enforcement: Enforcement, enforced: bool) -> bool:
    """Whether the scan carried out one action of the ladder: a suspension or disabling that the registry
    took, a reinstatement it made, or (when the scan enforces) a notice, whose incident entry is ledgered and
    whose message went to the notifier (failed sends are counted apart, in ``notify_failed``)."""
    key = (action["scope"], action["target"])
    if action["kind"] in (SUSPEND, DISABLE):
        return key in enforcement.suspended
    if action["kind"] == REINSTATE:
        return key in enforcement.reinstated
    return enforced


@dataclass
class Reconciliation:
    """What a scan's reconciliation of the book's suspensions with the registry's found and did."""

    reapplied: list[dict[str, Any]] = field(default_factory=list)  # lost enforcement, suspended again
    dropped: list[dict[str, Any]] = field(default_factory=list)  # lifted in the registry outside a review
    failed: list[dict[str, Any]] = field(default_factory=list)  # re-application refused (tried again next scan)
    ledger_index: int | None = None  # the ``monitor.reconciled`` entry, when anything was reconciled

    def __bool__(self) -> bool:
        return bool(self.reapplied or self.dropped or self.failed)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _holder(book: IncidentBook, scope: str, target: str) -> tuple[int, str, datetime] | None:
    """Why the book holds ``(scope, target)`` suspended: (incident, the ladder's step, when it began), from the
    latest standing incident on it that suspended, else the latest confirmed review that widened to it."""
    for inc in reversed(book.incidents):
        if (inc.scope, inc.target) == (scope, target) and inc.counts and inc.action in (SUSPEND, DISABLE):
            return inc.id, inc.action, _aware(inc.opened_at)
    for review in reversed(book.reviews):
        if review.widen_to == (scope, target):
            return review.incident, SUSPEND, _aware(review.at)
    return None


_INCIDENT_IN_REASON = re.compile(r"\bincident (\d+)\b")


def _carries(view: SuspensionView, incident: int) -> bool:
    """Whether a registry suspension is the one that carried out ``incident``'s hold: every suspension the
    monitor asks for names its incident first in its reason (the ladder's ``incident N: ...``, a re-application's
    ``... incident N``, a confirmed review's ``incident N confirmed by ...``). Another suspension of the same
    target (a custodian's own, lifted while the monitor's never arrived) says nothing about the monitor's."""
    m = _INCIDENT_IN_REASON.search(view.reason)
    return m is not None and int(m.group(1)) == incident


def reconcile(
    registry: Registry, book: IncidentBook, store: MonitorStore, identity: Identity = LOCAL_OPERATOR
) -> Reconciliation:
    """Bring the book's suspensions in line with the registry's (the source of truth for who is suspended).

    The registry's suspensions are read through ``Registry.list_suspensions`` (a decided, ledgered read). For
    each ``(scope, target)`` the book holds suspended that the registry shows no active suspension of:
    - if the registry shows the suspension that carried out the holding incident (its reason names the
      incident: ``_carries``) lifted since the incident began, a custodian reinstated it outside a review: the
      book stops holding it (the incident keeps its step, so it does not suspend again; new incidents climb the
      ladder as usual);
    - otherwise the ladder's action never reached the registry (the process died between committing a scan
      and enforcing it): it is applied again through ``Registry.suspend``, with a reason that says so. Once
      applied the registry shows it, so a later scan finds nothing to do: it is re-applied once.
    What was reconciled is ledgered as one ``monitor.reconciled`` entry, in the transaction that saves the
    book."""
    out = Reconciliation()
    if not book.suspended:
        return out  # nothing the monitor holds: nothing to read
    views = registry.list_suspensions(identity)
    active = {(v.scope, v.target) for v in views if v.active}
    for scope, target in sorted(book.suspended - active):
        held = _holder(book, scope, target)
        row: dict[str, Any] = {"scope": scope, "target": target, "incident": held[0] if held else None}
        lifted = [
            v
            for v in views
            if (v.scope, v.target) == (scope, target)
            and v.lifted_at is not None
            and (held is None or (_aware(v.lifted_at) >= held[2] and _carries(v, held[0])))
        ]
        if held is None or lifted:
            book.release(scope, target)
            last = max(lifted, key=lambda v: _aware(v.lifted_at or v.created_at)) if lifted else None
            row.update(
                lifted_by=last.lifted_by if last else None,
                lifted_at=last.lifted_at.isoformat() if last and last.lifted_at else None,
            )
            out.dropped.append(row)
            continue
        incident, kind, _since = held
        reason = f"{MONITOR_ACTOR} {kind} re-applied (lost enforcement): incident {incident}"
        try:
            view = registry.suspend(identity, scope, target, reason, revoke=kind == DISABLE and scope == "institution")
        except NotFound as exc:  # the registry knows no such actor: nothing to hold
            book.release(scope, target)
            row.update(lifted_by=None, lifted_at=None, why=f"NotFound: {exc}"[:300])
            out.dropped.append(row)
            continue
        except RegistryError as exc:  # denied, invalid: said, and tried again by the next scan
            row.update(kind=kind, why=f"{exc.__class__.__name__}: {exc}"[:300])
            out.failed.append(row)
            continue
        row.update(kind=kind, suspension=view.id, ledger_index=view.ledger_index)
        out.reapplied.append(row)
    if out:
        with registry.db.session() as s:
            store.save(s, book.drain())
            out.ledger_index = registry.audit.record(
                s,
                "monitor.reconciled",
                MONITOR_ACTOR,
                "monitor:suspensions",
                {"reapplied": out.reapplied, "dropped": out.dropped, "failed": out.failed},
            )
    return out


@dataclass
class ReviewResult:
    incident: dict[str, Any]
    ledger_index: int
    actions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"incident": self.incident, "ledger_index": self.ledger_index, "actions": self.actions}


@dataclass
class ScanResult:
    entries: int  # ledger entries past the cursor, read this time
    activities: int  # activities (exports, denied requests) among them
    alerts: int
    incidents: int
    actions: list[dict[str, Any]]
    cursor: int  # the ledger index read to
    notified: int = 0  # notifications the sender accepted
    notify_failed: list[str] = field(default_factory=list)  # why the others were not sent (no secrets)
    learned: int = 0  # activities before the cursor re-read to rebuild the detectors' state (0: resumed)
    rebuilt: str | None = None  # why the state was rebuilt from the ledger (None: resumed from the snapshot)
    reconciled: Reconciliation = field(default_factory=Reconciliation)  # the book's suspensions vs the registry's

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reconciled": self.reconciled.to_dict()}


class MonitorService:
    """Alerts, incidents, review and risk for callers of the CLI and the API (``identity`` is the caller)."""

    def __init__(
        self,
        registry: Registry,
        *,
        config: MonitorConfig | None = None,
        ladder: Ladder | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.registry = registry
        self.db = registry.db
        self.store = MonitorStore()
        self.config = config
        self.ladder = ladder
        self.notifier = notifier

    # ------------------------------------------------------------------ plumbing

    def _read(self, identity: Identity, what: str, apply) -> Any:
        """A read of the monitor's records: decided (and ledgered) as ``monitor.read`` on ``monitor:what``."""

        def prepare(_s: Session, _now: datetime) -> tuple:
            return Resource(kind="monitor", id=what), None

        # the registry's one path: lock, decide through policy.decide, ledger the decision, then apply
        return self.registry.run_decided(identity, READ_ACTION, prepare, lambda s, _p, _st, _i, now: apply(s, now))

    @staticmethod
    def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
        if value is not None and value not in allowed:
            raise Invalid(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
        return value

    @staticmethod
    def _limit(limit: int) -> int:
        if not 1 <= int(limit) <= 10_000:
            raise Invalid("limit must be between 1 and 10000")
        return int(limit)

    # ------------------------------------------------------------------ reading

    def alerts(
        self,
        identity: Identity,
        *,
        scope: str | None = None,
        target: str | None = None,
        severity: str | None = None,
        since: datetime | None = None,
        incident: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        self._choice(scope, SCOPES, "scope")
        self._choice(severity, SEVERITIES, "severity")
        limit = self._limit(limit)
        return self._read(
            identity,
            "alerts",
            lambda s, _now: self.store.alerts(
                s, scope=scope, target=target, severity=severity, since=since, incident=incident, limit=limit
            ),
        )

    def incidents(
        self,
        identity: Identity,
        *,
        status: str | None = None,
        scope: str | None = None,
        target: str | None = None,
        acted: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        self._choice(status, STATUSES, "status")
        self._choice(scope, SCOPES, "scope")
        limit = self._limit(limit)
        return self._read(
            identity,
            "incidents",
            lambda s, _now: self.store.incidents(
                s, status=status, scope=scope, target=target, acted=acted, limit=limit
            ),
        )

    def incident(self, identity: Identity, incident_id: int) -> dict[str, Any]:
        def apply(s: Session, _now: datetime) -> dict[str, Any]:
            found = self.store.incident(s, incident_id)
            if found is None:
                raise NotFound(f"no incident {incident_id}")
            return found

        return self._read(identity, f"incident:{incident_id}", apply)

    def risk(self, identity: Identity, scope: str, target: str) -> dict[str, Any]:
        """An actor's risk history (its risk right after each alert) and its risk now (decayed)."""
        self._choice(scope, SCOPES, "scope")
        half_life = (self.config or MonitorConfig(cohort_size=1)).risk_half_life

        def apply(s: Session, now: datetime) -> dict[str, Any]:
            history = self.store.risk_history(s, scope, target)
            current = 0.0
            if history:
                last = history[-1]
                dt = max((now - datetime.fromisoformat(last["at"])).total_seconds(), 0.0)
                current = last["risk"] * 0.5 ** (dt / half_life.total_seconds())
            return {
                "scope": scope,
                "target": target,
                "risk_now": round(current, 6),
                "half_life_hours": half_life.total_seconds() / 3600,
                "history": history,
                "incidents": self.store.incidents(s, scope=scope, target=target, limit=1000),
            }

        return self._read(identity, f"risk:{scope}:{target}", apply)

    # ------------------------------------------------------------------ ranking for review

    def ranking(
        self,
        identity: Identity,
        *,
        scope: str = "researcher",
        days: int = 30,
        limit: int = 20,
        cohort_size: int | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """Actors ranked by how unlike the others their activity over the ``days`` before ``until`` (default:
        now) is (``monitor.ranker``): a list for custodian review, read as ``monitor.read``. It files nothing
        and never suspends anyone."""
        self._choice(scope, SCOPES, "scope")
        limit = self._limit(limit)
        if not 1 <= int(days) <= 366:
            raise Invalid("days must be between 1 and 366")
        if cohort_size is not None and cohort_size < 1:
            raise Invalid("the cohort size must be positive")
        now = self._read(identity, f"ranking:{scope}", lambda _s, now: now)  # decided and ledgered first
        if until is not None:
            now = until if until.tzinfo else until.replace(tzinfo=UTC)
        size = cohort_size or _home_cohort_size()
        ledger = self.registry.audit.ledger
        start = ranker.window_start(now, int(days))
        first = _first_index_at(ledger, start)
        kinds = {EXPORT_KIND, *DENIED_KINDS}
        entries = (e for e in ledger.entries(first) if e.kind in kinds and start <= e.at <= now)
        acts = [a for a in from_entries(entries) if a is not None]
        ranked = ranker.rank(acts, scope, size, limit=limit)
        return {
            "scope": scope,
            "since": start.isoformat(),
            "until": now.isoformat(),
            "activities": len(acts),
            "actors": len({getattr(a, scope) for a in acts}),
            "signals": list(ranker.SIGNALS),
            "ranking": [r.to_dict() for r in ranked],
        }

    # ------------------------------------------------------------------ review

    def _widen_target(self, s: Session, inc, escalate: str, target: str | None) -> tuple[str, str]:
        if target is None:
            candidates = {
                t for sc, t in ((inc.scope, inc.target), *(r for a in inc.alerts for r in a.related)) if sc == escalate
            }
            if inc.scope == "researcher" and escalate == "institution":
                inst = s.scalar(
                    select(InstitutionRow.name)
                    .join(ResearcherRow, ResearcherRow.institution_id == InstitutionRow.id)
                    .where(ResearcherRow.email == inc.target)
                )
                candidates |= {inst} if inst else set()
            if inc.scope == "application" and escalate == "institution":
                inst = s.scalar(
                    select(InstitutionRow.name)
                    .join(ApplicationRow, ApplicationRow.institution_id == InstitutionRow.id)
                    .where(ApplicationRow.id == inc.target)
                )
                candidates |= {inst} if inst else set()
            if len(candidates) != 1:
                found = ", ".join(sorted(candidates)) or "none"
                raise Invalid(f"name the {escalate} to escalate incident {inc.id} to (candidates: {found})")
            target = candidates.pop()
        if escalate == "institution":
            known = s.scalar(select(InstitutionRow.name).where(InstitutionRow.name == target))
        else:
            known = s.scalar(select(ApplicationRow.id).where(ApplicationRow.id == target))
        if known is None:
            raise NotFound(f"unknown {escalate} {target!r}")
        return escalate, target

    def review(
        self,
        identity: Identity,
        incident_id: int,
        outcome: str,
        *,
        escalate: str | None = None,
        target: str | None = None,
        note: str = "",
    ) -> ReviewResult:
        """Mark an incident ``confirmed`` (optionally escalating to its application or institution) or a
        ``false_positive`` (the suspension it caused is lifted and it no longer counts)."""
        if outcome not in REVIEW_OUTCOMES:
            raise Invalid("review outcome must be 'confirmed' or 'false_positive'")
        if escalate is not None and (outcome != "confirmed" or escalate not in ("application", "institution")):
            raise Invalid("only a confirmed incident escalates, and only to an application or an institution")
        if len(note) > 2000:
            raise Invalid("the note is longer than 2000 characters")

        def prepare(s: Session, _now: datetime) -> tuple:
            book = self.store.load_book(s, self.ladder, self.notifier)
            inc = book.get(incident_id)
            if inc is None:
                raise NotFound(f"no incident {incident_id}")
            conflict = (
                Conflict(f"incident {incident_id} was already reviewed ({inc.status})")
                if (inc.status != "open")
                else None
            )
            widen = self._widen_target(s, inc, escalate, target) if escalate else None
            res = Resource(
                kind="incident",
                id=str(incident_id),
                institution=inc.target if inc.scope == "institution" else None,
            )
            return res, (book, widen), conflict

        def apply(s: Session, principal, state, _idx: int, now: datetime) -> tuple:
            book, widen = state
            actions = book.review(incident_id, outcome, widen, reviewer=principal.name, at=now, note=note)
            self.store.save(s, book.drain())
            inc = book.get(incident_id)
            idx = self.registry.audit.record(
                s,
                "monitor.incident.reviewed",
                principal.name,
                f"incident:{incident_id}",
                {
                    "incident": incident_id,
                    "scope": inc.scope,
                    "target": inc.target,
                    "outcome": outcome,
                    "widen_to": list(widen) if widen else None,
                    "note": note,
                    "actions": [{"kind": a.kind, "scope": a.scope, "target": a.target} for a in actions],
                },
            )
            self.store.set_review_ledger_index(s, incident_id, idx)
            return idx, actions

        idx, actions = self.registry.run_decided(identity, REVIEW_ACTION, prepare, apply)
        done: list[dict[str, Any]] = []
        for a in actions:
            entry: dict[str, Any] = {"kind": a.kind, "scope": a.scope, "target": a.target}
            try:
                if a.kind == REINSTATE:
                    views = self.registry.reinstate(identity, a.scope, a.target, a.reason)
                    entry.update(done=True, ledger_index=views[-1].ledger_index if views else None)
                else:
                    view = self.registry.suspend(identity, a.scope, a.target, f"{a.reason} by {identity.name}")
                    entry.update(done=True, ledger_index=view.ledger_index)
            except Denied as exc:
                entry.update(done=False, why=exc.reason, ledger_index=exc.ledger_index)
            except (Conflict, NotFound) as exc:
                entry.update(done=False, why=str(exc))
            done.append(entry)
        with self.db.session() as s:
            detail = self.store.incident(s, incident_id)
        assert detail is not None
        return ReviewResult(detail, idx, done)

    # ------------------------------------------------------------------ scanning the ledger

    def scan(self, cohort_size: int, *, enforce_actions: bool = True, full: bool = False) -> ScanResult:
        """Read the ledger's new entries through the detectors and file what is new.

        The detectors' state is a function of the whole ledger. A scan resumes from the state the last scan
        kept (``monitor.snapshot``, stored with the ledger index it reflects) and reads only the entries
        after that index; when there is no usable snapshot (none yet, other detector code or configuration,
        a MAC that does not verify) or with ``full``, it rebuilds the state by reading the ledger up to the
        stored cursor without filing anything. Either way only activities past the cursor file alerts, so
        a scan never files the same alert twice, and the result is the same. Automatic actions are
        enforced as the monitor (the home's operator, actor ``system:monitor``).

        One scan runs at a time: a scan holds a lease in the store (``SCAN_LEASE_TTL``, released when it
        ends; a crashed scan's lease lapses), and a scan that finds it held raises ``Conflict``."""
        owner = f"scan:{uuid.uuid4().hex}"
        with self.db.session() as s:
            now = datetime.now(UTC)
            held = self.store.take_lease(s, owner, now, SCAN_LEASE_TTL)
        if held is not None:
            raise Conflict(
                f"another scan has been reading the ledger since {held['since']} (its lease runs to {held['until']})"
            )
        try:
            return self._scan(cohort_size, enforce_actions=enforce_actions, full=full)
        finally:
            with self.db.session() as s:
                self.store.release_lease(s, owner)

    def _scan(self, cohort_size: int, *, enforce_actions: bool, full: bool) -> ScanResult:
        ledger = self.registry.audit.ledger
        config = self.config or MonitorConfig(cohort_size=cohort_size)
        print_ = snapshot.fingerprint(config)
        key = self.registry.audit.keyring.key(snapshot.PURPOSE)
        notifier = GuardedNotifier(self.notifier or LogNotifier())  # a failed e-mail never stops the ladder
        monitor: Monitor | None = None
        why_rebuilt = "--full" if full else "no snapshot yet"
        with self.db.session() as s:
            cursor = int(self.store.get_state(s, CURSOR) or 0)
            book = self.store.load_book(s, self.ladder, notifier)
            kept = None if full else self.store.snapshot(s)
            if kept is not None:
                if int(kept.ledger_index) != cursor:
                    why_rebuilt = f"the snapshot is of entry {kept.ledger_index}, the cursor at {cursor}"
                else:
                    try:
                        monitor = snapshot.load(kept.state, key, cursor, kept.fingerprint, kept.mac, config)
                    except snapshot.SnapshotError as exc:
                        why_rebuilt = str(exc)
        # the registry is the source of truth for who is suspended: first bring the book in line with it (a
        # scan that suspends nobody leaves both as they are)
        reconciled = reconcile(self.registry, book, self.store) if enforce_actions else Reconciliation()
        held_before = set(book.suspended)
        size = ledger.size()
        kinds = {EXPORT_KIND, *DENIED_KINDS}
        learned = 0
        resumed = monitor is not None
        if monitor is None:
            monitor = Monitor(config)
            # learning only (these were filed by an earlier scan): observed, nothing filed
            learned = replay_batch(
                (e for e in ledger.entries(0, min(cursor, size)) if e.kind in kinds), monitor, None, precheck=False
            ).activities
        fresh = replay_batch(
            (e for e in ledger.entries(cursor, size) if e.kind in kinds), monitor, book, precheck=False
        )
        try:
            state: bytes | None = snapshot.dump(monitor)
        except snapshot.SnapshotError:
            state = None

        def commit(s: Session) -> None:
            """What this scan filed, how far it read and the detectors' state then: one transaction (with the
            incident entries when actions are enforced), so a scan that dies is repeated whole, never half."""
            self.store.save(s, book.drain())
            self.store.set_state(s, CURSOR, str(size))
            if state is None:
                self.store.clear_snapshot(s)
            else:
                tag = snapshot.mac(key, size, print_, state)
                self.store.set_snapshot(s, size, print_, state, tag, datetime.now(UTC))

        enforcement = Enforcement()
        if enforce_actions:
            enforcement = enforce(self.registry, book, fresh.actions, self.store, also=commit)
        else:
            # suspend nobody: the book does not hold as suspended what this scan did not enforce (else a later
            # scan's reconciliation would read it as lost enforcement and suspend it)
            for scope, target in book.suspended - held_before:
                book.release(scope, target)
            with self.db.session() as s:
                commit(s)
        acts = [{"kind": a.kind, "scope": a.scope, "target": a.target, "incident": a.incident} for a in fresh.actions]
        for row in acts:
            row["carried_out"] = _carried_out(row, enforcement, enforce_actions)
        return ScanResult(
            entries=size - cursor,
            activities=fresh.activities,
            alerts=len(fresh.alerts),
            incidents=len({a.incident for a in fresh.actions}),
            actions=acts,
            cursor=size,
            notified=notifier.sent,
            notify_failed=notifier.failed,
            learned=learned,
            rebuilt=None if resumed else why_rebuilt,
            reconciled=reconciled,
        )
