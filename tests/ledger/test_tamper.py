"""Append-only triggers, raw tampering by someone with database access, and concurrent appends, on
SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from biowarden.ledger import LedgerEvent
from biowarden.ledger.merkle import leaf_hash
from biowarden.store.ledger_store import LedgerStore

TARGET = 13


def fill(db, ledger, n=30):
    with db.session() as s:
        for i in range(n):
            ledger.append(
                s, LedgerEvent("registry.institution.add", "operator", f"institution:I{i}", {"name": f"I{i}", "n": i})
            )
    assert ledger.verify().ok


def attacker(db, *statements, params=None):
    """Raw SQL with the append-only triggers switched off, as an attacker with database access would."""
    with db.engine.begin() as c:
        if db.dialect == "postgresql":
            c.exec_driver_sql("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
            c.exec_driver_sql("ALTER TABLE ledger_checkpoints DISABLE TRIGGER USER")
        else:
            for t in ("ledger_entries", "ledger_checkpoints"):
                c.exec_driver_sql(f"DROP TRIGGER IF EXISTS {t}_no_update")
                c.exec_driver_sql(f"DROP TRIGGER IF EXISTS {t}_no_delete")
        for st in statements:
            c.execute(sa.text(st), params or {})


def test_triggers_block_update_and_delete(db, ledger):
    fill(db, ledger, 3)
    for stmt in (
        "UPDATE ledger_entries SET actor = 'someone else' WHERE idx = 1",
        "DELETE FROM ledger_entries WHERE idx = 2",
        "UPDATE ledger_checkpoints SET note = 'x'",
        "DELETE FROM ledger_checkpoints",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as c:
            c.execute(sa.text(stmt))
    if db.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as c:
            c.execute(sa.text("TRUNCATE ledger_entries"))
    assert ledger.verify().ok and ledger.size() == 3


def test_edited_row_is_named(db, ledger):
    fill(db, ledger)
    attacker(db, f"UPDATE ledger_entries SET payload = :p WHERE idx = {TARGET}", params={"p": '{"n":999}'})
    r = ledger.verify()
    assert not r.ok and r.first_bad_index == TARGET
    assert f"entry {TARGET} was altered" in r.problem


def test_edited_field_is_named(db, ledger):
    fill(db, ledger)
    attacker(db, f"UPDATE ledger_entries SET decision = 'allow' WHERE idx = {TARGET}")
    r = ledger.verify()
    assert not r.ok and r.first_bad_index == TARGET


def test_deleted_row_is_named(db, ledger):
    fill(db, ledger)
    attacker(db, f"DELETE FROM ledger_entries WHERE idx = {TARGET}")
    r = ledger.verify()
    assert not r.ok and r.first_bad_index == TARGET
    assert f"entry {TARGET} is missing" in r.problem


def test_reordered_pair_is_named(db, ledger):
    fill(db, ledger)
    cols = "at, kind, actor, subject, decision, reason, payload, leaf_hash, mac"
    with db.engine.connect() as c:
        a = c.execute(sa.text(f"SELECT {cols} FROM ledger_entries WHERE idx = :i"), {"i": TARGET}).one()
        b = c.execute(sa.text(f"SELECT {cols} FROM ledger_entries WHERE idx = :i"), {"i": TARGET + 1}).one()
    sets = ", ".join(f"{k} = :{k}" for k in cols.split(", "))
    attacker(db, f"UPDATE ledger_entries SET {sets} WHERE idx = {TARGET}", params=dict(b._mapping))
    attacker(db, f"UPDATE ledger_entries SET {sets} WHERE idx = {TARGET + 1}", params=dict(a._mapping))
    r = ledger.verify()
    assert not r.ok and r.first_bad_index == TARGET


def test_row_rewritten_with_its_hash_is_named_by_the_mac(db, ledger):
    fill(db, ledger)
    e = next(ledger.entries(start=TARGET, stop=TARGET + 1))
    from biowarden.ledger.events import entry_bytes

    forged = leaf_hash(
        entry_bytes(
            TARGET,
            e.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            e.kind,
            e.actor,
            "institution:Elsewhere",
            e.decision,
            e.reason,
            e.payload_json,
        )
    )
    attacker(
        db,
        f"UPDATE ledger_entries SET subject = 'institution:Elsewhere', leaf_hash = :h WHERE idx = {TARGET}",
        params={"h": forged},
    )
    r = ledger.verify()
    assert not r.ok and r.first_bad_index == TARGET
    assert "authentication code" in r.problem


def test_cut_tail_and_forged_checkpoint_are_caught(db, ledger):
    fill(db, ledger)  # checkpoints at 1, 9, 17, 25 (every 8 after the first)
    attacker(db, "DELETE FROM ledger_entries WHERE idx >= 28")
    r = ledger.verify()
    assert not r.ok and r.first_bad_index == 28 and "missing" in r.problem
    attacker(db, "DELETE FROM ledger_entries WHERE idx >= 20")
    r = ledger.verify()
    assert not r.ok and r.first_bad_index == 20  # the checkpoint at 25 covers entries that are gone


def test_altered_checkpoint_is_caught(db, ledger):
    fill(db, ledger)
    attacker(db, "UPDATE ledger_checkpoints SET root_hash = :r WHERE tree_size = 9", params={"r": bytes(32)})
    r = ledger.verify()
    assert not r.ok and "checkpoint at tree size 9" in r.problem


def test_another_key_cannot_verify(db, ledger):
    from biowarden.keys import KeyRing

    fill(db, ledger, 5)
    stranger = LedgerStore(db, KeyRing(bytes(32)), origin=ledger.origin)
    r = stranger.verify()
    assert not r.ok


@pytest.mark.parametrize("threads", [8])
def test_concurrent_appends_are_gap_free(db, ledger, threads):
    per = 50
    errors: list[BaseException] = []
    got: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for i in range(per):
                with db.session() as s:
                    idx = ledger.append(s, LedgerEvent("test.concurrent", f"system:t{t}", f"n:{i}", {"t": t, "i": i}))
                with lock:
                    got.append(idx)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:1]
    assert sorted(got) == list(range(threads * per))
    r = ledger.verify()
    assert r.ok, r.problem
    assert r.entries == threads * per
