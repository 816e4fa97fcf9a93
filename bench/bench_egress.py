"""Quota and coverage check latency with 1,000 applications' export history in the store.

The store holds the history of 1,000 applications (100 institutions, 2 researchers each application)
over the last 30 days: ``--exports`` exports per application (usage rows inside every rolling window) and
exact coverage bitmaps per (institution | application, field) built from those exports' participants.
Then ``--checks`` new exports (2,000 participants x 10 fields, random applications) are checked one at a
time, each in its own transaction as the release pipeline does it: the pre-check (``record=False``: caps,
every quota window, coverage projected with roaring bitmaps) and the accounting check (``record=True``:
the same, then usage and coverage written). Also timed: building the release's monitor pre-check from the
same history (``release.pipeline.monitor_with_history``). SQLite always; PostgreSQL too when
``BIOWARDEN_TEST_DATABASE_URL`` (or ``--postgres URL``) is set (a scratch schema, dropped afterwards).

Usage: python -m bench.bench_egress [--applications N] [--exports E] [--checks C] [--postgres URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

COHORT = 500_000
FIELDS = [f"{f}-0.0" for f in range(1, 101)]
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def populate(db, applications: int, exports: int, seed: int = 1) -> dict[str, tuple[str, str]]:
    """The history, written in bulk (usage rows, per-field coverage bitmaps and scope totals)."""
    from pyroaring import BitMap

    from biowarden.egress.coverage import serialise
    from biowarden.store.egress_tables import EgressBitmap, EgressCoverage, EgressScope, EgressUsage

    rng = np.random.default_rng(seed)
    apps = {f"A-{i:04d}": (f"Institute {i % 100:03d}", f"r{i}-0@inst{i % 100}.ac.uk") for i in range(applications)}
    cover: dict[tuple[str, str], dict[str, BitMap]] = {}
    usage_rows = []
    for app, (inst, researcher) in apps.items():
        for e in range(exports):
            at = NOW - timedelta(seconds=int(rng.integers(60, 30 * 86_400)))
            n = int(rng.integers(200, 3_000))
            start = int(rng.integers(1, COHORT - n))
            fields = [FIELDS[int(k)] for k in rng.choice(len(FIELDS), size=int(rng.integers(5, 20)), replace=False)]
            who = researcher if e % 2 == 0 else researcher.replace("-0@", "-1@")
            usage_rows.append(
                {
                    "at": at,
                    "researcher": who,
                    "application": app,
                    "institution": inst,
                    "rows": n,
                    "cells": n * len(fields),
                    "bytes": n * len(fields) * 8,
                    "release_id": "",
                }
            )
            bm = BitMap(range(start, start + n))
            for key in (("institution", inst), ("application", app)):
                per = cover.setdefault(key, {})
                for f in fields:
                    per[f] = per.get(f, BitMap()) | bm
    with db.session() as s:
        s.execute(EgressUsage.__table__.insert(), usage_rows)
        cov_rows, scope_rows, bitmap_rows = [], [], []
        for (kind, sid), per in cover.items():
            union = BitMap.union(*per.values())
            scope_rows.append(
                {
                    "scope_kind": kind,
                    "scope_id": sid,
                    "participants": len(union),
                    "cells": sum(len(b) for b in per.values()),
                    "union_bitmap": serialise(union),
                }
            )
            blobs: dict[str, bytes] = {}
            for f, b in per.items():
                blob = serialise(b)
                digest = hashlib.sha256(blob).hexdigest()
                blobs[digest] = blob
                cov_rows.append(
                    {"scope_kind": kind, "scope_id": sid, "field": f, "bitmap_digest": digest, "participants": len(b)}
                )
            bitmap_rows.extend(
                {"scope_kind": kind, "scope_id": sid, "digest": d, "bitmap": blob} for d, blob in blobs.items()
            )
        s.execute(EgressScope.__table__.insert(), scope_rows)
        for rows, table in ((cov_rows, EgressCoverage.__table__), (bitmap_rows, EgressBitmap.__table__)):
            for i in range(0, len(rows), 5_000):
                s.execute(table.insert(), rows[i : i + 5_000])
        s.execute(sa.text("ANALYZE"))  # the planner's statistics, as autovacuum gathers them after a bulk load
    return apps


def time_checks(db, apps: dict[str, tuple[str, str]], checks: int, record: bool, seed: int = 2) -> np.ndarray:
    from biowarden.egress.limits import EgressPolicy, ExportRequest
    from biowarden.egress.service import EgressControl

    control = EgressControl(EgressPolicy(), cohort_size=COHORT, cohort_fields=len(FIELDS))
    rng = np.random.default_rng(seed)
    names = sorted(apps)
    out = np.empty(checks)
    decisions: dict[str, int] = {}
    for i in range(checks):
        app = names[int(rng.integers(len(names)))]
        inst, researcher = apps[app]
        start = int(rng.integers(1, COHORT - 2_000))
        req = ExportRequest(
            researcher=researcher,
            application=app,
            institution=inst,
            participants=np.arange(start, start + 2_000, dtype=np.int64),
            fields=tuple(FIELDS[int(k)] for k in rng.choice(len(FIELDS), size=10, replace=False)),
            bytes=160_000,
            at=NOW + timedelta(seconds=i),
        )
        t0 = time.perf_counter()
        with db.session() as s:
            d = control.check(s, req, record=record)
        out[i] = time.perf_counter() - t0
        decisions[d.reason] = decisions.get(d.reason, 0) + 1
    return out, decisions


def time_monitor(db, apps: dict[str, tuple[str, str]], n: int, seed: int = 3) -> np.ndarray:
    from biowarden.monitor.detectors import MonitorConfig
    from biowarden.release.pipeline import monitor_with_history

    rng = np.random.default_rng(seed)
    names = sorted(apps)
    cfg = MonitorConfig(cohort_size=COHORT)
    out = np.empty(n)
    for i in range(n):
        app = names[int(rng.integers(len(names)))]
        t0 = time.perf_counter()
        monitor_with_history(db, cfg, apps[app][1], app, NOW + timedelta(hours=1))
        out[i] = time.perf_counter() - t0
    return out


def run_store(label: str, url: str, args) -> list[tuple]:
    from biowarden.store import connect, migrate

    migrate(url)
    db = connect(url)
    t0 = time.perf_counter()
    apps = populate(db, args.applications, args.exports)
    setup = time.perf_counter() - t0
    rows = []
    pre, dec_pre = time_checks(db, apps, args.checks, record=False)
    rec, dec_rec = time_checks(db, apps, args.checks, record=True, seed=4)
    mon = time_monitor(db, apps, max(50, args.checks // 10))
    for what, lat, dec in (
        ("pre-check (record=False)", pre, dec_pre),
        ("check + account (record=True)", rec, dec_rec),
        ("monitor pre-check history", mon, {}),
    ):
        rows.append((label, what, lat, dec))
    db.dispose()
    print(f"{label}: history of {args.applications:,} applications x {args.exports} exports written in {setup:.1f} s")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_egress", description=__doc__.splitlines()[0])
    ap.add_argument("--applications", type=int, default=1_000)
    ap.add_argument("--exports", type=int, default=20, help="exports per application in the last 30 days")
    ap.add_argument("--checks", type=int, default=500)
    ap.add_argument("--postgres", default=os.environ.get("BIOWARDEN_TEST_DATABASE_URL"))
    args = ap.parse_args(argv)

    results = []
    folder = Path(tempfile.mkdtemp(prefix="bench-egress-"))
    try:
        results += run_store("SQLite", f"sqlite:///{folder / 'store.db'}", args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.postgres:
        from biowarden.store.db import scratch_schema

        with scratch_schema(args.postgres, prefix="bench_egress") as url:
            results += run_store("PostgreSQL", url, args)
    print(
        f"egress checks with {args.applications:,} applications' history ({args.applications * args.exports:,} "
        f"exports in 30 days), export of 2,000 participants x 10 fields; {args.checks} checks each; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'store':<11} {'check':<32} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}  decisions")
    for label, what, lat, dec in results:
        ms = lat * 1000
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        shown = ", ".join(f"{k} {v}" for k, v in sorted(dec.items()))
        print(f"{label:<11} {what:<32} {p50:8.1f} {p95:8.1f} {p99:8.1f} {ms.max():8.1f}  {shown}")


if __name__ == "__main__":
    main()
