"""Export controls: a scope's per-field coverage names its bitmap by SHA-256, each bitmap stored once per scope.

A whole-cohort export of 99 fields used to write the same ~630 KB bitmap into 99 coverage rows per scope
(about 125 MB per release); now it writes one bitmap per scope and 99 digests. Existing rows are moved:
each coverage row's bitmap goes to ``egress_bitmaps`` (once per scope and digest) and the row keeps its
digest.

Revision ID: egress_0002
Revises: egress_0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "egress_0002"
down_revision = "egress_0001"
branch_labels = None
depends_on = None

_coverage = sa.table(
    "egress_coverage",
    sa.column("scope_kind", sa.String),
    sa.column("scope_id", sa.String),
    sa.column("field", sa.String),
    sa.column("bitmap", sa.LargeBinary),
    sa.column("bitmap_digest", sa.String),
)
_bitmaps = sa.table(
    "egress_bitmaps",
    sa.column("scope_kind", sa.String),
    sa.column("scope_id", sa.String),
    sa.column("digest", sa.String),
    sa.column("bitmap", sa.LargeBinary),
)
_KEY = (_coverage.c.scope_kind, _coverage.c.scope_id, _coverage.c.field)


def upgrade() -> None:
    op.create_table(
        "egress_bitmaps",
        sa.Column("scope_kind", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(254), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
    )
    with op.batch_alter_table("egress_coverage") as batch:
        batch.add_column(sa.Column("bitmap_digest", sa.String(64), nullable=True))
    conn = op.get_bind()
    stored: set[tuple[str, str, str]] = set()
    # the keys first, then one bitmap at a time: a store's coverage can be far larger than memory
    for kind, sid, fld in conn.execute(sa.select(*_KEY).order_by(*_KEY)).all():
        blob = conn.scalar(
            sa.select(_coverage.c.bitmap).where(
                _coverage.c.scope_kind == kind, _coverage.c.scope_id == sid, _coverage.c.field == fld
            )
        )
        digest = hashlib.sha256(blob).hexdigest()
        if (kind, sid, digest) not in stored:
            stored.add((kind, sid, digest))
            conn.execute(_bitmaps.insert().values(scope_kind=kind, scope_id=sid, digest=digest, bitmap=blob))
        conn.execute(
            _coverage.update()
            .where(_coverage.c.scope_kind == kind, _coverage.c.scope_id == sid, _coverage.c.field == fld)
            .values(bitmap_digest=digest)
        )
    with op.batch_alter_table("egress_coverage") as batch:
        batch.alter_column("bitmap_digest", existing_type=sa.String(64), nullable=False)
        batch.drop_column("bitmap")


def downgrade() -> None:
    with op.batch_alter_table("egress_coverage") as batch:
        batch.add_column(sa.Column("bitmap", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    # each stored bitmap is read once and written into the rows that name it (one bitmap in memory at a time)
    for kind, sid, digest in conn.execute(
        sa.select(_bitmaps.c.scope_kind, _bitmaps.c.scope_id, _bitmaps.c.digest).order_by(
            _bitmaps.c.scope_kind, _bitmaps.c.scope_id, _bitmaps.c.digest
        )
    ).all():
        blob = conn.scalar(
            sa.select(_bitmaps.c.bitmap).where(
                _bitmaps.c.scope_kind == kind, _bitmaps.c.scope_id == sid, _bitmaps.c.digest == digest
            )
        )
        conn.execute(
            _coverage.update()
            .where(_coverage.c.scope_kind == kind, _coverage.c.scope_id == sid, _coverage.c.bitmap_digest == digest)
            .values(bitmap=blob)
        )
    with op.batch_alter_table("egress_coverage") as batch:
        batch.alter_column("bitmap", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("bitmap_digest")
    op.drop_table("egress_bitmaps")
