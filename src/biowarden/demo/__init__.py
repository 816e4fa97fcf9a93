"""The demo: replays the April 2026 incident end to end on a synthetic cohort.

Each capability adds one step module here and one entry to ``STEPS``; a step gets the shared
``DemoContext`` and prints its part of the story. Steps run in order and share state through the context.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule


@dataclass
class DemoContext:
    home: Path
    participants: int
    seed: int
    console: Console
    state: dict[str, Any] = field(default_factory=dict)


# (title, module, function): each function takes the DemoContext.
STEPS: list[tuple[str, str, str]] = [
    ("The cohort", "biowarden.demo.cohort_step", "run"),
    ("The registry: institutions, researchers, applications", "biowarden.demo.registry_step", "run"),
    ("Re-identification: linkage attacks and the Rocher likelihood", "biowarden.demo.attack_step", "run"),
    ("Releases, the incident's pulls refused, the leak traced", "biowarden.demo.release_step", "run"),
    ("Tracing: the regulator's view", "biowarden.demo.trace_step", "run"),
    ("Monitoring: the incident's pulls caught and suspended", "biowarden.demo.monitor_step", "run"),
]


MARKER = "demo.json"  # in a home the demo made: which store its replay wrote to


class DemoError(RuntimeError):
    """The demo cannot run in this home (it holds a platform the demo did not make)."""


def _store_is_empty(url: str) -> bool:
    """Whether the store at ``url`` holds no ledger entry (a SQLite file that does not exist holds none)."""
    from sqlalchemy import create_engine, func, inspect, select
    from sqlalchemy.engine import make_url

    from biowarden.store.ledger_tables import LedgerEntryRow

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and (not u.database or not Path(u.database).exists()):
        return True
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            if not inspect(c).has_table(LedgerEntryRow.__tablename__):
                return True
            return not c.execute(select(func.count()).select_from(LedgerEntryRow)).scalar()
    finally:
        engine.dispose()


def _url_digest(url: str) -> str:
    import hashlib

    return hashlib.sha256(url.encode()).hexdigest()[:16]  # the URL may hold a password: never written as is


def clean_slate(ctx: DemoContext) -> None:
    """Start the replay from an empty control plane, so every run tells the same story (an earlier replay's
    suspensions, incidents and quotas would change it): in a home the demo made (:data:`MARKER`, naming its
    store), the store is emptied (a SQLite file removed, another database's tables dropped by the
    migrations) and the earlier releases and leak removed; the cohort and the master key are kept. A home
    whose store holds anything the demo did not make is never touched: :class:`DemoError`."""
    import json
    import shutil

    from alembic import command

    from biowarden.config import load_settings
    from biowarden.store.db import alembic_config, safe_url

    settings = load_settings(ctx.home)
    url = settings.database_url
    marker = ctx.home / MARKER
    made = json.loads(marker.read_text("utf-8")) if marker.is_file() else {}
    if made.get("store") != _url_digest(url):
        if not _store_is_empty(url):
            raise DemoError(
                f"{safe_url(url)} holds a platform's ledger that an earlier demo did not write: the demo never "
                "replaces real state; run it with --home on a new folder (and BIOWARDEN_DATABASE_URL unset), or "
                f"remove {ctx.home} if a demo from before {MARKER} existed made it"
            )
    elif not _store_is_empty(url):
        ctx.console.print(f"Starting from an empty store (the earlier replay's state in {safe_url(url)} is removed).")
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.get_backend_name() == "sqlite" and u.database:
            for suffix in ("", "-wal", "-shm"):
                Path(u.database + suffix).unlink(missing_ok=True)
        else:
            command.downgrade(alembic_config(url), "base")
    for folder in ("releases", "leak"):
        shutil.rmtree(ctx.home / folder, ignore_errors=True)
    marker.write_text(json.dumps({"store": _url_digest(url)}) + "\n", "utf-8")


def run(ctx: DemoContext, steps: list[tuple[str, str, str]] | None = None) -> None:
    if steps is None:
        clean_slate(ctx)
    for title, module, func in steps or STEPS:
        ctx.console.print(Rule(f"[bold]{title}"))
        started = time.perf_counter()
        step: Callable[[DemoContext], None] = getattr(importlib.import_module(module), func)
        step(ctx)
        ctx.console.print(f"[dim]({title}: {time.perf_counter() - started:.1f} s)[/]")
