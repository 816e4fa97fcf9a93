"""Monitor figures: the traffic simulator's attacks and false alerts, and detector throughput.

    python -m bench.bench_monitor [--quick]

1. The simulator (500,000-participant cohort, 1,000 applications, 6 months of ordinary traffic plus five
   attacks): for each attack, detected or not, time from the first malicious event to the stop, and the
   share of the cohort that left before it; false alerts and false suspensions per 1,000 researcher-months.
2. Throughput: 1,000,000 activities (exports carrying participant bitmaps, and denied requests) replayed
   through the detectors and the incident ladder; and the cost of decoding activities from ledger payloads.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import numpy as np
from pyroaring import BitMap

from biowarden.monitor.activity import EXPORT_KIND, Activity, from_event
from biowarden.monitor.detectors import Monitor, MonitorConfig
from biowarden.monitor.incidents import IncidentBook
from biowarden.monitor.simulate import START, SimConfig, simulate

TARGETS = {
    "bulk_pull": "stopped before any leaves",
    "coordinated_three_institutions": "stopped before 10% leaves",
}


def _fmt(td: timedelta | None) -> str:
    if td is None:
        return "-"
    hours = td.total_seconds() / 3600
    return "at once" if hours == 0 else f"{hours:.1f} h"


def simulator_table(cfg: SimConfig) -> None:
    t0 = time.perf_counter()
    res = simulate(cfg)
    secs = time.perf_counter() - t0
    print(f"\nSimulator: {cfg.applications:,} applications, {cfg.months} months, cohort {cfg.cohort_size:,}; "
          f"{res.activities:,} activities, {res.researcher_months:,} researcher-months, {secs:.1f} s")
    print(f"{'attack':34} {'detected':>8} {'time to stop':>13} {'cohort share left':>18} {'cells left':>14}  target")
    for o in res.attacks.values():
        print(f"{o.name:34} {'yes' if o.detected else 'NO':>8} {_fmt(o.time_to_stop):>13} {o.share_left:>17.2%} "
              f"{o.cells_left:>14,}  {TARGETS.get(o.name, 'detected')}")
    print(f"false alerts (warn or worse) per 1,000 researcher-months: {res.false_alerts_per_1000:.2f}")
    print(f"false suspensions per 1,000 researcher-months: {res.false_suspensions_per_1000:.2f}  (target < 1)")


def throughput(n_events: int, cohort: int = 500_000) -> None:
    rng = np.random.default_rng(1)
    n_res = 5000
    pops = [np.sort(rng.choice(cohort, int(rng.integers(50, 2000)), replace=False)).astype(np.uint32)
            for _ in range(n_res // 5)]
    bitmaps = [BitMap(p) for p in pops]
    acts: list[Activity] = []
    t = START
    for _ in range(n_events):
        t += timedelta(seconds=int(rng.integers(1, 30)))
        r = int(rng.integers(0, n_res))
        app = r // 5
        if rng.random() < 0.1:
            acts.append(Activity(at=t, researcher=f"r{r}", application=f"A{app}", institution=f"I{app % 150}",
                                 kind="denied"))
            continue
        at = t.replace(hour=9 + (t.hour % 9))
        bm = bitmaps[app]
        acts.append(Activity(at=at, researcher=f"r{r}", application=f"A{app}", institution=f"I{app % 150}",
                             rows=len(bm), fields=12, participants=bm, network=f"n{app}", client="rstudio"))
    acts.sort(key=lambda a: a.at)
    monitor = Monitor(MonitorConfig(cohort_size=cohort))
    book = IncidentBook()
    t0 = time.perf_counter()
    for act in acts:
        alerts = monitor.precheck(act) if act.kind == "export" else []
        if not any(a.block for a in alerts):
            alerts += monitor.observe(act)
        if alerts:
            book.add(alerts, {act.researcher: monitor.risk(act.researcher, act.at)})
    secs = time.perf_counter() - t0
    sample = [a for a in acts[:20000] if a.kind == "export"]
    payloads = [a.payload() for a in sample]
    t1 = time.perf_counter()
    for a, p in zip(sample, payloads, strict=True):
        from_event(EXPORT_KIND, a.at, p)
    decode_us = (time.perf_counter() - t1) / len(sample) * 1e6
    print(f"\nThroughput: {n_events:,} activities (90% exports with participant bitmaps of 50-2,000 eids, 10% "
          f"denied requests) through precheck, detectors and the ladder")
    print(f"{'measure':48} {'biowarden':>12} {'target':>10}")
    print(f"{'replay time':48} {secs:>11.1f}s {'<= 10 s':>10}")
    print(f"{'events per second':48} {n_events / secs:>12,.0f}")
    print(f"{'decoding an export from its ledger payload':48} {decode_us:>10.1f}us")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    simulator_table(SimConfig(applications=300, months=2) if quick else SimConfig())
    throughput(100_000 if quick else 1_000_000)


if __name__ == "__main__":
    main()
