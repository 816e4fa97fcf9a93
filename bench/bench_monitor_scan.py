"""Monitor scans of a stored ledger: resuming from the kept detector state versus rebuilding it.

    python -m bench.bench_monitor_scan [--quick]

The simulator's ordinary traffic (500,000-participant cohort, 1,000 applications, 6 months; --quick: 50,000,
200, 2) is written to a SQLite store's ledger as exports, scanned once, then 1,000 more exports arrive and
are scanned incrementally (``biowarden monitor scan``: the detectors' state is loaded from the store and
only the new entries are read) and with ``--full`` (the state rebuilt from the whole ledger). Both file
the same alerts (the tests assert it); the table gives their times, CPU time and the kept state's size.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from biowarden.keys import KeyRing
from biowarden.ledger.events import LedgerEvent
from biowarden.monitor.activity import EXPORT_KIND
from biowarden.monitor.detectors import MonitorConfig
from biowarden.monitor.service import MonitorService
from biowarden.monitor.simulate import SimConfig, ordinary_traffic
from biowarden.registry import Registry
from biowarden.store import connect, migrate
from biowarden.store.monitor_store import MonitorStore

NEW = 1000


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    cfg = SimConfig(cohort_size=50_000, applications=200, months=2) if quick else SimConfig(months=6)
    acts, _ = ordinary_traffic(cfg)
    head, tail = acts[:-NEW], acts[-NEW:]
    with tempfile.TemporaryDirectory(prefix="bench-monitor-scan-") as d:
        url = f"sqlite:///{Path(d) / 'store.db'}"
        migrate(url)
        db = connect(url)
        try:
            reg = Registry(db, KeyRing(b"\x11" * 32))

            def append(batch) -> None:
                for i in range(0, len(batch), 5000):
                    with db.session() as s:
                        reg.audit.ledger.append_many(
                            s,
                            [
                                LedgerEvent(
                                    EXPORT_KIND,
                                    f"user:{a.researcher}",
                                    f"application:{a.application}",
                                    a.payload(),
                                    at=a.at,
                                )
                                for a in batch[i : i + 5000]
                            ],
                        )

            append(head)
            svc = MonitorService(reg, config=MonitorConfig(cohort_size=cfg.cohort_size))
            first, first_s, first_cpu = _timed(lambda: svc.scan(cfg.cohort_size, enforce_actions=False))
            append(tail)
            inc, inc_s, inc_cpu = _timed(lambda: svc.scan(cfg.cohort_size, enforce_actions=False))
            with db.session() as s:
                kept = len(MonitorStore().snapshot(s).state)
            full, full_s, full_cpu = _timed(lambda: svc.scan(cfg.cohort_size, enforce_actions=False, full=True))
        finally:
            db.dispose()
    assert inc.rebuilt is None and full.rebuilt == "--full" and full.alerts == 0
    print(
        f"\nMonitor scan: {len(head):,} exports in the ledger ({cfg.applications:,} applications, {cfg.months} "
        f"months, cohort {cfg.cohort_size:,}), then {NEW:,} new ones; SQLite store"
    )
    print(f"{'scan':52} {'wall':>8} {'CPU':>8} {'entries read':>13}")
    print(f"{'first scan (no state kept yet)':52} {first_s:>7.2f}s {first_cpu:>7.2f}s {first.entries:>13,}")
    print(f"{'next scan, resumed from the kept state':52} {inc_s:>7.2f}s {inc_cpu:>7.2f}s {inc.entries:>13,}")
    print(
        f"{'next scan with --full (state rebuilt from the ledger)':52} {full_s:>7.2f}s {full_cpu:>7.2f}s "
        f"{full.learned:>13,}"
    )
    print(f"kept detector state: {kept / 1e6:.1f} MB; alerts filed by the resumed scan: {inc.alerts}")


if __name__ == "__main__":
    main()
