"""Verification in ranges (and in worker processes) gives the same report as one stream; the fast paths
(inline leaf bytes, pre-hashed HMAC pads, packed tree levels) equal the reference definitions."""

from __future__ import annotations

import hmac
import random
import threading

import pytest
import sqlalchemy as sa

from biowarden.ledger import LedgerEvent, canonical_json, canonical_text
from biowarden.ledger.events import entry_bytes
from biowarden.ledger.merkle import PackedTree, TreeHashes, leaf_hash, verify_consistency, verify_inclusion
from biowarden.ledger.verify import EntryMac, check_entries, entry_mac
from tests.ledger.test_tamper import attacker

TRICKY = [
    "",
    "plain",
    'quote " and back\\slash',
    "tab\tnew\nline\rfeed\x0cbell\x07nul\x00us\x1f",
    "del\x7f nbsp\u00a0 line-sep\u2028 para-sep\u2029",
    "ümlaut é 中文 emoji \U0001f600 astral \U00010000",
    "</script><!-- ' OR 1=1; DROP TABLE ledger_entries; --",
]


@pytest.mark.parametrize("s", TRICKY)
def test_entry_bytes_equal_canonical_json_for_tricky_text(s):
    payload = canonical_text({"s": s, "n": 3})
    for decision, reason in ((None, None), ("deny", s or "R")):
        got = entry_bytes(5, s or "t", "policy.decision", s or "a", s or "b", decision, reason, payload)
        want = canonical_json(
            {
                "index": 5,
                "at": s or "t",
                "kind": "policy.decision",
                "actor": s or "a",
                "subject": s or "b",
                "decision": decision,
                "reason": reason,
                "payload": {"s": s, "n": 3},
            }
        )
        assert got == want


def test_entry_bytes_refuse_lone_surrogates_and_non_text():
    with pytest.raises(UnicodeEncodeError):
        entry_bytes(0, "t", "k", "\ud800", "s", None, None, "{}")
    with pytest.raises(TypeError):
        entry_bytes(0, "t", "k", 17, "s", None, None, "{}")  # type: ignore[arg-type]


@pytest.mark.parametrize("key_len", [0, 1, 32, 64, 65, 200])
def test_entry_mac_with_prehashed_pads_is_hmac_sha256(key_len):
    rng = random.Random(key_len)
    key = bytes(rng.randrange(256) for _ in range(key_len))
    mac = EntryMac(key)
    for i in (0, 1, 255, 2**40 + 3):
        lh = bytes(rng.randrange(256) for _ in range(32))
        assert mac(i, lh) == entry_mac(key, i, lh)
        assert mac(i, lh) == hmac.new(key, i.to_bytes(8, "big") + lh, "sha256").digest()[:16]


def test_packed_tree_answers_as_the_reference_tree():
    leaves = [leaf_hash(str(i).encode()) for i in range(70)]
    packed = PackedTree.from_leaves(b"".join(leaves))
    ref = TreeHashes(leaves, min_level=1)
    for n in range(1, 71):
        root = ref.root(n)
        assert packed.root(n) == root
        for i in range(0, n, 7):
            proof = packed.inclusion_proof(i, n)
            assert proof == ref.inclusion_proof(i, n)
            assert verify_inclusion(i, n, leaves[i], proof, root)
        for m in range(1, n + 1, 5):
            proof = packed.consistency_proof(m, n)
            assert proof == ref.consistency_proof(m, n)
            assert verify_consistency(m, n, ref.root(m), root, proof)


def test_range_checks_join_into_the_whole_tree(keyring):
    key = keyring.key("ledger/entry-mac")
    mac = EntryMac(key)
    rows = []
    for i in range(37):
        lh = leaf_hash(entry_bytes(i, "t", "k.k", "a", f"s{i}", None, None, "{}"))
        rows.append((i, "t", "k.k", "a", f"s{i}", None, None, "{}", lh, mac(i, lh)))
    whole = check_entries(rows, key, 0, levels=64)
    parts = [check_entries(rows[a : a + 8], key, a, min(a + 8, 37)) for a in range(0, 37, 8)]
    assert sum(p.count for p in parts) == 37 and all(p.problem is None for p in parts)
    from biowarden.ledger.verify import _join_levels

    joined = PackedTree(_join_levels(parts))
    for n in range(1, 38):
        assert joined.root(n) == PackedTree(whole.levels).root(n)
    gap = check_entries(rows[:5] + rows[6:8], key, 0, 8)
    assert gap.count == 5 and gap.problem is not None and gap.problem[0] == 5
    short = check_entries(rows[:6], key, 0, 8)  # the stored entries end inside the range
    assert short.count == 6 and short.problem is None
    assert check_entries(rows[:9], key, 0, 8).count == 8  # the row at the range's end is not checked


def _fill(db, ledger, n=45):
    with db.session() as s:
        ledger.append_many(
            s,
            [LedgerEvent("registry.institution.add", "operator", f"institution:I{i}", {"n": i}) for i in range(n)],
        )
    # a few more transactions so that there are several checkpoints
    for i in range(n, n + 20, 4):
        with db.session() as s:
            ledger.append_many(s, [LedgerEvent("t.x", "operator", f"n:{j}", {"j": j}) for j in range(i, i + 4)])


def _reports(ledger):
    ref = ledger.verify(workers=1)
    ranged = ledger.verify(workers=1, chunk=8)
    forked = ledger.verify(workers=2, chunk=8)
    return ref, ranged, forked


def _same(a, b) -> None:
    assert (a.ok, a.entries, a.first_bad_index, a.problem, a.root_hash, a.tree_size) == (
        b.ok,
        b.entries,
        b.first_bad_index,
        b.problem,
        b.root_hash,
        b.tree_size,
    )


def test_ranges_and_workers_agree_on_a_sound_ledger(db, ledger):
    _fill(db, ledger)
    ref, ranged, forked = _reports(ledger)
    assert ref.ok and ref.entries == 65 and ref.checkpoints == 3
    _same(ref, ranged)
    _same(ref, forked)
    # workers fork only from a process that runs no other thread; earlier tests in the same run (Spark,
    # the API's test client) may have left threads, and then verify must fall back to one process
    assert forked.workers == (2 if threading.active_count() == 1 else 1)


@pytest.mark.parametrize(
    ("tamper", "bad"),
    [
        ("edit", 16),  # first entry of a range
        ("edit", 39),
        ("delete", 23),  # last entry of a range: the next range's first row jumps
        ("delete", 24),
        ("swap", 15),  # a reordered pair across a range boundary
        ("swap", 40),
        ("cut", 30),  # the tail cut off mid-range
    ],
)
def test_ranges_and_workers_name_the_same_first_bad_entry(db, ledger, tamper, bad):
    _fill(db, ledger)
    if tamper == "edit":
        attacker(db, f"UPDATE ledger_entries SET payload = :p WHERE idx = {bad}", params={"p": '{"n":999}'})
    elif tamper == "delete":
        attacker(db, f"DELETE FROM ledger_entries WHERE idx = {bad}")
    elif tamper == "cut":
        attacker(db, f"DELETE FROM ledger_entries WHERE idx >= {bad}")
    else:
        cols = "at, kind, actor, subject, decision, reason, payload, leaf_hash, mac"
        with db.engine.connect() as c:
            a = c.execute(sa.text(f"SELECT {cols} FROM ledger_entries WHERE idx = {bad}")).one()
            b = c.execute(sa.text(f"SELECT {cols} FROM ledger_entries WHERE idx = {bad + 1}")).one()
        sets = ", ".join(f"{k} = :{k}" for k in cols.split(", "))
        attacker(db, f"UPDATE ledger_entries SET {sets} WHERE idx = {bad}", params=dict(b._mapping))
        attacker(db, f"UPDATE ledger_entries SET {sets} WHERE idx = {bad + 1}", params=dict(a._mapping))
    ref, ranged, forked = _reports(ledger)
    assert not ref.ok and ref.first_bad_index == bad, ref.problem
    _same(ref, ranged)
    _same(ref, forked)


def test_chunk_must_be_a_power_of_two(ledger):
    with pytest.raises(ValueError, match="power of two"):
        ledger.verify(chunk=12)
