"""``biowarden monitor alerts|incidents|incident|review|risk|rank|scan|notify-test``: records and review.

Every command is a policy decision through the registry (ledgered, allow or deny): reading needs a staff
role, a review needs a custodian admin or an access-committee member. The CLI acts as the home's local
operator; ``--as USER`` acts as that account (its password is asked for). Exit codes: 0 done, 2 bad input
/ unknown id / conflict, 3 denied by policy.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer

from biowarden.cli.common import console, emit_json, fail

monitor_app = typer.Typer(
    help="Monitoring: alerts, incidents, review, actors' risk and ranking; scanning the ledger; notifications.",
    no_args_is_help=True,
)

AS_USER = typer.Option(None, "--as", help="act as this account (password prompted)")
JSON = typer.Option(False, "--json", help="machine-readable output")


def _notifier():
    """The configured sender (``BIOWARDEN_NOTIFIER``...); a bad setting is a clear error (exit 2)."""
    from biowarden.config import ConfigError
    from biowarden.monitor.notify import notifier_from_settings

    try:
        return notifier_from_settings()
    except ConfigError as exc:
        fail(f"notifier configuration: {exc}")


def _ladder():
    """The configured ladder (``BIOWARDEN_MONITOR_LADDER``...); a bad setting is a clear error (exit 2)."""
    from biowarden.config import ConfigError
    from biowarden.monitor.notify import ladder_from_settings

    try:
        return ladder_from_settings()
    except ConfigError as exc:
        fail(f"ladder configuration: {exc}")


@contextmanager
def _service(notifier=None, ladder=None):
    """(registry, monitor service) over the home's store; policy denials exit 3, bad input exits 2."""
    from biowarden.cli.registry_cmd import _registry
    from biowarden.monitor.service import MonitorService

    with _registry() as reg:
        yield reg, MonitorService(reg, notifier=notifier, ladder=ladder)


def _who(reg, as_user: str | None):
    from biowarden.cli.registry_cmd import _identity

    return _identity(reg, as_user)


def _table(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r.get(c, "")) if r.get(c) is not None else "" for c in columns])
    console.print(table)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{value!r} is not an ISO date or time (e.g. 2026-04-01 or 2026-04-01T09:00)")
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@monitor_app.command("alerts")
def alerts(
    scope: str | None = typer.Option(None, "--scope", help="researcher, application or institution"),
    target: str | None = typer.Option(None, "--target", help="the actor (e-mail, application id, name)"),
    severity: str | None = typer.Option(None, "--severity", help="info, warn or critical"),
    incident: int | None = typer.Option(None, "--incident", help="only this incident's alerts"),
    since: str | None = typer.Option(None, "--since", help="only alerts at or after this time (ISO)"),
    limit: int = typer.Option(100, "--limit", help="at most this many, newest first"),
    as_user: str | None = AS_USER,
    as_json: bool = JSON,
) -> None:
    """Alerts the monitor filed, newest first."""
    when = _since(since)
    with _service() as (reg, svc):
        rows = svc.alerts(
            _who(reg, as_user),
            scope=scope,
            target=target,
            severity=severity,
            since=when,
            incident=incident,
            limit=limit,
        )
    if as_json:
        emit_json(rows)
        return
    _table(rows, ["id", "at", "incident", "severity", "detector", "scope", "target", "detail"], "alerts")


@monitor_app.command("incidents")
def incidents(
    status: str | None = typer.Option(None, "--status", help="open, confirmed or false_positive"),
    scope: str | None = typer.Option(None, "--scope", help="researcher, application or institution"),
    target: str | None = typer.Option(None, "--target"),
    acted: bool = typer.Option(False, "--acted", help="only incidents the ladder acted on"),
    limit: int = typer.Option(100, "--limit"),
    as_user: str | None = AS_USER,
    as_json: bool = JSON,
) -> None:
    """Incidents (alerts merged per actor), newest first."""
    with _service() as (reg, svc):
        rows = svc.incidents(_who(reg, as_user), status=status, scope=scope, target=target, acted=acted, limit=limit)
    if as_json:
        emit_json(rows)
        return
    _table(rows, ["id", "opened_at", "scope", "target", "alerts", "action", "status"], "incidents")


@monitor_app.command("incident")
def incident(
    incident_id: int = typer.Argument(..., metavar="ID"),
    as_user: str | None = AS_USER,
    as_json: bool = JSON,
) -> None:
    """One incident with its alerts and reviews."""
    with _service() as (reg, svc):
        row = svc.incident(_who(reg, as_user), incident_id)
    if as_json:
        emit_json(row)
        return
    console.print(
        f"[bold]incident {row['id']}[/] on {row['scope']} {row['target']}: {row['status']}, "
        f"action {row['action'] or 'none'} (opened {row['opened_at']})"
    )
    _table(row["alerts"], ["at", "severity", "detector", "detail"], "alerts")
    for r in row["reviews"]:
        console.print(f"reviewed {r['outcome']} by {r['reviewer']} at {r['at']} (ledger entry {r['ledger_index']})")


@monitor_app.command("review")
def review(
    incident_id: int = typer.Argument(..., metavar="ID"),
    outcome: str = typer.Argument(..., metavar="OUTCOME", help="confirmed or false_positive"),
    escalate: str | None = typer.Option(
        None, "--escalate", help="confirmed only: also suspend the incident's application or institution"
    ),
    target: str | None = typer.Option(None, "--target", help="the application or institution to escalate to"),
    note: str = typer.Option("", "--note", help="the reviewer's note (ledgered)"),
    as_user: str | None = AS_USER,
    as_json: bool = JSON,
) -> None:
    """Review an incident: confirmed (optionally escalating) or false_positive (reinstates; stops counting)."""
    with _service() as (reg, svc):
        out = svc.review(_who(reg, as_user), incident_id, outcome, escalate=escalate, target=target, note=note)
    if as_json:
        emit_json(out.to_dict())
        return
    inc = out.incident
    console.print(
        f"[green]incident {inc['id']}[/] on {inc['scope']} {inc['target']} reviewed {inc['status']} "
        f"(ledger entry {out.ledger_index})"
    )
    for a in out.actions:
        state = "done" if a["done"] else f"not done: {a.get('why', '')}"
        console.print(f"  {a['kind']} {a['scope']} {a['target']}: {state}")


@monitor_app.command("risk")
def risk(
    researcher: str | None = typer.Option(None, "--researcher"),
    application: str | None = typer.Option(None, "--application"),
    institution: str | None = typer.Option(None, "--institution"),
    as_user: str | None = AS_USER,
    as_json: bool = JSON,
) -> None:
    """An actor's risk history (its risk after each alert), its risk now, and its incidents."""
    chosen = [
        (s, t) for s, t in (("researcher", researcher), ("application", application), ("institution", institution)) if t
    ]
    if len(chosen) != 1:
        fail("name exactly one of --researcher, --application, --institution")
    scope, target = chosen[0]
    with _service() as (reg, svc):
        out = svc.risk(_who(reg, as_user), scope, target)
    if as_json:
        emit_json(out)
        return
    console.print(f"[bold]{scope} {target}[/]: risk now {out['risk_now']:.3f} (half-life {out['half_life_hours']:g} h)")
    _table(out["history"], ["at", "risk", "detector", "incident"], "risk history")
    _table(out["incidents"], ["id", "opened_at", "alerts", "action", "status"], "incidents")


@monitor_app.command("rank")
def rank(
    scope: str = typer.Option("researcher", "--scope", help="researcher, application or institution"),
    days: int = typer.Option(30, "--days", help="the window: the last DAYS days of activity"),
    limit: int = typer.Option(20, "--limit", help="at most this many actors, most unusual first"),
    cohort_size: int | None = typer.Option(None, "--cohort-size", help="default: the home's cohort"),
    until: str | None = typer.Option(None, "--until", help="the window's end (ISO; default: now)"),
    as_user: str | None = AS_USER,
    as_json: bool = JSON,
) -> None:
    """Actors ranked by how unlike the others their recent activity is (robust multivariate outlyingness of
    their signals): a list for review. It files no alert and never suspends anyone."""
    end = _since(until) if until is not None else None
    with _service() as (reg, svc):
        out = svc.ranking(_who(reg, as_user), scope=scope, days=days, limit=limit, cohort_size=cohort_size, until=end)
    if as_json:
        emit_json(out)
        return
    console.print(
        f"{out['actors']:,} {scope}s with {out['activities']:,} activities from {out['since'][:16]} to "
        f"{out['until'][:16]}; most unusual first (for review: the ranking acts on no one)"
    )
    rows = [
        {
            "rank": r["rank"],
            scope: r["target"],
            "score": f"{r['score']:.1f}",
            "why": "; ".join(f"{w['signal']} {w['value']:.3g} (z {w['z']:+.1f})" for w in r["why"]),
        }
        for r in out["ranking"]
    ]
    _table(rows, ["rank", scope, "score", "why"], f"{scope}s by outlyingness")


@monitor_app.command("scan")
def scan(
    cohort_size: int | None = typer.Option(None, "--cohort-size", help="default: the home's cohort"),
    no_enforce: bool = typer.Option(False, "--no-enforce", help="file alerts and incidents, suspend nobody"),
    full: bool = typer.Option(
        False, "--full", help="rebuild the detectors' state from the whole ledger instead of resuming it"
    ),
    as_json: bool = JSON,
) -> None:
    """Read the ledger's new exports and denials through the detectors; file alerts; act on the ladder.

    A scan resumes from the detectors' state the last scan kept and reads only newer entries (the same
    result as reading the whole ledger); ``--full`` rebuilds that state from the whole ledger."""
    if cohort_size is None:
        import pyarrow.parquet as pq

        from biowarden.cohort import CohortError
        from biowarden.cohort.store import load_cohort

        try:
            parquet, _ = load_cohort()
        except CohortError as exc:
            fail(f"{exc} (or give --cohort-size)")
        cohort_size = pq.ParquetFile(parquet).metadata.num_rows
    if cohort_size < 1:
        fail("--cohort-size must be positive")
    notifier, ladder = _notifier(), _ladder()
    with _service(notifier, ladder) as (_reg, svc):
        out = svc.scan(cohort_size, enforce_actions=not no_enforce, full=full)
    if as_json:
        emit_json(out.to_dict())
        return
    if out.rebuilt is not None:
        console.print(f"rebuilt the detectors' state from {out.learned:,} earlier activities ({out.rebuilt})")
    console.print(
        f"scanned the ledger to entry {out.cursor}: {out.entries:,} new entries, {out.activities:,} activities, "
        f"{out.alerts} new alert(s), {out.incidents} incident(s) acted on"
    )
    for a in out.actions:
        console.print(f"  incident {a['incident']}: {a['kind']} {a['scope']} {a['target']}")
    for r in out.reconciled.reapplied:
        console.print(
            f"  reconciled: re-applied the lost {r['kind']} of {r['scope']} {r['target']} (incident {r['incident']})"
        )
    for r in out.reconciled.dropped:
        by = f" by {r['lifted_by']}" if r.get("lifted_by") else ""
        console.print(f"  reconciled: {r['scope']} {r['target']} was reinstated{by} outside a review; no longer held")
    for r in out.reconciled.failed:
        console.print(f"  [yellow]reconciled: could not re-apply[/] {r['scope']} {r['target']}: {r['why']}")
    for why in out.notify_failed:
        console.print(f"  [yellow]notification not sent[/]: {why}")


@monitor_app.command("notify-test")
def notify_test(as_json: bool = JSON) -> None:
    """Send a test notification through the configured sender (BIOWARDEN_NOTIFIER=log|smtp); exit 1 if it
    cannot be sent."""
    from biowarden.monitor.notify import describe

    notifier = _notifier()
    where = describe(notifier)
    try:
        notifier.send("biowarden test notification", "The monitor's notifications reach this address.")
    except Exception as exc:  # any failure of the sender, named without secrets
        why = f"{exc.__class__.__name__}: {exc}"[:300]
        if as_json:
            emit_json({"sent": False, "notifier": where, "error": why})
            raise typer.Exit(1) from None
        fail(f"test notification through {where} not sent: {why}", code=1)
    if as_json:
        emit_json({"sent": True, "notifier": where})
        return
    console.print(f"test notification sent through {where}")


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
