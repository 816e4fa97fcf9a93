"""Tables of the release pipeline: application numbers (for pseudonyms and codes) and release records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from biowarden.store.base import Base


class ReleaseApplicationRow(Base):
    """The number an application's pseudonyms and fingerprint code are built from (allocated once)."""

    __tablename__ = "release_applications"
    application_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_no: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReleaseRow(Base):
    """One record-level extract that left the platform (written in the same transaction as its ledger entry)."""

    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(64), index=True)
    application_no: Mapped[int] = mapped_column(Integer)
    institution: Mapped[str] = mapped_column(String(254), index=True)
    researcher: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    fields: Mapped[list] = mapped_column(JSON, default=list)
    quasi_identifiers: Mapped[list] = mapped_column(JSON, default=list)
    levels: Mapped[dict] = mapped_column(JSON, default=dict)
    risk: Mapped[dict] = mapped_column(JSON, default=dict)
    key_ids: Mapped[dict] = mapped_column(JSON, default=dict)
    rows: Mapped[int] = mapped_column(BigInteger)
    participant_digest: Mapped[str] = mapped_column(String(64))
    participants: Mapped[bytes] = mapped_column(LargeBinary)  # serialised roaring bitmap of master eids
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))
    request_digest: Mapped[str] = mapped_column(String(64))
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    marked: Mapped[float] = mapped_column(Float, default=1.0)  # share of eligible cells marked
