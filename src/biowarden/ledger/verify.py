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
"""

from __future__ import annotations

import hmac
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from biowarden.ledger.events import VerifyReport, entry_bytes
from biowarden.ledger.merkle import CompactRange, LeafArray, TreeHashes, leaf_hash, verify_consistency
from biowarden.ledger.note import NoteError, NoteVerifier, parse_checkpoint_body

__all__ = ["CheckpointRow", "EntryRow", "entry_mac", "verify_ledger"]

# (index, at, kind, actor, subject, decision, reason, payload_json, leaf_hash, mac)
EntryRow = tuple[int, str, str, str, str, "str | None", "str | None", str, bytes, bytes]


@dataclass(frozen=True)
class CheckpointRow:
    tree_size: int
    root_hash: bytes
    note: str


MAC_SIZE = 16
_MIN_LEVEL = 6


def entry_mac(mac_key: bytes, index: int, lh: bytes) -> bytes:
    """The authentication code stored beside entry ``index``'s leaf hash."""
    return hmac.digest(mac_key, index.to_bytes(8, "big") + lh, "sha256")[:MAC_SIZE]


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

    cr = CompactRange()
    leaves = LeafArray()
    levels: dict[int, list[bytes]] = {}
    cp_iter = iter(signed)
    next_cp = next(cp_iter, None)
    expected = 0
    mac = mac_key
    stopped = False
    for row in rows:
        idx, at, kind, actor, subject, decision, reason, payload, stored_lh, stored_mac = row
        if idx != expected:
            bad(
                expected,
                f"entry {expected} is missing: the log jumps from entry {expected - 1} to entry {idx} "
                "(a row was deleted)"
                if expected
                else f"entry 0 is missing: the log starts at entry {idx} (rows were deleted)",
            )
            stopped = True
            break
        try:
            lh = leaf_hash(entry_bytes(idx, at, kind, actor, subject, decision, reason, payload))
        except Exception:
            bad(idx, f"entry {idx} is unreadable: its stored fields are not valid text (it was altered)")
            stopped = True
            break
        if lh != bytes(stored_lh):
            bad(
                idx,
                f"entry {idx} was altered: its stored content ({kind} by {actor} on {subject}) no longer "
                "matches the hash recorded when it was written",
            )
            stopped = True
            break
        if not hmac.compare_digest(entry_mac(mac, idx, lh), bytes(stored_mac)):
            bad(
                idx,
                f"entry {idx} was rewritten together with its recorded hash: its authentication code "
                "does not match (someone without the custodian's key changed it)",
            )
            stopped = True
            break
        cr.append_recording(lh, levels, _MIN_LEVEL)
        leaves.append(lh)
        expected += 1
        if progress is not None and expected % 65536 == 0:
            progress(expected)
        while next_cp is not None and next_cp.tree_size == expected:
            if cr.root() != next_cp.root_hash:
                prev = _prev_size(signed, next_cp.tree_size)
                bad(
                    prev,
                    f"checkpoint at tree size {next_cp.tree_size} does not match the entries: an entry "
                    f"between {prev} and {next_cp.tree_size - 1} was altered, removed or reordered "
                    "together with its hash and authentication code",
                )
                stopped = True
            next_cp = next(cp_iter, None)
        if stopped:
            break

    report.entries = expected
    report.tree_size = cr.size
    report.root_hash = cr.root()
    if progress is not None:
        progress(expected)

    if not stopped:
        # checkpoints beyond the stored entries: the tail was cut off
        if next_cp is not None:
            bad(
                expected,
                f"entries {expected} to {next_cp.tree_size - 1} are missing: a signed checkpoint covers "
                f"{next_cp.tree_size} entries but only {expected} are stored",
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
        if len(covered) > 1:
            tree = TreeHashes(leaves, min_level=_MIN_LEVEL, levels=levels)
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
