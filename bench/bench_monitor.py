"""Monitor figures: the traffic simulator's attacks and false alerts, and detector throughput.

    python -m bench.bench_monitor [--quick] [--simulator | --throughput] [--against REV]

(``--simulator`` or ``--throughput`` runs only that part.)

1. The simulator (500,000-participant cohort, 1,000 applications, 6 months of ordinary traffic plus five
   attacks): for each attack, detected or not, time from the first malicious event to the stop, and the
   share of the cohort that left before it; false alerts and false suspensions per 1,000 researcher-months.
2. Throughput: 1,000,000 ledger entries (exports carrying participant bitmaps, and denied requests) as the
   store yields them (canonical JSON text), decoded and replayed through precheck, the detectors and the
   incident ladder, by the batch replay (its fast path settles the entries no check can fire on) and one
   activity at a time (the same results, asserted); and the cost of decoding an export from its ledger
   payload, whole or only what the detectors read.
3. ``--against REV`` (a git revision of this repository whose monitor has what this bench imports) runs
   only this: the batch replay's CPU time with this tree's code against REV's. Two processes, one on each
   code, replay the same chunks in lockstep, taking turns to go first, so a shared machine's drift falls on
   both alike (the plain throughput figure moves by up to 30% from one run to the next here; this ratio by
   a few percent).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from biowarden.ledger.canonical import canonical_text
from biowarden.monitor.activity import (
    DENIED_KIND,
    EXPORT_KIND,
    decode_participants,
    encode_participants,
    export_fields,
    from_entries,
    from_event,
    from_text,
)
from biowarden.monitor.detectors import Monitor, MonitorConfig
from biowarden.monitor.incidents import IncidentBook
from biowarden.monitor.replay import replay_batch, replay_checked
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
    print(
        f"\nSimulator: {cfg.applications:,} applications, {cfg.months} months, cohort {cfg.cohort_size:,}; "
        f"{res.activities:,} activities, {res.researcher_months:,} researcher-months, {secs:.1f} s"
    )
    print(f"{'attack':34} {'detected':>8} {'time to stop':>13} {'cohort share left':>18} {'cells left':>14}  target")
    for o in res.attacks.values():
        print(
            f"{o.name:34} {'yes' if o.detected else 'NO':>8} {_fmt(o.time_to_stop):>13} {o.share_left:>17.2%} "
            f"{o.cells_left:>14,}  {TARGETS.get(o.name, 'detected')}"
        )
    print(f"false alerts (warn or worse) per 1,000 researcher-months: {res.false_alerts_per_1000:.2f}")
    print(f"false suspensions per 1,000 researcher-months: {res.false_suspensions_per_1000:.2f}  (target < 1)")


def _ledger_chunks(n_events: int, cohort: int, chunk: int = 50_000):
    """Ledger entries (kind, time, decision, canonical payload text) as the store yields them, in chunks.

    5,000 researchers in 1,000 applications at 150 institutions; 10% of events are denied requests; an
    export re-pulls the application's whole study population (60%) or a 30-100% subset of it (40%), drawn
    from 50 subsets per application, so most subsets are not the last few the application exported."""
    rng = np.random.default_rng(1)
    n_res, n_apps = 5000, 1000
    pops = [
        np.sort(rng.choice(cohort, int(rng.integers(50, 2000)), replace=False)).astype(np.uint32) for _ in range(n_apps)
    ]
    full = [encode_participants(p) for p in pops]
    subsets: list[list[tuple[int, str]]] = []
    for p in pops:
        variants = []
        for _ in range(50):
            sub = np.sort(rng.choice(p, max(1, int(len(p) * rng.uniform(0.3, 1.0))), replace=False))
            variants.append((len(sub), encode_participants(sub)))
        subsets.append(variants)
    expires = (START + timedelta(days=800)).isoformat()
    t = START
    made = 0
    while made < n_events:
        out = []
        for _ in range(min(chunk, n_events - made)):
            t += timedelta(seconds=int(rng.integers(1, 30)))
            r = int(rng.integers(0, n_res))
            app = r // 5
            who, app_id, inst = f"r{r}@i{app % 150}.ac.uk", f"A-{app:04d}", f"Institute {app % 150:03d}"
            if rng.random() < 0.1:
                text = f'{{"application":"{app_id}","institution":"{inst}","researcher":"{who}"}}'
                out.append(SimpleNamespace(kind=DENIED_KIND, at=t, decision="deny", payload_json=text))
                continue
            at = t.replace(hour=9 + (t.hour % 9))
            if rng.random() < 0.6:
                rows, enc = len(pops[app]), full[app]
            else:
                rows, enc = subsets[app][int(rng.integers(0, 50))]
            text = (
                f'{{"app_expires":"{expires}","application":"{app_id}","client":"rstudio","fields":12,'
                f'"institution":"{inst}","network":"10.{app % 250}.0.0/24","participants":"{enc}",'
                f'"researcher":"{who}","rows":{rows}}}'
            )
            out.append(SimpleNamespace(kind=EXPORT_KIND, at=at, decision=None, payload_json=text))
        out.sort(key=lambda e: e.at)
        made += len(out)
        yield out


def _replay(n_events: int, cohort: int, batch: bool) -> tuple[float, float, int, int, int, list[SimpleNamespace]]:
    """Wall and CPU seconds of the replay (generation not counted), alerts, actions, activities settled on the
    fast path, and the first entries."""
    monitor = Monitor(MonitorConfig(cohort_size=cohort))
    book = IncidentBook()
    run = replay_batch if batch else replay_checked
    secs = cpu = 0.0
    first: list[SimpleNamespace] = []
    alerts = actions = settled = 0
    for entries in _ledger_chunks(n_events, cohort):
        first = first or entries[:20_000]
        t0, c0 = time.perf_counter(), time.process_time()
        res = run(entries, monitor, book)  # decode, precheck (exports), observe, ladder
        secs += time.perf_counter() - t0
        cpu += time.process_time() - c0
        alerts, actions, settled = alerts + len(res.alerts), actions + len(res.actions), settled + res.settled
    return secs, cpu, alerts, actions, settled, first


def throughput(n_events: int, cohort: int = 500_000) -> None:
    secs, cpu, alerts, actions, settled, first = _replay(n_events, cohort, batch=True)
    seq_secs, seq_cpu, seq_alerts, seq_actions, _, _ = _replay(n_events, cohort, batch=False)
    assert (alerts, actions) == (seq_alerts, seq_actions)
    exports = [e for e in first if e.kind == EXPORT_KIND]
    assert canonical_text(json.loads(exports[0].payload_json)) == exports[0].payload_json  # as the ledger writes
    t1 = time.perf_counter()
    for e in exports:  # the whole payload parsed and every bitmap decoded
        from_event(e.kind, e.at, json.loads(e.payload_json), e.decision)
    eager_us = (time.perf_counter() - t1) / len(exports) * 1e6
    t2 = time.perf_counter()
    for _ in from_entries(exports):  # only what the detectors read: the participants stay encoded until needed
        pass
    lazy_us = (time.perf_counter() - t2) / len(exports) * 1e6
    t3 = time.perf_counter()
    for e in exports:
        decode_participants(from_text(e.kind, e.at, e.payload_json, e.decision).encoded)
    bitmap_us = (time.perf_counter() - t3) / len(exports) * 1e6 - lazy_us
    t4 = time.perf_counter()
    for e in exports:  # the batch replay's reading: the fields by splitting the text on its quotes
        export_fields(e.at, e.payload_json)
    fields_us = (time.perf_counter() - t4) / len(exports) * 1e6
    print(
        f"\nThroughput: {n_events:,} ledger entries (90% exports carrying participant bitmaps of 15-2,000 eids, "
        f"10% denied requests) decoded and run through precheck, detectors and the ladder ({alerts:,} alerts, "
        f"{actions:,} actions)"
    )
    print(f"{'measure':56} {'biowarden':>12} {'target':>10}")
    print(f"{'replay time, batch (decode + detectors + ladder)':56} {secs:>11.1f}s {'<= 10 s':>10}")
    print(f"{'  of which CPU time of this process (a busy machine shows it)':56} {cpu:>11.1f}s")
    print(f"{'  entries per second':56} {n_events / secs:>12,.0f}")
    print(f"{'  activities settled on the fast path (no check could fire)':56} {settled / n_events:>12.1%}")
    print(f"{'replay time, one activity at a time (same results)':56} {seq_secs:>11.1f}s")
    print(f"{'  of which CPU time of this process':56} {seq_cpu:>11.1f}s")
    print(f"{'decoding an export: whole payload, bitmap decoded':56} {eager_us:>10.1f}us")
    print(f"{'decoding an export: only what the detectors read':56} {lazy_us:>10.1f}us")
    print(f"{'  + the bitmap, when a detector needs it':56} {bitmap_us:>10.1f}us")
    print(f"{'decoding an export: the batch replay (export_fields)':56} {fields_us:>10.1f}us")


def _lockstep_child(n_events: int, cohort: int) -> None:
    """One side of ``against``: per chunk, say ``ready``, wait for ``go``, replay it and print its CPU time."""
    monitor, book = Monitor(MonitorConfig(cohort_size=cohort)), IncidentBook()
    for entries in _ledger_chunks(n_events, cohort):
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        c0 = time.process_time()
        replay_batch(entries, monitor, book)
        print(time.process_time() - c0, flush=True)
    print("done", flush=True)


def against(rev: str, n_events: int, cohort: int = 500_000) -> None:
    """The batch replay's CPU time, this tree's code against ``rev``'s (``src/biowarden`` at that revision),
    on the same chunks (both sides generate them with this tree's bench code) replayed in lockstep."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", rev, "src/biowarden"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"--against: git archive {rev} failed: {archive.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        sides = {"this tree": root / "src", rev: Path(tmp) / "src"}
        procs = {
            name: subprocess.Popen(
                [sys.executable, "-m", "bench.bench_monitor", "--lockstep-child", str(n_events), str(cohort)],
                cwd=root,
                env={**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(root)])},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name, src in sides.items()
        }
        cpu = dict.fromkeys(procs, 0.0)
        names = list(procs)
        try:
            for k in itertools.count():
                lines = {name: p.stdout.readline().strip() for name, p in procs.items()}
                if set(lines.values()) == {"done"}:
                    break
                if set(lines.values()) != {"ready"}:
                    raise SystemExit(f"--against: a replay stopped unexpectedly ({lines})")
                for name in names if k % 2 == 0 else names[::-1]:
                    procs[name].stdin.write("go\n")
                    procs[name].stdin.flush()
                    cpu[name] += float(procs[name].stdout.readline())
        finally:
            for p in procs.values():
                p.stdin.close()
                p.wait(timeout=60)
    print(f"\nBatch replay of {n_events:,} entries, CPU seconds, the same chunks in lockstep:")
    for name in names:
        print(f"  {name:<24} {cpu[name]:8.2f}")
    print(f"  this tree / {rev}: {cpu[names[0]] / cpu[names[1]]:.3f}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--lockstep-child"]:
        _lockstep_child(int(argv[1]), int(argv[2]))
        return
    quick = "--quick" in argv
    n_events = 100_000 if quick else 1_000_000
    if "--against" in argv:
        i = argv.index("--against")
        if i + 1 >= len(argv):
            raise SystemExit("--against needs a git revision")
        against(argv[i + 1], n_events)
        return
    if "--throughput" not in argv:
        simulator_table(SimConfig(applications=300, months=2) if quick else SimConfig())
    if "--simulator" not in argv:
        throughput(n_events)


if __name__ == "__main__":
    main()
