"""Demo step: the registry. Institutions, researchers and applications are registered; the policy answers
requests (allowed, and refused with a reason); one application is suspended and reinstated; every change
and decision is in the ledger, which verifies.

Registers the five institutions the release step uses (the three of April 2026 and two honest ones) with
the same PIs, accounts and applications (A-0101 ... A-0105), plus a second member per application and the
custodian's staff accounts. Leaves ``ctx.state["registry"]``: institutions, applications, leakers and the
ledger's verification report.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from rich.table import Table

from biowarden.demo import DemoContext

LEAKERS = ("Northbridge Institute", "Eastgate University", "Westmoor Institute")
HONEST = ("Southfield College", "Kingsbury Medical School")
SCOPE = "31,34,54,50,21002,21001,48,49,4080,4079,102,30690,30740,30760,30780"


def run(ctx: DemoContext) -> None:
    from biowarden.config import load_settings
    from biowarden.keys import KeyRing
    from biowarden.registry import LOCAL_OPERATOR as OP
    from biowarden.registry import Conflict, Denied, Registry
    from biowarden.store import connect, migrate

    settings = load_settings(ctx.home)
    migrate(settings.database_url)
    db = connect(settings.database_url)
    try:
        reg = Registry(db, KeyRing.from_home(ctx.home))
        today = datetime.now(UTC).date()

        def once(step) -> None:
            with contextlib.suppress(Conflict):  # already registered by an earlier run
                step()

        # staff: one admin and one committee member (a single-member committee approves alone)
        once(lambda: reg.add_account(OP, "custodian", ["custodian_admin", "auditor"]))
        once(lambda: reg.add_account(OP, "committee-chair", ["access_committee"]))
        apps = []
        for i, inst in enumerate((*LEAKERS, *HONEST)):
            slug = inst.split()[0].lower()
            pi, member, app_id = f"pi@{slug}.ac.uk", f"analyst@{slug}.ac.uk", f"A-{101 + i:04d}"
            once(lambda inst=inst: reg.add_institution(OP, inst))
            once(lambda inst=inst, pi=pi: reg.add_researcher(OP, pi, inst, name=f"PI of {inst}"))
            once(lambda inst=inst, m=member: reg.add_researcher(OP, m, inst, name=f"Analyst at {inst}"))
            once(
                lambda inst=inst, pi=pi, m=member, app_id=app_id: reg.add_application(
                    OP,
                    app_id,
                    inst,
                    SCOPE,
                    title=f"Cardiometabolic study ({inst})",
                    pi=pi,
                    members=[m],
                    purpose="Cardiometabolic risk factors and outcomes",
                    expires_on=today + timedelta(days=365),
                )
            )
            once(lambda slug=slug, pi=pi: reg.add_account(OP, f"pi-{slug}", ["researcher"], researcher=pi))
            once(lambda slug=slug, m=member: reg.add_account(OP, f"analyst-{slug}", ["researcher"], researcher=m))
            once(lambda app_id=app_id: reg.approve_application(OP, app_id))
            apps.append((inst, app_id, pi))

        table = Table("application", "institution", "status", "members", "fields")
        for inst, app_id, _pi in apps:
            a = reg.get_application(OP, app_id)
            table.add_row(a.id, inst, a.status, str(len(a.members)), str(len(a.fields)))
        ctx.console.print(table)

        # the policy answers: a member within scope, out of scope, and a researcher of another institution
        pi_nb = reg.create_token(OP, username="pi-northbridge", days=1, label="demo")
        ident = reg.authenticate(pi_nb.token)
        asks = [
            ("pi@northbridge.ac.uk", "A-0101", ["31", "34", "50-0.0"]),
            ("pi@northbridge.ac.uk", "A-0101", ["31", "41270"]),
            ("pi@northbridge.ac.uk", "A-0104", ["31"]),
        ]
        decisions = Table("researcher", "application", "fields", "decision", "reason", "ledger entry")
        for who, app_id, fields in asks:
            d = reg.check_access(ident, app_id, fields)
            decisions.add_row(
                who, app_id, ",".join(fields), "allow" if d.allow else "deny", d.reason, str(d.ledger_index)
            )
        # suspend one application, show the refusal on the very next request, reinstate it
        with contextlib.suppress(Conflict):
            reg.reinstate(OP, "application", "A-0104", "clearing an earlier demo run")
        s = reg.suspend(OP, "application", "A-0104", "annual attestation of a member overdue (demo)")
        pi_sf = reg.authenticate(reg.create_token(OP, username="pi-southfield", days=1, label="demo").token)
        d = reg.check_access(pi_sf, "A-0104", ["31"])
        decisions.add_row(
            "pi@southfield.ac.uk",
            "A-0104 (suspended)",
            "31",
            "allow" if d.allow else "deny",
            d.reason,
            str(d.ledger_index),
        )
        reg.reinstate(OP, "application", "A-0104", "attestation received")
        d = reg.check_access(pi_sf, "A-0104", ["31"])
        decisions.add_row(
            "pi@southfield.ac.uk",
            "A-0104 (reinstated)",
            "31",
            "allow" if d.allow else "deny",
            d.reason,
            str(d.ledger_index),
        )
        with contextlib.suppress(Denied):
            reg.add_institution(ident, "Rogue Institute")  # a researcher cannot register institutions
        ctx.console.print(decisions)
        ctx.console.print(
            f"Suspension #{s.id} of A-0104 took effect at ledger entry {s.ledger_index}; "
            "reinstated with a reason. The researcher's refused attempt to register an "
            "institution is in the ledger as DENY_ROLE."
        )

        report = reg.audit.ledger.verify()
        ctx.console.print(
            f"ledger verify: {'[green]intact[/]' if report.ok else '[red]FAILED[/]'} "
            f"({report.entries} entries, {report.checkpoints} signed checkpoints)"
        )
        if not report.ok:
            raise RuntimeError(f"the ledger does not verify: {report.problem}")
        ctx.state["registry"] = {
            "institutions": [inst for inst, _a, _p in apps],
            "applications": {app_id: inst for inst, app_id, _p in apps},
            "leakers": list(LEAKERS),
            "ledger": report.to_dict(),
        }
    finally:
        db.dispose()
