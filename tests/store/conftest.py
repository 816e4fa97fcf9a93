"""A migrated, empty store per test: SQLite always, PostgreSQL when BIOWARDEN_TEST_DATABASE_URL is set.

On PostgreSQL each test gets its own schema, so tests never see each other's rows.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from biowarden.store import connect, migrate
from tests.conftest import POSTGRES_URL, database_urls


@pytest.fixture(params=database_urls())
def db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        migrate(url)
        database = connect(url)
        yield database
        database.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    migrate(url)
    database = connect(url)
    yield database
    database.dispose()
    with admin.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
