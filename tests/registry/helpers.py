"""Shared set-up for registry, web and bench code paths in tests: a registry over the test store with a
fixed key and a settable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from biowarden.keys import KeyRing
from biowarden.registry import Registry

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
KEY = bytes.fromhex("11" * 32)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now = self.now + timedelta(**kw)


def make_registry(db, clock: Clock | None = None) -> Registry:
    return Registry(db, KeyRing(KEY), clock=clock or Clock())


def fast_hashing() -> None:
    """argon2id at a low cost: tests hash many passwords on a contended machine."""
    from biowarden.registry.auth import configure_hashing

    configure_hashing(time_cost=1, memory_cost=1024)
