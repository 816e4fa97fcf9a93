"""Suspension under load: 50 clients hammer a real uvicorn server on 127.0.0.1 while a platform suspension
is issued. No request is allowed after the suspension's ledger entry: every accepted request's decision
precedes it in the ledger, and every request sent after the suspension returned is refused."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from biowarden.registry import LOCAL_OPERATOR as OP

CLIENTS = 50


def serve(app):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # accepted sockets inherit TCP_NODELAY: without it every response waits ~40 ms for a delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_platform_suspension_under_load(app, reg):
    reg.add_institution(OP, "Northbridge Institute")
    emails = [f"r{i}@northbridge.ac.uk" for i in range(10)]
    for e in emails:
        reg.add_researcher(OP, e, "Northbridge Institute")
    reg.add_application(OP, "A-0017", "Northbridge Institute", ["31", "34"], members=emails)
    reg.approve_application(OP, "A-0017")
    for i, e in enumerate(emails):
        reg.add_account(OP, f"r{i}", ["researcher"], researcher=e)
    reg.add_account(OP, "cara", ["custodian_admin"])
    admin = reg.create_token(OP, username="cara").token
    tokens = [reg.create_token(OP, username=f"r{i % 10}").token for i in range(CLIENTS)]

    server, thread, base = serve(app)
    results: list[tuple[float, float, int, int | None, str | None]] = []  # sent, received, status, index
    lock = threading.Lock()
    suspended_at: list[float] = []
    stop = threading.Event()
    started = threading.Barrier(CLIENTS + 1)

    def hammer(token: str, k: int) -> None:
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
            started.wait()
            after = 0
            while not stop.is_set() and after < 1:
                sent = time.monotonic()
                r = c.post("/applications/A-0017/access", json={"fields": ["31" if k % 2 else "34"]})
                got = time.monotonic()
                body = r.json()
                with lock:
                    results.append((sent, got, r.status_code, body.get("ledger_index"), body.get("reason")))
                if suspended_at and sent > suspended_at[0]:
                    after += 1

    threads = [threading.Thread(target=hammer, args=(t, k)) for k, t in enumerate(tokens)]
    for t in threads:
        t.start()
    try:
        started.wait()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # let the load build up first
            with lock:
                if sum(1 for r in results if r[2] == 200) >= 30:
                    break
            time.sleep(0.01)
        with httpx.Client(base_url=base, timeout=60) as c:
            r = c.post(
                "/platform/suspend",
                json={"reason": "records listed for sale"},
                headers={"Authorization": f"Bearer {admin}"},
            )
        assert r.status_code == 201, r.text
        suspended_at.append(time.monotonic())
        suspension_index = r.json()["ledger_index"]
        for t in threads:
            t.join(timeout=120)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        server.should_exit = True
        thread.join(timeout=30)

    accepted = [x for x in results if x[2] == 200]
    assert len(accepted) >= 30
    assert all(x[3] is not None and x[3] < suspension_index for x in accepted)
    late = [x for x in results if x[0] > suspended_at[0]]
    assert len(late) >= CLIENTS  # every client made requests after the suspension returned
    assert all(x[2] in (401, 403) for x in late)
    assert {x[4] for x in late if x[2] == 403} <= {"DENY_SUSPENDED_PLATFORM", "DENY_TOKEN_REVOKED"}
    # the ledger agrees: no researcher request is allowed after the suspension's entry
    allowed_after = [
        e
        for e in reg.audit.ledger.entries(start=suspension_index)
        if e.kind == "decision" and e.decision == "allow" and e.actor.startswith("r")
    ]
    assert allowed_after == []
    denied_after = [e for e in reg.audit.ledger.entries(start=suspension_index) if e.decision == "deny"]
    assert len(denied_after) >= len(late)
