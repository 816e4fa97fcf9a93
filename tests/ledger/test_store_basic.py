"""Appending, reading, proving and verifying through the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from biowarden.ledger import LedgerEvent, verify_consistency, verify_inclusion
from biowarden.ledger.canonical import CanonicalJSONError


def _ev(i: int, **kw) -> LedgerEvent:
    return LedgerEvent("test.event", "operator", f"thing:{i}", {"i": i, "tags": ["a", "é"]}, **kw)


def test_append_read_prove_verify(db, ledger):
    with db.session() as s:
        assert ledger.append(s, _ev(0, decision="deny", reason="DENY_TEST")) == 0
        assert ledger.append_many(s, [_ev(i) for i in range(1, 20)]) == list(range(1, 20))
    entries = list(ledger.entries())
    assert [e.index for e in entries] == list(range(20))
    assert entries[0].decision == "deny" and entries[0].reason == "DENY_TEST"
    assert entries[3].payload == {"i": 3, "tags": ["a", "é"]}
    assert [e.index for e in ledger.entries(start=5, stop=8)] == [5, 6, 7]
    # the first append finds no checkpoint yet (time-based), the batch then crosses 8 entries (count-based)
    assert [c.tree_size for c in ledger.checkpoints()] == [1, 20]
    root = ledger.root()
    for i in (0, 7, 19):
        assert verify_inclusion(i, 20, entries[i].leaf_hash, ledger.inclusion_proof(i), root)
    assert verify_consistency(8, 20, ledger.root(8), root, ledger.consistency_proof(8, 20))
    report = ledger.verify()
    assert report.ok, report.problem
    assert report.entries == 20 and report.root_hash == root


def test_rollback_leaves_no_gap(db, ledger):
    with db.session() as s:
        ledger.append(s, _ev(0))
    with pytest.raises(RuntimeError), db.session() as s:
        ledger.append(s, _ev(1))
        raise RuntimeError("the caller's change failed")
    with db.session() as s:
        assert ledger.append(s, _ev(2)) == 1
    assert [e.subject for e in ledger.entries()] == ["thing:0", "thing:2"]
    assert ledger.verify().ok


def test_explicit_time_and_checkpoint(db, ledger):
    at = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    with db.session() as s:
        ledger.append(s, _ev(0, at=at))
    assert next(ledger.entries()).at == at
    cp = ledger.checkpoint()
    assert cp.tree_size == 1 and cp.root_hash == ledger.root()
    assert ledger.checkpoint().note == cp.note  # same size: the same checkpoint
    assert ledger.verifier.verify(cp.note).startswith(ledger.origin + "\n1\n")


def test_bad_events_are_refused_before_anything_is_written(db, ledger):
    with pytest.raises(ValueError, match="kind"):
        LedgerEvent("Bad Kind", "operator", "x")
    with pytest.raises(ValueError, match="decision"):
        LedgerEvent("policy.decision", "operator", "x", decision="maybe")
    with pytest.raises(CanonicalJSONError, match="nan"), db.session() as s:
        ledger.append(s, LedgerEvent("a.b", "operator", "x", {"v": float("nan")}))
    assert ledger.size() == 0
