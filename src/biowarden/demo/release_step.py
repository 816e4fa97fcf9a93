"""Demo step: every application gets its data through the release pipeline; the leakers' bulk pulls are refused.

1. Registers five institutions (the three of April 2026 and two honest ones), a researcher with an account
   for each, and an approved application each (skipped where the registry already has them).
2. Each application receives a slice of the cohort through ``create_release`` (policy, caps and quotas, the
   monitor's hard rules, risk gate, pseudonyms, fingerprint, ledger).
3. The three leaking institutions also try a whole-cohort pull and a bulk slice: refused, with the reason
   and the smallest change that would pass, each refusal in the ledger.
4. A "listing sample" is built from the three copies they did obtain (IDs dropped, a column renamed,
   values rounded, rows shuffled) and traced back through the release store.

Leaves ``ctx.state["leaked_copies"]`` (paths of the three obtained copies), ``ctx.state["leak_file"]``,
``ctx.state["releases"]`` (manifests) and ``ctx.state["trace_verdict"]``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.table import Table

from biowarden.cohort import load_cohort
from biowarden.config import load_settings
from biowarden.demo import DemoContext
from biowarden.keys import KeyRing
from biowarden.registry.auth import LOCAL_OPERATOR as OP
from biowarden.registry.errors import Conflict
from biowarden.registry.service import Registry
from biowarden.release import PSEUDONYM_COLUMN, ReleaseDenied, StoreCatalog, create_release
from biowarden.store import connect, migrate
from biowarden.trace import attacks
from biowarden.trace.accuse import trace_table

LEAKERS = ("Northbridge Institute", "Eastgate University", "Westmoor Institute")
HONEST = ("Southfield College", "Kingsbury Medical School")
SCOPE = "31,34,54,50,21002,21001,48,49,4080,4079,102,30690,30740,30760,30780"
RELEASE_FIELDS = ["31", "34", "54", "50", "21002", "21001", "48", "49", "4080", "4079", "102", "30690", "30760"]
SLICE_SHARE = 0.08  # each application's study sample: under the monitor's 10% bulk rule


def _setup(reg: Registry, today: date) -> list[tuple[str, str, str]]:
    """(institution, researcher e-mail, application id) for every demo application."""
    out = []
    for i, inst in enumerate((*LEAKERS, *HONEST)):
        slug = inst.split()[0].lower()
        email, app = f"pi@{slug}.ac.uk", f"A-{101 + i:04d}"
        steps = [
            lambda inst=inst: reg.add_institution(OP, inst),
            lambda inst=inst, email=email: reg.add_researcher(OP, email, inst, name=f"PI of {inst}"),
            lambda inst=inst, email=email, app=app: reg.add_application(
                OP,
                app,
                inst,
                SCOPE,
                title=f"Cardiometabolic study ({inst})",
                pi=email,
                expires_on=today + timedelta(days=365),
            ),
            lambda email=email, slug=slug: reg.add_account(OP, f"pi-{slug}", ["researcher"], researcher=email),
            lambda app=app: reg.approve_application(OP, app),
        ]
        for step in steps:
            with contextlib.suppress(Conflict):  # already registered by an earlier step or run
                step()
        out.append((inst, email, app))
    return out


def run(ctx: DemoContext) -> None:
    console = ctx.console
    settings = load_settings(ctx.home)
    migrate(settings.database_url)
    db = connect(settings.database_url)
    keyring = KeyRing.from_home(settings.home)
    reg = Registry(db, keyring)
    now = datetime.now(UTC).replace(microsecond=0)
    apps = _setup(reg, now.date())
    parquet, dictionary = load_cohort(ctx.home)
    master_eids = np.sort(pq.read_table(parquet, columns=["eid"]).column("eid").to_numpy())
    n = master_eids.size
    per_app = max(50, int(n * SLICE_SHARE))
    out_dir = ctx.home / "releases"
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(ctx.seed)
    order = rng.permutation(master_eids)  # disjoint study samples (the leakers' slices are disjoint too)

    table = Table("application", "institution", "outcome", "rows", "generalised", "risk", "ledger")
    manifests, leaked = [], []
    notes: dict[str, int] = {}  # each distinct refusal once, below the table
    for i, (inst, email, app) in enumerate(apps):
        leaker = inst in LEAKERS
        attempts = []
        if leaker:
            attempts.append(("whole cohort, whole scope", None, None))
            attempts.append(("bulk slice (30%)", None, order[: int(0.3 * n)]))
        attempts.append(("study sample", RELEASE_FIELDS, order[i * per_app : (i + 1) * per_app]))
        for what, fields, eids in attempts:
            path = out_dir / f"{app}-{what.split()[0]}-{now.strftime('%Y%m%dT%H%M%S')}.parquet"
            try:
                m = create_release(
                    db,
                    keyring,
                    ctx.home,
                    application_id=app,
                    researcher=email,
                    fields=fields,
                    participants=eids,
                    out_path=path,
                    now=now,
                )
            except ReleaseDenied as d:
                why = f"{d.reason}: {d.detail}" + (f" ({d.suggestion})" if d.suggestion else "")
                notes.setdefault(why, len(notes) + 1)
                table.add_row(
                    app,
                    inst,
                    f"[red]refused[/] {what} [{notes[why]}]",
                    "-",
                    "-",
                    "-",
                    str(d.ledger_index),
                )
                continue
            manifests.append(m)
            if leaker:
                leaked.append(path)
            levels = ", ".join(f"{q.split('-')[0]}@{lv}" for q, lv in m.levels.items())
            table.add_row(
                app,
                inst,
                f"[green]released[/] {what}",
                f"{m.rows:,}",
                levels,
                f"{m.risk.get('prosecutor_highest', 0):.3f}",
                str(m.ledger_index),
            )
    console.print(table)
    for why, k in notes.items():
        console.print(f"  [{k}] {why}", markup=False, highlight=False)
    ctx.state["releases"] = [m.to_dict() for m in manifests]
    ctx.state["leaked_copies"] = [str(p) for p in leaked]

    # the leaked listing sample: ~40-50 rows from each obtained copy, IDs dropped, a column renamed,
    # values rounded, rows shuffled
    if len(leaked) < len(LEAKERS):
        console.print("[yellow]not every leaking institution obtained a copy: no listing sample to trace[/]")
        db.dispose()
        return
    rows_each = 45
    parts = [attacks.subsample(pq.read_table(p), rows_each, seed=ctx.seed + j) for j, p in enumerate(leaked)]
    leak = attacks.merge(parts, "union")
    leak = attacks.strip_ids(leak, [PSEUDONYM_COLUMN])
    leak = attacks.round_columns(leak, {"21002-0.0": 0, "30690-0.0": 1})
    leak = attacks.rename_columns(leak, {"50-0.0": "height_cm", "21002-0.0": "weight"})
    leak = attacks.shuffle_rows(leak, seed=ctx.seed)
    leak_dir = ctx.home / "leak"
    leak_dir.mkdir(exist_ok=True)
    leak_file = leak_dir / "listing_sample.csv"
    pacsv.write_csv(leak, leak_file)
    ctx.state["leak_file"] = str(leak_file)
    console.print(f"leaked listing sample: {leak.num_rows} rows x {leak.num_columns} columns -> {leak_file}")

    released = sorted({c for m in manifests for c in m.fields})
    master = pq.read_table(parquet, columns=["eid", *released])  # only what ever left: less memory at 500k
    verdict = trace_table(pacsv.read_csv(leak_file), master, dictionary, StoreCatalog(db), keyring)
    ctx.state["trace_verdict"] = verdict.to_dict()
    console.print(
        f"trace: {verdict.rows_read} rows read, {verdict.rows_linked} linked, "
        f"{verdict.candidates_scored} candidates scored"
    )
    for a in verdict.accused:
        console.print(f"  [bold red]accused[/] {a.application} ({a.institution}): p = {a.p_value:.2e}")
    named = {a.institution for a in verdict.accused}
    missed = [x for x in LEAKERS if x not in named]
    wrong = [x for x in named if x not in LEAKERS]
    console.print(
        f"  leakers named: {len(LEAKERS) - len(missed)}/{len(LEAKERS)}; honest institutions accused: {len(wrong)}"
    )
    db.dispose()


__all__ = ["run"]
