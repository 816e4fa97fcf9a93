"""The demo starts every replay from an empty control plane in a home it made, and never touches a store it
did not make."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from sqlalchemy import func, select

from biowarden.demo import MARKER, DemoContext, DemoError, clean_slate
from biowarden.keys import KeyRing
from biowarden.registry import LOCAL_OPERATOR as OP
from biowarden.registry import Registry
from biowarden.store import connect, migrate
from biowarden.store.db import scratch_schema
from biowarden.store.ledger_tables import LedgerEntryRow
from tests.conftest import POSTGRES_URL, database_urls


def _entries(url: str) -> int:
    db = connect(url)
    try:
        with db.session() as s:
            return int(s.scalar(select(func.count()).select_from(LedgerEntryRow)))
    finally:
        db.dispose()


def _register(url: str, home) -> None:
    migrate(url)
    db = connect(url)
    try:
        Registry(db, KeyRing.from_home(home)).add_institution(OP, "Northbridge Institute")
    finally:
        db.dispose()


@pytest.fixture(params=database_urls())
def store_url(request, home, monkeypatch):
    if request.param == "sqlite":
        yield f"sqlite:///{home / 'biowarden.db'}"
        return
    with scratch_schema(POSTGRES_URL) as url:
        monkeypatch.setenv("BIOWARDEN_DATABASE_URL", url)
        yield url


def test_a_second_replay_starts_from_an_empty_store_and_keeps_the_cohort(home, store_url):
    ctx = DemoContext(home=home, participants=1000, seed=1, console=Console(width=120, record=True))
    clean_slate(ctx)  # a new home: nothing to remove; the marker names the store (not its URL)
    marker = json.loads((home / MARKER).read_text())
    assert set(marker) == {"store"} and store_url not in (home / MARKER).read_text()
    _register(store_url, home)  # what a replay leaves behind
    for folder in ("releases", "leak", "cohort"):
        (home / folder).mkdir()
        (home / folder / "x").write_text("x")
    assert _entries(store_url) > 0
    clean_slate(ctx)
    migrate(store_url)
    assert _entries(store_url) == 0
    assert not (home / "releases").exists() and not (home / "leak").exists()
    assert (home / "cohort" / "x").read_text() == "x"  # the cohort is kept (and reused by the cohort step)
    assert "Starting from an empty store" in ctx.console.export_text()


def test_a_store_the_demo_did_not_make_is_never_touched(home, store_url):
    _register(store_url, home)
    ctx = DemoContext(home=home, participants=1000, seed=1, console=Console(width=120))
    with pytest.raises(DemoError, match="did not write"):
        clean_slate(ctx)
    assert _entries(store_url) > 0 and not (home / MARKER).exists()
    # nor one the demo made for another store URL
    (home / MARKER).write_text(json.dumps({"store": "0" * 16}))
    with pytest.raises(DemoError):
        clean_slate(ctx)
    assert _entries(store_url) > 0
