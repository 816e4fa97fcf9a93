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


def test_concurrent_read_modify_write_is_serialised(db):
    """Every transaction takes the write lock first (SQLite) or the row lock (PostgreSQL): no lost update."""
    import threading

    with db.session() as s:
        s.add(StoreMeta(key="counter", value="0"))

    def bump() -> None:
        for _ in range(10):
            with db.session() as s:
                q = sa.select(StoreMeta).where(StoreMeta.key == "counter")
                if db.dialect == "postgresql":
                    q = q.with_for_update()
                row = s.scalars(q).one()
                row.value = str(int(row.value) + 1)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as s:
        assert s.get(StoreMeta, "counter").value == "80"
