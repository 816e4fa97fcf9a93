"""Scoping 500,000 participants x 100 fields to a new Parquet file: the data plane vs a plain DuckDB COPY.

The source is the synthetic cohort (``biowarden.cohort.synth.synthesise``, seed 2026) cached in
``.bench-out/``. The data plane's ``scope`` reads the columns through Ibis/DuckDB, keeps the eid order and
the source's exact Arrow types, and writes with the one deterministic release writer (zstd level 1, fixed
row groups, atomic rename). The peers are DuckDB's own ``COPY (SELECT cols FROM read_parquet(...)) TO ...
(FORMAT parquet)``, with its default codec (snappy) and with zstd. Target: data plane / COPY <= 1.3.
Spark local[2] is timed once for the record (session start shown separately).

Usage: python -m bench.bench_scope [--participants N] [--fields F] [--repeats R] [--no-spark]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from biowarden.engine import open_engine, scope

OUT = Path(os.environ.get("BIOWARDEN_BENCH_OUT", ".bench-out"))


def cohort(participants: int, seed: int = 2026) -> Path:
    """The cached synthetic cohort (generated on first use)."""
    from biowarden.cohort.synth import synthesise

    folder = OUT / f"cohort-{participants}-s{seed}"
    path = folder / "cohort.parquet"
    if not path.exists():
        print(f"generating the synthetic cohort ({participants:,} participants) in {folder} ...", flush=True)
        synthesise(participants, seed, folder)
    return path


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_copy(src: Path, cols: list[str], out: Path, codec: str | None) -> float:
    con = duckdb.connect()
    select = ", ".join(_quote(c) for c in cols)
    opts = f"FORMAT parquet, COMPRESSION {codec}" if codec else "FORMAT parquet"
    started = time.perf_counter()
    con.execute(f"COPY (SELECT {select} FROM read_parquet('{src}')) TO '{out}' ({opts})")
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def best(fn, repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_scope", description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=500_000)
    ap.add_argument("--fields", type=int, default=100, help="columns written, eid included")
    ap.add_argument("--repeats", type=int, default=3, help="best of R for the DuckDB timings")
    ap.add_argument("--no-spark", action="store_true")
    args = ap.parse_args(argv)

    src = cohort(args.participants)
    names = pq.read_schema(src).names
    cols = ["eid", *[c for c in names if c != "eid"][: args.fields - 1]]
    work = OUT / "scope"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pq.read_table(src, columns=cols)  # warm the page cache for every contender alike

    rows: list[tuple[str, float, int]] = []

    def copy(codec: str | None, name: str) -> None:
        out = work / f"{name}.parquet"
        secs = best(lambda: duckdb_copy(src, cols, out, codec), args.repeats)
        rows.append((f"DuckDB COPY ({codec or 'default: snappy'})", secs, out.stat().st_size))

    copy(None, "copy")
    copy("zstd", "copy-zstd")
    out = work / "scope.parquet"
    secs = best(lambda: scope(src, cols[1:], out).seconds, args.repeats)
    rows.append(("biowarden scope, duckdb", secs, out.stat().st_size))
    if not args.no_spark:
        started = time.perf_counter()
        eng = open_engine("spark")
        start_s = time.perf_counter() - started
        out = work / "scope-spark.parquet"
        report = scope(src, cols[1:], out, engine=eng)
        rows.append(
            (f"biowarden scope, spark local[2] (+{start_s:.1f} s session start)", report.seconds, out.stat().st_size)
        )
        same = (work / "scope.parquet").read_bytes() == out.read_bytes()
    baseline = rows[0][1]
    print(
        f"scope {args.participants:,} participants x {len(cols)} fields (eid included); "
        f"best of {args.repeats} for DuckDB; {os.cpu_count()} CPUs"
    )
    print(f"{'contender':<62} {'seconds':>8} {'x COPY':>7} {'MB':>7}")
    for name, secs, size in rows:
        print(f"{name:<62} {secs:8.2f} {secs / baseline:7.2f} {size / 1e6:7.1f}")
    ratio = rows[2][1] / baseline
    print(
        f"data plane / DuckDB COPY = {ratio:.2f} (target <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'}); "
        f"vs COPY zstd = {rows[2][1] / rows[1][1]:.2f}"
    )
    if not args.no_spark:
        print(f"duckdb and spark scope files byte-identical: {same}")


if __name__ == "__main__":
    main()
