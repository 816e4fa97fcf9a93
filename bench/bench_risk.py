"""Risk analysis on adult (vs ARX's published figures and pycanon) and on a 500,000-participant cohort.

Run: ``python -m bench risk [-- --participants N] [-- --no-peers]``. The first run installs pycanon and anjana
into their own environment (.bench-out/peers-venv, from PyPI), never into the project's. Figures:

1. adult (30,162 records, the 8 QIs of DESIGN.md, UK population 63,705,000): biowarden's full risk analysis
   (histogram of distinct QI combinations, prosecutor/journalist/marketer risk, sample uniqueness, Pitman,
   Zayatz, SNB and Dankar's choice) beside ARX's published figures, and k, distinct l, entropy l and
   t-closeness on salary-class beside pycanon's (timed on the same file).
2. the synthetic cohort (default 500,000 participants) with 8 QIs, written once to Parquet: risk analysis
   in a fresh process (so peak memory is the analysis's own), through biowarden's in-memory histogram and
   through the engine's (DuckDB) histogram; pycanon's k on the same rows for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench._peers import OUT, peer_versions, run_peer

QIS = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation"]
SENSITIVE = "salary-class"
# sex, year and month of birth, assessment centre, ethnicity, age at recruitment, Townsend, date attended
COHORT_QIS = ["31-0.0", "34-0.0", "52-0.0", "54-0.0", "21000-0.0", "21022-0.0", "189-0.0", "53-0.0"]
COHORT_POPULATION = 67_000_000  # UK, DESIGN.md section 6
SEED = 2026


def adult_dir() -> Path:
    """shared/data/adult: $BIOWARDEN_ADULT, else the first ancestor of this file or the cwd that has it."""
    if os.environ.get("BIOWARDEN_ADULT"):
        return Path(os.environ["BIOWARDEN_ADULT"])
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for parent in start.parents:
            if (parent / "shared" / "data" / "adult" / "adult.csv").is_file():
                return parent / "shared" / "data" / "adult"
    raise SystemExit("shared/data/adult not found (set BIOWARDEN_ADULT)")


ADULT = adult_dir()


def timed(fn, repeat: int = 7) -> tuple[float, float, object]:
    """(best, median, last result) of ``repeat`` runs after one warm-up."""
    out = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), out


def cohort_file(participants: int, seed: int = SEED) -> tuple[Path, dict[str, str]]:
    """The cohort's 8 QIs as Parquet (built once) and their hierarchy specs from the data dictionary."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"privacy-cohort-{participants}-s{seed}.parquet"
    specs_path = path.with_suffix(".specs.json")
    if not (path.is_file() and specs_path.is_file()):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from biowarden.cohort.synth import cohort_dictionary, iter_blocks

        parts = [b.select(COHORT_QIS) for b in iter_blocks(participants, seed, chunk_rows=50_000)]
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.concat_tables(parts).combine_chunks(), tmp)
        dictionary = cohort_dictionary()
        specs = {}
        for q in COHORT_QIS:
            field = dictionary.for_column(q)
            specs[q] = (field.hierarchy if field is not None else None) or "interval:1"
        specs_path.write_text(json.dumps(specs))
        os.replace(tmp, path)
    return path, json.loads(specs_path.read_text())


def run_child(code: str, timeout: float = 1800) -> dict:
    """Run ``code`` in a fresh interpreter of this environment; it prints one JSON object (last line)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(Path(root) / "src"), root, env.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, "-c", PEAK_RSS + code], capture_output=True, text=True, timeout=timeout, env=env
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


# the child's own peak (VmHWM is per address space; ru_maxrss would include the parent's size at fork)
PEAK_RSS = """
def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

RISK_CHILD = """
import json, time
import pyarrow.parquet as pq
from biowarden.privacy.data import histogram_from_counts, histogram_from_table
from biowarden.privacy.risk import measure_risk
path, qis, population, via = {path!r}, {qis!r}, {population!r}, {via!r}
t0 = time.perf_counter()
if via == "engine":
    from biowarden.engine.core import histogram
    read = 0.0
    hist_times, risk_times = [], []
    for _ in range(3):
        t = time.perf_counter(); summary = histogram(path, qis); hist = histogram_from_counts(summary, qis, "n")
        hist_times.append(time.perf_counter() - t)
        t = time.perf_counter(); r = measure_risk(hist, population=population)
        risk_times.append(time.perf_counter() - t)
else:
    reads = []
    for _ in range(3):
        t = time.perf_counter(); table = pq.read_table(path, columns=qis); reads.append(time.perf_counter() - t)
    read = min(reads)
    hist_times, risk_times = [], []
    for _ in range(3):
        t = time.perf_counter(); hist = histogram_from_table(table, qis); hist_times.append(time.perf_counter() - t)
        t = time.perf_counter(); r = measure_risk(hist, population=population)
        risk_times.append(time.perf_counter() - t)
pu = r.population_uniqueness
print(json.dumps({{
    "read_s": read, "hist_s": min(hist_times), "risk_s": min(risk_times),
    "total_s": min(h + k for h, k in zip(hist_times, risk_times)),
    "rss_mb": peak_rss_mb(),
    "records": r.records, "classes": r.classes, "k": r.smallest_class,
    "sample_uniqueness": r.sample_uniqueness, "prosecutor_average": r.prosecutor.average,
    "pitman": pu.pitman, "zayatz": pu.zayatz, "snb": pu.snb, "dankar": pu.dankar, "dankar_model": pu.dankar_model,
}}))
"""

BASELINE_CHILD = """
import json
import pyarrow.parquet, numpy
import biowarden.privacy.risk, biowarden.privacy.anonymise
print(json.dumps({"rss_mb": peak_rss_mb()}))
"""

PYCANON = """
import json, time, pandas as pd
from pycanon import anonymity
df = pd.read_csv({path!r}, sep={sep!r}, dtype=str, keep_default_na=False)
qis, sens, what = {qis!r}, {sens!r}, {what!r}
out = {{"rows": len(df)}}
t = time.perf_counter(); out["k"] = int(anonymity.k_anonymity(df, qis)); out["k_s"] = time.perf_counter() - t
if "l" in what:
    t = time.perf_counter(); out["l"] = int(anonymity.l_diversity(df, qis, sens)); out["l_s"] = time.perf_counter() - t
if "entropy" in what:
    t = time.perf_counter(); out["entropy_l"] = float(anonymity.entropy_l_diversity(df, qis, sens))
    out["entropy_l_s"] = time.perf_counter() - t
if "t" in what:
    t = time.perf_counter(); out["t"] = float(anonymity.t_closeness(df, qis, sens))
    out["t_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def _peer(what: str, path: Path, qis: list[str], sens: list[str], use_peers: bool, sep: str, timeout: float) -> dict:
    if not use_peers:
        return {"error": "not run (--no-peers)"}
    code = PYCANON.format(path=str(path), sep=sep, qis=qis, sens=sens, what=what)
    return run_peer(code, timeout=timeout)


def _fmt(v, spec: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return format(v, spec)


def adult_tables(console: Console, use_peers: bool) -> dict:
    from biowarden.privacy.data import histogram_from_table, read_table
    from biowarden.privacy.diversity import SensitiveData, measure_diversity
    from biowarden.privacy.risk import UK_POPULATION, measure_risk

    table = read_table(ADULT / "adult.csv")

    def full():
        return measure_risk(histogram_from_table(table, QIS), population=UK_POPULATION)

    best, median, r = timed(full)
    hist = histogram_from_table(table, QIS)

    def diversity():
        sens = SensitiveData.from_column(table.column(SENSITIVE), hist.row_class, hist.num_classes)
        return measure_diversity(sens, np.arange(hist.num_classes), hist.num_classes)

    d_best, _, div = timed(diversity, repeat=3)
    peer = _peer("l entropy t", ADULT / "adult.csv", QIS, [SENSITIVE], use_peers, ";", 900)
    pu = r.population_uniqueness
    t = Table(title="Risk analysis on adult (30,162 records, 8 QIs, UK population 63,705,000)")
    for col in ("figure", "biowarden", "ARX 3.9 (DESIGN.md)", "pycanon"):
        t.add_column(col, justify="right" if col != "figure" else "left")
    t.add_row("prosecutor risk, average", f"{r.prosecutor.average:.4f}", "0.6004", "-")
    t.add_row("prosecutor risk, highest", f"{r.prosecutor.highest:.1f}", "1.0", "-")
    t.add_row("records above 0.2", f"{r.prosecutor.records_at_risk:.2%}", "72.86%", "-")
    t.add_row("sample uniqueness", f"{r.sample_uniqueness:.4f}", "0.4649", "-")
    t.add_row("population uniqueness, Pitman", f"{pu.pitman:.6f}", "0.048014", "-")
    t.add_row("population uniqueness, Zayatz", f"{pu.zayatz:.6f}", "0.216456", "-")
    t.add_row("population uniqueness, SNB", _fmt(pu.snb, ".6f"), "not given", "-")
    t.add_row("Dankar's rule picks", pu.dankar_model, "Pitman", "-")
    t.add_row("k (smallest class)", str(r.smallest_class), "1", _fmt(peer.get("k", peer.get("error"))))
    t.add_row("distinct l (salary-class)", str(div.distinct_l), "-", _fmt(peer.get("l")))
    t.add_row("entropy l", f"{div.entropy_l:.4f}", "-", _fmt(peer.get("entropy_l"), ".4f"))
    t.add_row("t-closeness (equal distance)", f"{div.t_equal:.4f}", "-", _fmt(peer.get("t"), ".4f"))
    t.add_row(
        "time: full risk analysis (s)",
        f"{best:.4f} (median {median:.4f})",
        "0.12-0.21",
        f"k alone {_fmt(peer.get('k_s'), '.2f')}",
    )
    t.add_row(
        "time: l, entropy l, t together (s)",
        f"{d_best:.4f}",
        "-",
        f"{_fmt(peer.get('l_s'), '.1f')}, {_fmt(peer.get('entropy_l_s'), '.1f')}, {_fmt(peer.get('t_s'), '.1f')}",
    )
    console.print(t)
    agree = (
        "error" not in peer
        and peer.get("k") == r.smallest_class
        and peer.get("l") == div.distinct_l
        and abs(peer.get("entropy_l", -1) - div.entropy_l) < 1e-6
        and abs(peer.get("t", -1) - div.t_equal) < 1e-6
    )
    console.print(f"pycanon agrees with biowarden on k, l, entropy l and t: {'yes' if agree else 'NO'}")
    return {"biowarden_s": best, "peer": peer, "agree": agree}


def cohort_tables(console: Console, participants: int, use_peers: bool) -> None:
    path, _ = cohort_file(participants)
    base = run_child(BASELINE_CHILD)
    direct = run_child(RISK_CHILD.format(path=str(path), qis=COHORT_QIS, population=COHORT_POPULATION, via="table"))
    engine = run_child(RISK_CHILD.format(path=str(path), qis=COHORT_QIS, population=COHORT_POPULATION, via="engine"))
    peer: dict = {"error": "not run (--no-peers)"}
    if use_peers:
        csv = path.with_suffix(".csv")
        if not csv.is_file():
            import pyarrow.csv as pcsv
            import pyarrow.parquet as pq

            pcsv.write_csv(pq.read_table(path), csv)
        peer = _peer("", csv, COHORT_QIS, [], True, ",", 900)
    t = Table(title=f"Risk analysis on the synthetic cohort ({participants:,} participants, 8 QIs, population 67M)")
    for col in ("figure", "in-memory histogram", "engine (DuckDB) histogram", "pycanon", "target"):
        t.add_column(col, justify="right" if col != "figure" else "left")
    t.add_row("read the 8 columns from Parquet (s, best of 3)", f"{direct['read_s']:.3f}", "(in the query)", "-", "-")
    t.add_row("histogram (s)", f"{direct['hist_s']:.3f}", f"{engine['hist_s']:.3f}", "-", "-")
    t.add_row("risk measures from the histogram (s)", f"{direct['risk_s']:.3f}", f"{engine['risk_s']:.3f}", "-", "-")
    t.add_row(
        "risk analysis, histogram included (s)",
        f"{direct['total_s']:.3f}",
        f"{engine['total_s']:.3f}",
        f"k alone {_fmt(peer.get('k_s'), '.2f')}" if "k_s" in peer else _fmt(peer.get("error")),
        "<= 1",
    )
    t.add_row(
        "peak RSS of the process (MB)",
        f"{direct['rss_mb']:.0f}",
        f"{engine['rss_mb']:.0f}",
        "-",
        f"(interpreter + libraries alone: {base['rss_mb']:.0f})",
    )
    t.add_row("distinct combinations", f"{direct['classes']:,}", f"{engine['classes']:,}", "-", "-")
    t.add_row("k (smallest class)", str(direct["k"]), str(engine["k"]), _fmt(peer.get("k")), "-")
    t.add_row("sample uniqueness", f"{direct['sample_uniqueness']:.6f}", f"{engine['sample_uniqueness']:.6f}", "-", "-")
    t.add_row(
        "prosecutor average", f"{direct['prosecutor_average']:.6f}", f"{engine['prosecutor_average']:.6f}", "-", "-"
    )
    for key in ("pitman", "zayatz", "snb"):
        t.add_row(f"population uniqueness, {key}", _fmt(direct[key], ".6f"), _fmt(engine[key], ".6f"), "-", "-")
    t.add_row("Dankar picks", direct["dankar_model"], engine["dankar_model"], "-", "-")
    console.print(t)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_risk")
    ap.add_argument("--participants", type=int, default=int(os.environ.get("BENCH_PARTICIPANTS", "500000")))
    ap.add_argument("--no-peers", action="store_true", help="skip pycanon (no PyPI access needed)")
    ap.add_argument("--adult-only", action="store_true")
    args = ap.parse_args(argv)
    console = Console(width=160)
    use_peers = not args.no_peers
    if use_peers:
        versions = peer_versions()
        console.print(f"peers: {', '.join(f'{k} {v}' for k, v in versions.items()) or 'not installable'}")
    adult_tables(console, use_peers)
    if not args.adult_only:
        cohort_tables(console, args.participants, use_peers)
    console.print(
        f"[dim]{os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.2f} "
        "(a shared machine: other processes may be running)[/]"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
