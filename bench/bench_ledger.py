"""Ledger figures: durable append throughput (single and batched) on SQLite and PostgreSQL, and the time
to verify a 1,000,000-entry ledger.

    .venv/bin/python -m bench.bench_ledger [--entries 1000000] [--no-postgres]

PostgreSQL is used when BIOWARDEN_TEST_DATABASE_URL (or BIOWARDEN_BENCH_DATABASE_URL) is set; each run
works in a fresh schema it drops afterwards. SQLite runs in WAL mode with synchronous=FULL (the store's
defaults), PostgreSQL with its default synchronous_commit=on: every figure is for committed, durable
entries.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from biowarden.keys import KeyRing
from biowarden.ledger import LedgerEvent
from biowarden.store import connect, migrate
from biowarden.store.ledger_store import LedgerStore

TARGET_APPEND = 5_000.0
TARGET_VERIFY_S = 10.0


def _event(i: int) -> LedgerEvent:
    return LedgerEvent(
        "policy.decision",
        f"user:researcher{i % 997}@uni.ac.uk",
        f"application:A-{i % 1000:04d}",
        {"action": "release.create", "fields": ["31-0.0", "34-0.0", "52-0.0"], "n": i},
        decision="allow" if i % 7 else "deny",
        reason="ALLOW_IN_SCOPE" if i % 7 else "DENY_SUSPENDED_INSTITUTION",
    )


def _single(ledger: LedgerStore, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        with ledger.db.session() as s:
            ledger.append(s, _event(i))
    return n / (time.perf_counter() - t)


def _batched(ledger: LedgerStore, n: int, batch: int, start: int = 0) -> float:
    t = time.perf_counter()
    for b in range(start, start + n, batch):
        with ledger.db.session() as s:
            ledger.append_many(s, [_event(i) for i in range(b, min(b + batch, start + n))])
    return n / (time.perf_counter() - t)


def _pg_url() -> str | None:
    return os.environ.get("BIOWARDEN_BENCH_DATABASE_URL") or os.environ.get("BIOWARDEN_TEST_DATABASE_URL")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000, help="ledger size for the verification figure")
    ap.add_argument("--single", type=int, default=1_000, help="single-entry transactions per store")
    ap.add_argument("--batched", type=int, default=50_000, help="entries appended in batches per store")
    ap.add_argument("--batch", type=int, default=1_000, help="entries per batch")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args(argv)
    keyring = KeyRing(bytes(range(32)))
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        db = connect(url)
        ledger = LedgerStore(db, keyring)
        r = _single(ledger, args.single)
        rows.append(
            (
                "SQLite (WAL, synchronous=FULL)",
                "append, 1 entry per transaction",
                f"{r:,.0f} entries/s",
                f">= {TARGET_APPEND:,.0f}/s (batched)",
            )
        )
        r = _batched(ledger, args.batched, args.batch, start=args.single)
        rows.append(
            (
                "SQLite (WAL, synchronous=FULL)",
                f"append_many, {args.batch} per transaction",
                f"{r:,.0f} entries/s",
                f">= {TARGET_APPEND:,.0f}/s",
            )
        )
        # grow the same ledger to the verification size with the real append path
        have = ledger.size()
        t = time.perf_counter()
        if args.entries > have:
            _batched(ledger, args.entries - have, 10_000, start=have)
        fill_s = time.perf_counter() - t
        rows.append(
            (
                "SQLite",
                f"fill to {args.entries:,} (append_many, 10,000 per transaction)",
                f"{(args.entries - have) / max(fill_s, 1e-9):,.0f} entries/s",
                "",
            )
        )
        report = ledger.verify()
        assert report.ok, report.problem
        rows.append(
            (
                "SQLite",
                f"verify {report.entries:,} entries, {report.checkpoints} checkpoints, {report.workers} processes",
                f"{report.seconds:.2f} s",
                f"<= {TARGET_VERIFY_S:.0f} s",
            )
        )
        db.dispose()

    pg = _pg_url()
    if pg and not args.no_postgres:
        from biowarden.store.db import scratch_schema

        with scratch_schema(pg, prefix="bench") as url:
            migrate(url)
            db = connect(url)
            ledger = LedgerStore(db, keyring)
            r = _single(ledger, args.single)
            rows.append(
                (
                    "PostgreSQL (synchronous_commit=on)",
                    "append, 1 entry per transaction",
                    f"{r:,.0f} entries/s",
                    f">= {TARGET_APPEND:,.0f}/s (batched)",
                )
            )
            r = _batched(ledger, args.batched, args.batch, start=args.single)
            rows.append(
                (
                    "PostgreSQL (synchronous_commit=on)",
                    f"append_many, {args.batch} per transaction",
                    f"{r:,.0f} entries/s",
                    f">= {TARGET_APPEND:,.0f}/s",
                )
            )
            have = ledger.size()
            t = time.perf_counter()
            if args.entries > have:
                _batched(ledger, args.entries - have, 10_000, start=have)
            fill_s = time.perf_counter() - t
            rows.append(
                (
                    "PostgreSQL",
                    f"fill to {args.entries:,} (append_many, 10,000 per transaction)",
                    f"{(args.entries - have) / max(fill_s, 1e-9):,.0f} entries/s",
                    "",
                )
            )
            report = ledger.verify()
            assert report.ok, report.problem
            rows.append(
                (
                    "PostgreSQL",
                    f"verify {report.entries:,} entries, {report.checkpoints} checkpoints, {report.workers} processes",
                    f"{report.seconds:.2f} s",
                    f"<= {TARGET_VERIFY_S:.0f} s",
                )
            )
            db.dispose()

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"biowarden ledger ({os.cpu_count()} CPUs; machine shared, figures contended)")
    for col in ("store", "operation", "measured", "target"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
