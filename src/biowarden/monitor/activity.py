"""Activities: what the monitor reads, built from ledger events (or handed in before an export).

An export's participants travel as a serialised roaring bitmap of eids (base64 in the ledger payload):
compact (a few KiB for a slice, about 60 KiB for the whole cohort) and exact.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from typing import Any

import numpy as np
from pyroaring import BitMap

EXPORT_KIND = "egress.export"
DENIED_KIND = "policy.decision"


def encode_participants(eids: np.ndarray | BitMap) -> str:
    bm = eids if isinstance(eids, BitMap) else BitMap(np.asarray(eids).astype(np.uint32))
    bm.run_optimize()
    return base64.b64encode(bm.serialize()).decode("ascii")


def decode_participants(text: str) -> BitMap:
    return BitMap.deserialize(base64.b64decode(text)) if text else BitMap()


@dataclass
class Activity:
    """One access: an export that left (or is about to), or a denied request."""

    at: datetime
    researcher: str
    application: str
    institution: str
    kind: str = "export"  # export | denied
    rows: int = 0
    fields: int = 0
    participants: BitMap | None = None
    network: str = ""
    client: str = ""
    app_expires: datetime | None = None
    encoded: str = ""  # the participants as the ledger holds them (``encode_participants``), not yet decoded
    malicious: str = ""  # set only by the simulator, for scoring; never read by detectors

    @property
    def cells(self) -> int:
        return self.rows * self.fields

    def payload(self) -> dict[str, Any]:
        """The ledger payload of this activity (the inverse of ``from_event``)."""
        out: dict[str, Any] = {
            "researcher": self.researcher,
            "application": self.application,
            "institution": self.institution,
            "rows": self.rows,
            "fields": self.fields,
            "network": self.network,
            "client": self.client,
        }
        if self.participants is not None:
            out["participants"] = encode_participants(self.participants)
        if self.app_expires is not None:
            out["app_expires"] = self.app_expires.astimezone(UTC).isoformat()
        return out


def from_event(
    kind: str, at: datetime, payload: dict[str, Any], decision: str | None = None, *, lazy: bool = False
) -> Activity | None:
    """An activity from a ledger event's parts; None for events the monitor does not read. With ``lazy``, an
    export's participants stay encoded (``Activity.encoded``) until a detector needs them."""
    if kind == EXPORT_KIND:
        act = Activity(
            at=at,
            researcher=str(payload.get("researcher", "")),
            application=str(payload.get("application", "")),
            institution=str(payload.get("institution", "")),
            kind="export",
            rows=int(payload.get("rows", 0)),
            fields=int(payload.get("fields", 0)),
            network=str(payload.get("network", "")),
            client=str(payload.get("client", "")),
        )
        if payload.get("participants"):
            if lazy:
                act.encoded = payload["participants"]
            else:
                act.participants = decode_participants(payload["participants"])
        if payload.get("app_expires"):
            act.app_expires = _expiry(payload["app_expires"])
        return act
    if kind == DENIED_KIND and decision == "deny" and payload.get("researcher"):
        return Activity(
            at=at,
            researcher=str(payload["researcher"]),
            application=str(payload.get("application", "")),
            institution=str(payload.get("institution", "")),
            kind="denied",
        )
    return None


_PARTICIPANTS = '"participants":"'


@lru_cache(maxsize=4096)
def _expiry(text: str) -> datetime:
    return datetime.fromisoformat(text)


def from_text(kind: str, at: datetime, text: str, decision: str | None = None) -> Activity | None:
    """``from_event`` straight from a ledger entry's canonical JSON text, decoding only what the detectors
    read: the participants' base64 (most of an export's bytes) is cut out of the text before it is parsed
    and kept encoded on the activity. Canonical JSON escapes every quote inside a string, so the first
    ``"participants":"`` is the member itself; base64 holds no quote, so its value ends at the next one."""
    if kind not in (EXPORT_KIND, DENIED_KIND):
        return None
    encoded = ""
    start = text.find(_PARTICIPANTS) if kind == EXPORT_KIND else -1
    if start >= 0:
        start += len(_PARTICIPANTS)
        end = text.index('"', start)
        encoded = text[start:end]
        text = text[:start] + text[end:]
    act = from_event(kind, at, json.loads(text), decision, lazy=True)
    if act is not None and encoded:
        act.encoded = encoded
    return act


def _cut(text: str) -> tuple[str, str]:
    start = text.find(_PARTICIPANTS)
    if start < 0:
        return text, ""
    start += len(_PARTICIPANTS)
    end = text.index('"', start)
    return text[:start] + text[end:], text[start:end]


def from_entries(entries: Iterable[Any], batch: int = 2000) -> Iterator[Activity | None]:
    """``from_text`` over stored ledger entries (``kind``, ``at``, ``decision``, ``payload_json``), one result
    per entry in order; the payloads of a batch are parsed by one ``json.loads`` of their array."""
    kinds = (EXPORT_KIND, DENIED_KIND)
    it = iter(entries)
    while True:
        chunk = list(islice(it, batch))
        if not chunk:
            return
        wanted = [e for e in chunk if e.kind in kinds]
        cuts = [_cut(e.payload_json) if e.kind == EXPORT_KIND else (e.payload_json, "") for e in wanted]
        try:
            payloads = json.loads("[" + ",".join(c[0] for c in cuts) + "]")
        except ValueError:  # one bad text: parse one by one, so the error names nothing else
            payloads = [json.loads(c[0]) for c in cuts]
        parsed = iter(zip(wanted, cuts, payloads, strict=True))
        for e in chunk:
            if e.kind not in kinds:
                yield None
                continue
            _e, (_text, encoded), payload = next(parsed)
            act = from_event(e.kind, e.at, payload, e.decision, lazy=True)
            if act is not None and encoded:
                act.encoded = encoded
            yield act
