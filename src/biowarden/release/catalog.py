"""The release store as trace sees it: a ReleaseCatalog of ReleaseRecords (participants loaded lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from biowarden.trace.releases import ReleaseRecord


class StoreCatalog:
    """``ReleaseCatalog`` over the ``releases`` table (implements ``releases()``)."""

    def __init__(self, db) -> None:
        self.db = db

    def _load(self, release_id: str) -> np.ndarray:
        from pyroaring import BitMap

        from biowarden.store.release_tables import ReleaseRow

        with self.db.session() as s:
            row = s.get(ReleaseRow, release_id)
            blob = row.participants if row is not None else b""
        return np.array(BitMap.deserialize(blob), dtype=np.int64) if blob else np.zeros(0, dtype=np.int64)

    def releases(self) -> Sequence[ReleaseRecord]:
        from sqlalchemy import select

        from biowarden.store.release_tables import ReleaseRow

        cols = [
            ReleaseRow.id,
            ReleaseRow.application_id,
            ReleaseRow.application_no,
            ReleaseRow.institution,
            ReleaseRow.created_at,
            ReleaseRow.fields,
            ReleaseRow.participant_digest,
        ]
        with self.db.session() as s:
            rows = s.execute(select(*cols).order_by(ReleaseRow.created_at, ReleaseRow.id)).all()
        out = []
        for rid, app, no, inst, created, fields, digest in rows:
            out.append(
                ReleaseRecord(
                    release_id=rid,
                    application_id=app,
                    application_no=int(no),
                    institution=inst,
                    created_at=created,
                    fields=tuple(fields),
                    participant_digest=digest,
                    eid_loader=(lambda r=rid: self._load(r)),
                )
            )
        return out

    def list(self) -> list[dict[str, Any]]:
        """Release summaries for listings (no participant sets)."""
        from sqlalchemy import select

        from biowarden.store.release_tables import ReleaseRow

        with self.db.session() as s:
            rows = s.scalars(select(ReleaseRow).order_by(ReleaseRow.created_at, ReleaseRow.id)).all()
            return [release_summary(r) for r in rows]


def release_summary(r: Any) -> dict[str, Any]:
    """A release's row (``store.release_tables.ReleaseRow``) as the summary that listings show: no
    participant set, no file path."""
    return {
        "release_id": r.id,
        "application": r.application_id,
        "institution": r.institution,
        "researcher": r.researcher,
        "created_at": r.created_at.isoformat(),
        "fields": list(r.fields),
        "rows": int(r.rows),
        "participant_digest": r.participant_digest,
        "levels": dict(r.levels),
        "risk": dict(r.risk),
        "file_sha256": r.file_sha256,
        "file_bytes": int(r.file_bytes),
        "format": r.format,
        "ledger_index": int(r.ledger_index),
    }
