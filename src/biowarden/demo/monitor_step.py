"""Demo step: monitoring catches the incident's pulls and suspends the accounts automatically.

1. The exports the release step made are read back from the ledger and replayed through the detectors.
2. Two months of ordinary traffic at the demo's cohort size run beside the attacks of April 2026 (a bulk
   pull, salami slicing, three institutions taking disjoint slices, a compromised account at night, an
   expired application), through the same precheck -> observe -> ladder path as production.
3. The incidents on the three institutions are enforced: ledgered, and suspended through the registry;
   the simulation's alerts, incidents and risk history are saved in the store (``biowarden monitor ...``).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from rich.table import Table

from biowarden.config import load_settings
from biowarden.demo import DemoContext
from biowarden.keys import KeyRing
from biowarden.monitor.activity import EXPORT_KIND
from biowarden.monitor.detectors import Monitor, MonitorConfig
from biowarden.monitor.incidents import DISABLE, SUSPEND, Action, IncidentBook
from biowarden.monitor.replay import replay
from biowarden.monitor.service import enforce
from biowarden.monitor.simulate import ATTACKS, START, SimConfig, attack, ordinary_traffic
from biowarden.monitor.simulate import run as drive
from biowarden.registry.service import Registry
from biowarden.store import connect, migrate
from biowarden.store.ledger_store import LedgerStore
from biowarden.store.monitor_store import MonitorStore

LEAKERS = ("Northbridge Institute", "Eastgate University", "Westmoor Institute")


def run(ctx: DemoContext) -> None:
    con = ctx.console
    settings = load_settings(ctx.home)
    migrate(settings.database_url)
    db = connect(settings.database_url)
    keyring = KeyRing.from_home(ctx.home)
    ledger = LedgerStore(db, keyring)
    registry = Registry(db, keyring)

    cohort = ctx.participants
    replayed = replay(ledger.entries(kind=EXPORT_KIND), Monitor(MonitorConfig(cohort_size=cohort)), IncidentBook())
    con.print(f"Replayed {replayed.activities} export(s) from the ledger: {len(replayed.alerts)} alert(s).")

    cfg = SimConfig(cohort_size=cohort, applications=200, institutions=40, months=2, seed=ctx.seed)
    with con.status("Simulating two months of ordinary traffic and the April 2026 attacks..."):
        acts, researcher_months = ordinary_traffic(cfg)
        rng = np.random.default_rng(ctx.seed)
        for k, name in enumerate(ATTACKS):
            acts += attack(name, cfg, START + timedelta(days=20 + 6 * k, hours=11), rng)
        acts.sort(key=lambda a: a.at)
        monitor = Monitor(MonitorConfig(cohort_size=cohort))
        book = IncidentBook(track=True)
        result = drive(acts, monitor, book, researcher_months)

    table = Table(title=f"Monitoring: {result.activities:,} activities, {researcher_months:,} researcher-months")
    for col in ("attack", "detected", "time to stop", "cohort share left"):
        table.add_column(col)
    for o in result.attacks.values():
        tts = o.time_to_stop
        table.add_row(
            o.name,
            "yes" if o.detected else "[red]no[/]",
            "-" if tts is None else ("at once" if not tts else str(tts)),
            f"{o.share_left:.2%}",
        )
    con.print(table)
    con.print(
        f"Ordinary traffic: {result.false_alerts_per_1000:.2f} false alerts and "
        f"{result.false_suspensions_per_1000:.2f} false suspensions per 1,000 researcher-months."
    )

    coordinated = []
    for i in book.incidents:  # the first incident that suspended each leaking institution
        acted = i.scope == "institution" and i.target in LEAKERS and i.action in (SUSPEND, DISABLE)
        if acted and all(c.target != i.target for c in coordinated):
            coordinated.append(i)
    actions = [Action(SUSPEND, i.scope, i.target, i.id, f"incident {i.id}: {i.alerts[0].detail}") for i in coordinated]
    store = MonitorStore()
    with db.session() as s:
        fresh = not store.incidents(s, limit=1)
    if not fresh:
        book.drain()  # a home that already holds incidents keeps them; the simulated ones are shown, not saved
        con.print("The monitor store already holds incidents: this run's simulated incidents are not saved again.")
    done = enforce(registry, book, actions, store if fresh else None)
    for inc in coordinated:
        con.print(
            f"[bold]Incident {inc.id}[/] on {inc.target}: {inc.alerts[0].detector} ({inc.alerts[0].severity}) "
            f"at {inc.opened_at:%Y-%m-%d %H:%M}: {inc.alerts[0].detail}"
        )
    con.print(
        f"Ledger entries for the incidents: {done.ledgered}; suspended: "
        f"{', '.join(t for _, t in done.suspended) or 'none'}"
        + (f"; not acted on: {done.skipped}" if done.skipped else "")
    )
    ctx.state["monitor_result"] = result
    db.dispose()
