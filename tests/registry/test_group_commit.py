"""Group commit: units of work that arrive together share one transaction and one commit, yet each one
is all-or-nothing, runs after the ones before it, and returns only once its ledger entries are durable."""

from __future__ import annotations

import threading

import pytest

from biowarden.ledger import LedgerEvent
from biowarden.registry import LOCAL_OPERATOR as OP
from biowarden.registry.errors import NotFound


def _event(i: int) -> LedgerEvent:
    return LedgerEvent("test.unit", "system:test", f"n:{i}", {"i": i})


def test_a_failing_unit_leaves_nothing_and_the_others_commit(reg):
    ledger = reg.audit.ledger
    before = ledger.size()
    gate = threading.Event()
    results: dict[int, object] = {}

    def unit(i: int):
        def fn(s):
            idx = ledger.append(s, _event(i))
            if i == 1:
                raise NotFound("unit 1 fails after appending")
            return idx

        return fn

    def call(i: int) -> None:
        gate.wait()
        try:
            results[i] = reg.work.run(unit(i))
        except NotFound as exc:
            results[i] = exc

    # hold the leader's place so that the three units queue up and run as one batch
    with reg.work._cv:
        reg.work._leading = True
    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    gate.set()
    while len(reg.work._queue) < 3:
        threading.Event().wait(0.01)
    batches = reg.work.batches
    with reg.work._cv:
        reg.work._leading = False
        reg.work._cv.notify_all()
    for t in threads:
        t.join(timeout=30)
    assert reg.work.batches == batches + 1  # one transaction for the three
    assert isinstance(results[1], NotFound)
    ok = sorted(v for k, v in results.items() if k != 1)
    assert ok == [before, before + 1]  # gap-free: the failed unit's index was given to the next one
    entries = list(ledger.entries(start=before))
    assert sorted(e.subject for e in entries) == ["n:0", "n:2"]
    report = ledger.verify()
    assert report.ok, report.problem


def test_concurrent_decisions_share_commits_and_are_all_ledgered(reg):
    reg.add_institution(OP, "Northbridge Institute")
    reg.add_researcher(OP, "ann@northbridge.ac.uk", "Northbridge Institute")
    reg.add_application(OP, "A-0017", "Northbridge Institute", ["31"], members=["ann@northbridge.ac.uk"])
    reg.approve_application(OP, "A-0017")
    reg.add_account(OP, "ann", ["researcher"], researcher="ann@northbridge.ac.uk")
    who = reg.authenticate(reg.create_token(OP, username="ann").token)
    batches, units = reg.work.batches, reg.work.units
    got: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            d = reg.check_access(who, "A-0017", ["31"])
            assert d.allow
            with lock:
                got.append(d.ledger_index)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(got) == 120 and len(set(got)) == 120
    assert reg.work.units - units == 120
    assert reg.work.batches - batches <= 120
    decisions = {e.index: e for e in reg.audit.ledger.entries(start=min(got)) if e.kind == "decision"}
    assert all(decisions[i].decision == "allow" and decisions[i].actor == "ann" for i in got)
    assert reg.audit.ledger.verify().ok


def test_a_unit_may_run_another_inside_its_transaction(reg):
    ledger = reg.audit.ledger

    def outer(s):
        first = ledger.append(s, _event(0))
        second = reg.work.run(lambda s2: ledger.append(s2, _event(1)))
        return first, second

    a, b = reg.work.run(outer)
    assert b == a + 1
    assert ledger.verify().ok


def test_max_batch_must_be_positive(reg):
    from biowarden.registry.batch import GroupCommit

    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(reg.db, lambda s: None, reg._gate, max_batch=0)
