"""Release downloads: where the platform keeps each release's file, and single-use download links.

Revision ID: release_0002
Revises: release_0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "release_0002"
down_revision = "release_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("path", sa.Text(), nullable=True))
    op.create_table(
        "release_download_links",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("link_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("release_id", sa.String(40), nullable=False, index=True),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("download_ledger_index", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("release_download_links")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("path")
