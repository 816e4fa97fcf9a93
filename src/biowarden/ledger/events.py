"""What the ledger records: events (what callers hand in), entries (what is stored), checkpoints and
verification reports. Plain dataclasses; no ORM, no web.

The leaf of entry ``i`` in the Merkle tree is the canonical JSON of the whole entry::

    {"actor":..,"at":..,"decision":..,"index":i,"kind":..,"payload":{..},"reason":..,"subject":..}

so that changing any field, or moving an entry to another index, changes its leaf hash.
"""

from __future__ import annotations

import json
import json as _json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from biowarden.ledger.canonical import canonical_text, encode_string

__all__ = [
    "DECISIONS",
    "Checkpoint",
    "LedgerEntry",
    "LedgerEvent",
    "VerifyReport",
    "entry_bytes",
    "parse_at",
]

# the C string encoder (ensure_ascii=False) escapes exactly as JCS does: quote, backslash, the short
# escapes and other control characters as lowercase \u00xx; everything else is written literally
_encode_string = _json.encoder.encode_basestring

DECISIONS = ("allow", "deny")
_KIND = re.compile(r"[a-z0-9][a-z0-9_.:\-]{0,127}")
MAX_ACTOR = 256
MAX_SUBJECT = 256
MAX_REASON = 128


@dataclass(frozen=True)
class LedgerEvent:
    """One thing that happened, as a caller describes it.

    kind: dotted name, e.g. ``"registry.institution.add"``, ``"policy.decision"``, ``"suspension.add"``.
    actor: who did it: ``"operator"``, ``"user:alice@uni.ac.uk"``, ``"system:monitor"``.
    subject: what it was done to: ``"institution:Oxford"``, ``"application:A-0017"``, ``"platform"``.
    payload: details; anything canonical JSON can write (see ``ledger.canonical``).
    decision / reason: for policy decisions, ``"allow"``/``"deny"`` and a reason code.
    at: when (UTC); the store fills it in when None.
    """

    kind: str
    actor: str
    subject: str
    payload: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    reason: str | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not _KIND.fullmatch(self.kind):
            raise ValueError(
                f"ledger event kind {self.kind!r} must be 1-128 lower-case letters, digits, '.', '_', ':' or '-'"
            )
        for name, value, limit in (("actor", self.actor, MAX_ACTOR), ("subject", self.subject, MAX_SUBJECT)):
            if not isinstance(value, str) or not value or len(value) > limit:
                raise ValueError(f"ledger event {name} must be a non-empty string of at most {limit} characters")
        if self.decision is not None and self.decision not in DECISIONS:
            raise ValueError(f"ledger event decision must be one of {DECISIONS} or None, not {self.decision!r}")
        if self.reason is not None and (
            not isinstance(self.reason, str) or not self.reason or len(self.reason) > MAX_REASON
        ):
            raise ValueError(f"ledger event reason must be a non-empty string of at most {MAX_REASON} characters")
        if not isinstance(self.payload, dict):
            raise ValueError("ledger event payload must be a dict")
        if self.at is not None and not isinstance(self.at, datetime):
            raise ValueError("ledger event time must be a datetime")


def _opt(s: str | None) -> str:
    return "null" if s is None else encode_string(s)


def entry_bytes(
    index: int,
    at: str,
    kind: str,
    actor: str,
    subject: str,
    decision: str | None,
    reason: str | None,
    payload_json: str,
) -> bytes:
    """The canonical JSON of an entry (its Merkle leaf), from stored fields and the payload's canonical
    JSON text. Equal to ``canonical_json`` of the entry as a dict (the tests check this).

    The members are laid out in their sorted order by hand and each string goes through the C string
    encoder, which escapes exactly as JCS does; a string that is not text raises TypeError and a lone
    surrogate raises UnicodeEncodeError."""
    e = _encode_string
    return (
        f'{{"actor":{e(actor)},"at":{e(at)},"decision":{"null" if decision is None else e(decision)},'
        f'"index":{int(index)},"kind":{e(kind)},"payload":{payload_json},'
        f'"reason":{"null" if reason is None else e(reason)},"subject":{e(subject)}}}'
    ).encode()


def parse_at(at: str) -> datetime:
    return datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class LedgerEntry:
    """A stored entry: the event, where it sits in the log, and its leaf hash."""

    index: int
    at: datetime
    kind: str
    actor: str
    subject: str
    decision: str | None
    reason: str | None
    payload_json: str
    leaf_hash: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.payload_json)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "kind": self.kind,
            "actor": self.actor,
            "subject": self.subject,
            "decision": self.decision,
            "reason": self.reason,
            "payload": self.payload,
            "leaf_hash": self.leaf_hash.hex(),
        }


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the C2SP checkpoint ``note`` commits to ``root_hash`` at ``tree_size``."""

    tree_size: int
    root_hash: bytes
    note: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "note": self.note,
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


@dataclass
class VerifyReport:
    """The outcome of recomputing the whole ledger. ``problem`` says in plain words what is wrong."""

    ok: bool
    entries: int
    checkpoints: int
    first_bad_index: int | None = None
    problem: str | None = None
    tree_size: int = 0
    root_hash: bytes | None = None
    latest_checkpoint: int | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "first_bad_index": self.first_bad_index,
            "problem": self.problem,
            "problems": list(self.problems),
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex() if self.root_hash is not None else None,
            "latest_checkpoint": self.latest_checkpoint,
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
        }


def payload_text(payload: dict[str, Any]) -> str:
    """The canonical JSON text of a payload (raises CanonicalJSONError naming the bad value)."""
    return canonical_text(payload)
