import pytest
import sqlalchemy as sa

from biowarden.store.db import StoreError, migrate, safe_url
from biowarden.store.meta_tables import StoreMeta


def test_migrated_store_round_trips_and_rolls_back(db):
    with db.session() as s:
        s.add(StoreMeta(key="created", value="2026-11-23"))
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(StoreMeta(key="half", value="written"))
        s.flush()
        raise RuntimeError("boom")
    with db.session() as s:
        keys = s.scalars(sa.select(StoreMeta.key)).all()
    assert keys == ["created"]


def test_migrate_is_idempotent(db):
    migrate(db.url)
    with db.engine.connect() as c:
        heads = c.execute(sa.text("select version_num from alembic_version")).scalars().all()
    assert "core_0001" in heads


def test_errors_hide_the_password():
    url = "postgresql+psycopg://user:hunter2@127.0.0.1:1/nothing"
    assert "hunter2" not in safe_url(url)
    with pytest.raises(StoreError) as e:
        migrate(url)
    assert "hunter2" not in str(e.value)
