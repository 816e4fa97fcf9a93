"""API latency on loopback under a paced load of 200 requests/s: authorised requests (each decided by the
policy and ledgered) against the unauthenticated health check as the floor.

A real uvicorn server on 127.0.0.1 (an ephemeral port) in its own process, as it is deployed (the clients
would otherwise share its interpreter lock), over a fresh store (SQLite file; PostgreSQL on 127.0.0.1 when
reachable); 16 client threads in this process send on a fixed schedule (open loop: latency is measured
from the scheduled send time, so queueing shows). Bounded: REQUESTS per endpoint (default 1,000) and at most
MAX_SECONDS per endpoint. Run: .venv/bin/python -m bench.bench_api
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import sqlalchemy as sa
import uvicorn
from rich.console import Console
from rich.table import Table

from biowarden.keys import KeyRing
from biowarden.registry import LOCAL_OPERATOR as OP
from biowarden.store import connect, migrate
from biowarden.store.db import scratch_schema
from biowarden.web import create_app

RATE = float(os.environ.get("BENCH_API_RATE", "200"))
REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", "1000"))
MAX_SECONDS = float(os.environ.get("BENCH_API_MAX_SECONDS", "30"))
WORKERS = 16
PG_URL = os.environ.get("BIOWARDEN_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _serve(url: str, key_hex: str):
    """Start the API over the store at ``url`` in a child process; return it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_api", "--serve", url, key_hex],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the API server did not start (it printed {line!r})")
    base = f"http://127.0.0.1:{int(line)}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the API server did not answer /health within 30 s")


def _server_main(url: str, key_hex: str) -> None:
    """The child: serve the API over ``url`` until terminated."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # accepted sockets inherit TCP_NODELAY: without it every response waits ~40 ms for a delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    app = create_app(connect(url), KeyRing(bytes.fromhex(key_hex)))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off")).run(sockets=[sock])


def _paced(base: str, method: str, path: str, headers: dict, body) -> dict:
    start = time.perf_counter() + 0.2
    schedule = [start + i / RATE for i in range(REQUESTS)]
    nxt = iter(range(REQUESTS))
    lock = threading.Lock()
    lat: list[float] = []
    statuses: dict[int, int] = {}

    def worker() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            while True:
                with lock:
                    i = next(nxt, None)
                if i is None or time.perf_counter() - start > MAX_SECONDS:
                    return
                delay = schedule[i] - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                r = c.request(method, path, json=body)
                done = time.perf_counter()
                with lock:
                    lat.append((done - schedule[i]) * 1000)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    xs = sorted(lat)
    return {
        "n": len(xs),
        "rate": len(xs) / elapsed,
        "p50": statistics.median(xs),
        "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))],
        "ok": statuses.get(200, 0),
        "statuses": statuses,
    }


def _serial(base: str, method: str, path: str, headers: dict, body, n: int = 300) -> dict:
    """One client, back to back: the unloaded latency and the single-client throughput."""
    lat = []
    ok = 0
    t0 = time.perf_counter()
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for _ in range(n):
            if time.perf_counter() - t0 > MAX_SECONDS:
                break
            t = time.perf_counter()
            r = c.request(method, path, json=body)
            lat.append((time.perf_counter() - t) * 1000)
            ok += r.status_code == 200
    xs = sorted(lat)
    return {
        "n": len(xs),
        "rate": len(xs) / (time.perf_counter() - t0),
        "p50": statistics.median(xs),
        "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))],
        "ok": ok,
    }


def _run(db, keyring, key_hex: str) -> dict[str, dict]:
    app = create_app(db, keyring)
    reg = app.state.registry
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_researcher(OP, "ann@northbridge.ac.uk", "Northbridge Institute")
    reg.add_application(OP, "A-0017", "Northbridge Institute", ["31", "34"], members=["ann@northbridge.ac.uk"])
    reg.approve_application(OP, "A-0017")
    reg.add_account(OP, "ann", ["researcher"], researcher="ann@northbridge.ac.uk")
    h = {"Authorization": f"Bearer {reg.create_token(OP, username='ann').token}"}
    proc, base = _serve(db.url, key_hex)
    try:
        return {
            "serial: POST /applications/A-0017/access": _serial(
                base, "POST", "/applications/A-0017/access", h, {"fields": ["31"]}
            ),
            "GET /health (open, no decision)": _paced(base, "GET", "/health", {}, None),
            "GET /me (authorised, ledgered)": _paced(base, "GET", "/me", h, None),
            "POST /applications/A-0017/access": _paced(
                base, "POST", "/applications/A-0017/access", h, {"fields": ["31"]}
            ),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    console = Console()
    key_hex = "33" * 32
    keyring = KeyRing(bytes.fromhex(key_hex))
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/api.db"
        migrate(url)
        db = connect(url)
        results["SQLite"] = _run(db, keyring, key_hex)
        db.dispose()
    try:
        with scratch_schema(PG_URL, prefix="bench") as url:
            migrate(url)
            db = connect(url)
            results["PostgreSQL"] = _run(db, keyring, key_hex)
            db.dispose()
    except sa.exc.OperationalError as exc:
        console.print(f"[yellow]PostgreSQL not reachable ({exc.__class__.__name__}); SQLite only[/]")
    table = Table(
        title=f"API on 127.0.0.1, paced at {RATE:.0f} req/s, {REQUESTS} requests per row (latency ms "
        "from the scheduled send)"
    )
    for col in ("store", "endpoint", "requests", "achieved req/s", "p50", "p99", "200 OK"):
        table.add_column(col)
    for store, rows in results.items():
        for name, r in rows.items():
            table.add_row(
                store,
                name,
                str(r["n"]),
                f"{r['rate']:.0f}",
                f"{r['p50']:.1f}",
                f"{r['p99']:.1f}",
                f"{r['ok']}/{r['n']}",
            )
    console.print(table)
    console.print(
        f"machine: {os.cpu_count()} cores, shared with other work; every authorised request's decision is in "
        "the ledger, durably committed (group commit: requests that arrive together share one commit; "
        "SQLite synchronous=FULL), before its response is sent"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _server_main(sys.argv[2], sys.argv[3])
    else:
        main()
