"""The tamper-evident audit ledger (core): canonical JSON entries in an RFC 9162 Merkle tree, signed
C2SP checkpoints, proofs and their verification. No ORM and no web here; the store side lives in
``biowarden.store.ledger_store.LedgerStore``."""

from biowarden.ledger.canonical import CanonicalJSONError, canonical_json, canonical_text
from biowarden.ledger.events import Checkpoint, LedgerEntry, LedgerEvent, VerifyReport
from biowarden.ledger.merkle import (
    CompactRange,
    TreeHashes,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from biowarden.ledger.note import NoteSigner, NoteVerifier

__all__ = [
    "CanonicalJSONError",
    "Checkpoint",
    "CompactRange",
    "LedgerEntry",
    "LedgerEvent",
    "NoteSigner",
    "NoteVerifier",
    "TreeHashes",
    "VerifyReport",
    "canonical_json",
    "canonical_text",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]
