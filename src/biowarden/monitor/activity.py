"""Activities: what the monitor reads, built from ledger events (or handed in before an export).

An export's participants travel as a serialised roaring bitmap of eids (base64 in the ledger payload):
compact (a few KiB for a slice, about 60 KiB for the whole cohort) and exact.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
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
    malicious: str = ""  # set only by the simulator, for scoring; never read by detectors

    @property
    def cells(self) -> int:
        return self.rows * self.fields

    def payload(self) -> dict[str, Any]:
        """The ledger payload of this activity (the inverse of ``from_event``)."""
        out: dict[str, Any] = {
            "researcher": self.researcher, "application": self.application, "institution": self.institution,
            "rows": self.rows, "fields": self.fields, "network": self.network, "client": self.client,
        }
        if self.participants is not None:
            out["participants"] = encode_participants(self.participants)
        if self.app_expires is not None:
            out["app_expires"] = self.app_expires.astimezone(UTC).isoformat()
        return out


def from_event(kind: str, at: datetime, payload: dict[str, Any], decision: str | None = None) -> Activity | None:
    """An activity from a ledger event's parts; None for events the monitor does not read."""
    if kind == EXPORT_KIND:
        act = Activity(
            at=at, researcher=str(payload.get("researcher", "")), application=str(payload.get("application", "")),
            institution=str(payload.get("institution", "")), kind="export", rows=int(payload.get("rows", 0)),
            fields=int(payload.get("fields", 0)), network=str(payload.get("network", "")),
            client=str(payload.get("client", "")),
        )
        if payload.get("participants"):
            act.participants = decode_participants(payload["participants"])
        if payload.get("app_expires"):
            act.app_expires = datetime.fromisoformat(payload["app_expires"])
        return act
    if kind == DENIED_KIND and decision == "deny" and payload.get("researcher"):
        return Activity(at=at, researcher=str(payload["researcher"]), application=str(payload.get("application", "")),
                        institution=str(payload.get("institution", "")), kind="denied")
    return None
