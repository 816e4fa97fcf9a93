"""Benchmark: synthesising the UK-Biobank-like cohort (time and peak memory).

Each variant runs in a fresh subprocess, which reports its own wall time and peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), so that variants do not share caches or allocations:

- ``streamed``: ``synthesise`` (what ``biowarden cohort synth`` runs), chunks of 50,000 participants through
  one ParquetWriter (zstd): memory bounded by one chunk;
- ``streamed-10k``: the same with 10,000-participant chunks (smaller memory, more row groups);
- ``in-memory``: the naive peer, ``synthesise_table`` for the whole cohort then one ``pq.write_table``.

Run: ``.venv/bin/python -m bench.bench_synth [--participants N] [--variants a,b]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("streamed", "streamed-10k", "in-memory")


def _worker(variant: str, participants: int, seed: int, out: Path) -> dict[str, object]:
    started = time.perf_counter()
    if variant in ("streamed", "streamed-10k"):
        from biowarden.cohort.synth import synthesise

        chunk = 50_000 if variant == "streamed" else 10_000
        report = synthesise(participants, seed, out, chunk_rows=chunk)
        size, columns = report.parquet_bytes, report.columns
    elif variant == "in-memory":
        import pyarrow.parquet as pq

        from biowarden.cohort.synth import synthesise_table

        table, _ = synthesise_table(participants, seed)
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / "cohort.parquet", compression="zstd")
        size, columns = (out / "cohort.parquet").stat().st_size, table.num_columns
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "variant": variant,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
        "bytes": size,
        "columns": columns,
    }


def _run(variant: str, participants: int, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        cmd = [sys.executable, "-m", "bench.bench_synth", "--worker", variant, "--participants", str(participants)]
        cmd += ["--seed", str(seed), "--out", str(Path(tmp) / "c")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent)
        if done.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=500_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.participants, args.seed, Path(args.out))))
        return
    rows = [_run(v.strip(), args.participants, args.seed) for v in args.variants.split(",") if v.strip()]
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"cohort synth, {args.participants:,} participants (cpus: {os.cpu_count()})")
    for h in ("variant", "wall s", "CPU s", "rows/s (wall)", "peak RSS MiB", "Parquet MB", "columns"):
        t.add_column(h, justify="left" if h == "variant" else "right")
    for r in rows:
        s = float(r["seconds"])  # type: ignore[arg-type]
        t.add_row(
            str(r["variant"]),
            f"{s:.1f}",
            f"{float(r['cpu_seconds']):.1f}",  # type: ignore[arg-type]
            f"{args.participants / s:,.0f}",
            f"{float(r['peak_mib']):,.0f}",  # type: ignore[arg-type]
            f"{int(r['bytes']) / 1e6:,.1f}",  # type: ignore[call-overload]
            str(r["columns"]),
        )
    Console().print(t)
    print("CPU s includes interpreter start-up and imports; on a shared machine wall time exceeds CPU time.")


if __name__ == "__main__":
    main()
