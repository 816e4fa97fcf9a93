"""Tables of the release pipeline: application numbers (for pseudonyms and codes), release records and the
short-lived, single-use download links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, LargeBinary, String, Text
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
    path: Mapped[str | None] = mapped_column(Text, nullable=True)  # where the platform keeps the file


class DownloadLinkRow(Base):
    """A download link: only the SHA-256 of its secret is stored; bound to the account and API token that
    made it; usable once, before ``expires_at``."""

    __tablename__ = "release_download_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    link_hash: Mapped[str] = mapped_column(String(64), unique=True)
    release_id: Mapped[str] = mapped_column(String(40), index=True)
    application_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Integer)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger)  # the link's creation entry
    download_ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
