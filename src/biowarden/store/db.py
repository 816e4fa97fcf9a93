"""Engines, sessions and migrations for the control-plane store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    """The store cannot be reached or migrated; the message names the database without its password."""


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised via connect()
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin_immediate(conn) -> None:  # pragma: no cover - exercised via connect()
    # a read-only session (Database.read_session) begins a plain deferred transaction: in WAL mode it
    # reads a consistent snapshot without waiting for, or blocking, the one writer
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("biowarden_read_only") else "BEGIN IMMEDIATE")


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error (nothing half-written)."""
        s = self.sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A unit of work that only reads: on SQLite it does not take the write lock (its transaction
        begins deferred), and it is always rolled back, so nothing it does is written."""
        s = Session(bind=self.engine.execution_options(biowarden_read_only=True), expire_on_commit=False)
        try:
            yield s
        finally:
            s.rollback()
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()


def connect(url: str, *, echo: bool = False) -> Database:
    """Open a store at ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    u = make_url(url)
    kwargs: dict = {"echo": echo, "future": True}
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        # The driver's own transaction handling is switched off (isolation_level=None) so that every
        # transaction starts with BEGIN IMMEDIATE: it takes SQLite's write lock up front, and two
        # transactions can never both read the same quota or ledger head and then race to write.
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False, "isolation_level": None}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 40
    engine = create_engine(u, **kwargs)
    if u.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return Database(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


@contextmanager
def scratch_schema(postgres_url: str, prefix: str = "t") -> Iterator[str]:
    """A fresh PostgreSQL schema for tests and benchmarks, dropped afterwards.

    Yields a URL whose ``search_path`` is that schema, so whatever runs there sees an empty store.
    """
    admin = create_engine(postgres_url)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the store at ``url`` to the newest revision of every area's branch."""
    from alembic import command

    try:
        command.upgrade(alembic_config(url), "heads")
    except Exception as exc:  # name the database, never its password
        raise StoreError(f"migrating {safe_url(url)} failed: {exc.__class__.__name__}: {exc}") from None
