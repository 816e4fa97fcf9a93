"""RFC 9162 (Certificate Transparency v2; the same tree as RFC 6962) Merkle tree hashing with SHA-256.

- ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``, and the hash of
  the empty tree is ``SHA-256("")``.
- :class:`CompactRange` is the incremental frontier of a growing log: the roots of the perfect subtrees
  that make up ``[0, size)``, at most one per bit of ``size``. An append is O(log n) and the tree head is
  O(log n), so the log never re-reads old leaves to write.
- :class:`TreeHashes` answers MTH, inclusion and consistency questions about any prefix of a list of leaf
  hashes, keeping the perfect-subtree hashes from ``min_level`` up so that a proof costs O(log n)
  look-ups plus at most ``2**min_level`` hashes per node.
- :func:`verify_inclusion` and :func:`verify_consistency` are the verification algorithms of RFC 9162
  sections 2.1.3.2 and 2.1.4.2, step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "LeafArray",
    "PackedTree",
    "ProofError",
    "TreeHashes",
    "leaf_hash",
    "node_hash",
    "pack_levels",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof was asked for sizes or indices that do not exist."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The frontier of a log of ``size`` leaves: one perfect-subtree root per set bit of ``size``,
    largest (leftmost) first."""

    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise ValueError("size must be non-negative")
        if len(nodes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} needs {bin(size).count('1')} nodes, got {len(nodes)}")
        self.size = size
        self.nodes: list[bytes] = list(nodes)

    def append(self, lh: bytes) -> None:
        """Add one leaf hash; merge equal-sized subtrees (one merge per trailing 1 bit of the old size)."""
        nodes = self.nodes
        h = lh
        s = self.size
        while s & 1:
            h = _sha256(b"\x01" + nodes.pop() + h).digest()
            s >>= 1
        nodes.append(h)
        self.size += 1

    def append_recording(self, lh: bytes, levels: dict[int, list[bytes]], min_level: int) -> None:
        """Like :meth:`append`, also recording every perfect subtree completed at ``min_level`` or above
        (``levels[k]`` receives them in index order, as :class:`TreeHashes` keeps them)."""
        nodes = self.nodes
        h = lh
        s = self.size
        level = 0
        while s & 1:
            h = _sha256(b"\x01" + nodes.pop() + h).digest()
            s >>= 1
            level += 1
            if level >= min_level:
                levels.setdefault(level, []).append(h)
        nodes.append(h)
        self.size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for lh in leaf_hashes:
            self.append(lh)

    def root(self) -> bytes:
        """MTH of the leaves so far (RFC 9162 section 2.1.1)."""
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for n in reversed(self.nodes[:-1]):
            acc = _sha256(b"\x01" + n + acc).digest()
        return acc

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.nodes)

    def to_bytes(self) -> bytes:
        return b"".join(self.nodes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> CompactRange:
        if len(blob) % HASH_SIZE:
            raise ValueError("a compact range must be a whole number of 32-byte hashes")
        return cls(size, [bytes(blob[i : i + HASH_SIZE]) for i in range(0, len(blob), HASH_SIZE)])


class LeafArray(Sequence[bytes]):
    """Leaf hashes packed in one bytearray (32 bytes each): a million cost 32 MB, not 70."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def append(self, lh: bytes) -> None:
        self.buf += lh

    def __len__(self) -> int:
        return len(self.buf) // HASH_SIZE

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("LeafArray does not slice")
        if i < 0:
            i += len(self)
        return bytes(self.buf[i * HASH_SIZE : (i + 1) * HASH_SIZE])


class TreeHashes:
    """Every MTH and proof over a fixed list of leaf hashes (any prefix of it)."""

    def __init__(
        self,
        leaf_hashes: Sequence[bytes],
        min_level: int = 4,
        levels: dict[int, list[bytes]] | None = None,
    ) -> None:
        self.leaves = leaf_hashes
        self.min_level = max(1, min_level)
        # levels[k] holds the roots of the perfect subtrees of 2**k leaves, for k >= min_level.
        if levels is not None:  # recorded while the leaves were appended (CompactRange.append_recording)
            self.levels = levels
            return
        self.levels = {}
        cur: Sequence[bytes] = leaf_hashes
        level = 0
        while len(cur) >= 2:
            nxt = [_sha256(b"\x01" + cur[i] + cur[i + 1]).digest() for i in range(0, len(cur) - 1, 2)]
            level += 1
            if level >= self.min_level:
                self.levels[level] = nxt
            cur = nxt

    @property
    def size(self) -> int:
        return len(self.leaves)

    def _perfect(self, level: int, index: int) -> bytes:
        if level == 0:
            return self.leaves[index]
        if level >= self.min_level:
            return self.levels[level][index]
        return node_hash(self._perfect(level - 1, 2 * index), self._perfect(level - 1, 2 * index + 1))

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); ``start`` must be aligned as the RFC's recursion leaves it."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._perfect(n.bit_length() - 1, start // n)
        k = _largest_power_of_two_below(n)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is outside the log (0..{self.size})")
        return self.mth(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is outside the log (0..{self.size})")
        if not 0 <= index < size:
            raise ProofError(f"entry {index} is not in a tree of size {size}")
        out: list[bytes] = []
        start, end, m = 0, size, index
        while end - start > 1:
            k = _largest_power_of_two_below(end - start)
            if m < k:
                out.append(self.mth(start + k, end))
                end = start + k
            else:
                out.append(self.mth(start, start + k))
                start += k
                m -= k
        out.reverse()
        return out

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 section 2.1.4.1."""
        n = self.size if new_size is None else new_size
        if not 0 <= n <= self.size:
            raise ProofError(f"tree size {n} is outside the log (0..{self.size})")
        if not 0 <= old_size <= n:
            raise ProofError(f"old size {old_size} must be between 0 and the new size {n}")
        if old_size == 0 or old_size == n:
            return []
        out: list[bytes] = []
        start, end, m, complete = 0, n, old_size, True
        while True:
            if m == end - start:
                if not complete:
                    out.append(self.mth(start, end))
                break
            k = _largest_power_of_two_below(end - start)
            if m <= k:
                out.append(self.mth(start + k, end))
                end = start + k
            else:
                out.append(self.mth(start, start + k))
                start += k
                m -= k
                complete = False
        out.reverse()
        return out


def pack_levels(levels: list[bytes], top: int | None = None) -> list[bytes]:
    """Extend packed tree levels upwards, in place, and return them.

    ``levels[0]`` holds leaf hashes, 32 bytes each, back to back; ``levels[k]`` the roots of the perfect
    subtrees of ``2**k`` leaves, in index order (the ``floor(n / 2**k)`` complete ones). Levels are added
    until one holds fewer than two hashes, or up to level ``top``. Each node is one SHA-256 of a slice of
    the level below, so a million leaves take about a million hash calls and no per-node objects."""
    sha = _sha256
    while len(levels[-1]) >= 2 * HASH_SIZE and (top is None or len(levels) <= top):
        below = levels[-1]
        end = len(below) - len(below) % (2 * HASH_SIZE)
        levels.append(b"".join([sha(b"\x01" + below[i : i + 64]).digest() for i in range(0, end, 64)]))
    return levels


class PackedTree(TreeHashes):
    """:class:`TreeHashes` over packed levels (see :func:`pack_levels`): every perfect subtree is a slice,
    so any MTH, inclusion or consistency proof costs O(log n) slices and at most O(log n) hashes."""

    def __init__(self, levels: list[bytes]) -> None:
        if not levels or any(len(level) % HASH_SIZE for level in levels):
            raise ValueError("packed levels must be whole numbers of 32-byte hashes, leaves first")
        self.packed = pack_levels(list(levels))
        self.min_level = 1
        self.levels = {}
        self._size = len(self.packed[0]) // HASH_SIZE

    @classmethod
    def from_leaves(cls, leaves: bytes) -> PackedTree:
        return cls([bytes(leaves)])

    @property
    def size(self) -> int:
        return self._size

    def _perfect(self, level: int, index: int) -> bytes:
        buf = self.packed[level]
        return buf[index * HASH_SIZE : (index + 1) * HASH_SIZE]


def root_from_inclusion(index: int, size: int, lh: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2 steps 1-4), or None if it is malformed."""
    if not 0 <= index < size:
        return None
    if len(lh) != HASH_SIZE:
        return None
    fn, sn = index, size - 1
    r = lh
    for p in proof:
        if len(p) != HASH_SIZE or sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(index: int, size: int, lh: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """True when ``proof`` shows that leaf hash ``lh`` is entry ``index`` of the tree ``(size, root)``."""
    r = root_from_inclusion(index, size, lh, proof)
    return r is not None and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``
    (RFC 9162 section 2.1.4.2; equal sizes need equal roots and an empty proof, and size 0 is a
    prefix of every tree)."""
    if not 0 <= old_size <= new_size:
        return False
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
