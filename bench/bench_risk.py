"""Risk analysis on adult (vs ARX's published figures and pycanon) and on a 500,000-participant cohort.

Run: .venv/bin/python -m bench.bench_risk   (first run installs pycanon/anjana into .bench-out/peers-venv)
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench._peers import run_peer
from biowarden.privacy.data import histogram_from_table, read_table
from biowarden.privacy.risk import UK_POPULATION, measure_risk

ADULT = Path(os.environ.get("BIOWARDEN_ADULT", Path(__file__).resolve().parents[2] / "shared" / "data" / "adult"))
QIS = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation"]
COHORT_QIS = ["31-0.0", "34-0.0", "52-0.0", "54-0.0", "21000-0.0", "21022-0.0", "189-0.0", "53-0.0"]

PYCANON = """
import json, time, pandas as pd
from pycanon import anonymity
df = pd.read_csv({path!r}, sep=';')
qis = {qis!r}
t = time.perf_counter(); k = anonymity.k_anonymity(df, qis); tk = time.perf_counter() - t
t = time.perf_counter(); l = anonymity.l_diversity(df, qis, ['salary-class']); tl = time.perf_counter() - t
print(json.dumps({{"k": int(k), "k_s": tk, "l": int(l), "l_s": tl}}))
"""


def _time(fn, repeat: int = 5):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    console = Console()
    table = read_table(ADULT / "adult.csv")

    def full():
        return measure_risk(histogram_from_table(table, QIS), population=UK_POPULATION)

    secs, r = _time(full)
    pu = r.population_uniqueness
    hist = histogram_from_table(table, QIS)
    k = int(hist.counts.min())
    peer = run_peer(PYCANON.format(path=str(ADULT / "adult.csv"), qis=QIS))
    t = Table(title="Risk analysis on adult (8 QIs, UK population 63,705,000)")
    for col in ("figure", "biowarden", "ARX (DESIGN.md; not installable here: Maven Central unreachable)", "pycanon"):
        t.add_column(col)
    t.add_row("prosecutor average", f"{r.prosecutor.average:.4f}", "0.6004", "-")
    t.add_row("prosecutor highest", f"{r.prosecutor.highest:.1f}", "1.0", "-")
    t.add_row("records above 0.2", f"{r.prosecutor.records_at_risk:.2%}", "72.86%", "-")
    t.add_row("sample uniqueness", f"{r.sample_uniqueness:.4f}", "0.4649", "-")
    t.add_row("Pitman", f"{pu.pitman:.6f}", "0.048014", "-")
    t.add_row("Zayatz", f"{pu.zayatz:.6f}", "0.216456", "-")
    t.add_row("Dankar picks", pu.dankar_model, "Pitman", "-")
    t.add_row("k", str(k), "1", str(peer.get("k", peer.get("error"))))
    t.add_row("full risk analysis (s)", f"{secs:.4f}", "0.12-0.21", f"k only: {peer.get('k_s', '-')}")
    t.add_row("l-diversity (s)", "-", "-", f"{peer.get('l_s', '-')}")
    console.print(t)

    n = int(os.environ.get("BENCH_PARTICIPANTS", "500000"))
    try:
        from biowarden.cohort.synth import synthesise_table
    except ImportError:
        console.print("cohort synthesiser not available: skipping the 500,000-participant run")
        return
    cohort, _ = synthesise_table(n, seed=2026)
    qis = [c for c in COHORT_QIS if c in cohort.column_names]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    secs, r = _time(lambda: measure_risk(histogram_from_table(cohort, qis), population=67_000_000), repeat=2)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = Table(title=f"Risk analysis on the synthetic cohort ({n:,} participants, {len(qis)} QIs)")
    for col in ("figure", "value", "target"):
        t.add_column(col)
    t.add_row("QIs", ", ".join(qis), "8")
    t.add_row("time (s)", f"{secs:.3f}", "<= 1")
    t.add_row("peak RSS (MB)", f"{after / 1024:.0f} (cohort build before: {before / 1024:.0f})", "-")
    t.add_row("sample uniqueness", f"{r.sample_uniqueness:.4f}", "-")
    t.add_row("Dankar", f"{r.population_uniqueness.dankar:.6f} ({r.population_uniqueness.dankar_model})", "-")
    console.print(t)
    console.print("[dim]timings on a shared 2-core machine; contended by other processes[/]")


if __name__ == "__main__":
    main()
