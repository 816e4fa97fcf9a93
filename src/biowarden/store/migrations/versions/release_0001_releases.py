"""Release pipeline: application numbers and release records.

Revision ID: release_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "release_0001"
down_revision = None
branch_labels = ("release",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "release_applications",
        sa.Column("application_id", sa.String(64), primary_key=True),
        sa.Column("application_no", sa.Integer(), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("application_id", sa.String(64), nullable=False, index=True),
        sa.Column("application_no", sa.Integer(), nullable=False),
        sa.Column("institution", sa.String(254), nullable=False, index=True),
        sa.Column("researcher", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("quasi_identifiers", sa.JSON(), nullable=False),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.Column("risk", sa.JSON(), nullable=False),
        sa.Column("key_ids", sa.JSON(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("participant_digest", sa.String(64), nullable=False),
        sa.Column("participants", sa.LargeBinary(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("file_bytes", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("marked", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_table("release_applications")
