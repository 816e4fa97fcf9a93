"""Tables of the export controls: one lock row per scope, usage per export, coverage bitmaps, exceptions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from biowarden.store.base import Base


class EgressScope(Base):
    """One row per (scope kind, scope id): locked for the whole check of any export that touches it.

    It also keeps the scope's cumulative coverage totals, so a check reads only the requested fields' bitmaps.
    """

    __tablename__ = "egress_scopes"
    scope_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(254), primary_key=True)
    participants: Mapped[int] = mapped_column(BigInteger, default=0)
    cells: Mapped[int] = mapped_column(BigInteger, default=0)
    union_bitmap: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class EgressUsage(Base):
    __tablename__ = "egress_usage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    researcher: Mapped[str] = mapped_column(String(254), index=True)
    application: Mapped[str] = mapped_column(String(64), index=True)
    institution: Mapped[str] = mapped_column(String(254), index=True)
    rows: Mapped[int] = mapped_column(BigInteger)
    cells: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    release_id: Mapped[str] = mapped_column(String(64), default="")


class EgressCoverage(Base):
    """The participants a scope has received in one field: a reference to the scope's bitmap of them.

    The fields of one export share a bitmap (until later exports make them differ), so a bitmap is stored
    once per scope (:class:`EgressBitmap`) and each field names it by its SHA-256."""

    __tablename__ = "egress_coverage"
    scope_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(254), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    bitmap_digest: Mapped[str] = mapped_column(String(64))
    participants: Mapped[int] = mapped_column(BigInteger)


class EgressBitmap(Base):
    """One serialised participant bitmap of a scope, named by the SHA-256 of its bytes; written and removed
    only under the scope's lock (when no coverage row of the scope names it any longer)."""

    __tablename__ = "egress_bitmaps"
    scope_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(254), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    bitmap: Mapped[bytes] = mapped_column(LargeBinary)


class EgressException(Base):
    """A committee exception: lets one application exceed the whole-cohort rule, once, with a reason."""

    __tablename__ = "egress_exceptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(254))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    max_participant_share: Mapped[float] = mapped_column(Float, default=1.0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
