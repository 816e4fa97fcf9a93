"""The registry: institutions, researchers, applications, accounts, API tokens, suspensions, votes.

Revision ID: registry_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "registry_0001"
down_revision = None
branch_labels = ("registry",)
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    control = op.create_table(
        "registry_control",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False, server_default="0"),
    )
    op.bulk_insert(control, [{"id": 1, "seq": 0}])
    op.create_table(
        "institutions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("name", name="uq_institutions_name"),
    )
    op.create_table(
        "researchers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attested_on", sa.Date(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("email", name="uq_researchers_email"),
    )
    op.create_index("ix_researchers_institution_id", "researchers", ["institution_id"])
    op.create_table(
        "applications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("institution_id", sa.Integer(), sa.ForeignKey("institutions.id"), nullable=False),
        sa.Column("pi_id", sa.Integer(), sa.ForeignKey("researchers.id"), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("approved_at", TS, nullable=True),
    )
    op.create_index("ix_applications_institution_id", "applications", ["institution_id"])
    op.create_table(
        "application_members",
        sa.Column("application_id", sa.String(32), sa.ForeignKey("applications.id"), primary_key=True),
        sa.Column("researcher_id", sa.Integer(), sa.ForeignKey("researchers.id"), primary_key=True),
    )
    op.create_index("ix_application_members_researcher_id", "application_members", ["researcher_id"])
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("researcher_id", sa.Integer(), sa.ForeignKey("researchers.id"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("username", name="uq_accounts_username"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("application_id", sa.String(32), nullable=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(500), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_account_id", "api_tokens", ["account_id"])
    op.create_table(
        "suspensions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.String(254), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("lifted_at", TS, nullable=True),
        sa.Column("lifted_by", sa.String(254), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_suspensions_scope", "suspensions", ["scope"])
    op.create_table(
        "committee_votes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("voter", sa.String(254), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("subject", "action", "voter", name="uq_committee_votes_vote"),
    )
    op.create_index("ix_committee_votes_subject", "committee_votes", ["subject"])


def downgrade() -> None:
    for table in (
        "committee_votes",
        "suspensions",
        "api_tokens",
        "accounts",
        "application_members",
        "applications",
        "researchers",
        "institutions",
        "registry_control",
    ):
        op.drop_table(table)
