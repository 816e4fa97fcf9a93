"""Ledger fixtures: a ledger on the shared ``db`` fixture (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import pytest

from biowarden.keys import KeyRing
from biowarden.store.ledger_store import LedgerStore

MASTER = bytes(range(32))


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing(MASTER)


@pytest.fixture
def ledger(db, keyring):
    return LedgerStore(db, keyring, checkpoint_every=8, checkpoint_seconds=3600.0)
