"""Monitor: incidents, alerts, reviews, risk history, holds, state.

Revision ID: monitor_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "monitor_0001"
down_revision = None
branch_labels = ("monitor",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_incidents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(254), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("action", sa.String(32), nullable=False),
    )
    op.create_index("ix_monitor_incidents_actor", "monitor_incidents", ["scope", "target"])
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("monitor_incidents.id"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(254), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("block", sa.Boolean(), nullable=False),
        sa.Column("related", sa.JSON(), nullable=False),
    )
    op.create_index("ix_monitor_alerts_actor", "monitor_alerts", ["scope", "target"])
    op.create_table(
        "monitor_reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("monitor_incidents.id"), nullable=False, index=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(254), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("widen_scope", sa.String(16), nullable=True),
        sa.Column("widen_target", sa.String(254), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "monitor_risk",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(254), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("monitor_incidents.id"), nullable=False),
    )
    op.create_index("ix_monitor_risk_actor", "monitor_risk", ["scope", "target", "at"])
    op.create_table(
        "monitor_holds",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("target", sa.String(254), primary_key=True),
    )
    op.create_table(
        "monitor_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for t in ("monitor_state", "monitor_holds", "monitor_risk", "monitor_reviews", "monitor_alerts"):
        op.drop_table(t)
    op.drop_table("monitor_incidents")
