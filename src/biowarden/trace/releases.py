"""Release records: what each application received (used to narrow candidates and as evidence).

The release pipeline persists one :class:`ReleaseRecord` per record-level extract; tracing reads them
through the small :class:`ReleaseCatalog` protocol, so it does not depend on how they are stored. A record
narrows the candidates (only applications that received some linked participant in some leaked column
can have produced those cells) and is shown as evidence; it never becomes a p-value by itself.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


def participant_digest(eids: np.ndarray | Iterable[int]) -> str:
    """SHA-256 of the sorted, distinct master eids (int64 little-endian): names a participant set."""
    arr = np.asarray(list(eids) if not isinstance(eids, np.ndarray) else eids, dtype=np.int64)
    if arr.size > 1 and not bool((arr[1:] > arr[:-1]).all()):  # already sorted and distinct: no np.unique
        arr = np.unique(arr)
    return hashlib.sha256(arr.astype("<i8").tobytes()).hexdigest()


@dataclass
class ReleaseRecord:
    """One record-level extract for one application.

    ``fields`` are the master column names released (``50-0.0``...). The participant set is given by
    ``eids`` or, to avoid loading it until needed, by ``eid_loader``; ``participant_digest`` lets anyone
    check the set shown as evidence. ``canary_eids`` lists the canary participants the release carried.
    """

    release_id: str
    application_id: str
    application_no: int
    institution: str
    created_at: _dt.datetime | str
    fields: tuple[str, ...]
    participant_digest: str = ""
    eids: np.ndarray | None = None
    data_version: str = ""
    canary_eids: tuple[int, ...] = ()
    marked: bool = True
    eid_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.fields = tuple(self.fields)
        if self.eids is not None:
            self.eids = np.asarray(self.eids, dtype=np.int64)
            if not self.participant_digest:
                self.participant_digest = participant_digest(self.eids)

    def participants(self) -> np.ndarray:
        """The master eids released (sorted, distinct), loading them on first use."""
        if self.eids is None:
            if self.eid_loader is None:
                raise ValueError(f"release {self.release_id} has no participant set to load")
            self.eids = np.asarray(self.eid_loader(), dtype=np.int64)
        return self.eids

    def to_dict(self) -> dict[str, Any]:
        created = self.created_at.isoformat() if isinstance(self.created_at, _dt.datetime) else self.created_at
        return {
            "release_id": self.release_id,
            "application": self.application_id,
            "application_no": self.application_no,
            "institution": self.institution,
            "created_at": created,
            "fields": list(self.fields),
            "participants": None if self.eids is None else int(np.unique(self.eids).size),
            "participant_digest": self.participant_digest,
            "data_version": self.data_version,
            "canaries": len(self.canary_eids),
            "marked": self.marked,
        }


@runtime_checkable
class ReleaseCatalog(Protocol):
    """Where tracing finds the release records (the release pipeline's store implements this)."""

    def releases(self) -> Sequence[ReleaseRecord]: ...


@dataclass
class InMemoryCatalog:
    """A catalog over a list of records (tests, benchmarks, the demo)."""

    records: list[ReleaseRecord] = field(default_factory=list)

    def releases(self) -> Sequence[ReleaseRecord]:
        return list(self.records)

    def add(self, record: ReleaseRecord) -> None:
        self.records.append(record)
