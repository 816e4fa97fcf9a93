"""The RFC 6962 / Certificate Transparency reference test vectors (the 8-leaf tree used by the CT and
transparency-dev implementations): leaf inputs, the root of every prefix, and known proofs."""

from __future__ import annotations

import pytest

from biowarden.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    TreeHashes,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def h(s: str) -> bytes:
    return bytes.fromhex(s)


LEAVES = [
    h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    h(x)
    for x in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (leaf index (0-based), tree size, proof)
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

TREE = TreeHashes([leaf_hash(d) for d in LEAVES], min_level=1)


def test_empty_tree_hash():
    assert h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT
    assert TREE.root(0) == EMPTY_ROOT


def test_root_of_every_prefix():
    cr = CompactRange()
    for n, d in enumerate(LEAVES, start=1):
        cr.append(leaf_hash(d))
        assert cr.root() == ROOTS[n - 1], n
        assert TREE.root(n) == ROOTS[n - 1], n
        # the frontier survives a round trip through its stored form
        assert CompactRange.from_bytes(cr.size, cr.to_bytes()).root() == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_known_inclusion_proofs(index, size, proof):
    proof = [h(p) for p in proof]
    assert TREE.inclusion_proof(index, size) == proof
    assert verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])
    assert not verify_inclusion(index, size, leaf_hash(b"WrongLeaf"), proof, ROOTS[size - 1])
    if index + 1 < size:
        assert not verify_inclusion(index + 1, size, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])
    assert not verify_inclusion(index, size * 2, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])
    assert not verify_inclusion(index, size, leaf_hash(LEAVES[index]), [*proof, b""], ROOTS[size - 1])
    assert not verify_inclusion(index, size, leaf_hash(LEAVES[index]), [*proof, ROOTS[size - 1]], ROOTS[size - 1])
    if proof:
        assert not verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof[:-1], ROOTS[size - 1])


@pytest.mark.parametrize(("m", "n", "proof"), CONSISTENCY)
def test_known_consistency_proofs(m, n, proof):
    proof = [h(p) for p in proof]
    assert TREE.consistency_proof(m, n) == proof
    assert verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], proof)
    if m != n:
        assert not verify_consistency(m, n, ROOTS[n - 1], ROOTS[m - 1], proof)  # swapped roots
        assert not verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], [])  # empty proof
        assert not verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], proof[:-1])  # truncated
        assert not verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], [*proof, ROOTS[m - 1]])
        assert not verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], [proof[0], *proof])
        assert not verify_consistency(m + 1, n, ROOTS[m - 1], ROOTS[n - 1], proof)
        assert not verify_consistency(m, n * 2, ROOTS[m - 1], ROOTS[n - 1], proof)


def test_edge_cases_of_consistency():
    r1, r2 = ROOTS[0], ROOTS[1]
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[4], [])
    assert verify_consistency(1, 1, r1, r1, [])
    assert not verify_consistency(1, 1, r1, r2, [])
    assert not verify_consistency(2, 1, r2, r1, [])  # time travel to the past
    assert not verify_consistency(1, 1, r1, r1, [EMPTY_ROOT])  # roots match but the proof is not empty
    assert not verify_consistency(1, 2, b"short", r2, [])
