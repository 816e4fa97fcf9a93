"""Export controls: scope locks with coverage totals, usage, per-field coverage bitmaps, exceptions.

Revision ID: egress_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "egress_0001"
down_revision = None
branch_labels = ("egress",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "egress_scopes",
        sa.Column("scope_kind", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(254), primary_key=True),
        sa.Column("participants", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cells", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("union_bitmap", sa.LargeBinary(), nullable=True),
    )
    op.create_table(
        "egress_usage",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("researcher", sa.String(254), nullable=False, index=True),
        sa.Column("application", sa.String(64), nullable=False, index=True),
        sa.Column("institution", sa.String(254), nullable=False, index=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("cells", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("release_id", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "egress_coverage",
        sa.Column("scope_kind", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(254), primary_key=True),
        sa.Column("field", sa.String(64), primary_key=True),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
        sa.Column("participants", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "egress_exceptions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("application", sa.String(64), nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(254), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_participant_share", sa.Float(), nullable=False, server_default="1.0"),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    for t in ("egress_exceptions", "egress_coverage", "egress_usage", "egress_scopes"):
        op.drop_table(t)
