"""Policy decision latency (p50/p99) with 1,000 applications and 10,000 researchers in the store.

Three figures per store (SQLite file, PostgreSQL on 127.0.0.1 when reachable):
- ``decide()`` alone on prepared dataclasses (the pure decision point);
- the decision with its inputs read fresh from the store (principal, application, suspensions), no write;
- the full authorised request as the API runs it: lock, read, decide, ledger append, commit.

The store is filled with SQLAlchemy Core bulk inserts (10,000 researchers through the service would take
minutes of ledger appends and measure nothing about decisions). Run: .venv/bin/python -m bench.bench_policy
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from biowarden.keys import KeyRing
from biowarden.policy import decide
from biowarden.registry.auth import Identity, token_hash
from biowarden.registry.service import Registry
from biowarden.store import connect, migrate
from biowarden.store.db import scratch_schema
from biowarden.store.registry_tables import (
    AccountRow,
    ApiTokenRow,
    ApplicationMemberRow,
    ApplicationRow,
    InstitutionRow,
    ResearcherRow,
    SuspensionRow,
)

N_INST, N_RESEARCHERS, N_APPS, MEMBERS, N_ACCOUNTS = 100, 10_000, 1_000, 10, 200
PURE_CALLS = int(os.environ.get("BENCH_POLICY_PURE", "100000"))
STORE_CALLS = int(os.environ.get("BENCH_POLICY_CALLS", "400"))
PG_URL = os.environ.get("BIOWARDEN_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FIELDS = [str(f) for f in (31, 34, 52, 53, 54, 21022, 189, 21000, 50, 21002, 21001, 4080, 4079, 102, 30690)]


def fill(db) -> list[tuple[int, int, str]]:
    """Bulk-load the registry; returns (account id, token id, application id) of member accounts."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    with db.session() as s:
        s.execute(
            sa.insert(InstitutionRow),
            [
                {
                    "id": i + 1,
                    "name": f"Institute {i:03d}",
                    "status": "active",
                    "created_at": now,
                    "created_by": "bench",
                }
                for i in range(N_INST)
            ],
        )
        s.execute(
            sa.insert(ResearcherRow),
            [
                {
                    "id": r + 1,
                    "email": f"r{r:05d}@inst{r % N_INST:03d}.ac.uk",
                    "name": "",
                    "institution_id": r % N_INST + 1,
                    "status": "active",
                    "attested_on": date.today(),
                    "created_at": now,
                }
                for r in range(N_RESEARCHERS)
            ],
        )
        apps, members = [], []
        for a in range(N_APPS):
            inst = a % N_INST
            apps.append(
                {
                    "id": f"A-{a:04d}",
                    "title": f"Study {a}",
                    "purpose": "",
                    "institution_id": inst + 1,
                    "pi_id": None,
                    "fields": rng.sample(FIELDS, 8),
                    "starts_on": date(2026, 1, 1),
                    "expires_on": date(2036, 1, 1),
                    "status": "approved",
                    "created_at": now,
                    "approved_at": now,
                }
            )
            pool = list(range(inst, N_RESEARCHERS, N_INST))  # researchers of this institution
            for r in rng.sample(pool, MEMBERS):
                members.append({"application_id": f"A-{a:04d}", "researcher_id": r + 1})
        s.execute(sa.insert(ApplicationRow), apps)
        s.execute(sa.insert(ApplicationMemberRow), members)
        s.execute(
            sa.insert(SuspensionRow),
            [  # a realistic history: lifted suspensions and a few active ones
                {
                    "scope": "application",
                    "target": f"A-{a:04d}",
                    "kind": "suspension",
                    "reason": "audit",
                    "actor": "bench",
                    "created_at": now,
                    "lifted_at": now if a % 10 else None,
                }
                for a in range(0, N_APPS, 7)
            ],
        )
        picks = rng.sample(members, N_ACCOUNTS)
        s.execute(
            sa.insert(AccountRow),
            [
                {
                    "id": i + 1,
                    "username": f"acct{i}",
                    "password_hash": None,
                    "roles": ["researcher"],
                    "researcher_id": m["researcher_id"],
                    "status": "active",
                    "created_at": now,
                }
                for i, m in enumerate(picks)
            ],
        )
        s.execute(
            sa.insert(ApiTokenRow),
            [
                {
                    "id": i + 1,
                    "token_hash": token_hash(f"bw_bench_{i}"),
                    "prefix": "bw_bench",
                    "account_id": i + 1,
                    "application_id": None,
                    "label": "",
                    "created_at": now,
                    "expires_at": datetime(2036, 1, 1, tzinfo=UTC),
                }
                for i in range(N_ACCOUNTS)
            ],
        )
        # the planner's statistics, as PostgreSQL's autovacuum gathers them within a minute of a bulk load (right
        # after one the planner takes the 10,000-row researchers table for a few hundred rows and scans it)
        s.execute(sa.text("ANALYZE"))
    return [(i + 1, i + 1, m["application_id"]) for i, m in enumerate(picks)]


def pct(samples: list[float]) -> tuple[float, float]:
    xs = sorted(samples)
    return statistics.median(xs), xs[min(len(xs) - 1, int(0.99 * len(xs)))]


def measure(db, keyring) -> dict[str, tuple[float, float]]:
    picks = fill(db)
    reg = Registry(db, keyring)
    rng = random.Random(11)
    out: dict[str, tuple[float, float]] = {}
    # inputs read fresh from the store, decision, no write (rolled back)
    samples = []
    for _ in range(STORE_CALLS):
        acct, tok, app_id = rng.choice(picks)
        ident = Identity(name=f"acct{acct - 1}", account_id=acct, token_id=tok)
        t = time.perf_counter()
        with db.sessions() as s:
            now = datetime.now(UTC)
            row = s.get(ApplicationRow, app_id)
            from biowarden.policy import Resource

            res = Resource("application", app_id, application=reg._app_info(s, row), fields=("31",))
            p = reg._principal(s, ident, now)
            d = decide(p, "application.access", res, reg._context(s, p, "application.access", res, now))
            s.rollback()
        samples.append((time.perf_counter() - t) * 1000)
        assert d.reason in ("ALLOW", "DENY_FIELD_OUT_OF_SCOPE", "DENY_SUSPENDED_APPLICATION"), d
    out["decide + store reads"] = pct(samples)
    # the full request path: lock, read, decide, ledger append, commit
    samples = []
    for _ in range(STORE_CALLS):
        acct, tok, app_id = rng.choice(picks)
        ident = Identity(name=f"acct{acct - 1}", account_id=acct, token_id=tok)
        t = time.perf_counter()
        reg.check_access(ident, app_id, ["31"])
        samples.append((time.perf_counter() - t) * 1000)
    out["full (+ ledger append, commit)"] = pct(samples)
    # the pure decision point on inputs captured from the store
    with db.sessions() as s:
        now = datetime.now(UTC)
        acct, tok, app_id = picks[0]
        ident = Identity(name="acct0", account_id=acct, token_id=tok)
        from biowarden.policy import Resource

        res = Resource(
            "application", app_id, application=reg._app_info(s, s.get(ApplicationRow, app_id)), fields=("31", "34")
        )
        p = reg._principal(s, ident, now)
        ctx = reg._context(s, p, "application.access", res, now)
    samples = []
    for _ in range(PURE_CALLS):
        t = time.perf_counter_ns()
        decide(p, "application.access", res, ctx)
        samples.append((time.perf_counter_ns() - t) / 1e6)
    out["decide() alone"] = pct(samples)
    return out


def main() -> None:
    console = Console()
    keyring = KeyRing(bytes.fromhex("22" * 32))
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate(url)
        db = connect(url)
        results["SQLite"] = measure(db, keyring)
        db.dispose()
    try:
        with scratch_schema(PG_URL, prefix="bench") as url:
            migrate(url)
            db = connect(url)
            results["PostgreSQL"] = measure(db, keyring)
            db.dispose()
    except sa.exc.OperationalError as exc:
        console.print(f"[yellow]PostgreSQL not reachable ({exc.__class__.__name__}); SQLite only[/]")
    table = Table(title=f"policy decision latency, ms ({N_APPS:,} applications, {N_RESEARCHERS:,} researchers)")
    table.add_column("measure")
    for store in results:
        table.add_column(f"{store} p50")
        table.add_column(f"{store} p99")
    for measure_name in next(iter(results.values())):
        row = [measure_name]
        for store in results:
            p50, p99 = results[store][measure_name]
            row += [f"{p50:.3f}", f"{p99:.3f}"]
        table.add_row(*row)
    console.print(table)
    console.print(
        f"calls: decide() alone {PURE_CALLS:,}; store paths {STORE_CALLS:,} each; machine: "
        f"{os.cpu_count()} cores, shared"
    )


if __name__ == "__main__":
    main()
