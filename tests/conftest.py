"""Shared fixtures. PostgreSQL is exercised when BIOWARDEN_TEST_DATABASE_URL is set (CI sets it)."""

from __future__ import annotations

import os
import shutil

import pytest

from biowarden.store import connect, migrate
from biowarden.store.db import scratch_schema

POSTGRES_URL = os.environ.get("BIOWARDEN_TEST_DATABASE_URL")


def database_urls() -> list[str]:
    """The stores every control-plane test runs against: SQLite always, PostgreSQL when configured."""
    urls = ["sqlite"]
    if POSTGRES_URL:
        urls.append("postgresql")
    return urls


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh BIOWARDEN_HOME with a fixed master key (tests are deterministic)."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("BIOWARDEN_HOME", str(h))
    monkeypatch.delenv("BIOWARDEN_DATABASE_URL", raising=False)
    monkeypatch.setenv("BIOWARDEN_MASTER_KEY", "11" * 32)
    return h


def java_available() -> bool:
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))


@pytest.fixture(params=database_urls())
def db(request, tmp_path):
    """A migrated, empty store: SQLite always, PostgreSQL when BIOWARDEN_TEST_DATABASE_URL is set.

    On PostgreSQL each test gets its own schema, so tests never see each other's rows.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        migrate(url)
        database = connect(url)
        yield database
        database.dispose()
        return
    with scratch_schema(POSTGRES_URL) as url:
        migrate(url)
        database = connect(url)
        yield database
        database.dispose()


@pytest.fixture(scope="session")
def spark():
    """The process's local[2] SparkSession (biowarden.engine.spark), started once and shared by all tests."""
    if not java_available():
        pytest.skip("Spark tests need Java: no `java` on PATH and JAVA_HOME is unset")
    from biowarden.engine.spark import spark_session, stop_spark

    session = spark_session()
    yield session
    stop_spark()
