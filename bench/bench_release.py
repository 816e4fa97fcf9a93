"""A 500,000 x 100-field release through the whole pipeline vs a plain DuckDB COPY of the same columns.

The release is the real thing: policy decision, export caps/quotas/coverage (a committee exception for the
whole-cohort pull), the monitor's pre-check, the risk gate (k=5, highest prosecutor risk 0.2, up to 2%
suppression) generalising the quasi-identifiers, per-application pseudonyms, the fingerprint on every
measure, the deterministic writer (Parquet, zstd), the file's SHA-256 and the ledgered manifest. The
columns are the synthetic cohort's (seed 2026): 4 quasi-identifiers (sex, year of birth, assessment
centre, ethnicity) and the first non-quasi-identifier fields up to 99 fields, plus the participant column
(the pseudonym in the release, ``eid`` in the COPY); among those fields are the lists of diagnosis and
operation dates, which the gate takes as set-valued quasi-identifiers (6 gated in all). The peer is
DuckDB's ``COPY (SELECT ...) TO ... (FORMAT parquet)`` of the same 100 columns (its default codec, and
zstd). Target: release / COPY <= 1.5.

Each contender runs in its own process (the cohort file read once beforehand, so it is in the page cache
for all alike), the contenders in turn, round after round (a shared machine's speed drifts; the best round
of each counts); the peak memory is that process's maximum resident set (``wait4``); a release process
imports biowarden first, as the CLI and the server do (it chooses Arrow's allocator), and the modules the
pipeline imports lazily are loaded before its clock starts. The release's store is a fresh SQLite store
set up before the clock starts. Spark local[2] runs the same release once, for the record (session start
included, shown separately), and its file is compared with DuckDB's byte for byte.

Usage: python -m bench.bench_release [--participants N] [--fields F] [--repeats R] [--format parquet|csv]
[--no-spark]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

OUT = Path(os.environ.get("BIOWARDEN_BENCH_OUT", ".bench-out"))
QIS = ["31-0.0", "34-0.0", "54-0.0", "21000-0.0"]
AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def columns(src: Path, fields: int) -> list[str]:
    """The release's fields: the 4 QIs, then non-QI columns in cohort order, ``fields - 1`` in all."""
    import pyarrow.parquet as pq

    from biowarden.cohort import load_cohort
    from biowarden.release.pipeline import _is_quasi

    _, dictionary = load_cohort(src.parent)
    names = [c for c in pq.read_schema(src).names if c != "eid"]
    rest = [c for c in names if not _is_quasi(dictionary, c)]
    return (QIS + rest)[: fields - 1]


def _copy(src: Path, cols: list[str], out: Path, codec: str | None) -> dict:
    import duckdb

    con = duckdb.connect()
    select = ", ".join('"' + c.replace('"', '""') + '"' for c in ["eid", *cols])
    opts = f"FORMAT parquet, COMPRESSION {codec}" if codec else "FORMAT parquet"
    started = time.perf_counter()
    con.execute(f"COPY (SELECT {select} FROM read_parquet('{src}')) TO '{out}' ({opts})")
    secs = time.perf_counter() - started
    con.close()
    return {"seconds": secs, "bytes": out.stat().st_size}


def _release(src: Path, cols: list[str], out: Path, engine: str, fmt: str) -> dict:
    from biowarden.cohort import load_cohort
    from biowarden.egress.limits import EgressPolicy, ExportCaps
    from biowarden.egress.service import EgressControl
    from biowarden.keys import KeyRing
    from biowarden.registry.auth import LOCAL_OPERATOR as OP
    from biowarden.registry.service import Registry
    from biowarden.release import create_release
    from biowarden.store import connect, migrate

    home = out.parent / f"home-{out.stem}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    url = f"sqlite:///{home / 'store.db'}"
    migrate(url)
    db = connect(url)
    keyring = KeyRing(bytes(range(32)))
    reg = Registry(db, keyring, clock=lambda: AT)
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_researcher(OP, "ann@northbridge.ac.uk", "Northbridge Institute")
    reg.add_application(
        OP, "A-0017", "Northbridge Institute", cols, pi="ann@northbridge.ac.uk", expires_on=date(2030, 1, 1)
    )
    reg.add_account(OP, "ann", ["researcher"], researcher="ann@northbridge.ac.uk")
    reg.approve_application(OP, "A-0017")
    with db.session() as s:
        exc = EgressControl.grant_exception(s, "A-0017", "benchmark: whole-cohort GWAS extract", "dac", AT)
    policy = EgressPolicy(caps=ExportCaps(max_rows=10**7, max_cells=10**9, max_bytes=1 << 40), quotas=())
    cohort = load_cohort(src.parent)
    _warm_imports()
    started = time.perf_counter()
    if engine == "spark":
        from biowarden.engine import open_engine

        eng = open_engine("spark")
        session_start = time.perf_counter() - started
    else:
        eng, session_start = "duckdb", 0.0
    t0 = time.perf_counter()
    m = create_release(
        db,
        keyring,
        home,
        application_id="A-0017",
        fields=cols,
        out_path=out,
        fmt=fmt,
        engine=eng,
        egress_policy=policy,
        exception_id=exc,
        cohort=cohort,
        now=AT,
    )
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        "session_start": session_start,
        "bytes": m.file_bytes,
        "sha256": m.file_sha256,
        "rows": m.rows,
        "columns": len(m.fields) + 1,
        "levels": m.levels,
        "suppressed": m.risk.get("suppressed"),
        "cells_marked": m.marks.get("cells_marked"),
    }


def _warm_imports() -> None:
    """Load the modules the pipeline imports lazily, as a running server has them (the COPY's clock does not
    include importing DuckDB either)."""
    import ibis.backends.duckdb  # noqa: F401 - the local engine's Ibis backend, loaded by the first open_engine
    import pandas  # noqa: F401 - pyarrow loads it on its first NumPy conversion (0.2-0.3 s in a fresh process)

    import biowarden.engine
    import biowarden.monitor.detectors
    import biowarden.privacy.anonymise
    import biowarden.privacy.cumulative
    import biowarden.privacy.risk
    import biowarden.trace.embed
    import biowarden.trace.releases  # noqa: F401


def child(argv: list[str]) -> None:
    kind, src, out, extra, fields = argv[0], Path(argv[1]), Path(argv[2]), argv[3], int(argv[4])
    if kind != "copy":
        # first, as in the CLI and the server: importing biowarden chooses Arrow's allocator
        # (ARROW_DEFAULT_MEMORY_POOL), which Arrow fixes when it first allocates (here, reading the schema below)
        import biowarden  # noqa: F401
    cols = columns(src, fields)
    if kind == "copy":
        res = _copy(src, cols, out, None if extra == "default" else extra)
    else:
        engine, fmt = extra.split(":")
        res = _release(src, cols, out, engine, fmt)
    print("RESULT " + json.dumps(res), flush=True)


def run_child(args: list[str]) -> dict:
    """Run one contender in a fresh process; its result plus its peak resident set (MB)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd() / "src"), str(Path.cwd())])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_release", "--child", *args], stdout=subprocess.PIPE, env=env, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"contender {args[0]} {args[3]} failed (exit {proc.returncode})")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT ") :])
    res["peak_mb"] = usage.ru_maxrss / 1024.0
    return res


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--child":
        child(argv[1:])
        return
    ap = argparse.ArgumentParser(prog="bench_release", description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=500_000)
    ap.add_argument("--fields", type=int, default=100, help="columns written, the participant column included")
    ap.add_argument("--repeats", type=int, default=2, help="best of R (each a fresh process)")
    ap.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    ap.add_argument("--no-spark", action="store_true")
    args = ap.parse_args(argv)

    from bench.bench_scope import cohort

    src = cohort(args.participants).resolve()
    work = (OUT / "release").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with open(src, "rb") as fh:  # the file in the page cache alike for every contender
        while fh.read(1 << 24):
            pass

    contenders = [
        ("DuckDB COPY (default: snappy)", "copy", "default", "copy"),
        ("DuckDB COPY (zstd)", "copy", "zstd", "copy-zstd"),
        (f"biowarden release, duckdb ({args.format})", "release", f"duckdb:{args.format}", "rel"),
    ]
    # round by round, each contender once per round: a shared machine's speed drifts over minutes, and
    # interleaving lets the drift fall on every contender alike instead of on whichever ran last
    runs: dict[str, list[dict]] = {name: [] for name, *_ in contenders}
    for i in range(args.repeats):
        for name, kind, extra, stem in contenders:
            out = work / f"{stem}-{i}.{args.format if kind == 'release' else 'parquet'}"
            runs[name].append(run_child([kind, str(src), str(out), extra, str(args.fields)]))

    def best(name: str) -> dict:
        top = dict(min(runs[name], key=lambda r: r["seconds"]))
        top["peak_mb"] = max(r["peak_mb"] for r in runs[name])
        top["shas"] = {r.get("sha256") for r in runs[name]}
        return top

    rows: list[tuple[str, dict]] = [(name, best(name)) for name, *_ in contenders]
    if not args.no_spark:
        name = f"biowarden release, spark local[2] ({args.format})"
        runs[name] = [
            run_child(
                ["release", str(src), str(work / f"sp-0.{args.format}"), f"spark:{args.format}", str(args.fields)]
            )
        ]
        rows.append((name, best(name)))
    rel = rows[2][1]
    print(
        f"release {args.participants:,} participants x {args.fields} columns (participant column included; "
        f"{len(rel['levels'])} quasi-identifiers gated, every measure marked); best of {args.repeats}; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'contender':<50} {'seconds':>8} {'x COPY':>7} {'MB file':>8} {'peak MB':>8}")
    base = rows[0][1]["seconds"]
    for name, r in rows:
        extra = f"  (+{r['session_start']:.1f} s session start)" if r.get("session_start") else ""
        print(
            f"{name:<50} {r['seconds']:8.2f} {r['seconds'] / base:7.2f} {r['bytes'] / 1e6:8.1f} "
            f"{r['peak_mb']:8.0f}{extra}"
        )
    ratio = rel["seconds"] / base
    print(
        f"release / DuckDB COPY = {ratio:.2f} (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'}); "
        f"vs COPY zstd = {rel['seconds'] / rows[1][1]['seconds']:.2f}"
    )
    print(
        f"release: {rel['rows']:,} rows, levels {rel['levels']}, {rel['suppressed']} suppressed, "
        f"{rel['cells_marked']:,} cells marked; same request -> same bytes across runs: {len(rel['shas']) == 1}"
    )
    if not args.no_spark:
        print(f"duckdb and spark release files byte-identical: {rows[3][1]['sha256'] == rel['sha256']}")


if __name__ == "__main__":
    main()
