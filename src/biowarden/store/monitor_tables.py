"""Tables of the monitor: incidents, the alerts filed in them, custodian reviews, actors' risk history,
the scopes the monitor holds suspended, the monitor's own state (e.g. how far it has read the ledger) and the
detectors' state at that point (so that the next scan reads only newer entries).

Incident ids are the incident book's own (1, 2, 3...), so a book restored from these rows climbs the same
ladder it would have climbed without a restart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from biowarden.store.base import Base


class MonitorIncidentRow(Base):
    __tablename__ = "monitor_incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    scope: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(254))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | confirmed | false_positive
    action: Mapped[str] = mapped_column(String(32))  # "" | notify | suspend_pending_review | disable
    __table_args__ = (Index("ix_monitor_incidents_actor", "scope", "target"),)


class MonitorAlertRow(Base):
    __tablename__ = "monitor_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("monitor_incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    detector: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(254))
    detail: Mapped[str] = mapped_column(Text)
    block: Mapped[bool] = mapped_column(Boolean, default=False)
    related: Mapped[list] = mapped_column(JSON, default=list)  # [[scope, target], ...]
    __table_args__ = (Index("ix_monitor_alerts_actor", "scope", "target"),)


class MonitorReviewRow(Base):
    __tablename__ = "monitor_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("monitor_incidents.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # confirmed | false_positive
    reviewer: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")
    widen_scope: Mapped[str | None] = mapped_column(String(16), nullable=True)
    widen_target: Mapped[str | None] = mapped_column(String(254), nullable=True)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MonitorRiskRow(Base):
    """An actor's decayed risk right after an alert about it (the risk history)."""

    __tablename__ = "monitor_risk"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(254))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    risk: Mapped[float] = mapped_column(Float)
    detector: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int] = mapped_column(ForeignKey("monitor_incidents.id"))
    __table_args__ = (Index("ix_monitor_risk_actor", "scope", "target", "at"),)


class MonitorHoldRow(Base):
    """A scope the monitor holds suspended (pending review, or widened by a confirmed review)."""

    __tablename__ = "monitor_holds"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[str] = mapped_column(String(254), primary_key=True)


class MonitorStateRow(Base):
    __tablename__ = "monitor_state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MonitorSnapshotRow(Base):
    """The detectors' state after reading the ledger up to ``ledger_index`` (``biowarden.monitor.snapshot``:
    MAC'd under a key from the master key, fingerprinted by the detectors' code and configuration)."""

    __tablename__ = "monitor_snapshots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    mac: Mapped[str] = mapped_column(String(64))
