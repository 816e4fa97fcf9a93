"""Every inclusion and consistency proof over a 1,024-leaf tree verifies, and single-bit changes fail.

The fast variant covers every pair up to 64 leaves, every proof in the 1,024-leaf tree and a
deterministic sample of pairs up to 1,024, flipping deterministically chosen bits of every proof
element and of the root(s); every bit of every element is flipped for trees of up to 8 leaves.
The slow variant covers every 0 < m <= n <= 1024.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from biowarden.ledger.merkle import CompactRange, TreeHashes, leaf_hash, verify_consistency, verify_inclusion

N = 1024
LEAF_HASHES = [leaf_hash(i.to_bytes(4, "big") + b"biowarden") for i in range(N)]


class CachedTree(TreeHashes):
    def __init__(self, leaves):
        super().__init__(leaves, min_level=1)
        self._memo: dict[tuple[int, int], bytes] = {}

    def mth(self, start, end):
        key = (start, end)
        v = self._memo.get(key)
        if v is None:
            v = super().mth(start, end)
            self._memo[key] = v
        return v


TREE = CachedTree(LEAF_HASHES)


def _prefix_roots() -> list[bytes]:
    cr = CompactRange()
    roots = [cr.root()]
    for lh in LEAF_HASHES:
        cr.append(lh)
        roots.append(cr.root())
    return roots


ROOTS = _prefix_roots()


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def bits_for(*key: int, count: int = 2) -> list[int]:
    """Deterministic bit positions for one proof element."""
    d = hashlib.sha256(repr(key).encode()).digest()
    return [int.from_bytes(d[2 * i : 2 * i + 2], "big") % 256 for i in range(count)]


def check_inclusion(i: int, n: int, bits: list[int] | None = None) -> None:
    proof = TREE.inclusion_proof(i, n)
    root = ROOTS[n]
    assert verify_inclusion(i, n, LEAF_HASHES[i], proof, root), (i, n)
    for j, p in enumerate(proof):
        for bit in bits if bits is not None else bits_for(i, n, j):
            bad = list(proof)
            bad[j] = flip(p, bit)
            assert not verify_inclusion(i, n, LEAF_HASHES[i], bad, root), (i, n, j, bit)
    for bit in bits if bits is not None else bits_for(i, n, -1):
        assert not verify_inclusion(i, n, LEAF_HASHES[i], proof, flip(root, bit)), (i, n, bit)
        assert not verify_inclusion(i, n, flip(LEAF_HASHES[i], bit), proof, root), (i, n, bit)


def check_consistency(m: int, n: int, bits: list[int] | None = None) -> None:
    proof = TREE.consistency_proof(m, n)
    r1, r2 = ROOTS[m], ROOTS[n]
    assert verify_consistency(m, n, r1, r2, proof), (m, n)
    for j, p in enumerate(proof):
        for bit in bits if bits is not None else bits_for(m, n, j):
            bad = list(proof)
            bad[j] = flip(p, bit)
            assert not verify_consistency(m, n, r1, r2, bad), (m, n, j, bit)
    for bit in bits if bits is not None else bits_for(m, n, -1):
        assert not verify_consistency(m, n, flip(r1, bit), r2, proof), (m, n, bit)
        assert not verify_consistency(m, n, r1, flip(r2, bit), proof), (m, n, bit)


def test_tree_roots_agree():
    for n in (0, 1, 2, 3, 7, 8, 100, 511, 512, 513, 1023, 1024):
        assert TREE.root(n) == ROOTS[n]


def test_every_bit_of_every_proof_for_small_trees():
    every = list(range(256))
    for n in range(1, 9):
        for m in range(1, n + 1):
            check_consistency(m, n, every)
            check_inclusion(m - 1, n, every)


def test_every_pair_up_to_64_and_a_sample_up_to_1024():
    for n in range(1, 65):
        for m in range(1, n + 1):
            check_consistency(m, n)
            check_inclusion(m - 1, n)
    rng = random.Random(1024)
    for _ in range(1500):
        n = rng.randint(65, N)
        m = rng.randint(1, n)
        check_consistency(m, n)
        check_inclusion(m - 1, n)
    for m in range(1, N + 1):  # every proof in the full tree
        check_consistency(m, N)
        check_inclusion(m - 1, N)


@pytest.mark.slow
def test_every_pair_up_to_1024():
    for n in range(1, N + 1):
        for m in range(1, n + 1):
            check_consistency(m, n, bits_for(m, n, count=1))
            check_inclusion(m - 1, n, bits_for(n, m, count=1))
