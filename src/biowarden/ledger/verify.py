"""Recompute a ledger from its stored rows and say, in plain words, the first thing that is wrong.

Storage-agnostic: the store feeds rows and checkpoints in; nothing here touches a database.

What is checked, in order:
1. indices run 0, 1, 2, ... without a gap (a deleted row is named by the index that is missing);
2. each entry's leaf hash, recomputed from its stored fields, equals the hash recorded when it was
   written (an edited row or a swapped pair is named by its index);
3. each recorded hash carries a valid keyed authentication code (HMAC-SHA256 under the ledger's MAC
   key), so an attacker who rewrites a row *and* its hash without the custodian's key is still named;
4. each checkpoint's signature verifies with the ledger's public key, its text matches its row, and its
   root equals the MTH recomputed from the entries at its size;
5. each checkpoint is consistent with the one before it: an RFC 9162 consistency proof, built from the
   recomputed tree, verifies against both signed roots;
6. the head's recorded size matches the stored entries (the tail was not cut off).

Steps 1-3 are per entry and need nothing but the entries themselves, so :func:`check_entries` runs them
over any contiguous range of the log and returns the packed leaf hashes (and the lower tree levels) of
the range; a store may run it over ranges in parallel and hand the results, in log order, to
:func:`verify_checked`, which does steps 4-6 over the whole tree. :func:`verify_ledger` does it all in
one stream. Both give the same report for the same rows.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from biowarden.ledger.events import VerifyReport
from biowarden.ledger.merkle import PackedTree, pack_levels, verify_consistency
from biowarden.ledger.note import NoteError, NoteVerifier, parse_checkpoint_body

__all__ = [
    "CheckpointRow",
    "EntryCheck",
    "EntryMac",
    "EntryRow",
    "check_entries",
    "entry_mac",
    "verify_checked",
    "verify_ledger",
]

# (index, at, kind, actor, subject, decision, reason, payload_json, leaf_hash, mac)
EntryRow = tuple[int, str, str, str, str, "str | None", "str | None", str, bytes, bytes]


@dataclass(frozen=True)
class CheckpointRow:
    tree_size: int
    root_hash: bytes
    note: str


MAC_SIZE = 16
# tree levels a range check packs besides the leaves: 2**16 leaves is the largest range the stores hand
# to one check, and ranges start at multiples of their size, so each range's levels are slices of the
# whole tree's
RANGE_LEVELS = 16
_encode_string = json.encoder.encode_basestring  # escapes exactly as JCS (see ledger.events.entry_bytes)


def entry_mac(mac_key: bytes, index: int, lh: bytes) -> bytes:
    """The authentication code stored beside entry ``index``'s leaf hash."""
    return hmac.digest(mac_key, index.to_bytes(8, "big") + lh, "sha256")[:MAC_SIZE]


class EntryMac:
    """:func:`entry_mac` for one key, with the HMAC-SHA256 pads hashed once (RFC 2104): each code then
    costs two SHA-256 copies and updates instead of a keyed-context set-up, about three times faster."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, mac_key: bytes) -> None:
        key = hashlib.sha256(mac_key).digest() if len(mac_key) > 64 else bytes(mac_key)
        key = key.ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, index: int, lh: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(index.to_bytes(8, "big") + lh)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:MAC_SIZE]


@dataclass
class EntryCheck:
    """What :func:`check_entries` found in one contiguous range of the log starting at ``start``.

    ``count`` entries from ``start`` on are sound; ``levels[0]`` holds their leaf hashes packed (32 bytes
    each) and ``levels[k]`` the complete perfect subtrees of ``2**k`` of them. ``problem`` is the first
    thing wrong in the range, as ``(index, plain words)``, or None."""

    start: int
    count: int
    levels: list[bytes]
    problem: tuple[int, str] | None = None
    stop: int | None = None
    seconds: float = field(default=0.0, compare=False)


def check_entries(
    rows: Iterable[EntryRow],
    mac_key: bytes,
    start: int = 0,
    stop: int | None = None,
    *,
    levels: int = RANGE_LEVELS,
    progress: Callable[[int], None] | None = None,
) -> EntryCheck:
    """Steps 1-3 over rows that should hold entries ``start, start + 1, ...``: the index sequence, each
    leaf hash recomputed from the stored fields, and each authentication code. Stops at the first bad
    entry, and at entry ``stop`` when given (a row there, or the next stored row, is only looked at to name
    a gap before it, so that a range names a deleted row exactly as one stream would). Rows that end
    early without a gap are the end of the stored entries: ``count`` is then short and ``problem`` None."""
    t0 = time.perf_counter()
    enc = _encode_string
    leaf0 = hashlib.sha256(b"\x00")
    mac = EntryMac(mac_key)
    inner0, outer0 = mac._inner, mac._outer
    buf = bytearray()
    expected = start
    problem: tuple[int, str] | None = None
    for row in rows:
        idx, at, kind, actor, subject, decision, reason, payload, stored_lh, stored_mac = row
        if idx != expected:
            problem = (
                expected,
                f"entry {expected} is missing: the log jumps from entry {expected - 1} to entry {idx} "
                "(a row was deleted)"
                if expected
                else f"entry 0 is missing: the log starts at entry {idx} (rows were deleted)",
            )
            break
        if idx == stop:
            break
        try:  # ledger.events.entry_bytes, inline: this loop runs once per entry of the whole log
            data = (
                f'{{"actor":{enc(actor)},"at":{enc(at)},'
                f'"decision":{"null" if decision is None else enc(decision)},"index":{idx},'
                f'"kind":{enc(kind)},"payload":{payload},"reason":{"null" if reason is None else enc(reason)},'
                f'"subject":{enc(subject)}}}'
            ).encode()
        except (TypeError, ValueError):
            problem = (idx, f"entry {idx} is unreadable: its stored fields are not valid text (it was altered)")
            break
        h = leaf0.copy()
        h.update(data)
        lh = h.digest()
        if lh != stored_lh:
            problem = (
                idx,
                f"entry {idx} was altered: its stored content ({kind} by {actor} on {subject}) no longer "
                "matches the hash recorded when it was written",
            )
            break
        inner = inner0.copy()
        inner.update(idx.to_bytes(8, "big") + lh)
        outer = outer0.copy()
        outer.update(inner.digest())
        if outer.digest()[:MAC_SIZE] != stored_mac:  # an offline recomputation: no timing oracle
            problem = (
                idx,
                f"entry {idx} was rewritten together with its recorded hash: its authentication code "
                "does not match (someone without the custodian's key changed it)",
            )
            break
        buf += lh
        expected += 1
        if progress is not None and not expected & 0xFFFF:
            progress(expected)
    packed = pack_levels([bytes(buf)], top=levels)
    return EntryCheck(start, expected - start, packed, problem, stop, time.perf_counter() - t0)


def verify_ledger(
    rows: Iterable[EntryRow],
    checkpoints: Sequence[CheckpointRow],
    verifier: NoteVerifier,
    mac_key: bytes,
    *,
    origin: str,
    head_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """The whole verification over one stream of rows in index order."""
    t0 = time.perf_counter()
    check = check_entries(rows, mac_key, 0, levels=64, progress=progress)
    report = verify_checked([check], checkpoints, verifier, origin=origin, head_size=head_size, progress=progress)
    report.seconds = time.perf_counter() - t0
    return report


def _join_levels(checks: Sequence[EntryCheck]) -> list[bytes]:
    """The packed levels of the whole tree from the range checks' levels (in log order, each range
    starting at a multiple of the size of every range before it)."""
    if len(checks) == 1:
        return list(checks[0].levels)
    depth = min(len(c.levels) for c in checks[:-1])  # full ranges all hold the same levels
    joined = [b"".join(c.levels[k] if k < len(c.levels) else b"" for c in checks) for k in range(depth)]
    return pack_levels(joined)


def verify_checked(
    checks: Sequence[EntryCheck],
    checkpoints: Sequence[CheckpointRow],
    verifier: NoteVerifier,
    *,
    origin: str,
    head_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Steps 4-6 (and the report) from range checks that cover the log from entry 0 in order. Ranges
    after the first one with a problem are ignored."""
    t0 = time.perf_counter()
    cps = sorted(checkpoints, key=lambda c: c.tree_size)
    report = VerifyReport(ok=True, entries=0, checkpoints=len(cps))
    problems: list[tuple[int | None, str]] = []

    def bad(index: int | None, text: str) -> None:
        problems.append((index, text))

    # Signatures and text of every checkpoint first: they are the trusted anchors.
    signed: list[CheckpointRow] = []
    for cp in cps:
        try:
            text = verifier.verify(cp.note)
            body = parse_checkpoint_body(text)
        except NoteError as exc:
            bad(None, f"checkpoint at tree size {cp.tree_size} cannot be trusted: {exc}")
            continue
        if body.origin != origin:
            bad(None, f"checkpoint at tree size {cp.tree_size} is for another log ({body.origin!r})")
            continue
        if body.tree_size != cp.tree_size or body.root_hash != cp.root_hash:
            bad(
                None,
                f"checkpoint at tree size {cp.tree_size}: its stored size or root was changed after "
                "signing (they differ from the signed text)",
            )
            continue
        signed.append(cp)

    # Entries: the ranges in order, up to the first bad entry.
    used: list[EntryCheck] = []
    expected = 0
    stopped = False
    for c in checks:
        if c.start != expected:
            raise ValueError(f"range checks must cover the log in order: a range starts at {c.start}, not {expected}")
        used.append(c)
        expected += c.count
        if c.problem is not None:
            bad(*c.problem)
            stopped = True
            break
        if c.stop is not None and expected < c.stop:
            break  # the stored entries end here; the checks below name what is missing
    tree = PackedTree(_join_levels(used) if used else [b""])
    if tree.size != expected:  # pragma: no cover - a range check's levels always match its count
        raise ValueError("range checks' leaf hashes do not match their counts")

    # Each signed checkpoint within the sound entries commits to the tree of its size.
    verified_to = expected
    for cp in signed:
        if cp.tree_size > expected:
            break
        if tree.root(cp.tree_size) != cp.root_hash:
            prev = _prev_size(signed, cp.tree_size)
            bad(
                prev,
                f"checkpoint at tree size {cp.tree_size} does not match the entries: an entry "
                f"between {prev} and {cp.tree_size - 1} was altered, removed or reordered "
                "together with its hash and authentication code",
            )
            stopped = True
            verified_to = cp.tree_size
            break

    report.entries = verified_to
    report.tree_size = verified_to
    report.root_hash = tree.root(verified_to)
    if progress is not None:
        progress(expected)

    if not stopped:
        beyond = [cp for cp in signed if cp.tree_size > expected]
        # checkpoints beyond the stored entries: the tail was cut off
        if beyond:
            bad(
                expected,
                f"entries {expected} to {beyond[0].tree_size - 1} are missing: a signed checkpoint covers "
                f"{beyond[0].tree_size} entries but only {expected} are stored",
            )
        elif head_size is not None and head_size != expected:
            if head_size > expected:
                bad(
                    expected,
                    f"entries {expected} to {head_size - 1} are missing: the log's head records "
                    f"{head_size} entries but only {expected} are stored",
                )
            else:
                bad(
                    head_size,
                    f"the log's head records {head_size} entries but {expected} are stored: entries "
                    "were inserted behind the log's back",
                )
        # consistency between successive checkpoints, with RFC 9162 proofs over the recomputed tree
        covered = [cp for cp in signed if cp.tree_size <= expected]
        for a, b in itertools.pairwise(covered):
            proof = tree.consistency_proof(a.tree_size, b.tree_size)
            if not verify_consistency(a.tree_size, b.tree_size, a.root_hash, b.root_hash, proof):
                bad(
                    a.tree_size,
                    f"checkpoints at tree sizes {a.tree_size} and {b.tree_size} are not consistent: "
                    "the later one does not extend the earlier one",
                )
                break

    if cps:
        report.latest_checkpoint = cps[-1].tree_size
    report.problems = [p for _, p in problems]
    if problems:
        report.ok = False
        indexed = [i for i, _ in problems if i is not None]
        report.first_bad_index = min(indexed) if indexed else None
        # the first problem in log order is the headline
        first = min(problems, key=lambda p: (p[0] is None, p[0] if p[0] is not None else 0))
        report.problem = first[1]
    report.seconds = time.perf_counter() - t0
    return report


def _prev_size(cps: Sequence[CheckpointRow], size: int) -> int:
    prev = 0
    for cp in cps:
        if cp.tree_size < size:
            prev = cp.tree_size
    return prev
